//! The `Authenticated` extractor, in process: bearer tokens and signed requests.

use super::{CHAIN_ID, NOW, Req, Server, alice, assert_error, gatekeeper, state};
use alloy::primitives::B256;
use axum::http::HeaderMap;
use medrec_gatekeeper::auth::{random_nonce, request::Request, sign_request};
use serde_json::Value;

async fn call(req: Req<'_>) -> (u16, Value, HeaderMap) {
    let answer = req.send().await;
    assert!(!answer.body.is_string(), "a JSON body, not {:?}", answer.text);
    (answer.status, answer.body, answer.headers)
}

fn signed(method: &str, target: &str, body: &[u8], nonce: B256) -> HeaderMap {
    sign_request(&alice(), CHAIN_ID, &Request::new(method, target, body, NOW, nonce, gatekeeper()))
        .unwrap()
}

#[tokio::test]
async fn a_signed_request_names_its_signer_and_keeps_its_body() {
    let server = Server::start(state()).await;
    let body = r#"{"resourceType":"Bundle","type":"batch"}"#;
    let headers = signed("POST", "/whoami?_format=json", body.as_bytes(), random_nonce().unwrap());
    let (status, who, _) =
        call(server.post("/whoami?_format=json").headers(headers).body(body)).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["requester"], alice().address().to_checksum(None));
    assert_eq!(who["body"], body);
}

#[tokio::test]
async fn a_replayed_request_is_401() {
    let server = Server::start(state()).await;
    let headers = signed("GET", "/whoami", b"", random_nonce().unwrap());
    let get = || server.get("/whoami").headers(headers.clone());
    assert_eq!(call(get()).await.0, 200);
    let (status, body, _) = call(get()).await;
    assert_error(status, &body, 401, "replayed_nonce");
}

#[tokio::test]
async fn a_tampered_request_is_401() {
    let server = Server::start(state()).await;
    let headers = signed("POST", "/whoami", b"amount=1", random_nonce().unwrap());
    let (status, body, _) = call(server.post("/whoami").headers(headers).body("amount=1000")).await;
    assert_error(status, &body, 401, "signer_mismatch");
}

#[tokio::test]
async fn a_request_signed_too_long_ago_is_401() {
    let server = Server::start(state()).await;
    let headers = signed("GET", "/whoami", b"", random_nonce().unwrap());
    server.state.clock().advance(31);
    let (status, body, _) = call(server.get("/whoami").headers(headers)).await;
    assert_error(status, &body, 401, "request_expired");
}

#[tokio::test]
async fn no_credentials_is_401_with_a_challenge() {
    let server = Server::start(state()).await;
    let (status, body, headers) = call(server.get("/whoami")).await;
    assert_error(status, &body, 401, "missing_credentials");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
}

#[tokio::test]
async fn an_unknown_token_is_401() {
    let server = Server::start(state()).await;
    let (status, body, _) = call(server.get("/whoami").bearer_auth("0".repeat(64))).await;
    assert_error(status, &body, 401, "invalid_token");
}

#[tokio::test]
async fn a_malformed_authorization_is_400() {
    let server = Server::start(state()).await;
    for value in ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "token"] {
        let (status, body, _) = call(server.get("/whoami").header("authorization", value)).await;
        assert_error(status, &body, 400, "malformed_authorization");
    }
}

#[tokio::test]
async fn both_kinds_of_credentials_at_once_is_400() {
    let server = Server::start(state()).await;
    let headers = signed("GET", "/whoami", b"", random_nonce().unwrap());
    let (status, body, _) =
        call(server.get("/whoami").headers(headers).bearer_auth("0".repeat(64))).await;
    assert_error(status, &body, 400, "ambiguous_credentials");
}

#[tokio::test]
async fn a_partly_signed_request_names_the_missing_header() {
    let server = Server::start(state()).await;
    let mut headers = signed("GET", "/whoami", b"", random_nonce().unwrap());
    headers.remove("x-medrec-nonce");
    let (status, body, _) = call(server.get("/whoami").headers(headers)).await;
    assert_error(status, &body, 400, "missing_header");
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("X-MedRec-Nonce"));
}
