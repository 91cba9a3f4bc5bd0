//! The gatekeeper as [`assemble`] builds it from its configuration, driven in process
//! (tower's `oneshot` through the shared test client): the body limit of the served
//! router, failing parts (a dead chain node, a dead database), anchoring, and a
//! provider's own database served read-only.

use super::{Chain, GATEKEEPER, in_process, temp_dir, wait_ready};
use crate::client::As;
use axum::{body::Body, http::Request as HttpRequest};
use medrec_gatekeeper::{
    serve::{ServeConfig, ServeError, StoreUrl, assemble},
    server::Readiness,
};
use medrec_store::{
    sql::{PostgresStore, testing::TestStore},
    sqlite::SqliteStore,
};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_and_the_server_keeps_serving() {
    let dir = temp_dir("body");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let chain = Chain::new(&store).await;
    drop(store);
    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.body_limit = 1024;
    let served = assemble(&config).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, GATEKEEPER);
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
    served.shutdown().await;
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
    let served = assemble(&config).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, GATEKEEPER);
    wait_ready(&client, 200).await;
    let patient = chain.key(PATIENT);
    assert_eq!(client.get(&chain.path(), &patient).await.status, 200);

    // The node goes away: not ready, and data requests fail closed.
    chain.rpc.take().unwrap().shutdown().await.unwrap();
    wait_ready(&client, 503).await;
    let answer = client.get(&chain.path(), &patient).await;
    assert_eq!((answer.status, answer.issue_code()), (503, "transient"));
    assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    served.shutdown().await;

    // Starting against a dead node says so.
    let err = assemble(&config).await.unwrap_err();
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
    let served = assemble(&chain.config(url.parse().unwrap())).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, GATEKEEPER);
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
    served.shutdown().await;

    // Starting against a dead database says so.
    let err = assemble(&chain.config(url.parse().unwrap())).await.unwrap_err();
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
    assert!(matches!(assemble(&wrong).await, Err(ServeError::AnchorKey { .. })));

    config.anchoring = Some(Anchoring {
        anchors: chain.m.at.anchors,
        period: Duration::from_millis(200),
        signer: chain.signer(PROVIDER),
    });
    let served = assemble(&config).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, provider);
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
    served.shutdown().await;

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
    let (chain, config, _) = legacy("legacy").await;
    // The provider's database is never written: the log needs a place of its own.
    let no_log = ServeConfig { access_log: None, ..config.clone() };
    assert!(matches!(assemble(&no_log).await, Err(ServeError::AccessLogNeeded)));
    let served = assemble(&config).await.unwrap();
    let client = in_process(&served, config.gatekeeper);
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
    // The CapabilityStatement says so: reads, versions and history, no writes.
    let metadata = client.get("/fhir/metadata", &As::Nobody).await.body;
    assert!(metadata["rest"][0].get("interaction").is_none(), "no transaction or batch");
    for r in metadata["rest"][0]["resource"].as_array().unwrap() {
        let codes: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert!(!codes.contains(&"update") && !codes.contains(&"create"), "{r}");
        assert_eq!(r["updateCreate"], false);
    }
    // A legacy database keeps no versions: the history is the current version alone.
    let history = client.get("/fhir/Patient/1001/_history", &as_provider).await;
    assert_eq!((history.status, &history.body["total"]), (200, &json!(1)), "{}", history.body);
    assert_eq!(history.body["entry"][0]["resource"], patient.body);
    assert_eq!(client.get("/fhir/Patient/1001/_history/1", &as_provider).await.status, 200);
    assert_eq!(client.get("/fhir/Patient/1001/_history/2", &as_provider).await.status, 404);
    served.shutdown().await;
}

/// The legacy mapping's fixtures (MedRec 2.0's demo database), in the store crate.
fn legacy_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/fixtures/legacy")
}

/// The demo database built from the fixtures in a SQLite file in `dir`.
fn legacy_database(dir: &Path) -> PathBuf {
    let path = dir.join("medrec-v1.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for f in ["medrec-v1-schema.sql", "medrec-v1-seed.sql"] {
        conn.execute_batch(&std::fs::read_to_string(legacy_fixtures().join(f)).unwrap()).unwrap();
    }
    path
}

/// A chain, and the configuration of the provider's gatekeeper serving the demo
/// database (in a fresh directory named after `name`) through the mapping, the access
/// log in a database of its own; and the demo database's path.
pub(crate) async fn legacy(name: &str) -> (Chain, ServeConfig, PathBuf) {
    let dir = temp_dir(name);
    let legacy_db = legacy_database(&dir);
    let records = SqliteStore::open(dir.join("unused.db")).unwrap();
    let chain = Chain::new(&records).await;
    let mut config = chain.config(StoreUrl::Sqlite(legacy_db.clone()));
    config.gatekeeper = chain.m.address(PROVIDER);
    config.legacy = Some(legacy_fixtures().join("medrec-v1.json"));
    config.access_log = Some(StoreUrl::Sqlite(dir.join("access-log.db")));
    (chain, config, legacy_db)
}

