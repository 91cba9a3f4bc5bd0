//! The tests that need a real socket: the gatekeeper as `serve::spawn` runs it (store
//! from a URL, the chain over JSON-RPC, HTTPS, the body limit, failing parts: a dead
//! chain node, a dead database; anchoring, a provider's own database, restarts), and
//! the reqwest-based `GatekeeperClient`. Requests go through the shared test client
//! ([`Client::over_socket`]).

use crate::{
    client::{As, CHAIN_ID, Client},
    fixture,
};
use alloy::primitives::keccak256;
use alloy::{primitives::Address, signers::local::PrivateKeySigner, transports::http::reqwest};
use axum::{body::Body, http::Request as HttpRequest};
use medrec_devchain::server::{ServerHandle, serve as serve_rpc};
use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
use medrec_gatekeeper::{
    limits::RateLimits,
    pointer::{PointerQuery, run},
    serve::{RunningGatekeeper, ServeConfig, ServeError, StoreUrl, TlsFiles, spawn},
    server::{Enrollment, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordStore,
    fhir::Resource,
    sql::{PostgresStore, testing::TestStore},
    sqlite::SqliteStore,
};
use medrec_testkit::medrec::PROVIDER;
use medrec_testkit::medrec::{Medrec, PATIENT, STRANGER, VIEWER};
use serde_json::json;
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const GATEKEEPER: Address = Address::repeat_byte(0x6b);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn observation() -> Resource {
    Resource::parse(json!({
        "resourceType": "Observation", "id": "o1", "status": "final",
        "subject": {"reference": "Patient/p1"},
        "category": [{"coding": [{"code": "laboratory"}]}],
        "effectiveDateTime": "2025-01-02"
    }))
    .unwrap()
}

/// A chain served over JSON-RPC on which the patient shares one pointer of `store`'s
/// records with the viewer.
struct Chain {
    m: Medrec,
    rpc: Option<ServerHandle>,
    relationship: RelationshipId,
    query: PointerQuery,
}

impl Chain {
    async fn new(store: &dyn RecordStore) -> Self {
        store.update(observation()).await.unwrap();
        let query = PointerQuery::parse("Observation?category=laboratory").unwrap();
        let published = run(store, &query, &"p1".parse().unwrap()).await.unwrap();
        let m = Medrec::new().await;
        let relationship = m.relate(query.commitment(), published.data_hash).await;
        m.grant(VIEWER).await;
        let rpc = serve_rpc(m.node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self { m, rpc: Some(rpc), relationship, query }
    }

    fn url(&self) -> String {
        self.rpc.as_ref().unwrap().url()
    }

    fn config(&self, store: StoreUrl) -> ServeConfig {
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            store,
            self.url(),
            self.m.at.relationships,
            GATEKEEPER,
            CHAIN_ID,
        );
        config.reorg_depth = 0;
        config.poll = Duration::from_millis(50);
        config.limits = RateLimits::off();
        config
    }

    fn enroll(&self, running: &RunningGatekeeper) {
        let enrollment =
            Enrollment { patient: "p1".parse().unwrap(), pointers: vec![self.query.clone()] };
        running.gatekeeper().enroll(self.relationship, enrollment).unwrap();
    }

    fn path(&self) -> String {
        format!("/pointers/{}/0", self.relationship.0)
    }

    fn signer(&self, who: usize) -> PrivateKeySigner {
        self.m.accounts[who].signer()
    }

    /// Dev account `who`, signing each request.
    fn key(&self, who: usize) -> As {
        As::Key(self.signer(who))
    }
}

/// The test client of `running`, which serves as `gatekeeper` on chain.
fn client_of(running: &RunningGatekeeper, gatekeeper: Address) -> Client {
    Client::over_socket(running.url(), gatekeeper, reqwest::Client::new())
}

/// Waits until `/readyz` answers `status` (the follower polls every 50 ms).
async fn wait_ready(client: &Client, status: u16) {
    for _ in 0..600 {
        if client.get("/readyz", &As::Nobody).await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {status}");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_and_the_server_keeps_serving() {
    let dir = temp_dir("body");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let chain = Chain::new(&store).await;
    drop(store);
    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.body_limit = 1024;
    let running = spawn(config).await.unwrap();
    chain.enroll(&running);
    // The server closes a connection whose body it refused; a new connection per
    // request keeps the client from reusing one it closed.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let client = Client::over_socket(running.url(), GATEKEEPER, http);
    wait_ready(&client, 200).await;

    let big = vec![b'x'; 4096];
    let answer =
        client.send("GET", &chain.path(), big, &As::Authorization("Bearer t".into())).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.issue_code(), "too-long");
    assert!(answer.body["issue"][0]["diagnostics"].as_str().unwrap().contains("1024 bytes"));
    // The sign-in route has its own, larger limit; past it, the same answer.
    let siwe = HttpRequest::post("/auth/siwe").body(Body::from(vec![b'{'; 64 * 1024])).unwrap();
    let answer = client.call(siwe).await;
    assert_eq!((answer.status, answer.issue_code()), (413, "too-long"));
    let diagnostics = answer.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("limit of 16384 bytes"), "{diagnostics}");
    // The server is still there.
    assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    assert_eq!(client.get(&chain.path(), &chain.key(VIEWER)).await.status, 200);
    running.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_chain_node_fails_closed() {
    let dir = temp_dir("deadchain");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let mut chain = Chain::new(&store).await;
    drop(store);
    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.readiness = Readiness { max_lag: 2, max_silence: Duration::from_secs(1) };
    let running = spawn(config.clone()).await.unwrap();
    chain.enroll(&running);
    let client = client_of(&running, GATEKEEPER);
    wait_ready(&client, 200).await;
    let patient = chain.key(PATIENT);
    assert_eq!(client.get(&chain.path(), &patient).await.status, 200);

    // The node goes away: not ready, and data requests fail closed.
    chain.rpc.take().unwrap().shutdown().await.unwrap();
    wait_ready(&client, 503).await;
    let answer = client.get(&chain.path(), &patient).await;
    assert_eq!((answer.status, answer.issue_code()), (503, "transient"));
    assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    running.shutdown().await.unwrap();

    // Starting against a dead node says so.
    let err = spawn(config).await.unwrap_err();
    assert!(matches!(err, ServeError::ChainUnreachable { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot reach the chain node at http://127.0.0.1:"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Forwards TCP connections to `target` until killed; then open links are cut and every
/// new connection is accepted and closed at once, as a crashed database looks.
struct Proxy {
    port: u16,
    alive: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (alive, watch) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if !*watch.borrow() {
                    continue;
                }
                let (target, mut dead) = (target.clone(), watch.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = dead.wait_for(|alive| !alive) => {}
                    }
                });
            }
        });
        Self { port, alive, task }
    }

    fn kill(&self) {
        self.alive.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_database_is_a_server_error_and_the_server_keeps_serving() {
    const URL_VAR: &str = "MEDREC_TEST_PG_URL";
    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    let admin = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let db: TestStore<PostgresStore> = TestStore::postgres(&admin)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL server for the tests is unusable ({e})"));
    let chain = Chain::new(&*db).await;

    // The gatekeeper reaches the test database through a proxy that can die.
    let (scheme, rest) = admin.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    let (user, host) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let proxy = Proxy::start(host.to_owned()).await;
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    let url = format!("{scheme}://{user}127.0.0.1:{}/{}", proxy.port, db.database());
    let running = spawn(chain.config(url.parse().unwrap())).await.unwrap();
    chain.enroll(&running);
    let client = client_of(&running, GATEKEEPER);
    wait_ready(&client, 200).await;
    let patient = chain.key(PATIENT);
    assert_eq!(client.get(&chain.path(), &patient).await.status, 200);

    proxy.kill();
    let answer = client.get(&chain.path(), &patient).await;
    // A server error, never data nor a decision (500 or 503, as the pipeline chooses).
    assert!([500, 503].contains(&answer.status), "{} {}", answer.status, answer.body);
    assert!(["exception", "transient"].contains(&answer.issue_code()), "{}", answer.body);
    let diagnostics = answer.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(!diagnostics.contains(db.database()), "no internals to the requester: {diagnostics}");
    // Health and readiness do not depend on the database; the server goes on.
    assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    assert_eq!(client.get("/readyz", &As::Nobody).await.status, 200);
    assert_eq!(client.get(&chain.path(), &chain.key(STRANGER)).await.status, 403);
    running.shutdown().await.unwrap();

    // Starting against a dead database says so.
    let err = spawn(chain.config(url.parse().unwrap())).await.unwrap_err();
    assert!(matches!(err, ServeError::Store(_)), "{err:?}");
    assert!(err.to_string().starts_with("cannot open the record store"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_requests_are_logged_and_the_log_head_is_anchored_by_the_provider() {
    use medrec_contracts::AccessAnchors;
    use medrec_gatekeeper::serve::Anchoring;
    use medrec_store::audit::{AccessLog, sqlite::SqliteAccessLog};
    let dir = temp_dir("anchoring");
    let path = dir.join("records.db");
    let store = SqliteStore::open(&path).unwrap();
    let chain = Chain::new(&store).await;
    let provider = chain.m.address(PROVIDER);
    let mut config = chain.config(StoreUrl::Sqlite(path.clone()));
    config.gatekeeper = provider;

    // A key that is not the provider's is refused before anything is served.
    let mut wrong = chain.config(StoreUrl::Sqlite(path.clone()));
    wrong.gatekeeper = provider;
    wrong.anchoring = Some(Anchoring {
        anchors: chain.m.at.anchors,
        period: Duration::from_millis(200),
        signer: chain.signer(STRANGER),
    });
    assert!(matches!(spawn(wrong).await, Err(ServeError::AnchorKey { .. })));

    config.anchoring = Some(Anchoring {
        anchors: chain.m.at.anchors,
        period: Duration::from_millis(200),
        signer: chain.signer(PROVIDER),
    });
    let running = spawn(config).await.unwrap();
    chain.enroll(&running);
    let client = client_of(&running, provider);
    wait_ready(&client, 200).await;
    // The viewer reads its pointer, then one it holds no grant for; a stranger (whom
    // the chain does not know) is refused before any decision, and not logged.
    let other_pointer = format!("{}1", chain.path().trim_end_matches('0'));
    for (who, path, expected) in
        [(VIEWER, chain.path(), 200), (VIEWER, other_pointer, 403), (STRANGER, chain.path(), 403)]
    {
        assert_eq!(client.get(&path, &chain.key(who)).await.status, expected, "{path}");
    }

    // Within a few periods the provider has anchored a head covering both requests.
    let reader = chain.m.reader();
    let anchors = AccessAnchors::new(chain.m.at.anchors, &reader);
    let mut anchored = 0;
    for _ in 0..200 {
        anchored = anchors.latest(provider).call().await.unwrap().size;
        if anchored >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(anchored >= 2, "the head was not anchored (size {anchored})");
    running.shutdown().await.unwrap();

    // The log is in the record store's database, and its root is the anchored one.
    let log = SqliteAccessLog::open(&path).unwrap();
    let entries = log.entries(0, 10).await.unwrap();
    let decisions: Vec<String> = entries.iter().map(|e| e.entry.decision.to_string()).collect();
    assert_eq!(decisions, ["allow-viewer", "deny:unknown-pointer"]);
    let recorded = log.anchors().await.unwrap();
    assert_eq!(recorded.last().map(|a| a.size), Some(2));
    assert_eq!(recorded.last().unwrap().root, log.head().await.unwrap().root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_providers_own_database_read_only_through_a_mapping() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/fixtures/legacy");
    let dir = temp_dir("legacy");
    let legacy_db = dir.join("medrec-v1.sqlite");
    {
        let conn = rusqlite::Connection::open(&legacy_db).unwrap();
        for f in ["medrec-v1-schema.sql", "medrec-v1-seed.sql"] {
            conn.execute_batch(&std::fs::read_to_string(fixtures.join(f)).unwrap()).unwrap();
        }
    }
    let records = SqliteStore::open(dir.join("unused.db")).unwrap();
    let chain = Chain::new(&records).await;
    let provider = chain.m.address(PROVIDER);
    let mut config = chain.config(StoreUrl::Sqlite(legacy_db.clone()));
    config.gatekeeper = provider;
    config.legacy = Some(fixtures.join("medrec-v1.json"));
    // The provider's database is never written: the log needs a place of its own.
    let no_log = ServeConfig { access_log: None, ..chain.config(StoreUrl::Sqlite(legacy_db)) };
    let no_log = ServeConfig { legacy: config.legacy.clone(), ..no_log };
    assert!(matches!(spawn(no_log).await, Err(ServeError::AccessLogNeeded)));
    config.access_log = Some(StoreUrl::Sqlite(dir.join("access-log.db")));
    let running = spawn(config).await.unwrap();
    let client = client_of(&running, provider);
    wait_ready(&client, 200).await;

    let as_provider = chain.key(PROVIDER);
    let patient = client.get("/fhir/Patient/1001", &as_provider).await;
    assert_eq!(patient.status, 200, "{}", patient.body);
    assert_eq!(patient.body["resourceType"], "Patient");
    let labs = client.get("/fhir/Observation?patient=1001&category=laboratory", &as_provider).await;
    assert_eq!(labs.status, 200, "{}", labs.body);
    assert!(labs.body["total"].as_u64().unwrap() > 0);
    let write = r#"{"resourceType":"Patient","id":"1001"}"#;
    let write = client.send("PUT", "/fhir/Patient/1001", write, &as_provider).await;
    assert_eq!(write.status, 405, "{}", write.body);
    assert_eq!(write.issue_code(), "not-supported");
    running.shutdown().await.unwrap();
}

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
    chain.enroll(&running);
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

// ----- the reqwest-based GatekeeperClient against the router on a socket ------------

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
    provider.enroll(f.rel, "p1", &["Observation?category=laboratory"]).await.unwrap();
    let bad = provider.enroll(f.rel, "p1", &["Observation?category=other"]).await.unwrap_err();
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
