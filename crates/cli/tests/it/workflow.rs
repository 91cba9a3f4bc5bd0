//! The whole MedRec workflow with every party a separate `medrec` process over
//! loopback, as people would run it: a chain, a provider (init, serve, import, enroll,
//! publish), a patient (new, inbox, accept, records, share, revoke, access log,
//! export, recover on a fresh data directory) and a viewer (new, fetch, refused).

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
const PASSPHRASE: &str = "correct horse battery staple";
const BOUNTY: &str = "count(Observation.valueQuantity) where code = http://loinc.org|29463-7 and date in last 3650 days and range 0..500";

/// A long-running `medrec` process, stopped with SIGTERM when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.0.wait();
    }
}

/// Starts `medrec <args>` and reads the JSON line it prints once serving.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Running, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medrec"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{args:?} printed {line:?}: {e}"));
    (Running(child), v)
}

/// One party's command line: its data directory, the chain, a test passphrase and
/// cheap keystores.
struct Party {
    dir: PathBuf,
    rpc: String,
}

impl Party {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medrec"));
        cmd.args(args)
            .args(["--data-dir", self.dir.to_str().unwrap(), "--rpc-url", &self.rpc])
            .args(["--passphrase-env", "MEDREC_TEST_PASSPHRASE"])
            .env("MEDREC_TEST_PASSPHRASE", PASSPHRASE)
            .env("MEDREC_INSECURE_LIGHT_KDF", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs a command that must succeed and print one JSON object.
    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "medrec {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "medrec {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "medrec-workflow-{}-{}-{name}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The id of the Patient in a synthetic transaction Bundle.
fn patient_id(bundle: &Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .and_then(|e| e["resource"]["id"].as_str())
        .unwrap()
        .to_owned()
}

/// Polls `f` until it returns `Some`, for at most ~20 s (the gatekeeper follows the
/// chain every 200 ms).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{what} did not happen in time");
}

#[test]
#[allow(clippy::too_many_lines)]
fn provider_patient_and_viewer_run_the_whole_story_as_separate_processes() {
    // The chain.
    let (_chain, c) = start(&["chain", "--ephemeral", "--http", "127.0.0.1:0", "--json"], &[]);
    let rpc = c["rpc_url"].as_str().unwrap().to_owned();

    // The provider: the genesis institution's recovery phrase, so it registers itself.
    let provider = Party { dir: tempdir("provider"), rpc: rpc.clone() };
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = format!("sqlite:{}", provider.dir.join("records.db").display());
    let init = provider.json(
        &[
            "provider",
            "init",
            "--recover",
            "--name",
            "Riverside Clinic",
            "--endpoint",
            &endpoint,
            "--store",
            &store,
            "--json",
        ],
        &[("MEDREC_MNEMONIC", DEV_MNEMONIC)],
    );
    assert_eq!(init["registered"], true, "{init}");
    let ledger = provider.dir.join("research.db");
    // As the README runs it: the data directory says where to listen and keeps the
    // enrollments.
    let serve: Vec<String> = [
        "provider",
        "serve",
        "--data-dir",
        provider.dir.to_str().unwrap(),
        "--rpc-url",
        &rpc,
        "--poll-ms",
        "200",
        "--research-ledger",
        ledger.to_str().unwrap(),
        "--anchors",
        "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        "--anchor-period",
        "1",
        "--passphrase-env",
        "MEDREC_TEST_PASSPHRASE",
        "--json",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    // The anchoring key comes from the provider's wallet.
    let key = [("MEDREC_TEST_PASSPHRASE", PASSPHRASE)];
    let (gatekeeper, g) = start(&serve, &key);
    assert!(g["url"].as_str().unwrap().contains(&port.to_string()), "{g}");

    // Its records: one synthetic patient, imported through the gatekeeper.
    let synth = tempdir("synth");
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["synth", "--patients", "1", "--years", "2", "--seed", "7", "--out"])
        .arg(&synth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = std::fs::read_dir(&synth).unwrap().next().unwrap().unwrap().path();
    let fhir_id = patient_id(&bundle);
    provider.json(&["provider", "import", bundle.to_str().unwrap(), "--json"], &[]);

    // The patient creates a wallet; the provider enrolls them.
    let patient = Party { dir: tempdir("patient"), rpc: rpc.clone() };
    let created = patient.json(&["patient", "new", "--json"], &[]);
    let address = created["address"].as_str().unwrap().to_owned();
    let mnemonic = created["mnemonic"].as_str().unwrap().to_owned();
    let enrolled = provider.json(
        &[
            "provider",
            "enroll",
            "--patient-id",
            &fhir_id,
            "--patient",
            &address,
            "--bounty",
            BOUNTY,
            "--json",
        ],
        &[],
    );
    let relationship = enrolled["relationship"].as_str().unwrap().to_owned();

    // The patient's inbox shows the offer; they take it (their key creates the
    // relationship with pointer 0), the provider adds the four other pointers, the
    // patient accepts them and fetches every pointer, verified.
    let inbox = patient.json(&["patient", "inbox", "--json"], &[]);
    let rels = inbox["relationships"].as_array().unwrap();
    assert_eq!(rels.len(), 1);
    assert_eq!(
        rels[0]["relationship"].as_str().unwrap().to_lowercase(),
        relationship.to_lowercase()
    );
    assert_eq!(rels[0]["status"], "offered");
    let taken =
        patient.json(&["patient", "accept", "--relationship", &relationship, "--json"], &[]);
    assert_eq!(taken["taken"], true, "{taken}");
    let added =
        provider.json(&["provider", "publish", "--spread", "0", "--bounty", BOUNTY, "--json"], &[]);
    assert_eq!(added["changes"].as_array().unwrap().len(), 4, "{added}");
    patient.json(&["patient", "accept", "--relationship", &relationship, "--json"], &[]);
    // Research: out by default; the patient opts in, and the chain says so.
    let inbox = patient.json(&["patient", "inbox", "--json"], &[]);
    assert_eq!(inbox["relationships"][0]["research_opt_in"], false);
    let opted = patient
        .json(&["patient", "research", "--relationship", &relationship, "--opt-in", "--json"], &[]);
    assert_eq!(opted["research_opt_in"], true);
    let inbox = patient.json(&["patient", "inbox", "--json"], &[]);
    assert_eq!(inbox["relationships"][0]["research_opt_in"], true);
    let records = eventually("the patient's records", || {
        let out = patient.run(&["patient", "records", "--json"], &[]);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    let timeline = records["timeline"].as_array().expect("a timeline");
    assert!(timeline.len() > 10, "{records}");
    let record_count = timeline.len();

    // The provider restarts its gatekeeper the same way: nothing is enrolled again, and
    // the patient's records are served as before.
    drop(gatekeeper);
    assert!(provider.dir.join("enrollments.json").exists(), "the enrollments are on disk");
    let (_gatekeeper, again) = start(&serve, &key);
    assert_eq!(again["url"], g["url"], "it listens where it was registered");
    let records = eventually("the patient's records after a restart", || {
        let out = patient.run(&["patient", "records", "--json"], &[]);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(records["timeline"].as_array().unwrap().len(), record_count, "{records}");

    // A viewer: shared one pointer, fetches it; revoked, refused.
    let viewer = Party { dir: tempdir("viewer"), rpc: rpc.clone() };
    let v = viewer.json(&["viewer", "new", "--json"], &[]);
    let viewer_address = v["address"].as_str().unwrap().to_owned();
    patient.json(
        &[
            "patient",
            "share",
            "--viewer",
            &viewer_address,
            "--relationship",
            &relationship,
            "--pointers",
            "0",
            "--for",
            "1h",
            "--json",
        ],
        &[],
    );
    let fetched = eventually("the viewer's fetch", || {
        let out = viewer.run(&["viewer", "fetch", "--json"], &[]);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(fetched["resourceType"], "Bundle", "{fetched}");
    assert!(!fetched["entry"].as_array().unwrap().is_empty());
    patient.json(
        &[
            "patient",
            "revoke",
            "--viewer",
            &viewer_address,
            "--relationship",
            &relationship,
            "--json",
        ],
        &[],
    );
    let refusal = eventually("the viewer's refusal", || {
        let out = viewer.run(&["viewer", "fetch"], &[]);
        (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
    });
    assert!(refusal.contains("revoked"), "{refusal}");

    // The provider adds a lab result and publishes: the patient sees an update pending.
    let lab = provider.dir.join("new-lab.json");
    std::fs::write(
        &lab,
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {
                "resourceType": "Observation", "id": "workflow-new-lab", "status": "final",
                "subject": {"reference": format!("Patient/{fhir_id}")},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4", "display": "Iron [Mass/volume] in Serum or Plasma"}]},
                "valueQuantity": {"value": 91, "unit": "ug/dL", "system": "http://unitsofmeasure.org", "code": "ug/dL"},
                "effectiveDateTime": "2026-11-20"
            },
            "request": {"method": "PUT", "url": "Observation/workflow-new-lab"}
        }]})
        .to_string(),
    )
    .unwrap();
    provider.json(&["provider", "import", lab.to_str().unwrap(), "--json"], &[]);
    let published =
        provider.json(&["provider", "publish", "--spread", "0", "--bounty", BOUNTY, "--json"], &[]);
    assert!(published.to_string().contains(&relationship.to_lowercase()[..10]), "{published}");
    let inbox = patient.json(&["patient", "inbox", "--json"], &[]);
    assert_eq!(inbox["relationships"][0]["status"], "update pending", "{inbox}");
    patient.json(&["patient", "accept", "--relationship", &relationship, "--json"], &[]);
    let records = patient.json(&["patient", "records", "--json"], &[]);
    let timeline = records["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), record_count + 1, "the new lab result arrived");

    // The access log of the patient's records: the viewer's reads and refusals are in.
    let log = eventually("an anchored access log", || {
        let out = patient.run(&["patient", "access-log", "--json"], &[]);
        let log: Value = serde_json::from_slice(&out.stdout).ok()?;
        let entries = log["entries"].as_array()?;
        // Every entry proven against a head the provider anchored on chain.
        (out.status.success()
            && !entries.is_empty()
            && entries.iter().all(|e| e["proof"]["status"] == "verified"))
        .then_some(log)
    });
    assert_eq!(log["invalid"], 0, "{log}");
    let text = log.to_string().to_lowercase();
    assert!(text.contains(&viewer_address.to_lowercase()), "the viewer's reads are logged: {log}");

    // Export: one FHIR Bundle with everything.
    let export = patient.dir.join("export.json");
    let summary =
        patient.json(&["patient", "export", "--out", export.to_str().unwrap(), "--json"], &[]);
    assert_eq!(summary["entries"], record_count + 1, "{summary}");
    let exported: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(exported["resourceType"], "Bundle");
    assert_eq!(exported["type"], "collection");
    assert_eq!(exported["entry"].as_array().unwrap().len(), record_count + 1);

    // Recovery on a fresh data directory from the recovery phrase: the same records.
    let restored = Party { dir: tempdir("restored"), rpc };
    restored.json(&["patient", "recover", "--json"], &[("MEDREC_MNEMONIC", &mnemonic)]);
    let again = restored.json(&["patient", "records", "--offline", "--json"], &[]);
    assert_eq!(again["timeline"].as_array().unwrap().len(), record_count + 1);
}