/// Every table of the SQLite database at `path` with its rows, in order.
fn rows(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut tables = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").unwrap();
    let names: Vec<String> =
        tables.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    let mut out: Vec<(String, i64)> = names
        .into_iter()
        .map(|t| {
            let n = conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0)).unwrap();
            (t, n)
        })
        .collect();
    out.sort();
    out
}

/// The gatekeeper holds the provider's own database as a reader and no writer: every
/// kind of write the provider may send is refused with the same clear answer, and the
/// database is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_own_database_takes_no_write_and_stays_untouched() {
    let (chain, config, legacy_db) = legacy("legacy-writes").await;
    let before = rows(&legacy_db);
    assert!(before.iter().any(|(t, n)| t == "patient_info" && *n == 3), "{before:?}");
    let served = assemble(&config).await.unwrap();
    let client = in_process(&served, config.gatekeeper);
    wait_ready(&client, 200).await;

    let as_provider = chain.key(PROVIDER);
    let patient = json!({"resourceType": "Patient", "id": "1001", "gender": "male"});
    let new = json!({"resourceType": "Observation", "status": "final",
        "subject": {"reference": "Patient/1001"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]}});
    let bundle = |kind: &str| {
        json!({"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": patient, "request": {"method": "PUT", "url": "Patient/1001"}},
            {"resource": new, "request": {"method": "POST", "url": "Observation"}}
        ]})
    };
    let empty = json!({"resourceType": "Bundle", "type": "transaction", "entry": []});
    let writes = [
        ("POST", "/fhir/Observation", new.clone()),
        ("PUT", "/fhir/Patient/1001", patient.clone()),
        ("POST", "/fhir", bundle("transaction")),
        ("POST", "/fhir", bundle("batch")),
        ("POST", "/fhir", empty),
    ];
    for (method, path, body) in writes {
        let answer = client.json(method, path, &body, &as_provider).await;
        assert_eq!((answer.status, answer.issue_code()), (405, "not-supported"), "{method} {path}");
        assert!(answer.diagnostics().contains("read-only"), "{}", answer.diagnostics());
    }
    let read = client.get("/fhir/Patient/1001", &as_provider).await;
    assert_eq!(read.body["gender"], "female", "{}", read.body);
    served.shutdown().await;
    assert_eq!(rows(&legacy_db), before, "the provider's database is as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_apps_on_the_allowed_origins_and_only_those_may_call() {
    let dir = temp_dir("cors");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let chain = Chain::new(&store).await;
    drop(store);
    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.cors_origins = vec!["https://app.example".into(), "http://localhost:5173".into()];
    let served = assemble(&config).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, GATEKEEPER);
    wait_ready(&client, 200).await;

    let preflight = |origin: &str| {
        HttpRequest::options("/fhir/Observation?category=laboratory")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, x-medrec-signature, prefer")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = client.call(preflight("https://app.example")).await;
    assert!(allowed.status < 300, "a preflight is answered before any route: {}", allowed.status);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://app.example"));
    let headers = allowed.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("x-medrec-signature"),
        "{headers}"
    );
    assert!(allowed.header("access-control-allow-credentials").is_none(), "no cookies");
    let other = client.call(preflight("https://evil.example")).await;
    assert!(other.header("access-control-allow-origin").is_none());

    // An actual request from an allowed page: the browser may read the answer and its ETag.
    let key = chain.key(PATIENT);
    let get = async |origin: &'static str| {
        let headers = [("origin", origin)];
        client.send_with("GET", "/fhir/Observation/o1", Vec::new(), &key, &headers).await
    };
    let read = get("http://localhost:5173").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.header("access-control-allow-origin"), Some("http://localhost:5173"));
    assert!(
        read.header("access-control-expose-headers").unwrap().to_ascii_lowercase().contains("etag")
    );
    let foreign = get("https://evil.example").await;
    assert!(foreign.header("access-control-allow-origin").is_none());
    served.shutdown().await;

    // By default no other origin may call; a malformed origin stops the start.
    let config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    let served = assemble(&config).await.unwrap();
    let client = in_process(&served, GATEKEEPER);
    let metadata = client
        .send_with(
            "GET",
            "/fhir/metadata",
            Vec::new(),
            &As::Nobody,
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(metadata.status, 200);
    assert!(metadata.header("access-control-allow-origin").is_none());
    served.shutdown().await;
    let mut bad = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    bad.cors_origins = vec!["https://app.example/".into()];
    assert!(matches!(assemble(&bad).await, Err(ServeError::InvalidCorsOrigin(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}
