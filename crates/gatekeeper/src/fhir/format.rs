//! Content negotiation for `/fhir` (FHIR R4 http.html#mime-type): the gatekeeper
//! speaks JSON only. `_format` (`json`, `application/json`, `application/fhir+json`)
//! wins over `Accept`; a client asking for plain `application/json` gets its answer
//! labelled so, any other JSON request `application/fhir+json`; a request for nothing
//! but another format (XML, Turtle, HTML) is answered 406 with an OperationOutcome.

use crate::error::ApiError;
use axum::{
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The JSON media type a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `application/fhir+json` (also the default).
    Fhir,
    /// `application/json`.
    Plain,
}

/// The layer: refuses what it cannot serve, labels the answer as asked.
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    let media = match requested(&request) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let mut response = next.run(request).await;
    if media == Media::Plain {
        let headers = response.headers_mut();
        let fhir = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/fhir+json"));
        if fhir {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    response
}

fn requested(request: &Request) -> Result<Media, ApiError> {
    let format = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes()).find(|(n, _)| n == "_format").map(|(_, v)| v)
    });
    if let Some(format) = format {
        // An unencoded `+` arrives as a space.
        let format = format.trim().replace(' ', "+").to_ascii_lowercase();
        let media = format.split(';').next().unwrap_or("").trim();
        return match media {
            "json" | "application/fhir+json" | "application/json+fhir" => Ok(Media::Fhir),
            "application/json" => Ok(Media::Plain),
            _ => Err(not_acceptable()),
        };
    }
    let Some(accept) = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Media::Fhir);
    };
    let mut best: Option<(f32, Media)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let kind = match media.as_str() {
            "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" => {
                Media::Fhir
            }
            "application/json" => Media::Plain,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, kind));
        }
    }
    best.map(|(_, m)| m).ok_or_else(not_acceptable)
}

fn not_acceptable() -> ApiError {
    ApiError::NotAcceptable(
        "this server answers in JSON only (application/fhir+json or application/json)",
    )
}
