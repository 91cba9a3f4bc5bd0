//! The patient's workflows through the real `medrec` binary: new wallet, inbox,
//! accept / reject / delete, records verified against the chain into the encrypted
//! cache, offline reading, export, recovery on a fresh data directory, the access log,
//! and a provider tampering with data after publishing. The chain and the providers'
//! gatekeepers run in this process (real revm devchain, real HTTP, real SQLite).

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use medrec_devchain::genesis::dev_accounts;
use medrec_primitives::RelationshipId;
use medrec_scenario::signer_of;
use serde_json::{Value, json};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

const PASSPHRASE_VAR: &str = "MEDREC_TEST_PASSPHRASE";

medrec_scenario::scenario! {
    /// The shared scenario (`medrec-scenario`: the chain and providers' gatekeepers with
    /// synthetic records), with the parties' data directories and the `medrec` binary run
    /// against it.
    pub(crate) struct Net("cli");
}

impl Net {
    /// A data directory for a party of the scenario.
    pub(crate) fn party_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `medrec <args>` as a party whose wallet lives in `dir`.
    pub(crate) async fn medrec(&self, dir: &Path, args: &[&str]) -> Output {
        self.medrec_env(dir, args, &[]).await
    }

    /// As [`Net::medrec`] with extra environment variables.
    pub(crate) async fn medrec_env(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_medrec"));
        command
            .args(args)
            .args(["--passphrase-env", PASSPHRASE_VAR])
            .env(PASSPHRASE_VAR, "correct horse battery staple")
            .env("MEDREC_INSECURE_LIGHT_KDF", "1")
            .env("MEDREC_DATA_DIR", dir)
            .env("MEDREC_RPC_URL", &self.rpc_url)
            .env("MEDREC_REGISTRAR", self.at.registrar.to_string())
            .env("MEDREC_RELATIONSHIPS", self.at.relationships.to_string())
            .env("MEDREC_ANCHORS", self.at.anchors.to_string())
            .env("MEDREC_FROM_BLOCK", "0")
            .env_remove("MEDREC_ADDRESS")
            .env_remove("MEDREC_MNEMONIC")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            command.env(k, v);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
    }

    /// Runs a command that must succeed and print JSON.
    pub(crate) async fn json(&self, dir: &Path, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        if !args.contains(&"--json") {
            args.push("--json");
        }
        let args = args.as_slice();
        let out = self.medrec(dir, args).await;
        ok_json(&out, args)
    }
}

