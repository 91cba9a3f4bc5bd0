//! The one test client of the gatekeeper. It drives the gatekeeper's `Router` in
//! process (tower's `oneshot`: no socket, the peer address set by hand) or, for the few
//! tests that need one, a real socket, and signs requests as real clients do
//! (`medrec_gatekeeper::client::GatekeeperClient`): an EIP-712 signature per request,
//! or a bearer token from Sign-In with Ethereum (EIP-4361, `personal_sign`).

use crate::auth::Msg;
use alloy::{
    primitives::Address,
    signers::{SignerSync, local::PrivateKeySigner},
    transports::http::reqwest,
};
use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{HeaderMap, Request as HttpRequest, header},
};
use medrec_gatekeeper::auth::{Request, random_nonce, sign_request};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tower::ServiceExt;

/// The chain every test gatekeeper follows (the devchain's).
pub(crate) const CHAIN_ID: u64 = 31337;
/// The test gatekeeper's domain in sign-in messages.
pub(crate) const DOMAIN: &str = "gk.example";
/// The largest answer read.
const ANSWER_LIMIT: usize = 16 << 20;

/// Now, in seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Who a request is from.
#[derive(Clone, Debug)]
pub(crate) enum As {
    /// Nobody: no credentials.
    Nobody,
    /// A key that signs the request (EIP-712).
    Key(PrivateKeySigner),
    /// This `Authorization` header (`Bearer <token>` from [`Client::sign_in`], or a
    /// forged one).
    Authorization(String),
}

/// An answer: status, headers and body (JSON, or the text as a JSON string when it is
/// not JSON), and the body's text as it came.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Answer {
    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("a text header"))
    }

    /// Whether the body is an OperationOutcome with issue `code`.
    pub(crate) fn is_outcome(&self, code: &str) -> bool {
        self.body["resourceType"] == "OperationOutcome" && self.body["issue"][0]["code"] == code
    }

    /// The OperationOutcome's issue code (asserts there is one).
    pub(crate) fn issue_code(&self) -> &str {
        assert_eq!(self.body["resourceType"], "OperationOutcome", "{}", self.body);
        self.body["issue"][0]["code"].as_str().unwrap()
    }

    /// The OperationOutcome's sentence (asserts there is one).
    pub(crate) fn diagnostics(&self) -> &str {
        assert_eq!(self.body["resourceType"], "OperationOutcome", "{}", self.body);
        self.body["issue"][0]["diagnostics"].as_str().unwrap()
    }

    /// The body of a 2xx answer, or the status and sentence of a refusal, as
    /// `GatekeeperClient` reports them.
    pub(crate) fn ok(self) -> Result<Value, (u16, String)> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let diagnostics = self.body["issue"][0]["diagnostics"]
            .as_str()
            .map_or_else(|| self.text.chars().take(300).collect(), str::to_owned);
        Err((self.status, diagnostics))
    }

    /// The ids in a searchset Bundle.
    pub(crate) fn ids(&self) -> Vec<String> {
        ids(&self.body)
    }
}

/// The ids in a searchset Bundle.
pub(crate) fn ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[derive(Clone)]
enum Transport {
    /// The router, called in process.
    InProcess(Router),
    /// A server on a socket at `base` (`http://127.0.0.1:port`).
    Socket { http: reqwest::Client, base: String },
}

/// A client of one gatekeeper (known on chain as `gatekeeper`).
#[derive(Clone)]
pub(crate) struct Client {
    transport: Transport,
    gatekeeper: Address,
    /// The peer address the router sees (in process only).
    peer: SocketAddr,
}

impl Client {
    /// A client of `router`, in process, from 127.0.0.1.
    pub(crate) fn new(router: Router, gatekeeper: Address) -> Self {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        Self { transport: Transport::InProcess(router), gatekeeper, peer }
    }

    /// A client of the server at `base` over real sockets, through `http`.
    pub(crate) fn over_socket(base: String, gatekeeper: Address, http: reqwest::Client) -> Self {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        Self { transport: Transport::Socket { http, base }, gatekeeper, peer }
    }

