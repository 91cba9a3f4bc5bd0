//! The tests that check what only a socket does: HTTPS with the given certificate,
//! a restart of the whole server on the same files, and the reqwest-based
//! `GatekeeperClient`, which speaks HTTP to a URL.

use super::{Chain, GATEKEEPER, client_of, temp_dir, wait_ready};
use crate::{client::CHAIN_ID, fixture};
use alloy::primitives::keccak256;
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    pointer::PointerSpec,
    serve::{ServeError, StoreUrl, TlsFiles, spawn},
};
use medrec_store::sqlite::SqliteStore;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;
use std::sync::Arc;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

// A socket: the TLS handshake and the plain-HTTP refusal happen on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_given_certificate_and_refuses_a_bad_key() {
    let dir = temp_dir("tls");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let chain = Chain::new(&store).await;
    drop(store);
    // A self-signed certificate made for this test.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.tls = Some(TlsFiles { cert: cert.clone(), key: key.clone() });
    let running = spawn(config.clone()).await.unwrap();
    assert!(running.url().starts_with("https://"));

    // A TLS client that trusts only this certificate.
    use tokio_rustls::rustls::{self, pki_types::ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(running.local_addr()).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"{"status":"ok"}"#), "{response}");

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(running.local_addr()).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    running.shutdown().await.unwrap();

    // A key that is not PEM is refused with a sentence naming the file.
    std::fs::write(&key, "not a key").unwrap();
    config.tls = Some(TlsFiles { cert, key: key.clone() });
    let err = spawn(config).await.unwrap_err();
    assert!(matches!(err, ServeError::Tls { what: "key", .. }), "{err:?}");
    assert!(err.to_string().contains(&key.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// A socket: a restart is `spawn` and `shutdown` of the whole server, twice, on the same
// files (enrollments, records, access log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gatekeeper_serves_what_it_served_and_continues_its_log() {
    use medrec_store::audit::{AccessLog, check_chain, sqlite::SqliteAccessLog};
    let dir = temp_dir("restart");
    let path = dir.join("records.db");
    let store = SqliteStore::open(&path).unwrap();
    let chain = Chain::new(&store).await;
    let config = || {
        let mut c = chain.config(StoreUrl::Sqlite(path.clone()));
        c.enrollments = Some(dir.join("enrollments.json"));
        c
    };
    let viewer = chain.key(VIEWER);

    let running = spawn(config()).await.unwrap();
    chain.enroll(running.gatekeeper());
    let client = client_of(&running, GATEKEEPER);
    wait_ready(&client, 200).await;
    let before = client.get(&chain.path(), &viewer).await;
    assert_eq!(before.status, 200);
    running.shutdown().await.unwrap();

    // Same files, new process state: nothing enrolled by hand this time.
    let running = spawn(config()).await.unwrap();
    let client = client_of(&running, GATEKEEPER);
    wait_ready(&client, 200).await;
    let after = client.get(&chain.path(), &viewer).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body, before.body, "the same data after the restart");
    running.shutdown().await.unwrap();

    let log = SqliteAccessLog::open(&path).unwrap();
    let head = check_chain(&log, 100).await.expect("one unbroken chain across the restart");
    assert_eq!(head.size, 2);
    assert_eq!(log.head().await.unwrap(), head);
}

// ----- the reqwest-based GatekeeperClient, which needs a URL: the router on a socket ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fetches_verifies_and_imports() {
    let f = crate::fhir::fixture().await;
    let base = f.serve().await;
    let client =
        |who: usize| GatekeeperClient::new(&base, fixture::GATEKEEPER, CHAIN_ID, f.signer(who));

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
    patient.sign_in(crate::client::DOMAIN).await.unwrap();
    let all = patient.search("Observation", "_count=1").await.unwrap();
    assert_eq!(all.len(), 3, "every page followed");
    f.gk.flush_access_log().await;
    let log = patient.audit(0).await.unwrap();
    assert!(log.len() >= 2 && log.iter().all(|e| e.proof.is_none()), "not anchored yet");

    // The provider imports a Bundle and enrolls.
    let provider = client(PROVIDER);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": fixture::obs("a9", "p1", "laboratory", "2026-01-01").json,
         "request": {"method": "PUT", "url": "Observation/a9"}}
    ]});
    let response = provider.import(&bundle).await.unwrap();
    assert_eq!(response["type"], "transaction-response");
    assert!(patient.read("Observation", "a9").await.unwrap().is_some());
    // The fixture's pointer was published before salting: its bare text enrolls; the
    // same text under any salt, or another text, does not match the chain.
    let labs = "Observation?category=laboratory";
    let salted =
        provider.enroll(f.rel, "p1", &[PointerSpec::salted(labs)], None).await.unwrap_err();
    assert!(matches!(salted, ClientError::Refused { status: 409, .. }), "{salted}");
    provider.enroll(f.rel, "p1", &[PointerSpec::Unsalted(labs.into())], None).await.unwrap();
    let other = PointerSpec::Unsalted("Observation?category=other".into());
    let bad = provider.enroll(f.rel, "p1", &[other], None).await.unwrap_err();
    assert!(matches!(bad, ClientError::Refused { status: 409, .. }), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_sees_when_the_provider_changed_data_after_publishing() {
    let f = crate::fhir::fixture().await;
    let base = f.serve().await;
    let patient = GatekeeperClient::new(&base, fixture::GATEKEEPER, CHAIN_ID, f.signer(PATIENT));
    let published = f.published_hash().await;
    patient.pointer(f.rel, 0).await.unwrap().verify(published).unwrap();
    // The provider quietly edits a published lab result, without a pointer update.
    let mut edited = fixture::obs("a1", "p1", "laboratory", "2025-01-02").json;
    edited["valueQuantity"] = json!({"value": 1, "unit": "g/dL"});
    assert_eq!(f.send("PUT", "/fhir/Observation/a1", &edited, PROVIDER).await.status, 200);
    let served = patient.pointer(f.rel, 0).await.unwrap();
    let err = served.verify(published).unwrap_err();
    assert!(
        matches!(err, ClientError::HashMismatch { expected, .. } if expected == published),
        "{err}"
    );
}