/// The JSON a successful run printed.
pub(crate) fn ok_json(out: &Output, args: &[&str]) -> Value {
    assert!(
        out.status.success(),
        "medrec {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("medrec {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

impl Net {
    /// Provider `i` offers `patient` (whose wallet is in `home`) a relationship and the
    /// patient takes it with `medrec patient accept`: the relationship on chain, created
    /// by the patient's key.
    pub(crate) async fn related(&self, home: &Path, i: usize, patient: Address) -> RelationshipId {
        let id = self.offer(i, patient).await;
        self.json(home, &["patient", "accept", "--relationship", &id.0.to_string()]).await;
        id
    }
}

/// Creates the wallet of `role` in `dir` and gives it ether for gas; returns its address
/// and recovery phrase.
pub(crate) async fn new_wallet(net: &Net, role: &str, dir: &Path) -> (Address, String) {
    let v = net.json(dir, &[role, "new", "--json"]).await;
    let address: Address = v["address"].as_str().unwrap().parse().unwrap();
    let phrase = v["mnemonic"].as_str().unwrap().to_owned();
    assert_eq!(phrase.split_whitespace().count(), 12);
    fund(net, address).await;
    (address, phrase)
}

/// Sends `address` one ether for gas.
pub(crate) async fn fund(net: &Net, address: Address) {
    let bank = signer_of(&net.rpc_url, &dev_accounts(10)[9]);
    let tx = TransactionRequest::default().to(address).value(U256::from(10u128.pow(18)));
    assert!(bank.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status());
}

/// The `resourceType/id` of every line of a timeline.
pub(crate) fn references(timeline: &Value) -> BTreeSet<String> {
    timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reference"].as_str().unwrap().to_owned())
        .collect()
}

fn reference(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())
}

fn status_of(inbox: &Value, id: RelationshipId) -> String {
    inbox["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["relationship"].as_str().unwrap().parse::<B256>().unwrap() == id.0)
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("relationship {id} is not in the inbox: {inbox}"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_verified_cached_encrypted_read_offline_and_exported() {
    let mut net = Net::start("records", 2).await;
    let home = net.party_dir("patient");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let first = net.offer(0, patient).await;
    let second = net.offer(1, patient).await;

    // The inbox defaults to the wallet's account and shows both offers, waiting at the
    // providers' gatekeepers (nothing on chain yet), with the providers' names.
    let inbox = net.json(&home, &["patient", "inbox", "--json"]).await;
    assert_eq!(inbox["address"].as_str().unwrap().parse::<Address>().unwrap(), patient);
    assert_eq!(status_of(&inbox, first), "offered");
    assert_eq!(status_of(&inbox, second), "offered");
    let offers = net.json(&home, &["patient", "offers", "--json"]).await;
    let offered: Vec<Address> = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["provider"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(offered.len(), 2, "{offers}");
    assert!(offered.contains(&net.sites[0].account.address), "{offers}");

    // Take one by provider, the other by id: the patient's key creates each.
    let provider = net.sites[0].account.address.to_string();
    let accepted = net.json(&home, &["patient", "accept", "--provider", &provider, "--json"]).await;
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["taken"], true);
    assert_eq!(accepted["actor"].as_str().unwrap().parse::<Address>().unwrap(), patient);
    let id = second.0.to_string();
    net.json(&home, &["patient", "accept", "--relationship", &id[..12], "--json"]).await;
    let inbox = net.json(&home, &["patient", "inbox", "--json"]).await;
    assert_eq!(status_of(&inbox, first), "accepted");
    assert_eq!(status_of(&inbox, second), "accepted");
    // The providers' names, decrypted with the patient's key (the chain holds them
    // encrypted); read without the wallet, they stay encrypted.
    let named = |inbox: &Value, id: RelationshipId| {
        inbox["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["relationship"].as_str().unwrap().parse::<B256>().unwrap() == id.0)
            .map(|r| r["provider"].clone())
            .unwrap()
    };
    assert_eq!(
        named(&inbox, second).as_str().unwrap().parse::<Address>().unwrap(),
        net.sites[1].account.address
    );
    let keyless =
        net.json(&home, &["patient", "inbox", "--address", &patient.to_string(), "--json"]).await;
    assert!(named(&keyless, second).is_null(), "{keyless}");

    // Records: every lab result of both providers, verified, newest first.
    let expected: BTreeSet<String> =
        [net.labs(0).await, net.labs(1).await].concat().iter().map(reference).collect();
    let records = net.json(&home, &["patient", "records", "--json"]).await;
    assert!(records["problems"].as_array().unwrap().is_empty(), "{}", records["problems"]);
    assert_eq!(references(&records["timeline"]), expected);
    let dates: Vec<&str> =
        records["timeline"].as_array().unwrap().iter().filter_map(|l| l["date"].as_str()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "not newest first: {dates:?}");
    assert!(records["timeline"][0]["text"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(records["timeline"][0]["value"].as_str().is_some());

    // The human timeline: one line per resource.
    let out = net.medrec(&home, &["patient", "records"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), expected.len());

    // The cache holds no plaintext: neither resource ids nor LOINC codes.
    let cache = std::fs::read(home.join("records.cache")).unwrap();
    let lab = &net.labs(0).await[0];
    let loinc = lab["code"]["coding"][0]["code"].as_str().unwrap();
    for needle in [lab["id"].as_str().unwrap(), loinc, "laboratory", "Observation"] {
        assert!(!contains(&cache, needle), "the cache shows {needle} in plaintext");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("records.cache")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The access log of the patient's records, every entry proven on chain once anchored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = net.json(&home, &["patient", "access-log", "--json"]).await;
        let entries = log["entries"].as_array().unwrap();
        if !entries.is_empty() && entries.iter().all(|e| e["proof"]["status"] == "verified") {
            break log;
        }
        assert!(Instant::now() < deadline, "the access log was not anchored in time: {log}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(log["invalid"], 0);
    let mine = patient.to_string().to_lowercase();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["requester"].as_str().is_some_and(|r| r.to_lowercase() == mine)
                && e["decision"].as_str().is_some()),
        "{log}"
    );
    let only = net
        .json(&home, &["patient", "access-log", "--relationship", &first.0.to_string(), "--json"])
        .await;
    assert!(only["entries"].as_array().unwrap().iter().all(|e| {
        e["relationship"].as_str().is_some_and(|r| r.parse::<B256>().unwrap() == first.0)
    }));

    // With the chain and the gatekeepers gone, the cache still shows everything.
    net.stop().await;
    let offline = net.json(&home, &["patient", "records", "--offline", "--json"]).await;
    assert_eq!(references(&offline["timeline"]), expected);
    assert_eq!(offline["offline"], true);
    assert!(offline["age_seconds"].as_u64().is_some());
    let out = net.medrec(&home, &["patient", "records", "--offline"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last refreshed"));
    // Without --offline it says the chain does not answer.
    let out = net.medrec(&home, &["patient", "records"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not answer"));

    // Export: one collection Bundle with all of them, each with its fullUrl.
    let file = net.dir.join("export.json");
    let out = net
        .medrec(&home, &["patient", "export", "--offline", "--out", file.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["fullUrl"].as_str().is_some_and(|u| u.starts_with("http"))));
    let exported: BTreeSet<String> = entries.iter().map(|e| reference(&e["resource"])).collect();
    assert_eq!(exported, expected);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let stdout = net.json(&home, &["patient", "export", "--offline"]).await;
    assert_eq!(stdout["entry"].as_array().unwrap().len(), entries.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_deleted_relationships_are_skipped_and_bad_transitions_explained() {
    let mut net = Net::start("reject", 2).await;
    let home = net.party_dir("patient");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let first = net.offer(0, patient).await;
    let second = net.offer(1, patient).await;
    // Rejecting an offer sends nothing: it is not on chain, and only the patient's key
    // could put it there.
    let declined = net
        .json(&home, &["patient", "reject", "--relationship", &first.0.to_string(), "--json"])
        .await;
    assert_eq!(declined["sent"], false, "{declined}");
    assert!(declined["note"].as_str().unwrap().contains("nothing to send"));
    let inbox = net.json(&home, &["patient", "inbox", "--json"]).await;
    assert_eq!(status_of(&inbox, first), "offered");
    net.json(&home, &["patient", "accept", "--relationship", &first.0.to_string()]).await;
    net.json(&home, &["patient", "accept", "--relationship", &second.0.to_string()]).await;
    // Accepted relationships have nothing to reject until an update is pending.
    let out =
        net.medrec(&home, &["patient", "reject", "--relationship", &first.0.to_string()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot go from accepted to rejected"));
    // Provider 0's delegate publishes new data: an update waits; the patient rejects it.
    let delegate = medrec_contracts::Relationships::new(
        net.at.relationships,
        signer_of(&net.rpc_url, &net.sites[0].delegate),
    );
    let update = delegate.updatePointer(
        patient,
        U256::ZERO,
        alloy::primitives::keccak256("new data"),
        alloy::primitives::keccak256("a bounty"),
    );
    assert!(update.send().await.unwrap().get_receipt().await.unwrap().status());
    let inbox = net.json(&home, &["patient", "inbox", "--json"]).await;
    assert_eq!(status_of(&inbox, first), "update pending");
    net.json(&home, &["patient", "reject", "--relationship", &first.0.to_string(), "--json"]).await;
    net.json(&home, &["patient", "delete", "--relationship", &second.0.to_string(), "--json"])
        .await;
    let inbox = net.json(&home, &["patient", "inbox", "--json"]).await;
    assert_eq!(status_of(&inbox, first), "rejected");
    assert_eq!(status_of(&inbox, second), "deleted");

    let records = net.json(&home, &["patient", "records", "--json"]).await;
    assert!(records["timeline"].as_array().unwrap().is_empty(), "{records}");
    assert!(records["relationships"].as_array().unwrap().is_empty());

    // Accepting after a deletion: the contract's refusal, in words.
    let out =
        net.medrec(&home, &["patient", "accept", "--relationship", &second.0.to_string()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot go from deleted to accepted"), "{err}");
    let out =
        net.medrec(&home, &["patient", "accept", "--relationship", &first.0.to_string()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot go from rejected"));
    // An unknown relationship, and an ambiguous or unknown provider.
    let out = net.medrec(&home, &["patient", "accept", "--relationship", "0xdeadbeef00"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no relationship"));
    let stranger = Address::repeat_byte(0x42).to_string();
    let out = net.medrec(&home, &["patient", "delete", "--provider", &stranger]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no relationship with provider"));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_a_fresh_data_dir_finds_relationships_and_refills_the_cache() {
    let mut net = Net::start("recover", 2).await;
    let home = net.party_dir("patient");
    let (patient, phrase) = new_wallet(&net, "patient", &home).await;
    let first = net.offer(0, patient).await;
    let second = net.offer(1, patient).await;
    net.json(&home, &["patient", "accept", "--relationship", &first.0.to_string()]).await;
    net.json(&home, &["patient", "accept", "--relationship", &second.0.to_string()]).await;
    let before = net.json(&home, &["patient", "records", "--json"]).await;
    let expected = references(&before["timeline"]);
    assert!(!expected.is_empty());

    let fresh = net.party_dir("patient-recovered");
    let out = net
        .medrec_env(&fresh, &["patient", "recover", "--json"], &[("MEDREC_MNEMONIC", &phrase)])
        .await;
    let recovered = ok_json(&out, &["patient", "recover"]);
    assert_eq!(recovered["address"].as_str().unwrap().parse::<Address>().unwrap(), patient);
    let rels = recovered["relationships"].as_array().unwrap();
    assert_eq!(rels.len(), 2, "{recovered}");
    for r in rels {
        assert_eq!(r["status"], "accepted");
        assert!(r["endpoint"].as_str().is_some_and(|e| e.starts_with("http")));
        assert!(r["records"].as_u64().unwrap() > 0);
    }
    assert_eq!(recovered["records"].as_u64().unwrap() as usize, expected.len());

    // Its cache, read offline, has the same resources.
    net.stop().await;
    let offline = net.json(&fresh, &["patient", "records", "--offline", "--json"]).await;
    assert_eq!(references(&offline["timeline"]), expected);

    // A wrong phrase, or a directory that already has a wallet, is refused clearly.
    let out =
        net.medrec_env(&fresh, &["patient", "recover"], &[("MEDREC_MNEMONIC", &phrase)]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a wallet"));
    let out = net
        .medrec_env(
            &net.party_dir("bad"),
            &["patient", "recover"],
            &[("MEDREC_MNEMONIC", "these are not twelve valid words at all ok")],
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("recovery phrase"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_tampering_after_publishing_is_reported_and_the_rest_still_shown() {
    let mut net = Net::start("tamper", 2).await;
    let home = net.party_dir("patient");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let first = net.offer(0, patient).await;
    let second = net.offer(1, patient).await;
    net.json(&home, &["patient", "accept", "--relationship", &first.0.to_string()]).await;
    net.json(&home, &["patient", "accept", "--relationship", &second.0.to_string()]).await;
    let before = net.json(&home, &["patient", "records", "--json"]).await;
    let expected = references(&before["timeline"]);

    // Provider 0 changes a published lab value without publishing a new hash.
    let mut lab = net.labs(0).await[0].clone();
    lab["valueQuantity"]["value"] = json!(999);
    let target = reference(&lab);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": lab, "request": {"method": "PUT", "url": target}}
    ]});
    net.sites[0].as_provider().import(&bundle).await.unwrap();

    let out = net.medrec(&home, &["patient", "records", "--json"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "hash-mismatch");
    assert_eq!(problems[0]["pointer"], 0);
    assert_eq!(problems[0]["relationship"].as_str().unwrap().parse::<B256>().unwrap(), first.0);
    // The other provider's records are all there; the tampered value was not taken.
    let now = references(&v["timeline"]);
    let theirs: BTreeSet<String> = net.labs(1).await.iter().map(reference).collect();
    assert!(theirs.is_subset(&now));
    assert_eq!(now, expected, "the copy verified earlier is kept");
    let shown =
        v["timeline"].as_array().unwrap().iter().find(|l| l["reference"] == target.as_str());
    assert!(
        shown.is_some_and(|l| !l["value"].as_str().unwrap_or_default().starts_with("999")),
        "the tampered value is not shown: {shown:?}"
    );
    let human = net.medrec(&home, &["patient", "records"]).await;
    assert_eq!(human.status.code(), Some(2));
    let err = String::from_utf8_lossy(&human.stderr);
    assert!(err.contains("WARNING") && err.contains("does not match the hash on chain"), "{err}");
    net.stop().await;
}
