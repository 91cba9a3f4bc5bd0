//! Authentication: per-request EIP-712 signatures, Sign-In with Ethereum, the routes and
//! the extractor, in process.

mod extractor;
mod request;
mod routes;
mod siwe;

use crate::client::{Answer, Client};
use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use axum::{
    Json, Router,
    body::Body,
    http::{HeaderMap, Request as HttpRequest},
    routing::any,
};
use medrec_gatekeeper::auth::{
    AuthState, Authenticated, Clock, RequestVerifier, SiweAuthenticator, SiweConfig, router,
};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

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

/// The auth routes and `/whoami` (any method), which answers `{"requester": <address>,
/// "body": <text>}` for an authenticated request, called in process (tower's
/// `oneshot`, through the shared test client): no socket is needed to check what the
/// routes and the extractor answer.
pub(crate) struct Server {
    pub(crate) state: AuthState,
    client: Client,
}

async fn whoami(auth: Authenticated) -> Json<Value> {
    Json(json!({
        "requester": auth.requester.to_checksum(None),
        "body": String::from_utf8_lossy(&auth.body),
    }))
}

/// A request to [`Server`], built as with an HTTP client.
pub(crate) struct Req<'a> {
    client: &'a Client,
    request: axum::http::request::Builder,
    body: Vec<u8>,
}

impl Req<'_> {
    /// Adds these headers.
    pub(crate) fn headers(mut self, headers: HeaderMap) -> Self {
        if let Some(all) = self.request.headers_mut() {
            all.extend(headers);
        }
        self
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>`.
    pub(crate) fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// The body.
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it: the answer.
    pub(crate) async fn send(self) -> Answer {
        self.client.call(self.request.body(Body::from(self.body)).unwrap()).await
    }
}

impl Server {
    /// Serves `state`'s routes and `/whoami` in process.
    pub(crate) async fn start(state: AuthState) -> Self {
        let app = Router::new()
            .route("/whoami", any(whoami))
            .with_state(state.clone())
            .merge(router(state.clone()));
        Self { state, client: Client::new(app, gatekeeper()) }
    }

    /// `GET path`, to send.
    pub(crate) fn get(&self, path: &str) -> Req<'_> {
        self.request("GET", path)
    }

    /// `POST path`, to send.
    pub(crate) fn post(&self, path: &str) -> Req<'_> {
        self.request("POST", path)
    }

    fn request(&self, method: &str, path: &str) -> Req<'_> {
        let request = HttpRequest::builder().method(method).uri(path);
        Req { client: &self.client, request, body: Vec::new() }
    }

    /// `GET /auth/nonce` → the nonce.
    pub(crate) async fn nonce(&self) -> String {
        let answer = self.get("/auth/nonce").send().await;
        assert_eq!(answer.status, 200);
        answer.body["nonce"].as_str().expect("a nonce string").to_owned()
    }

    /// `POST /auth/siwe` with this raw body → (status, JSON body, headers).
    pub(crate) async fn post_sign_in_raw(
        &self,
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value, HeaderMap) {
        let answer = self
            .post("/auth/siwe")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        assert!(!answer.body.is_string(), "a JSON body, not {:?}", answer.text);
        (answer.status, answer.body, answer.headers)
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
