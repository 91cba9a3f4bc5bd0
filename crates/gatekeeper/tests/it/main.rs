//! Integration tests of the gatekeeper: the library's public interface and its HTTP
//! routes over real sockets on 127.0.0.1.

mod auth;
mod fhir;
mod pointer;
mod server;
