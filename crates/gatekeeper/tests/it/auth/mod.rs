//! Authentication: per-request EIP-712 signatures, Sign-In with Ethereum, the routes and
//! the extractor.

mod extractor;
mod request;
mod routes;
mod siwe;

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use axum::{Json, Router, routing::any};
use medrec_gatekeeper::auth::{
    AuthState, Authenticated, Clock, RequestVerifier, SiweAuthenticator, SiweConfig, router,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{net::TcpListener, task::JoinHandle};

/// The chain the test gatekeeper follows.
pub(crate) const CHAIN_ID: u64 = 1337;
/// The test gatekeeper's domain in sign-in messages.
pub(crate) const DOMAIN: &str = "gatekeeper.example.org";
/// A fixed "now": 2025-06-15T15:06:40Z.
pub(crate) const NOW: u64 = 1_750_000_000;

/// The test gatekeeper's own address.
pub(crate) fn gatekeeper() -> Address {
    Address::repeat_byte(0x9a)
}

/// A fixed key: `n` repeated 32 times.
pub(crate) fn key(n: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).expect("a valid secp256k1 key")
}

/// Alice, the patient who signs in or signs requests.
pub(crate) fn alice() -> PrivateKeySigner {
    key(0xa1)
}

/// Mallory, who signs with her own key.
pub(crate) fn mallory() -> PrivateKeySigner {
    key(0x3e)
}

/// RFC 3339 in UTC, as EIP-4361 wants.
pub(crate) fn rfc3339(unix: u64) -> String {
    OffsetDateTime::from_unix_timestamp(unix as i64).unwrap().format(&Rfc3339).unwrap()
}

/// The parts of an EIP-4361 message a test varies.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) domain: String,
    pub(crate) address: Address,
    pub(crate) chain_id: u64,
    pub(crate) nonce: String,
    pub(crate) issued_at: u64,
    pub(crate) expiration: Option<u64>,
    pub(crate) not_before: Option<u64>,
}

impl Msg {
    /// A message for the test gatekeeper, by `address`, issued now.
    pub(crate) fn new(address: Address, nonce: &str) -> Self {
        Self {
            domain: DOMAIN.to_owned(),
            address,
            chain_id: CHAIN_ID,
            nonce: nonce.to_owned(),
            issued_at: NOW,
            expiration: None,
            not_before: None,
        }
    }

    /// The message text, written out by hand as EIP-4361 lays it out.
    pub(crate) fn text(&self) -> String {
        let mut text = format!(
            "{domain} wants you to sign in with your Ethereum account:\n\
             {address}\n\
             \n\
             Sign in to the MedRec gatekeeper to read your records.\n\
             \n\
             URI: https://{domain}/auth/siwe\n\
             Version: 1\n\
             Chain ID: {chain}\n\
             Nonce: {nonce}\n\
             Issued At: {iat}",
            domain = self.domain,
            address = self.address.to_checksum(None),
            chain = self.chain_id,
            nonce = self.nonce,
            iat = rfc3339(self.issued_at),
        );
        if let Some(exp) = self.expiration {
            text.push_str(&format!("\nExpiration Time: {}", rfc3339(exp)));
        }
        if let Some(nbf) = self.not_before {
            text.push_str(&format!("\nNot Before: {}", rfc3339(nbf)));
        }
        text
    }
}

/// The sign-in configuration of the test gatekeeper.
pub(crate) fn siwe_config() -> SiweConfig {
    SiweConfig::new(DOMAIN.parse().unwrap(), CHAIN_ID)
}

/// Auth state for the test gatekeeper on a manual clock set to [`NOW`].
pub(crate) fn state() -> AuthState {
    AuthState::with_clock(
        RequestVerifier::new(CHAIN_ID, gatekeeper()),
        SiweAuthenticator::new(siwe_config()),
        Clock::manual(NOW),
    )
}

/// A gatekeeper serving the auth routes and `/whoami` (any method), which answers
/// `{"requester": <address>, "body": <text>}` for an authenticated request.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) state: AuthState,
    pub(crate) http: alloy::transports::http::reqwest::Client,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn whoami(auth: Authenticated) -> Json<Value> {
    Json(json!({
        "requester": auth.requester.to_checksum(None),
        "body": String::from_utf8_lossy(&auth.body),
    }))
}

impl Server {
    /// Serves `state` on a free port of 127.0.0.1.
    pub(crate) async fn start(state: AuthState) -> Self {
        let app = Router::new()
            .route("/whoami", any(whoami))
            .with_state(state.clone())
            .merge(router(state.clone()));
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, http: alloy::transports::http::reqwest::Client::new(), task }
    }

    /// `GET /auth/nonce` → the nonce.
    pub(crate) async fn nonce(&self) -> String {
        let resp = self.http.get(format!("{}/auth/nonce", self.url)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        v["nonce"].as_str().expect("a nonce string").to_owned()
    }

    /// `POST /auth/siwe` with this raw body → (status, JSON body, headers).
    pub(crate) async fn post_sign_in_raw(
        &self,
        body: impl Into<alloy::transports::http::reqwest::Body>,
    ) -> (u16, Value, axum::http::HeaderMap) {
        let resp = self
            .http
            .post(format!("{}/auth/siwe", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a JSON body, not {text:?}: {e}"));
        (status, value, headers)
    }

    /// `POST /auth/siwe` with a message and signature → (status, JSON body).
    pub(crate) async fn sign_in(&self, message: &str, signature: &str) -> (u16, Value) {
        let body = json!({ "message": message, "signature": signature }).to_string();
        let (status, value, _) = self.post_sign_in_raw(body).await;
        (status, value)
    }
}

/// Asserts an error body: this status, this code, and a message a person can read.
pub(crate) fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        (status, body["issue"][0]["details"]["coding"][0]["code"].as_str()),
        (want_status, Some(want_code)),
        "body: {body}"
    );
    let message = body["issue"][0]["diagnostics"].as_str().expect("an error message");
    assert!(message.len() > 20 && !message.contains("Error {"), "unclear message: {message}");
}
