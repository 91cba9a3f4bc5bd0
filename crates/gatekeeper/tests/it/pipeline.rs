//! The request pipeline in process: what strangers can and cannot make the gatekeeper
//! do, and what the access log records.

use crate::{
    client::As,
    fixture::{Fixture, resource},
};
use alloy::signers::local::PrivateKeySigner;
use medrec_gatekeeper::limits::{RateLimit, RateLimits};
use medrec_store::fhir::Resource;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};

/// Two patients; `p1` has one laboratory result, `p2` one result of the same code.
fn records() -> Vec<Resource> {
    vec![
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
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_grow_the_log_or_fill_the_replay_cache() {
    let t = Fixture::new(records()).await;
    let path = t.pointer(0);
    // A flood without credentials, with keys the chain does not know (random ones, as
    // random signature bytes recover to), and from a known stranger's key.
    for i in 0..60 {
        let from = match i % 3 {
            0 => As::Nobody,
            1 => As::Key(PrivateKeySigner::random()),
            _ => t.key(STRANGER),
        };
        let a = t.client.get(&path, &from).await;
        let expected = if matches!(from, As::Nobody) { 401 } else { 403 };
        assert_eq!(a.status, expected, "{}", a.body);
    }
    assert_eq!(t.log_size().await, 0, "the flood left no entry in the access log");
    assert_eq!(t.auth.requests().remembered(), 0, "and no nonce in the replay cache");
    let refused = t.gk.refusals();
    assert_eq!((refused.unauthenticated, refused.unknown_requester), (20, 40), "but is counted");
    let metrics = t.client.get("/metrics", &As::Nobody).await.body;
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("medrec_refused_total{cause=\"unknown_requester\"} 40"), "{metrics}");

    // The viewer is served, logged, and its nonce remembered.
    assert_eq!(t.get(&path, VIEWER).await.status, 200);
    assert_eq!(t.log_size().await, 1);
    assert_eq!(t.auth.requests().remembered(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_no_sign_in_token() {
    let t = Fixture::new(records()).await;
    for key in [PrivateKeySigner::random(), t.signer(STRANGER)] {
        let a = t.client.try_sign_in(&key).await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert_eq!(a.body["issue"][0]["details"]["coding"][0]["code"], "unknown_signer");
        assert!(a.body.get("access_token").is_none());
    }
    assert_eq!(t.auth.siwe().tokens().len(), 0, "no token was stored for a stranger");
    // The viewer the patient granted signs in and is served with its token.
    let viewer = t.client.sign_in(&t.signer(VIEWER)).await;
    assert_eq!(t.client.get(&t.pointer(0), &viewer).await.status, 200);
    assert_eq!(t.auth.siwe().tokens().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_budget_is_refused_before_signatures_are_checked() {
    let limits = RateLimits { unauthenticated: RateLimit::new(1, 3), ..RateLimits::off() };
    let t = Fixture::with_limits(records(), limits).await;
    let path = t.pointer(0);
    let bearer = t.sign_in(VIEWER).await;
    let flood = t.client.with_peer([10, 0, 0, 9]);
    for _ in 0..3 {
        let a = flood.get(&path, &As::Key(PrivateKeySigner::random())).await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // The budget is spent: even a valid signature from there is not checked now.
    let a = flood.get(&path, &t.key(VIEWER)).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["issue"][0]["code"], "throttled");
    assert!(t.gk.refusals().source_throttled >= 1);
    // A bearer token from the same address still reads (a hash-map lookup), and other
    // addresses are not affected.
    assert_eq!(flood.get(&path, &bearer).await.status, 200);
    assert_eq!(t.client.with_peer([10, 0, 0, 7]).get(&path, &t.key(VIEWER)).await.status, 200);
    assert_eq!(t.log_size().await, 2, "only the two reads are in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_own_reads_show_in_the_patients_log() {
    let t = Fixture::new(records()).await;
    assert_eq!(t.get("/fhir/Observation/a1", PROVIDER).await.status, 200);
    let search = t.get("/fhir/Observation?code=http://loinc.org|2498-4", PROVIDER).await;
    assert_eq!(search.status, 200);
    assert_eq!(search.body["total"], 2, "both patients' results");
    // Another patient's record, not enrolled here: logged, but about no relationship.
    assert_eq!(t.get("/fhir/Observation/b1", PROVIDER).await.status, 200);

    t.gk.flush_access_log().await;
    let page = t.get("/audit", PATIENT).await;
    assert_eq!(page.status, 200, "{}", page.body);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_over_the_limit_gets_429_then_recovers() {
    let one_per_second = RateLimit::new(1, 2);
    let limits =
        RateLimits { requester: one_per_second, sign_in: one_per_second, ..RateLimits::off() };
    let t = Fixture::with_limits(records(), limits).await;
    let (client, path) = (&t.client, t.pointer(0));
    let (viewer, stranger) = (t.key(VIEWER), t.key(STRANGER));

    // A burst of two, then throttled (a slow machine may refill a token in between:
    // keep going until the limit bites).
    assert_eq!(client.get(&path, &viewer).await.status, 200);
    assert_eq!(client.get(&path, &viewer).await.status, 200);
    let mut throttled = None;
    for _ in 0..50 {
        let answer = client.get(&path, &viewer).await;
        if answer.status != 200 {
            throttled = Some(answer);
            break;
        }
    }
    let throttled = throttled.expect("the limit never bit");
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert_eq!(throttled.issue_code(), "throttled");
    let retry: u64 = throttled.header("retry-after").expect("Retry-After").parse().unwrap();
    assert_eq!(retry, 1);
    // Others have buckets of their own.
    assert_eq!(client.get(&path, &stranger).await.status, 403);
    // After Retry-After, the requester is served again.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(client.get(&path, &viewer).await.status, 200);

    // Sign-in is limited per IP address.
    assert_eq!(client.get("/auth/nonce", &As::Nobody).await.status, 200);
    let mut throttled = None;
    for _ in 0..50 {
        let answer = client.get("/auth/nonce", &As::Nobody).await;
        if answer.status != 200 {
            throttled = Some(answer);
            break;
        }
    }
    let throttled = throttled.expect("the sign-in limit never bit");
    assert_eq!((throttled.status, throttled.issue_code()), (429, "throttled"));
    assert!(throttled.header("retry-after").is_some());
    // Health checks are never limited.
    for _ in 0..5 {
        assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    }
}
