//! The FHIR REST API over HTTP: what the provider, the patient, a viewer and a stranger
//! may read, search and write, against a devchain, the follower and a SQLite store.

use crate::auth::Msg;
use alloy::{
    primitives::{Address, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    transports::http::reqwest,
};
use medrec_chain::follower::Follower;
use medrec_gatekeeper::{
    auth::{
        AuthState, Request, RequestVerifier, SiweAuthenticator, SiweConfig, random_nonce,
        sign_request,
    },
    pointer::{PointerQuery, run},
    server::{Enrollment, Gatekeeper, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordStore,
    audit::{AccessLog, WriterConfig, sqlite::SqliteAccessLog, verify},
    fhir::Resource,
    sqlite::SqliteStore,
};
use medrec_testkit::medrec::{Medrec, PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};
use std::sync::Arc;

const GATEKEEPER: Address = Address::repeat_byte(0x6c);
const DOMAIN: &str = "gk.example";

fn obs(id: &str, patient: &str, category: &str, date: &str) -> Resource {
    Resource::parse(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
        "effectiveDateTime": date
    }))
    .unwrap()
}

fn patient(id: &str) -> Resource {
    Resource::parse(json!({"resourceType": "Patient", "id": id, "gender": "female"})).unwrap()
}

fn condition(id: &str, patient: &str) -> Resource {
    Resource::parse(json!({
        "resourceType": "Condition", "id": id,
        "subject": {"reference": format!("Patient/{patient}")},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}
    }))
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

struct Fixture {
    m: Medrec,
    gk: Gatekeeper,
    log: Arc<dyn AccessLog>,
    rel: RelationshipId,
    follower: Follower<alloy::providers::RootProvider>,
    health: tokio::sync::watch::Sender<medrec_chain::follower::Health>,
    http: reqwest::Client,
    base: String,
}

