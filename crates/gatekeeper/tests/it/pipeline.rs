//! The request pipeline in process (tower's `oneshot` on the gatekeeper's router, no
//! socket): what strangers can and cannot make the gatekeeper do, and what the access
//! log records. One signing client ([`Tester`]) sends every request.

use crate::auth::Msg;
use alloy::{
    primitives::Address,
    signers::{SignerSync, local::PrivateKeySigner},
};
use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{Request as HttpRequest, StatusCode, header},
};
use medrec_gatekeeper::{
    auth::{
        AuthState, Clock, Request, RequestVerifier, SiweAuthenticator, SiweConfig, random_nonce,
        sign_request,
    },
    limits::{RateLimit, RateLimits},
    pointer::{PointerQuery, run},
    server::{Enrollment, Gatekeeper, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordStore,
    audit::{AccessLog, WriterConfig, sqlite::SqliteAccessLog},
    fhir::Resource,
    sqlite::SqliteStore,
};
use medrec_testkit::medrec::{Medrec, PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};
use std::{net::SocketAddr, sync::Arc};
use tower::ServiceExt;

const GATEKEEPER: Address = Address::repeat_byte(0x6c);
const DOMAIN: &str = "gk.example";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Who signs a request.
#[derive(Clone)]
enum From {
    /// Nobody: no credentials.
    Nobody,
    /// A key (EIP-712 per request).
    Key(PrivateKeySigner),
    /// A bearer token.
    Bearer(String),
}

/// A gatekeeper over a SQLite store in memory, a devchain with one relationship
/// (patient `p1`, pointer 0 = laboratory Observations, granted to the viewer), and the
/// one client that signs and sends requests through its router in process.
struct Tester {
    m: Medrec,
    gk: Gatekeeper,
    auth: AuthState,
    log: Arc<dyn AccessLog>,
    rel: RelationshipId,
    router: Router,
    _health: tokio::sync::watch::Sender<medrec_chain::follower::Health>,
}

/// Status and body of an answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Tester {
    async fn new(limits: RateLimits) -> Self {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let resource = |v: Value| Resource::parse(v).unwrap();
        store
            .update_all(vec![
                resource(json!({"resourceType": "Patient", "id": "p1"})),
                resource(json!({"resourceType": "Patient", "id": "p2"})),
                resource(json!({
                    "resourceType": "Observation", "id": "a1", "status": "final",
                    "subject": {"reference": "Patient/p1"},
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
                    "effectiveDateTime": "2025-01-02"
                })),
                resource(json!({
                    "resourceType": "Observation", "id": "b1", "status": "final",
                    "subject": {"reference": "Patient/p2"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]}
                })),
            ])
            .await
            .unwrap();
        let query = PointerQuery::parse("Observation?category=laboratory").unwrap();
        let published = run(store.as_ref(), &query, &"p1".parse().unwrap()).await.unwrap();
        let m = Medrec::new().await;
        let rel = m.relate(query.commitment(), published.data_hash).await;
        m.grant(VIEWER).await;
        let (index, follower) = crate::follow(&m).await;
        let (health, health_rx) = tokio::sync::watch::channel(follower.health());
        let auth = AuthState::with_rate_limits(
            RequestVerifier::new(31337, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new(DOMAIN.parse().unwrap(), 31337)),
            Clock::system(),
            limits,
        );
        let log: Arc<dyn AccessLog> = Arc::new(SqliteAccessLog::open_in_memory().unwrap());
        let gk = Gatekeeper::new(store, index, health_rx, Readiness::default(), auth.clone())
            .with_provider(m.address(PROVIDER))
            .with_access_log(log.clone(), WriterConfig::default());
        gk.enroll(rel, Enrollment { patient: "p1".parse().unwrap(), pointers: vec![query] })
            .unwrap();
        let router = gk.router();
        Self { m, gk, auth, log, rel, router, _health: health }
    }

    fn key(&self, who: usize) -> From {
        From::Key(self.m.accounts[who].signer())
    }

    /// `method path`, from `peer`, signed as `from` says.
    async fn send(&self, method: &str, path: &str, from: &From, peer: [u8; 4]) -> Answer {
        let mut request = HttpRequest::builder().method(method).uri(path);
        match from {
            From::Nobody => {}
            From::Key(key) => {
                let signed =
                    Request::new(method, path, b"", now(), random_nonce().unwrap(), GATEKEEPER);
                for (name, value) in &sign_request(key, 31337, &signed).unwrap() {
                    request = request.header(name, value);
                }
            }
            From::Bearer(token) => request = request.header(header::AUTHORIZATION, token),
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from((peer, 40000))));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, body }
    }

    async fn get(&self, path: &str, from: &From) -> Answer {
        self.send("GET", path, from, [127, 0, 0, 1]).await
    }

    /// Signs `key` in with Sign-In with Ethereum: `Bearer <token>`.
    async fn sign_in(&self, key: &PrivateKeySigner) -> From {
        let nonce = self.get("/auth/nonce", &From::Nobody).await.body;
        let mut msg = Msg::new(key.address(), nonce["nonce"].as_str().unwrap());
        (msg.domain, msg.chain_id, msg.issued_at) = (DOMAIN.to_owned(), 31337, now());
        let text = msg.text();
        let signature = key.sign_message_sync(text.as_bytes()).unwrap();
        let body = json!({"message": text, "signature": signature.to_string()}).to_string();
        let request = HttpRequest::post("/auth/siwe")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let token: Value = serde_json::from_slice(&bytes).unwrap();
        From::Bearer(format!("Bearer {}", token["access_token"].as_str().expect("a token")))
    }

    async fn log_size(&self) -> u64 {
        self.gk.flush_access_log().await;
        self.log.head().await.unwrap().size
    }

    fn pointer(&self) -> String {
        format!("/pointers/{}/0", self.rel.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_grow_the_log_or_fill_the_replay_cache() {
    let t = Tester::new(RateLimits::off()).await;
    let path = t.pointer();
    // A flood without credentials, with keys the chain does not know (random ones, as
    // random signature bytes recover to), and from a known stranger's key.
    for i in 0..60 {
        let from = match i % 3 {
            0 => From::Nobody,
            1 => From::Key(PrivateKeySigner::random()),
            _ => t.key(STRANGER),
        };
        let a = t.get(&path, &from).await;
        let expected = if matches!(from, From::Nobody) {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(a.status, expected, "{}", a.body);
    }
    assert_eq!(t.log_size().await, 0, "the flood left no entry in the access log");
    assert_eq!(t.auth.requests().remembered(), 0, "and no nonce in the replay cache");
    let refused = t.gk.refusals();
    assert_eq!((refused.unauthenticated, refused.unknown_requester), (20, 40), "but is counted");
    let metrics = t.get("/metrics", &From::Nobody).await.body;
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("medrec_refused_total{cause=\"unknown_requester\"} 40"), "{metrics}");

    // The viewer is served, logged, and its nonce remembered.
    assert_eq!(t.get(&path, &t.key(VIEWER)).await.status, StatusCode::OK);
    assert_eq!(t.log_size().await, 1);
    assert_eq!(t.auth.requests().remembered(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_budget_is_refused_before_signatures_are_checked() {
    let limits = RateLimits { unauthenticated: RateLimit::new(1, 3), ..RateLimits::off() };
    let t = Tester::new(limits).await;
    let path = t.pointer();
    let bearer = match &t.key(VIEWER) {
        From::Key(key) => t.sign_in(key).await,
        _ => unreachable!(),
    };
    let flood = [10, 0, 0, 9];
    for _ in 0..3 {
        let a = t.send("GET", &path, &From::Key(PrivateKeySigner::random()), flood).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    }
    // The budget is spent: even a valid signature from there is not checked now.
    let a = t.send("GET", &path, &t.key(VIEWER), flood).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.body["issue"][0]["code"], "throttled");
    assert!(t.gk.refusals().source_throttled >= 1);
    // A bearer token from the same address still reads (a hash-map lookup), and other
    // addresses are not affected.
    assert_eq!(t.send("GET", &path, &bearer, flood).await.status, StatusCode::OK);
    assert_eq!(t.send("GET", &path, &t.key(VIEWER), [10, 0, 0, 7]).await.status, StatusCode::OK);
    assert_eq!(t.log_size().await, 2, "only the two reads are in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_own_reads_show_in_the_patients_log() {
    let t = Tester::new(RateLimits::off()).await;
    let provider = t.key(PROVIDER);
    assert_eq!(t.get("/fhir/Observation/a1", &provider).await.status, StatusCode::OK);
    let search = t.get("/fhir/Observation?code=http://loinc.org|2498-4", &provider).await;
    assert_eq!(search.status, StatusCode::OK);
    assert_eq!(search.body["total"], 2, "both patients' results");
    // Another patient's record, not enrolled here: logged, but about no relationship.
    assert_eq!(t.get("/fhir/Observation/b1", &provider).await.status, StatusCode::OK);

    t.gk.flush_access_log().await;
    let page = t.get("/audit", &t.key(PATIENT)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mine: Vec<&Value> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["requester"] == json!(t.m.address(PROVIDER)))
        .collect();
    assert_eq!(mine.len(), 2, "the read and the search that reached p1: {}", page.body);
    assert!(mine.iter().all(|e| e["decision"] == "allow-provider"));
    assert!(mine.iter().all(|e| e["relationship"] == json!(t.rel.0)));
    assert_eq!(mine[0]["action"], "fhir-read");
    assert_eq!(mine[1]["action"], "fhir-search");
    assert_eq!(page.body["head"]["size"], 3, "one entry per read; b1's about no relationship");
}
