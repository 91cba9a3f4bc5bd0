//! A provider's own database, mapped read-only (`medrec_store::legacy`), end to end:
//! `init --legacy-mapping` records the mapping, `enroll` and `publish` run the pointers
//! through it as the gatekeeper serves them, the patient takes the offer, a row changes
//! in the provider's database, and `publish` (then `publish --watch`) sends exactly
//! the changed pointer's new hash, which the patient's fetch verifies. The provider's
//! tables are never written.

use super::*;
use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    sync::mpsc,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../store/fixtures/legacy");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// The provider's legacy SQLite file in `dir`, with MedRec 2.0's demo schema and rows.
fn legacy_sqlite(dir: &Path) -> (String, PathBuf) {
    let path = dir.join("clinic.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&fixture("medrec-v1-schema.sql")).unwrap();
    conn.execute_batch(&fixture("medrec-v1-seed.sql")).unwrap();
    (format!("sqlite:{}", path.display()), PathBuf::from(format!("{FIXTURES}/medrec-v1.json")))
}

/// The provider's own database, as its own application reaches it.
trait Own {
    /// Runs `sql` on it.
    fn change(&self, sql: &str);
    /// Its tables.
    fn tables(&self) -> Vec<String>;
}

struct OwnSqlite(PathBuf);

impl Own for OwnSqlite {
    fn change(&self, sql: &str) {
        rusqlite::Connection::open(&self.0).unwrap().execute_batch(sql).unwrap();
    }

    fn tables(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        st.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }
}

/// A database of its own on the PostgreSQL server of the tests
/// (`postgres://postgres@127.0.0.1:5432/postgres` unless `MEDREC_TEST_PG_URL` names
/// another), with the fixtures as a PostgreSQL provider writes them (`DATETIME` is
/// `TIMESTAMP`; unquoted names fold to lower case); dropped with it.
struct OwnPostgres {
    admin: String,
    url: String,
    database: String,
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

async fn pg_run(url: &str, sql: String) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("the PostgreSQL server for the tests is unusable ({e}); start it or set MEDREC_TEST_PG_URL")
    });
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

impl OwnPostgres {
    fn create() -> Self {
        let admin = std::env::var("MEDREC_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let database = format!("medrec_cli_legacy_{}", std::process::id());
        let (base, params) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, p)| (b, p));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let mut url = format!("{server}/{database}");
        if !params.is_empty() {
            url = format!("{url}?{params}");
        }
        block_on(async {
            pg_run(&admin, format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await;
            pg_run(&admin, format!("CREATE DATABASE {database}")).await;
            let schema = fixture("medrec-v1-schema.sql").replace("DATETIME", "TIMESTAMP");
            pg_run(&url, schema).await;
            pg_run(&url, fixture("medrec-v1-seed.sql")).await;
        });
        Self { admin, url, database }
    }
}

impl Own for OwnPostgres {
    fn change(&self, sql: &str) {
        block_on(pg_run(&self.url, sql.to_owned()));
    }

    fn tables(&self) -> Vec<String> {
        block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        })
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let (admin, database) = (self.admin.clone(), self.database.clone());
        // A thread of its own: a Drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            block_on(pg_run(&admin, format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")));
        })
        .join();
    }
}

/// Patient 1001's hemoglobin result changes (and its result's change time moves, as
/// the provider's application keeps it).
const CHANGE_HEMOGLOBIN: &str =
    "UPDATE resultdetail_info SET Value = '12.9' WHERE ResultDetailID = 9011;
     UPDATE result_info SET LastUpdated = '2026-01-05 09:00:00' WHERE ResultID = 901;";

/// Then the iron result.
const CHANGE_IRON: &str = "UPDATE resultdetail_info SET Value = '64' WHERE ResultDetailID = 9021;
     UPDATE result_info SET LastUpdated = '2026-01-06 09:00:00' WHERE ResultID = 902;";