/// An answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Fixture {
    /// Records of two patients; `p1` is enrolled with pointer 0 =
    /// `Observation?category=laboratory`, accepted and granted to [`VIEWER`].
    async fn new() -> Self {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        store
            .update_all(vec![
                patient("p1"),
                patient("p2"),
                obs("a1", "p1", "laboratory", "2025-01-02"),
                obs("a2", "p1", "vital-signs", "2025-01-03"),
                obs("a3", "p1", "laboratory", "2024-06-01"),
                obs("b1", "p2", "laboratory", "2025-01-02"),
                condition("c1", "p1"),
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
        let auth = AuthState::new(
            RequestVerifier::new(31337, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new(DOMAIN.parse().unwrap(), 31337)),
        );
        let log: Arc<dyn AccessLog> = Arc::new(SqliteAccessLog::open_in_memory().unwrap());
        let gk = Gatekeeper::new(store, index, health_rx, Readiness::default(), auth)
            .with_provider(m.address(PROVIDER))
            .with_access_log(log.clone(), WriterConfig::default());
        gk.enroll(rel, Enrollment { patient: "p1".parse().unwrap(), pointers: vec![query] })
            .unwrap();
        let router = gk.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, router).into_future());
        Self { m, gk, log, rel, follower, health, http: reqwest::Client::new(), base }
    }

    fn signer(&self, who: usize) -> PrivateKeySigner {
        self.m.accounts[who].signer()
    }

    /// `method path` with `body`, signed by dev account `who` (EIP-712).
    async fn send(&self, method: &str, path: &str, body: Option<&Value>, who: usize) -> Answer {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers = sign_request(
            &self.signer(who),
            31337,
            &Request::new(
                method,
                path,
                body.as_bytes(),
                now(),
                random_nonce().unwrap(),
                GATEKEEPER,
            ),
        )
        .unwrap();
        let mut req =
            self.http.request(method.parse().unwrap(), format!("{}{path}", self.base)).body(body);
        for (name, value) in &headers {
            req = req.header(name.as_str(), value.to_str().unwrap());
        }
        answer(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str, who: usize) -> Answer {
        self.send("GET", path, None, who).await
    }

    /// The ids in a searchset Bundle.
    async fn ids(&self, path: &str, who: usize) -> Vec<String> {
        let a = self.get(path, who).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        ids(&a.body)
    }

    /// Signs dev account `who` in with Sign-In with Ethereum: `Bearer <token>`.
    async fn sign_in(&self, who: usize) -> String {
        let nonce: Value = self
            .http
            .get(format!("{}/auth/nonce", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signer = self.signer(who);
        let mut msg = Msg::new(signer.address(), nonce["nonce"].as_str().unwrap());
        (msg.domain, msg.chain_id, msg.issued_at) = (DOMAIN.to_owned(), 31337, now());
        let text = msg.text();
        let signature = signer.sign_message_sync(text.as_bytes()).unwrap();
        let token: Value = self
            .http
            .post(format!("{}/auth/siwe", self.base))
            .json(&json!({"message": text, "signature": signature.to_string()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        format!("Bearer {}", token["access_token"].as_str().expect("a token"))
    }

    /// `GET path` with an `Authorization` header.
    async fn with_token(&self, path: &str, authorization: &str) -> Answer {
        let req =
            self.http.get(format!("{}{path}", self.base)).header("authorization", authorization);
        answer(req.send().await.unwrap()).await
    }

    /// The data hash pointer 0 was published with (its `PointerAdded` event).
    async fn published_hash(&self) -> alloy::primitives::B256 {
        let reader = self.m.reader();
        let added = medrec_contracts::Relationships::new(self.m.at.relationships, &reader)
            .PointerAdded_filter()
            .from_block(0)
            .query()
            .await
            .unwrap();
        added.first().expect("pointer 0 was added").0.dataHash
    }

    /// Follows the chain to its head.
    async fn catch_up(&mut self) {
        self.follower.step().await.unwrap();
        self.health.send_replace(self.follower.health());
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}

fn ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn is_outcome(a: &Answer, code: &str) -> bool {
    a.body["resourceType"] == "OperationOutcome" && a.body["issue"][0]["code"] == code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_sees_their_whole_compartment_and_nothing_else() {
    let f = Fixture::new().await;
    assert_eq!(f.ids("/fhir/Observation", PATIENT).await, ["a1", "a2", "a3"]);
    assert_eq!(f.ids("/fhir/Condition", PATIENT).await, ["c1"]);
    assert_eq!(f.ids("/fhir/Patient", PATIENT).await, ["p1"]);
    let read = f.get("/fhir/Observation/a2", PATIENT).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["id"], "a2");
    assert_eq!(read.headers["etag"], "W/\"1\"");
    // Another patient's resource reads as not found, exactly like one that does not exist.
    let other = f.get("/fhir/Observation/b1", PATIENT).await;
    let missing = f.get("/fhir/Observation/zz", PATIENT).await;
    assert_eq!((other.status, missing.status), (404, 404));
    assert_eq!(other.body, missing.body);
    assert!(is_outcome(&other, "not-found"));
    // Searching for the other patient explicitly finds nothing.
    assert!(f.ids("/fhir/Observation?patient=p2", PATIENT).await.is_empty());
    assert!(f.ids("/fhir/Observation?subject=Patient/p2&_id=b1", PATIENT).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_exactly_the_granted_pointer_until_it_is_revoked() {
    let mut f = Fixture::new().await;
    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a3"]);
    assert_eq!(f.ids("/fhir/Observation?date=ge2025", VIEWER).await, ["a1"]);
    assert_eq!(f.ids("/fhir/Observation?_id=a1,a2,b1", VIEWER).await, ["a1"]);
    assert!(f.ids("/fhir/Condition", VIEWER).await.is_empty(), "not in the pointer");
    assert_eq!(f.get("/fhir/Observation/a1", VIEWER).await.status, 200);
    for outside in
        ["/fhir/Observation/a2", "/fhir/Observation/b1", "/fhir/Condition/c1", "/fhir/Patient/p1"]
    {
        let a = f.get(outside, VIEWER).await;
        assert_eq!(a.status, 404, "{outside}: {}", a.body);
        assert!(!a.body.to_string().contains("Patient/p"), "nothing leaks: {}", a.body);
    }

    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let a = f.get("/fhir/Observation/a1", VIEWER).await;
    assert_eq!(a.status, 403, "refused the moment the revocation is indexed: {}", a.body);
    assert!(is_outcome(&a, "forbidden"));
    assert_eq!(f.get("/fhir/Observation", VIEWER).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_sees_nothing_and_cannot_write() {
    let f = Fixture::new().await;
    for path in
        ["/fhir/Observation", "/fhir/Observation/a1", "/fhir/Patient/p1", "/fhir/Condition?_id=zz"]
    {
        let a = f.get(path, STRANGER).await;
        assert_eq!(a.status, 403, "{path}");
        assert!(is_outcome(&a, "forbidden"));
    }
    let new = json!({"resourceType": "Patient", "id": "x9"});
    for who in [STRANGER, PATIENT, VIEWER] {
        assert_eq!(f.send("PUT", "/fhir/Patient/x9", Some(&new), who).await.status, 403);
        assert_eq!(f.send("POST", "/fhir/Patient", Some(&new), who).await.status, 403);
    }
    assert_eq!(f.get("/fhir/Patient/x9", PROVIDER).await.status, 404, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_reads_everything_and_pages_through_searches() {
    let f = Fixture::new().await;
    assert_eq!(f.ids("/fhir/Observation", PROVIDER).await, ["a1", "a2", "a3", "b1"]);
    let page = f.get("/fhir/Observation?_count=2&_sort=-date", PROVIDER).await;
    assert_eq!(page.body["total"], 4);
    assert_eq!(ids(&page.body), ["a2", "a1"]);
    let links = page.body["link"].as_array().unwrap();
    let next = links.iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap();
    assert!(next.contains("_offset=2") && next.contains("_sort=-date"), "{next}");
    let path = &next[next.find("/fhir/").unwrap()..];
    let second = f.get(path, PROVIDER).await;
    assert_eq!(ids(&second.body), ["b1", "a3"]);
    assert!(second.body["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"));
    let code =
        "/fhir/Observation?code=http://loinc.org|2498-4&category=laboratory&_lastUpdated=ge2000";
    assert_eq!(f.ids(code, PROVIDER).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_with_two_pointers_pages_through_their_union() {
    use alloy::primitives::aliases::U40;
    use medrec_contracts::Relationships;
    use medrec_testkit::medrec::DELEGATE;
    let mut f = Fixture::new().await;
    // The provider adds pointer 1 (vital signs), the patient accepts it and grants
    // the viewer both pointers.
    let vitals = PointerQuery::parse("Observation?category=vital-signs").unwrap();
    let (patient, delegate, viewer) =
        (f.m.address(PATIENT), f.m.address(DELEGATE), f.m.address(VIEWER));
    let by_delegate = Relationships::new(f.m.at.relationships, f.m.wallet(DELEGATE));
    let pending = by_delegate
        .addPointer(patient, vitals.commitment(), keccak256("data"), keccak256("bounty"))
        .send()
        .await
        .unwrap();
    assert!(pending.get_receipt().await.unwrap().status());
    let by_patient = Relationships::new(f.m.at.relationships, f.m.wallet(PATIENT));
    let accept = by_patient.accept(delegate).send().await.unwrap();
    assert!(accept.get_receipt().await.unwrap().status());
    let grant = by_patient.grant(delegate, viewer, 0b11, U40::ZERO, U40::from(4_000_000_000u64));
    assert!(grant.send().await.unwrap().get_receipt().await.unwrap().status());
    let labs = PointerQuery::parse("Observation?category=laboratory").unwrap();
    f.gk.enroll(f.rel, Enrollment { patient: "p1".parse().unwrap(), pointers: vec![labs, vitals] })
        .unwrap();
    f.catch_up().await;

    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a2", "a3"]);
    let page = f.get("/fhir/Observation?_count=2&_sort=-date", VIEWER).await;
    assert_eq!(
        (ids(&page.body), page.body["total"].as_u64()),
        (vec!["a2".into(), "a1".into()], Some(3))
    );
    let page = f.get("/fhir/Observation?_count=2&_offset=2&_sort=-date", VIEWER).await;
    assert_eq!(ids(&page.body), ["a3"]);
    assert!(f.ids("/fhir/Observation?patient=p2", VIEWER).await.is_empty());
    assert_eq!(f.get("/fhir/Observation/b1", VIEWER).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_creates_updates_and_imports_bundles() {
    let f = Fixture::new().await;
    // Create: a new id, 201 with Location and ETag.
    let created =
        f.send("POST", "/fhir/Condition", Some(&condition("ignored", "p1").json), PROVIDER).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "ignored");
    assert!(
        created.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/fhir/Condition/{id}/_history/1"))
    );
    // The patient sees it at once.
    assert!(f.ids("/fhir/Condition", PATIENT).await.contains(&id));

    // Update: version 2; the id must match the URL.
    let mut c = condition("c1", "p1").json;
    c["clinicalStatus"] = json!({"coding": [{"code": "resolved"}]});
    let updated = f.send("PUT", "/fhir/Condition/c1", Some(&c), PROVIDER).await;
    assert_eq!((updated.status, updated.body["meta"]["versionId"].clone()), (200, json!("2")));
    let v1 = f.get("/fhir/Condition/c1/_history/1", PROVIDER).await;
    assert_eq!((v1.status, v1.body.get("clinicalStatus")), (200, None));
    assert_eq!(f.get("/fhir/Condition/c1/_history/1", PATIENT).await.status, 403);
    let wrong = f.send("PUT", "/fhir/Condition/c2", Some(&c), PROVIDER).await;
    assert_eq!(wrong.status, 400);
    assert!(is_outcome(&wrong, "invalid"));

    // A transaction: new patient and an observation referring to it by urn:uuid.
    let tx = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c0c3e-1b8a-4a53-9d5e-1c2b3a4d5e6f",
             "resource": {"resourceType": "Patient", "gender": "male"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "subject": {"reference": "urn:uuid:6f1c0c3e-1b8a-4a53-9d5e-1c2b3a4d5e6f"},
                          "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": patient("p3").json, "request": {"method": "PUT", "url": "Patient/p3"}}
        ]
    });
    let a = f.send("POST", "/fhir", Some(&tx), PROVIDER).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let locations: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["location"].as_str().unwrap())
        .collect();
    assert_eq!(locations.len(), 3);
    let new_patient = locations[0].split('/').nth_back(2).unwrap();
    let found = f.ids(&format!("/fhir/Observation?patient={new_patient}"), PROVIDER).await;
    assert_eq!(found.len(), 1, "the reference was rewritten to the new patient");

    // A transaction with one bad entry stores nothing.
    let bad = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": patient("p4").json, "request": {"method": "PUT", "url": "Patient/p4"}},
            {"resource": {"resourceType": "Spaceship"}, "request": {"method": "POST", "url": "Spaceship"}}
        ]
    });
    let a = f.send("POST", "/fhir", Some(&bad), PROVIDER).await;
    assert_eq!(a.status, 400);
    assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().starts_with("entry 1"));
    assert_eq!(f.get("/fhir/Patient/p4", PROVIDER).await.status, 404, "all or none");

    // A batch: each entry on its own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": bad["entry"]});
    let a = f.send("POST", "/fhir", Some(&batch), PROVIDER).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["entry"][0]["response"]["status"], "201 Created");
    assert!(a.body["entry"][1]["response"]["status"].as_str().unwrap().starts_with("400"));
    assert_eq!(f.get("/fhir/Patient/p4", PROVIDER).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_operation_outcome_and_the_server_keeps_serving() {
    let f = Fixture::new().await;
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", "/fhir/Spaceship", None, 400),
        ("GET", "/fhir/Observation/not%20an%20id", None, 400),
        ("GET", "/fhir/Observation?name=smith", None, 400),
        ("GET", "/fhir/Observation?date=ne2025", None, 400),
        ("GET", "/fhir/Observation?_count=100000", None, 400),
        ("GET", "/fhir/Observation?code=%27%20OR%201=1%20--", None, 200),
        ("GET", "/fhir/Observation?category=x%27);DELETE%20FROM%20resources;--", None, 200),
        ("GET", "/fhir/Observation?_id=a1%27;DROP%20TABLE%20resources;--", None, 400),
        ("GET", "/fhir/Observation?patient=p1%22%20OR%20%221%22=%221", None, 400),
        ("GET", "/fhir/Observation/a1/_history/x", None, 400),
        ("POST", "/fhir/Observation", Some("{not json"), 400),
        ("POST", "/fhir/Observation", Some("[1,2]"), 400),
        ("POST", "/fhir/Observation", Some(r#"{"resourceType":"Patient"}"#), 400),
        (
            "POST",
            "/fhir/Observation",
            Some(r#"{"resourceType":"Observation","effectiveDateTime":"yesterday"}"#),
            400,
        ),
        ("POST", "/fhir", Some(r#"{"resourceType":"Bundle","type":"collection"}"#), 400),
        (
            "POST",
            "/fhir",
            Some(
                r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}}]}"#,
            ),
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        let body: Option<Value> =
            body.map(|b| serde_json::from_str(b).unwrap_or(Value::String((*b).to_owned())));
        // Send raw text for bodies that are not JSON.
        let a = match &body {
            Some(Value::String(raw)) => {
                let headers = sign_request(
                    &f.signer(PROVIDER),
                    31337,
                    &Request::new(
                        method,
                        path,
                        raw.as_bytes(),
                        now(),
                        random_nonce().unwrap(),
                        GATEKEEPER,
                    ),
                )
                .unwrap();
                let mut req = f
                    .http
                    .request(method.parse().unwrap(), format!("{}{path}", f.base))
                    .body(raw.clone());
                for (name, value) in &headers {
                    req = req.header(name.as_str(), value.to_str().unwrap());
                }
                answer(req.send().await.unwrap()).await
            }
            other => f.send(method, path, other.as_ref(), PROVIDER).await,
        };
        assert_eq!(a.status, *status, "{method} {path}: {}", a.body);
        if *status != 200 {
            assert_eq!(a.body["resourceType"], "OperationOutcome", "{method} {path}");
            assert!(!a.body["issue"][0]["diagnostics"].as_str().unwrap().is_empty());
        }
    }
    // The records are intact and the server still serves.
    assert_eq!(f.ids("/fhir/Observation", PROVIDER).await.len(), 4);
    assert_eq!(f.get("/fhir/Observation/a1", PATIENT).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_fhir_client_signs_in_once_and_uses_a_bearer_token() {
    let f = Fixture::new().await;
    let bearer = f.sign_in(PATIENT).await;
    let a = f.with_token("/fhir/Observation?category=laboratory", &bearer).await;
    assert_eq!(a.status, 200);
    assert_eq!(ids(&a.body), ["a1", "a3"]);
    assert_eq!(f.with_token("/fhir/Observation/b1", &bearer).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_outlives_a_revocation() {
    let mut f = Fixture::new().await;
    let bearer = f.sign_in(VIEWER).await;
    assert_eq!(f.with_token("/fhir/Observation/a1", &bearer).await.status, 200);
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let a = f.with_token("/fhir/Observation/a1", &bearer).await;
    assert_eq!(a.status, 403, "the token still authenticates, but the grant is gone: {}", a.body);
    assert!(is_outcome(&a, "forbidden"));
    let path = format!("/pointers/{}/0", f.rel.0);
    assert_eq!(f.with_token(&path, &bearer).await.status, 403);
    // Forged and foreign tokens are refused outright.
    assert_eq!(f.with_token("/fhir/Observation/a1", "Bearer not-a-token").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_and_the_patient_verifies_the_entries_against_the_chain() {
    use medrec_chain::anchors::{AnchorClaim, check_anchor};
    use medrec_gatekeeper::{
        anchor::{AnchorConfig, Anchorer},
        audit::proof_from_json,
    };
    let f = Fixture::new().await;
    // The viewer reads, a stranger is refused, the patient searches, the viewer asks
    // for a pointer it holds no grant for.
    assert_eq!(f.get("/fhir/Observation/a1", VIEWER).await.status, 200);
    assert_eq!(f.get(&format!("/pointers/{}/0", f.rel.0), VIEWER).await.status, 200);
    assert_eq!(f.get("/fhir/Observation/a1", STRANGER).await.status, 403);
    assert_eq!(f.get(&format!("/pointers/{}/0", f.rel.0), STRANGER).await.status, 403);
    assert_eq!(f.get("/fhir/Observation", PATIENT).await.status, 200);
    let unsigned = f.http.get(format!("{}/fhir/Observation/a1", f.base)).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(f.get(&format!("/pointers/{}/1", f.rel.0), VIEWER).await.status, 403);
    f.gk.flush_access_log().await;
    let all = f.log.entries(0, 100).await.unwrap();
    let decisions: Vec<String> = all.iter().map(|e| e.entry.decision.to_string()).collect();
    assert_eq!(
        decisions,
        ["allow-viewer", "allow-viewer", "allow-patient", "deny:unknown-pointer"],
        "every decision about the patient's records, allowed or denied, is one entry; the \
         stranger and the request without credentials never authenticated and are not logged"
    );
    let refused = f.gk.refusals();
    assert_eq!(
        (refused.unknown_requester, refused.unauthenticated),
        (2, 1),
        "the refusals before the handler are counted instead"
    );
    assert!(all.iter().all(|e| e.entry.requester != f.m.address(STRANGER)));
    assert!(all[0].entry.response_hash.is_some() && all[3].entry.response_hash.is_none());
    assert_eq!(all[1].entry.pointer, Some(0));
    assert_eq!(all[3].entry.pointer, Some(1));

    // Before any anchor the patient sees the entries about their records, unproven.
    let page = f.get("/audit", PATIENT).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "every entry about the patient's relationship: {}", page.body);
    assert!(entries.iter().all(|e| e["proof"].is_null()));
    assert_eq!(entries[0]["resource"], json!({"type": "Observation", "id": "a1"}));
    assert_eq!(entries[0]["requester"], json!(f.m.address(VIEWER)));

    // The provider anchors the log's root (with the patient's log read above in it):
    // one transaction.
    f.gk.flush_access_log().await;
    let anchorer = Anchorer::new(
        f.m.wallet(PROVIDER),
        f.log.clone(),
        AnchorConfig::new(
            f.m.at.anchors,
            f.m.address(PROVIDER),
            std::time::Duration::from_secs(3600),
        ),
    );
    anchorer.anchor_now().await.unwrap();
    let page = f.get("/audit", PATIENT).await;
    let entries = page.body["entries"].as_array().unwrap().clone();
    assert!(entries.len() >= 4);
    for e in &entries {
        let proof = proof_from_json(&e["proof"]).expect("every entry now has a proof");
        verify(&proof).expect("the proof holds");
        let claim = AnchorClaim {
            size: proof.anchor.size,
            root: proof.anchor.root,
            block: proof.anchor.block,
        };
        check_anchor(&f.m.reader(), f.m.at.anchors, f.m.address(PROVIDER), claim)
            .await
            .expect("the anchor is on chain");
        // The proof is a path of at most ⌈log2 size⌉ hashes.
        let size = proof.anchor.size;
        assert!(proof.path.len() <= (64 - (size - 1).leading_zeros()) as usize, "size {size}");
        // Any change to the entry or the path breaks the proof.
        let mut forged = proof.clone();
        forged.entry.entry.requester = Address::repeat_byte(0xee);
        assert!(verify(&forged).is_err());
        for i in 0..proof.path.len() {
            let mut forged = proof.clone();
            forged.path[i].0[0] ^= 0x80;
            assert!(verify(&forged).is_err());
        }
    }
    // Someone else gets nothing about this patient's records.
    let other = f.get("/audit", VIEWER).await;
    assert_eq!((other.status, other.body["entries"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(f.get("/audit?after=x", PATIENT).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_enrolls_over_http_and_the_chain_must_agree() {
    let f = Fixture::new().await;
    let path = format!("/enrollments/{}", f.rel.0);
    let good = json!({"patient": "p1", "pointers": ["Observation?category=laboratory"]});
    assert_eq!(f.send("PUT", &path, Some(&good), PROVIDER).await.status, 204);
    for who in [PATIENT, VIEWER, STRANGER] {
        let a = f.send("PUT", &path, Some(&good), who).await;
        assert_eq!(a.status, 403, "only the provider enrolls");
    }
    // A query whose commitment is not the one on chain is refused, and nothing changes.
    let tampered = json!({"patient": "p2", "pointers": ["Observation?category=vital-signs"]});
    let a = f.send("PUT", &path, Some(&tampered), PROVIDER).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(is_outcome(&a, "conflict"));
    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a3"]);
    // A relationship the chain does not know, and malformed bodies.
    let unknown = format!("/enrollments/{}", alloy::primitives::B256::repeat_byte(7));
    assert_eq!(f.send("PUT", &unknown, Some(&good), PROVIDER).await.status, 409);
    for bad in [
        json!({"pointers": []}),
        json!({"patient": "p1"}),
        json!({"patient": "p1", "pointers": ["Observation?patient=p2"]}),
        json!({"patient": "no spaces", "pointers": []}),
    ] {
        let a = f.send("PUT", &path, Some(&bad), PROVIDER).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    assert_eq!(f.send("PUT", "/enrollments/xyz", Some(&good), PROVIDER).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fetches_verifies_and_imports() {
    use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
    let f = Fixture::new().await;
    let client = |who: usize| GatekeeperClient::new(&f.base, GATEKEEPER, 31337, f.signer(who));

    // The viewer fetches the pointer and checks it against the chain's hash.
    let viewer = client(VIEWER);
    let data = viewer.pointer(f.rel, 0).await.unwrap();
    let published = f.published_hash().await;
    data.verify(published).expect("the data is what the provider published");
    assert_eq!(data.resources.len(), 2);
    assert!(matches!(
        data.verify(keccak256("something else")),
        Err(ClientError::HashMismatch { .. })
    ));
    assert!(viewer.read("Observation", "a2").await.unwrap().is_none());
    let refused = client(STRANGER).pointer(f.rel, 0).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Refused { status: 403, diagnostics } if diagnostics.contains("grant")),
        "{refused}"
    );

    // The patient signs in once, searches with paging and reads the access log.
    let patient = client(PATIENT);
    patient.sign_in(DOMAIN).await.unwrap();
    let all = patient.search("Observation", "_count=1").await.unwrap();
    assert_eq!(all.len(), 3, "every page followed");
    f.gk.flush_access_log().await;
    let log = patient.audit(0).await.unwrap();
    assert!(log.len() >= 2 && log.iter().all(|e| e.proof.is_none()), "not anchored yet");

    // The provider imports a Bundle and enrolls.
    let provider = client(PROVIDER);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs("a9", "p1", "laboratory", "2026-01-01").json,
         "request": {"method": "PUT", "url": "Observation/a9"}}
    ]});
    let response = provider.import(&bundle).await.unwrap();
    assert_eq!(response["type"], "transaction-response");
    assert!(patient.read("Observation", "a9").await.unwrap().is_some());
    provider.enroll(f.rel, "p1", &["Observation?category=laboratory"]).await.unwrap();
    let bad = provider.enroll(f.rel, "p1", &["Observation?category=other"]).await.unwrap_err();
    assert!(matches!(bad, ClientError::Refused { status: 409, .. }), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_sees_when_the_provider_changed_data_after_publishing() {
    use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
    let f = Fixture::new().await;
    let patient = GatekeeperClient::new(&f.base, GATEKEEPER, 31337, f.signer(PATIENT));
    let published = f.published_hash().await;
    patient.pointer(f.rel, 0).await.unwrap().verify(published).unwrap();
    // The provider quietly edits a published lab result, without a pointer update.
    let mut edited = obs("a1", "p1", "laboratory", "2025-01-02").json;
    edited["valueQuantity"] = json!({"value": 1, "unit": "g/dL"});
    assert_eq!(f.send("PUT", "/fhir/Observation/a1", Some(&edited), PROVIDER).await.status, 200);
    let served = patient.pointer(f.rel, 0).await.unwrap();
    let err = served.verify(published).unwrap_err();
    assert!(
        matches!(err, ClientError::HashMismatch { expected, .. } if expected == published),
        "{err}"
    );
}
