//! CORS for browser apps on other origins (a SMART app, a patient portal): the origins
//! the provider allows, and only those, may call the gatekeeper from a page. Requests
//! carry their credentials in headers (a bearer token or an EIP-712 signature), never
//! in cookies, so credentialed CORS is not offered; preflights are answered before any
//! route, and what a browser may read of an answer includes the FHIR headers (`ETag`,
//! `Location`) and the data hash of a pointer.

use super::ServeError;
use crate::{
    auth::request::{NONCE_HEADER, SIGNATURE_HEADER, SIGNER_HEADER, TIME_HEADER},
    server::DATA_HASH_HEADER,
};
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins` (`scheme://host[:port]` each, or `*` for any origin);
/// `None` when there are none: no page on another origin may call.
pub(super) fn layer(origins: &[String]) -> Result<Option<CorsLayer>, ServeError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().map(|o| origin(o)).collect::<Result<Vec<_>, _>>()?)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                HeaderName::from_static("prefer"),
                SIGNATURE_HEADER,
                TIME_HEADER,
                NONCE_HEADER,
                SIGNER_HEADER,
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::CONTENT_LOCATION,
                header::LAST_MODIFIED,
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
                DATA_HASH_HEADER,
            ])
            .max_age(MAX_AGE),
    ))
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, nothing
/// else (no path, no trailing slash).
fn origin(text: &str) -> Result<HeaderValue, ServeError> {
    let bad = || ServeError::InvalidCorsOrigin(text.chars().take(200).collect());
    let rest =
        text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).ok_or_else(bad)?;
    let plain = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !plain {
        return Err(bad());
    }
    HeaderValue::from_str(text).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(layer(&[]).unwrap().is_none());
        for good in ["https://app.example", "http://localhost:5173", "http://[::1]:8080", "*"] {
            assert!(layer(&[good.to_owned()]).unwrap().is_some(), "{good}");
        }
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/x",
            "ftp://a",
            "https://",
            "https://a b",
        ] {
            assert!(
                matches!(layer(&[bad.to_owned()]), Err(ServeError::InvalidCorsOrigin(_))),
                "{bad}"
            );
        }
    }
}