    /// The same client, seen by the router as coming from `ip` (in process only).
    pub(crate) fn with_peer(&self, ip: [u8; 4]) -> Self {
        Self { peer: SocketAddr::from((ip, 40000)), ..self.clone() }
    }

    /// `method path` with `body`, from `from`. A body goes as `application/fhir+json`,
    /// as `GatekeeperClient` sends it.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Vec<u8>>,
        from: &As,
    ) -> Answer {
        self.send_with(method, path, body, from, &[]).await
    }

    /// [`Client::send`] with these headers besides.
    pub(crate) async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Vec<u8>>,
        from: &As,
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = body.into();
        let mut request = HttpRequest::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match from {
            As::Nobody => {}
            As::Key(key) => {
                let nonce = random_nonce().unwrap();
                let signed = Request::new(method, path, &body, now(), nonce, self.gatekeeper);
                for (name, value) in &sign_request(key, CHAIN_ID, &signed).unwrap() {
                    request = request.header(name, value);
                }
            }
            As::Authorization(value) => request = request.header(header::AUTHORIZATION, value),
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/fhir+json");
        }
        self.call(request.body(Body::from(body)).unwrap()).await
    }

    /// `GET path` from `from`.
    pub(crate) async fn get(&self, path: &str, from: &As) -> Answer {
        self.send("GET", path, Vec::new(), from).await
    }

    /// `method path` with a JSON `body`, from `from`.
    pub(crate) async fn json(&self, method: &str, path: &str, body: &Value, from: &As) -> Answer {
        self.send(method, path, body.to_string(), from).await
    }

    /// Signs `key` in with Sign-In with Ethereum for [`DOMAIN`]: `Bearer <token>`.
    pub(crate) async fn sign_in(&self, key: &PrivateKeySigner) -> As {
        let token = self.try_sign_in(key).await;
        assert_eq!(token.status, 200, "{}", token.body);
        As::Authorization(format!("Bearer {}", token.body["access_token"].as_str().unwrap()))
    }

    /// Signs in with Ethereum as `key`, answering what `POST /auth/siwe` answered.
    pub(crate) async fn try_sign_in(&self, key: &PrivateKeySigner) -> Answer {
        let nonce = self.get("/auth/nonce", &As::Nobody).await;
        assert_eq!(nonce.status, 200, "{}", nonce.body);
        let mut msg = Msg::new(key.address(), nonce.body["nonce"].as_str().unwrap());
        (msg.domain, msg.chain_id, msg.issued_at) = (DOMAIN.to_owned(), CHAIN_ID, now());
        let text = msg.text();
        let signature = key.sign_message_sync(text.as_bytes()).unwrap();
        let body = json!({"message": text, "signature": signature.to_string()}).to_string();
        let request = HttpRequest::post("/auth/siwe")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.call(request).await
    }

    /// Sends `request` as it is.
    pub(crate) async fn call(&self, mut request: HttpRequest<Body>) -> Answer {
        let (status, headers, bytes) = match &self.transport {
            Transport::InProcess(router) => {
                request.extensions_mut().insert(ConnectInfo(self.peer));
                let response = router.clone().oneshot(request).await.unwrap();
                let (parts, body) = response.into_parts();
                (parts.status, parts.headers, to_bytes(body, ANSWER_LIMIT).await.unwrap().to_vec())
            }
            Transport::Socket { http, base } => {
                let (parts, body) = request.into_parts();
                let body = to_bytes(body, ANSWER_LIMIT).await.unwrap();
                let url = format!("{base}{}", parts.uri);
                let mut req = http.request(parts.method.as_str().parse().unwrap(), url);
                for (name, value) in &parts.headers {
                    req = req.header(name.as_str(), value.as_bytes());
                }
                let resp = req.body(body.to_vec()).send().await.unwrap();
                let status = resp.status().as_u16().try_into().unwrap();
                let mut headers = HeaderMap::new();
                for (name, value) in resp.headers() {
                    headers.append(
                        header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                        header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                    );
                }
                (status, headers, resp.bytes().await.unwrap().to_vec())
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Answer { status: status.as_u16(), headers, body, text }
    }
}
