//! The keys of a patient's account through the real `medrec` binary (issue 13): a
//! custodian acts with the rights given and is refused the others, every act naming its
//! key; a rotation refuses the old key with a sentence; guardians recover the account
//! after a time-lock the patient can veto.

use crate::patient_workflow::{Net, new_wallet, ok_json};
use alloy::primitives::Address;
use serde_json::Value;
use std::{path::Path, process::Output};

const PASS_VAR: &str = "MEDREC_TEST_PASSPHRASE";

/// Asserts the run failed with `sentence` on stderr.
fn refused(out: &Output, sentence: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it should have been refused: {err}");
    assert!(err.contains(sentence), "no '{sentence}' in: {err}");
}

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

async fn run(net: &Net, dir: &Path, args: &[&str]) -> Value {
    let out = net.medrec(dir, args).await;
    ok_json(&out, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn custodians_rotation_and_guardian_recovery() {
    let net = Net::start("keys", 1).await;
    let home = net.party_dir("patient");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let rel = net.related(&home, 0, patient).await.0.to_string();
    let p = patient.to_string();

    // A custodian (the spouse's own wallet) with see and share.
    let spouse_dir = net.party_dir("spouse");
    let (spouse, _) = new_wallet(&net, "patient", &spouse_dir).await;
    let key_dir = spouse_dir.to_str().unwrap();
    let added = run(
        &net,
        &home,
        &[
            "patient",
            "keys",
            "add-custodian",
            "--key-dir",
            key_dir,
            "--key-passphrase-env",
            PASS_VAR,
            "--rights",
            "see,share",
            "--json",
        ],
    )
    .await;
    assert_eq!(address(&added["custodian"]), spouse);
    assert_eq!(added["rights"], "see, share");
    // It shares for the patient; the grant names its key.
    let viewer = Address::repeat_byte(0x77).to_string();
    let shared = run(
        &net,
        &spouse_dir,
        &[
            "patient",
            "--for-account",
            &p,
            "share",
            "--viewer",
            &viewer,
            "--relationship",
            &rel,
            "--json",
        ],
    )
    .await;
    assert_eq!(address(&shared["actor"]), spouse);
    let inbox = run(&net, &home, &["patient", "inbox", "--json"]).await;
    let granted = inbox["notices"].as_array().unwrap().iter().find(|n| n["kind"] == "granted");
    assert_eq!(address(&granted.unwrap()["actor"]), spouse, "{inbox}");
    // A decision it was not given: refused, in words.
    let opt_in = ["patient", "--for-account", &p, "research", "--relationship", &rel, "--opt-in"];
    refused(&net.medrec(&spouse_dir, &opt_in).await, "lacks the right (decide)");
    let keys = run(&net, &home, &["patient", "keys", "list", "--json"]).await;
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| address(&k["key"]) == spouse && k["rights"] == "see, share"),
        "{keys}"
    );
    // Removed: its next share is refused.
    run(&net, &home, &["patient", "keys", "remove-custodian", "--key-dir", key_dir, "--json"])
        .await;
    let again =
        ["patient", "--for-account", &p, "share", "--viewer", &viewer, "--relationship", &rel];
    refused(&net.medrec(&spouse_dir, &again).await, "may not");

    // Rotation: the wallet's next key acts; the old one is refused with a sentence.
    let rotated = run(&net, &home, &["patient", "keys", "rotate", "--json"]).await;
    assert_eq!(rotated["index"], 1);
    assert_eq!(address(&rotated["old_key"]), patient);
    let new_key = address(&rotated["new_key"]);
    crate::patient_workflow::fund(&net, new_key).await;
    let opted =
        run(&net, &home, &["patient", "research", "--relationship", &rel, "--opt-in", "--json"])
            .await;
    assert_eq!(opted["research_opt_in"], true);
    let records = run(&net, &home, &["patient", "records", "--json"]).await;
    assert!(!records["timeline"].as_array().unwrap().is_empty(), "records after a rotation");
    let keys_file = home.join("keys.json");
    let rotated_file = std::fs::read(&keys_file).unwrap();
    std::fs::write(&keys_file, r#"{"acting":0}"#).unwrap();
    let opt_out = ["patient", "research", "--relationship", &rel, "--opt-out"];
    refused(&net.medrec(&home, &opt_out).await, "was retired");
    std::fs::write(&keys_file, rotated_file).unwrap();

    // Guardians: three, any two; a recovery to a new wallet's key.
    let mut guardians = Vec::new();
    for i in 0..3 {
        let dir = net.party_dir(&format!("guardian-{i}"));
        let made = run(&net, &dir, &["patient", "new", "--json"]).await;
        guardians.push((dir, made["address"].as_str().unwrap().to_owned()));
    }
    let mut set = vec!["patient", "guardians", "set", "--threshold", "2", "--json"];
    for (_, g) in &guardians {
        set.extend(["--guardian", g.as_str()]);
    }
    let named = run(&net, &home, &set).await;
    assert_eq!(named["threshold"], 2);
    let file = home.join("guardians.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let device = net.party_dir("new-device");
    let (fresh, _) = new_wallet(&net, "patient", &device).await;
    let f = fresh.to_string();
    let n = &net;
    let approve = |i: usize| {
        let dir = guardians[i].0.clone();
        let (p, f) = (p.clone(), f.clone());
        async move {
            let args = ["guardian", "approve", "--account", &p, "--new-key", &f, "--json"];
            run(n, &dir, &args).await["signature"].as_str().unwrap().to_owned()
        }
    };
    let start = |sigs: Vec<String>| {
        let (p, file) = (p.clone(), file.to_str().unwrap().to_owned());
        let device = device.clone();
        async move {
            let mut args =
                vec!["recovery", "start", "--account", &p, "--guardians", &file, "--json"];
            for s in &sigs {
                args.extend(["--approval", s.as_str()]);
            }
            n.medrec(&device, &args).await
        }
    };
    // One approval is not enough.
    refused(&start(vec![approve(0).await]).await, "guardians");
    let sigs = vec![approve(0).await, approve(1).await];
    ok_json(&start(sigs.clone()).await, &["recovery", "start"]);
    let complete = ["recovery", "complete", "--account", &p];
    refused(&net.medrec(&device, &complete).await, "cannot complete before");
    let status = run(&net, &device, &["recovery", "status", "--account", &p, "--json"]).await;
    assert_eq!((status["pending"].as_bool(), status["ready"].as_bool()), (Some(true), Some(false)));
    // The patient, who still has the key, vetoes; the old approvals no longer count.
    run(&net, &home, &["recovery", "veto", "--json"]).await;
    refused(&start(sigs).await, "guardians");
    // Approved again, the time-lock passes (72 hours on the chain's clock), it completes.
    ok_json(&start(vec![approve(1).await, approve(2).await]).await, &["recovery", "start"]);
    net.node.increase_time(73 * 3600);
    net.node.mine_now().unwrap();
    let done = run(&net, &device, &["recovery", "complete", "--account", &p, "--json"]).await;
    assert_eq!(address(&done["old_key"]), new_key);
    assert_eq!(address(&done["new_key"]), fresh);
    // The old (rotated) key is refused; the new wallet acts for the account.
    refused(&net.medrec(&home, &opt_out).await, "was retired");
    let args =
        ["patient", "--for-account", &p, "research", "--relationship", &rel, "--opt-out", "--json"];
    assert_eq!(run(&net, &device, &args).await["research_opt_in"], false);
}
