//! The HTTP layers around the gatekeeper's routes: the body limit, its 413 answer, and
//! one log line per request (no query string, no body: they may hold patient data).

use crate::server::Gatekeeper;
use axum::{
    Router,
    extract::{ConnectInfo, DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde_json::json;
use std::{net::SocketAddr, time::Instant};

/// The gatekeeper's routes with the body limit, its 413 answer, CORS for the allowed
/// origins (preflights answered before any route) and request logs.
pub(super) fn router(
    gatekeeper: &Gatekeeper,
    body_limit: usize,
    cors: Option<tower_http::cors::CorsLayer>,
) -> Router {
    let mut router = gatekeeper.router().layer(DefaultBodyLimit::max(body_limit));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        log_and_explain(request, next, body_limit)
    }))
}

/// Logs one line per request (no query string, no body) and answers a 413 from any
/// route with a FHIR OperationOutcome that names the limit.
async fn log_and_explain(request: Request, next: Next, body_limit: usize) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let response = next.run(request).await;
    let status = response.status();
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "medrec::gatekeeper::http",
        %method,
        path,
        status = status.as_u16(),
        elapsed_ms,
        peer = peer.map(tracing::field::display),
        "request"
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(response, body_limit).await;
    }
    response
}

/// A 413 as a FHIR OperationOutcome, keeping the route's own message when it names its
/// limit (the sign-in route has a smaller one).
async fn too_large(response: Response, body_limit: usize) -> Response {
    let original = axum::body::to_bytes(response.into_body(), 64 * 1024).await.ok();
    let message = original
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["issue"][0]["diagnostics"].as_str().map(str::to_owned))
        .filter(|m| m.contains("limit of"));
    let diagnostics = message.unwrap_or_else(|| {
        format!("the request body is larger than the limit of {body_limit} bytes")
    });
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "too-long", "diagnostics": diagnostics}]
    });
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"))],
        body.to_string(),
    )
        .into_response()
}
