//! `GET /auth/nonce` and `POST /auth/siwe`, in process.

use super::{Msg, NOW, Server, alice, assert_error, mallory, state};
use alloy::{
    hex,
    signers::{Signer, local::PrivateKeySigner},
};
use medrec_gatekeeper::auth::routes::SIGN_IN_BODY_LIMIT;
use serde_json::json;

/// EIP-191 `personal_sign` with the async signer API, in 0x hex.
async fn personal_sign(signer: &PrivateKeySigner, text: &str) -> String {
    hex::encode_prefixed(signer.sign_message(text.as_bytes()).await.unwrap().as_bytes())
}

#[tokio::test]
async fn sign_in_end_to_end() {
    let server = Server::start(state()).await;

    // 1. A nonce.
    let nonce = server.nonce().await;
    assert_eq!(nonce.len(), 32);

    // 2. The EIP-4361 message, signed with personal_sign.
    let text = Msg::new(alice().address(), &nonce).text();
    let signature = personal_sign(&alice(), &text).await;

    // 3. Trade them for a bearer token.
    let body = json!({ "message": text, "signature": signature }).to_string();
    let (status, token, headers) = server.post_sign_in_raw(body).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 900);
    assert_eq!(headers["cache-control"], "no-store");
    let access_token = token["access_token"].as_str().unwrap();
    assert!(access_token.len() >= 32);

    // 4. The token stands for Alice, in the store and on a request.
    assert_eq!(server.state.siwe().resolve(access_token, NOW), Some(alice().address()));
    let who = server.get("/whoami").bearer_auth(access_token).send().await;
    assert_eq!(who.status, 200);
    assert_eq!(who.body["requester"], alice().address().to_checksum(None));
}

#[tokio::test]
async fn nonces_are_fresh_each_time() {
    let server = Server::start(state()).await;
    let resp = server.get("/auth/nonce").send().await;
    assert_eq!(resp.headers["cache-control"], "no-store");
    let (a, b) = (server.nonce().await, server.nonce().await);
    assert_ne!(a, b);
}

#[tokio::test]
async fn the_token_expires_with_the_clock() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), &server.nonce().await).text();
    let (status, token) = server.sign_in(&text, &personal_sign(&alice(), &text).await).await;
    assert_eq!(status, 200);
    let access_token = token["access_token"].as_str().unwrap().to_owned();

    let whoami = || server.get("/whoami").bearer_auth(&access_token).send();
    assert_eq!(whoami().await.status, 200);
    server.state.clock().advance(15 * 60);
    let resp = whoami().await;
    assert_eq!(resp.status, 401);
    assert!(resp.headers.contains_key("www-authenticate"));
    assert_error(401, &resp.body, 401, "invalid_token");
}

#[tokio::test]
async fn wrong_domain_is_401() {
    let server = Server::start(state()).await;
    let mut msg = Msg::new(alice().address(), &server.nonce().await);
    msg.domain = "evil.example.org".to_owned();
    let text = msg.text();
    let (status, body) = server.sign_in(&text, &personal_sign(&alice(), &text).await).await;
    assert_error(status, &body, 401, "wrong_domain");
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("evil.example.org"));
}

#[tokio::test]
async fn wrong_chain_is_401() {
    let server = Server::start(state()).await;
    let mut msg = Msg::new(alice().address(), &server.nonce().await);
    msg.chain_id = 5;
    let text = msg.text();
    let (status, body) = server.sign_in(&text, &personal_sign(&alice(), &text).await).await;
    assert_error(status, &body, 401, "wrong_chain");
}

#[tokio::test]
async fn unknown_nonce_is_401() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), "0123456789abcdef0123456789abcdef").text();
    let (status, body) = server.sign_in(&text, &personal_sign(&alice(), &text).await).await;
    assert_error(status, &body, 401, "unknown_nonce");
}

#[tokio::test]
async fn reused_nonce_is_401() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), &server.nonce().await).text();
    let signature = personal_sign(&alice(), &text).await;
    assert_eq!(server.sign_in(&text, &signature).await.0, 200);
    let (status, body) = server.sign_in(&text, &signature).await;
    assert_error(status, &body, 401, "nonce_already_used");
}

#[tokio::test]
async fn expired_message_is_401() {
    let server = Server::start(state()).await;
    let mut msg = Msg::new(alice().address(), &server.nonce().await);
    msg.issued_at = NOW - 120;
    msg.expiration = Some(NOW - 60);
    let text = msg.text();
    let (status, body) = server.sign_in(&text, &personal_sign(&alice(), &text).await).await;
    assert_error(status, &body, 401, "message_expired");
}

#[tokio::test]
async fn bad_signature_is_401() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), &server.nonce().await).text();
    let (status, body) = server.sign_in(&text, &personal_sign(&mallory(), &text).await).await;
    assert_error(status, &body, 401, "signature_mismatch");
}

#[tokio::test]
async fn malformed_message_is_400() {
    let server = Server::start(state()).await;
    let _ = server.nonce().await;
    let text = "Please let me in.";
    let (status, body) = server.sign_in(text, &personal_sign(&alice(), text).await).await;
    assert_error(status, &body, 400, "malformed_message");
}

#[tokio::test]
async fn malformed_signature_is_400() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), &server.nonce().await).text();
    let (status, body) = server.sign_in(&text, "0xnothex").await;
    assert_error(status, &body, 400, "malformed_signature");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = Server::start(state()).await;
    for raw in ["", "not json", r#"{"message": "m"}"#, r#"{"message": 1, "signature": "0x"}"#, "[]"]
    {
        let (status, body, _) = server.post_sign_in_raw(raw).await;
        assert_error(status, &body, 400, "malformed_body");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = Server::start(state()).await;
    let text = Msg::new(alice().address(), &server.nonce().await).text();
    let padded =
        json!({ "message": text, "signature": "0x", "padding": "p".repeat(SIGN_IN_BODY_LIMIT) });
    let (status, body, _) = server.post_sign_in_raw(padded.to_string()).await;
    assert_error(status, &body, 413, "body_too_large");
    // The server keeps serving.
    assert_eq!(server.nonce().await.len(), 32);
}