#[test]
fn a_mapped_legacy_sqlite_database_is_enrolled_published_and_watched() {
    let institution = dev_accounts(1).remove(0);
    let net = Net::start_with("provider-legacy", Some(institution.address), |dir| {
        Some(legacy_sqlite(dir))
    });
    let own = OwnSqlite(net.dir.join("clinic.sqlite"));
    story(&net, &own);
}

#[test]
fn a_mapped_legacy_postgres_database_is_enrolled_published_and_watched() {
    let institution = dev_accounts(1).remove(0);
    let own = OwnPostgres::create();
    let mapping = PathBuf::from(format!("{FIXTURES}/medrec-v1.json"));
    let net = Net::start_with("provider-legacy-pg", Some(institution.address), |_| {
        Some((own.url.clone(), mapping))
    });
    story(&net, &own);
    drop(net);
}

/// The story over the provider's own database `own`, which `net`'s gatekeeper serves.
#[allow(clippy::too_many_lines)]
fn story(net: &Net, own: &dyn Own) {
    let accounts = dev_accounts(3);
    let (institution, patient) = (accounts[0].clone(), accounts[2].clone());
    let tables = own.tables();
    let data = net.dir.join("provider");
    let mapping = format!("{FIXTURES}/medrec-v1.json");
    net.init_dev_with(&data, &["--legacy-mapping", &mapping]);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("provider.json")).unwrap())
            .unwrap();
    assert_eq!(config["store"], net.store());
    assert!(config["legacy"].as_str().unwrap().ends_with("medrec-v1.json"), "{config}");

    // `provider serve` takes the mapping from provider.json too: the provider's own
    // database is served read-only, so the access log needs a database of its own.
    let err = fails(&net.medrec(&data, &["serve", "--listen", "127.0.0.1:0"]).output().unwrap());
    assert!(err.contains("give --access-log"), "{err}");

    // Nothing is imported into the provider's own database.
    let bundle = write_json(
        &net.dir.join("bundle.json"),
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Patient", "id": "p9"},
            "request": {"method": "PUT", "url": "Patient/p9"}
        }]}),
    );
    let err = fails(&net.medrec(&data, &["import", &bundle]).output().unwrap());
    assert!(err.contains("never written by MedRec"), "{err}");

    // A mapping that does not fit the database is refused at init.
    let bad = write_json(
        &net.dir.join("bad-mapping.json"),
        &json!({"resources": {"Patient": {"table": "patients", "id": "PatientID"}}}),
    );
    let err = fails(
        &net.medrec(
            &net.dir.join("other"),
            &[
                "init",
                "--recover",
                "--name",
                "Other",
                "--endpoint",
                &net.gatekeeper_url(),
                "--store",
                &net.store(),
                "--legacy-mapping",
                &bad,
                "--rpc-url",
                &net.rpc,
            ],
        )
        .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
        .output()
        .unwrap(),
    );
    assert!(err.contains("does not fit the database") && err.contains("patients"), "{err}");

    // Enroll patient 1001 of the provider's own database: pointer 0 (the labs) is
    // computed through the mapping and signed into the offer; the medications wait.
    let enrolled = succeeds(
        &net.medrec(
            &data,
            &[
                "enroll",
                "--patient-id",
                "1001",
                "--patient",
                &patient.address.to_string(),
                "--pointer",
                "Observation?category=laboratory",
                "--pointer",
                "MedicationRequest",
                "--bounty",
                BOUNTY,
                "--json",
            ],
        )
        .output()
        .unwrap(),
    );
    let rel = RelationshipId(hash(&enrolled["relationship"]));
    assert_eq!(enrolled["pointers"][0]["resources"], 4, "{enrolled}");
    let labs_hash = hash(&enrolled["pointers"][0]["data_hash"]);
    // A patient the provider's database does not hold is refused.
    let err = fails(
        &net.medrec(
            &data,
            &[
                "enroll",
                "--patient-id",
                "4242",
                "--patient",
                &accounts[1].address.to_string(),
                "--pointer",
                "Observation",
            ],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("there is no Patient/4242"), "{err}");

    // The patient takes the offer from the gatekeeper; publish adds the waiting pointer.
    let spec = medrec_client::ChainSpec {
        rpc_url: net.rpc.clone(),
        registrar: net.at.registrar,
        relationships: net.at.relationships,
        anchors: net.at.anchors,
        from_block: 0,
    };
    net.runtime.block_on(async {
        let chain = spec.connect().await.unwrap();
        let me = medrec_client::patient::PatientSession::with_signer(chain, patient.signer());
        let offer = me.offer(&rel.0.to_string()).await.unwrap();
        assert_eq!(offer.view.provider, institution.address);
        me.take(&offer).await.unwrap();
    });
    let publish = |extra: &[&str]| {
        let mut args = vec!["publish", "--spread", "0", "--bounty", BOUNTY, "--json"];
        args.extend_from_slice(extra);
        succeeds(&net.medrec(&data, &args).output().unwrap())
    };
    let added = publish(&[]);
    let changes = added["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{added}");
    assert_eq!(
        (changes[0]["pointer"].as_u64(), changes[0]["resources"].as_u64()),
        (Some(1), Some(1))
    );
    let gk_url = net.gatekeeper_url();
    net.runtime.block_on(async {
        let by_patient = Relationships::new(net.at.relationships, net.wallet(&patient));
        let delegate = address(&enrolled["delegate"]);
        let receipt =
            by_patient.accept(delegate).send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status());
    });
    let before = net.block();
    let nothing = publish(&[]);
    assert_eq!(nothing["changes"], json!([]));
    assert_eq!(nothing["unchanged"], 2);
    assert_eq!(net.block(), before, "no transaction when nothing changed");

    // A row changes in the provider's database: publish sends exactly pointer 0's new
    // hash, and the patient's fetch verifies against it.
    own.change(CHANGE_HEMOGLOBIN);
    let published = publish(&[]);
    let changes = published["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{published}");
    assert_eq!(changes[0]["pointer"], 0);
    assert_eq!(hash(&changes[0]["old_hash"]), labs_hash);
    let new_hash = hash(&changes[0]["new_hash"]);
    assert_ne!(new_hash, labs_hash);
    assert_eq!(published["unchanged"], 1);
    assert_eq!(net.summary(patient.address)[&rel].pointers[0].1, new_hash);
    net.runtime.block_on(async {
        let client =
            GatekeeperClient::new(gk_url.clone(), institution.address, CHAIN_ID, patient.signer());
        let data = eventually(|| client.pointer(rel, 0)).await;
        data.verify(new_hash).unwrap();
        let served = serde_json::to_string(&data.resources).unwrap();
        assert!(served.contains("12.9"), "the changed value is served: {served}");
    });

    // Watching: a round with no change sends nothing; the next change is published by
    // itself, pointer 0 only.
    let mut watch = net
        .medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY, "--json", "--watch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("a round of the watch");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let first = next();
    assert_eq!(first["changes"], json!([]), "{first}");
    own.change(CHANGE_IRON);
    let round = loop {
        let round = next();
        if round["changes"] != json!([]) {
            break round;
        }
    };
    let _ = watch.kill();
    let _ = watch.wait();
    let changes = round["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{round}");
    assert_eq!(changes[0]["pointer"], 0);
    assert_eq!(hash(&changes[0]["old_hash"]), new_hash);
    let newest = hash(&changes[0]["new_hash"]);
    assert_eq!(net.summary(patient.address)[&rel].pointers[0].1, newest);
    net.runtime.block_on(async {
        let client =
            GatekeeperClient::new(gk_url.clone(), institution.address, CHAIN_ID, patient.signer());
        let data = eventually(|| client.pointer(rel, 0)).await;
        data.verify(newest).unwrap();
    });

    // MedRec never wrote to the provider's database: the same tables, and none of them
    // MedRec's.
    assert_eq!(own.tables(), tables);
}
