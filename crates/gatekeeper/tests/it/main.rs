//! Integration tests of the gatekeeper: the library's public interface and its HTTP
//! routes over real sockets on 127.0.0.1.

mod anchor;
mod auth;
mod fhir;
mod ops;
mod pipeline;
mod pointer;
mod research;
mod server;
