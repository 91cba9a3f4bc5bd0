//! The whole read path over HTTP: a devchain, the follower, a SQLite store and the
//! gatekeeper on 127.0.0.1, requests signed with EIP-712.

use alloy::{
    primitives::{Address, B256, keccak256},
    signers::local::PrivateKeySigner,
    transports::http::reqwest,
};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower, Health},
};
use medrec_gatekeeper::{
    auth::{
        AuthState, Request, RequestVerifier, SiweAuthenticator, SiweConfig, random_nonce,
        sign_request,
    },
    pointer::{PointerQuery, run},
    server::{DATA_HASH_HEADER, Enrollment, Gatekeeper, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{RecordStore, fhir::Resource, sqlite::SqliteStore};
use medrec_testkit::medrec::{DELEGATE, Medrec, PATIENT, STRANGER, VIEWER};
use serde_json::{Value, json};
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

const GATEKEEPER: Address = Address::repeat_byte(0x6b);

fn obs(id: &str, patient: &str, category: &str) -> Resource {
    Resource::parse(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"code": category}]}],
        "effectiveDateTime": "2025-01-02"
    }))
    .unwrap()
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// GET `path` signed by `who` (EIP-712), or unsigned.
    async fn get(
        &self,
        path: &str,
        who: Option<&PrivateKeySigner>,
    ) -> (u16, Option<String>, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(signer) = who {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let headers = sign_request(
                signer,
                31337,
                &Request::new("GET", path, b"", now, random_nonce().unwrap(), GATEKEEPER),
            )
            .unwrap();
            for (name, value) in &headers {
                req = req.header(name.as_str(), value.to_str().unwrap());
            }
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let hash =
            resp.headers().get(DATA_HASH_HEADER.as_str()).map(|v| v.to_str().unwrap().to_owned());
        (status, hash, resp.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authorized_requesters_get_the_data_and_its_hash_matches_the_chain() {
    // The provider's records.
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    store
        .update_all(vec![
            obs("a1", "p1", "laboratory"),
            obs("a2", "p1", "vital-signs"),
            obs("b1", "p2", "laboratory"),
        ])
        .await
        .unwrap();
    let query = PointerQuery::parse("Observation?category=laboratory").unwrap();
    let published = run(store.as_ref(), &query, &"p1".parse().unwrap()).await.unwrap();

    // The chain: the provider publishes the pointer, the patient accepts and shares.
    let m = Medrec::new().await;
    let at = m.at;
    let rel = m.relate(query.commitment(), published.data_hash).await;
    m.grant(VIEWER).await;
    let (patient, viewer, stranger) =
        (&m.accounts[PATIENT], &m.accounts[VIEWER], &m.accounts[STRANGER]);
    let delegate = &m.accounts[DELEGATE];

    // The gatekeeper.
    let index = Arc::new(RwLock::new(ConsentIndex::new(0)));
    let reader = m.reader();
    let mut follower = Follower::new(
        reader,
        FollowConfig { reorg_depth: 0, ..FollowConfig::new(at.relationships, 0) },
        index.clone(),
    );
    follower.step().await.unwrap();
    let (health, health_rx) = tokio::sync::watch::channel(follower.health());
    let auth = AuthState::new(
        RequestVerifier::new(31337, GATEKEEPER),
        SiweAuthenticator::new(SiweConfig::new("gk.example".parse().unwrap(), 31337)),
    );
    let gk = Gatekeeper::new(store.clone(), index.clone(), health_rx, Readiness::default(), auth);
    gk.enroll(rel, Enrollment { patient: "p1".parse().unwrap(), pointers: vec![query] }).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, gk.router()).into_future());
    let client = Client { http: reqwest::Client::new(), base };

    assert_eq!(client.get("/healthz", None).await.0, 200);
    assert_eq!(client.get("/readyz", None).await.0, 200);
    let (status, _, capability) = client.get("/fhir/metadata", None).await;
    assert_eq!(status, 200);
    let capability: Value = serde_json::from_str(&capability).unwrap();
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    assert_eq!(capability["rest"][0]["resource"].as_array().unwrap().len(), 10);
    let path = format!("/pointers/{}/0", rel.0);

    // The viewer gets the patient's laboratory results, with the hash on chain.
    let (status, hash, body) = client.get(&path, Some(&viewer.signer())).await;
    assert_eq!(status, 200, "{body}");
    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let ids: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1"], "nothing of another patient, nothing outside the pointer");
    let on_chain = index.read().unwrap().pointer(&rel, 0).unwrap().data_hash;
    assert_eq!(hash.unwrap().parse::<B256>().unwrap(), on_chain, "the data hash matches the chain");
    // The patient reads their own data.
    assert_eq!(client.get(&path, Some(&patient.signer())).await.0, 200);

    // A stranger is refused, exactly as for a relationship that does not exist.
    let (status, _, refused) = client.get(&path, Some(&stranger.signer())).await;
    assert_eq!(status, 403);
    let nowhere =
        format!("/pointers/{}/0", RelationshipId::derive(stranger.address, delegate.address).0);
    let (status, _, refused_nowhere) = client.get(&nowhere, Some(&stranger.signer())).await;
    assert_eq!(
        (status, refused_nowhere),
        (403, refused.clone()),
        "a denial looks the same whether or not anything exists"
    );
    assert!(!refused.contains("a1") && refused.contains("OperationOutcome"));
    // The viewer has no grant for a pointer that does not exist; no credentials at all.
    assert_eq!(client.get(&format!("/pointers/{}/1", rel.0), Some(&viewer.signer())).await.0, 403);
    assert_eq!(client.get(&path, None).await.0, 401);
    assert_eq!(client.get("/pointers/nonsense/0", Some(&viewer.signer())).await.0, 400);

    // Revoked: refused as soon as the follower has seen the block.
    m.revoke(VIEWER).await;
    follower.step().await.unwrap();
    health.send_replace(follower.health());
    assert_eq!(client.get(&path, Some(&viewer.signer())).await.0, 403);

    // An index that cannot vouch for the chain fails closed.
    health.send_replace(Health { head: 100, indexed: 10, since_ok: Duration::ZERO });
    let (status, _, body) = client.get(&path, Some(&patient.signer())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(client.get("/readyz", None).await.0, 503);
}

#[tokio::test]
async fn enrollments_survive_a_restart_and_a_corrupt_file_is_refused() {
    use medrec_gatekeeper::server::EnrollmentFile;
    let dir = std::env::temp_dir().join(format!("medrec-enroll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("enrollments.json");
    let _ = std::fs::remove_file(&path);
    let make = |file: EnrollmentFile| {
        let (_tx, rx) =
            tokio::sync::watch::channel(Health { head: 0, indexed: 0, since_ok: Duration::ZERO });
        let auth = AuthState::new(
            RequestVerifier::new(31337, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new("gk.example".parse().unwrap(), 31337)),
        );
        let store: Arc<dyn RecordStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
        Gatekeeper::with_enrollment_file(
            store,
            Arc::new(RwLock::new(ConsentIndex::new(0))),
            rx,
            Readiness::default(),
            auth,
            file,
        )
    };
    let rel = RelationshipId(keccak256("rel"));
    {
        let gk = make(EnrollmentFile::new(&path)).unwrap();
        assert!(gk.enrollment(&rel).is_none());
        let pointers = vec![
            PointerQuery::parse("Observation?category=laboratory").unwrap(),
            PointerQuery::parse("Immunization").unwrap(),
        ];
        gk.enroll(rel, Enrollment { patient: "p1".parse().unwrap(), pointers }).unwrap();
    }
    let again = make(EnrollmentFile::new(&path)).unwrap();
    let e = again.enrollment(&rel).expect("kept across the restart");
    assert_eq!(e.patient.as_str(), "p1");
    assert_eq!(
        e.pointers.iter().map(PointerQuery::text).collect::<Vec<_>>(),
        ["Observation?category=laboratory", "Immunization"]
    );
    std::fs::write(&path, "{\"0xnot-a-hash\": {}}").unwrap();
    let err = make(EnrollmentFile::new(&path)).unwrap_err();
    assert!(err.to_string().contains("is corrupt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
