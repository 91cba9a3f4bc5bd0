//! Groups and break-glass through the real `medrec` binary: a certified institution
//! creates groups and adds clinicians (`medrec group`), an emergency clinician breaks the
//! glass and reads the patient's emergency set from both providers (`medrec clinician`),
//! the patient sees the opening in the inbox and the access log, shares with a group,
//! and refuses break-glass (`medrec patient`); refusals exit non-zero with a sentence.

use crate::patient_workflow::{Net, new_wallet};
use alloy::primitives::Address;
use medrec_devchain::genesis::dev_accounts;
use serde_json::Value;
use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

const KEY_VAR: &str = "MEDREC_TEST_KEY";

/// `medrec <args>` signing with dev account `account`'s key (`--key-env`).
async fn as_dev(net: &Net, dir: &Path, account: usize, args: &[&str]) -> Output {
    let key = dev_accounts(10)[account].private_key.to_string();
    let mut args = args.to_vec();
    args.extend(["--key-env", KEY_VAR]);
    net.medrec_env(dir, &args, &[(KEY_VAR, &key)]).await
}

fn json(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: no JSON ({e})"))
}

/// Asserts the run failed with `sentence` on stderr and nothing on stdout.
fn refused(out: &Output, sentence: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it should have been refused: {err}");
    assert!(err.contains(sentence), "no '{sentence}' in: {err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institutions_group_clinicians_who_break_the_glass_unless_the_patient_refuses() {
    let net = Net::start("care", 2).await;
    let home = net.party_dir("patient");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let first = net.related(&home, 0, patient).await;
    net.related(&home, 1, patient).await;
    let er_dir = net.party_dir("clinician");
    let (clinician, _) = new_wallet(&net, "viewer", &er_dir).await;
    let other_dir = net.party_dir("stranger");
    let (stranger, _) = new_wallet(&net, "viewer", &other_dir).await;
    let (p, c, s) = (patient.to_string(), clinician.to_string(), stranger.to_string());
    let inst = net.party_dir("institution");

    // Groups: none yet; only a certified institution (dev account 0) creates them.
    let listed = net.json(&inst, &["group", "list"]).await;
    assert_eq!(listed["groups"].as_array().unwrap().len(), 0);
    let not_institution = as_dev(&net, &inst, 9, &["group", "create", "Rogue ER", "--emergency"]);
    refused(&not_institution.await, "not a certified institution");
    let er = json(
        &as_dev(
            &net,
            &inst,
            0,
            &["group", "create", "Emergency departments", "--emergency", "--json"],
        )
        .await,
        "group create",
    );
    assert_eq!((er["id"].as_u64(), er["emergency"].as_bool()), (Some(1), Some(true)));
    let pharmacists = json(
        &as_dev(&net, &inst, 0, &["group", "create", "Pharmacists", "--json"]).await,
        "create",
    );
    assert_eq!(pharmacists["id"], 2);
    let added = as_dev(&net, &inst, 0, &["group", "add", "1", &c, "--json"]).await;
    assert_eq!(json(&added, "group add")["member_now"], true);
    json(&as_dev(&net, &inst, 0, &["group", "add", "2", &s, "--json"]).await, "group add");
    refused(
        &as_dev(&net, &inst, 0, &["group", "add", "2", &s]).await,
        "already a member of group 2",
    );
    let listed = net.json(&inst, &["group", "list"]).await;
    let groups = listed["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "Emergency departments");
    assert_eq!(groups[0]["address"], er["address"]);
    assert_eq!(groups[1]["emergency"], false);
    assert_eq!(address(&groups[0]["manager"]), dev_accounts(1)[0].address);
    let human = net.medrec(&inst, &["group", "list"]).await;
    assert!(String::from_utf8_lossy(&human.stdout).contains("Emergency departments (emergency)"));

    // The clinician's groups, from the wallet's address (no passphrase needed).
    let mine = net.json(&er_dir, &["clinician", "groups"]).await;
    assert_eq!(address(&mine["address"]), clinician);
    let ids: Vec<u64> =
        mine["groups"].as_array().unwrap().iter().map(|g| g["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1]);

    // A clinician outside any emergency group is refused, with a sentence.
    let bg = ["clinician", "break-glass", "--patient", &p, "--reason", "unconscious"];
    refused(&net.medrec(&other_dir, &bg).await, "member of no emergency group");
    let as_member_of_er = [&bg[..], &["--group", "1"]].concat();
    refused(
        &net.medrec(&other_dir, &as_member_of_er).await,
        "is not a member of emergency group 1",
    );
    // Before any break-glass, the gatekeepers serve the clinician nothing.
    let emergency = ["clinician", "emergency", "--patient", &p];
    refused(&net.medrec(&er_dir, &emergency).await, "no break-glass opening for you in force");

    // The emergency clinician breaks the glass.
    let opened = net.json(&er_dir, &bg).await;
    assert_eq!(opened["group"], 1);
    assert_eq!(opened["reason"], "unconscious");
    assert_eq!(address(&opened["clinician"]), clinician);
    let expires_at = opened["expires_at"].as_u64().unwrap();

    // The patient sees it at once: in the inbox (JSON and words) and break-glass status.
    let inbox = net.json(&home, &["patient", "inbox"]).await;
    let openings = inbox["break_glass"].as_array().unwrap();
    assert_eq!(openings.len(), 1, "{inbox}");
    let o = &openings[0];
    assert_eq!(address(&o["clinician"]), clinician);
    assert_eq!(
        (o["group"].as_u64(), o["group_name"].as_str()),
        (Some(1), Some("Emergency departments"))
    );
    assert_eq!(
        (o["reason"].as_str(), o["expires_at"].as_u64()),
        (Some("unconscious"), Some(expires_at))
    );
    assert_eq!(o["state"], "open");
    assert!(inbox["notices"].as_array().unwrap().len() >= 2, "the relationships' notices stay");
    let words = net.medrec(&home, &["patient", "inbox"]).await;
    let words = String::from_utf8_lossy(&words.stdout);
    assert!(words.contains("BREAK-GLASS"), "{words}");
    assert!(words.contains("Emergency departments") && words.contains("unconscious"), "{words}");
    let status = net.json(&home, &["patient", "break-glass", "status"]).await;
    assert_eq!(status["break_glass_allowed"], true);
    assert_eq!(status["openings"].as_array().unwrap().len(), 1);

    // The clinician reads the emergency set from both providers (once each gatekeeper
    // has followed the chain to the opening), said to be unchecked against any hash.
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = loop {
        let out = net.medrec(&er_dir, &[&emergency[..], &["--json"]].concat()).await;
        if out.status.success() || Instant::now() > deadline {
            break json(&out, "clinician emergency");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(read["hash_checked"], false);
    assert!(read["note"].as_str().unwrap().contains("not checked against a hash"));
    let providers = read["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2, "{read}");
    let types = ["AllergyIntolerance", "MedicationRequest", "Condition"];
    let mut total = 0;
    for p in providers {
        for r in p["resources"].as_array().unwrap() {
            assert!(types.contains(&r["resourceType"].as_str().unwrap()), "{r}");
            total += 1;
        }
    }
    assert_eq!(read["records"], total);
    assert!(total > 0, "the synthetic patients have some of the emergency set: {read}");
    let words = net.medrec(&er_dir, &emergency).await;
    assert!(words.status.success(), "{}", String::from_utf8_lossy(&words.stderr));
    assert!(String::from_utf8_lossy(&words.stderr).contains("not checked against a hash"));
    assert_eq!(String::from_utf8_lossy(&words.stdout).lines().count(), total);

    // Each read is in the patient's access log as break-glass.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = net.json(&home, &["patient", "access-log"]).await;
        let by_clinician = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["requester"]
                    .as_str()
                    .is_some_and(|r| r.parse::<Address>().ok() == Some(clinician))
            })
            .map(|e| e["decision"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        if !by_clinician.is_empty() {
            assert!(by_clinician.iter().all(|d| d == "allow-break-glass"), "{by_clinician:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no break-glass read in the access log: {log}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The patient shares a relationship with the pharmacists' group.
    let shared = net
        .json(&home, &["patient", "share", "--group", "2", "--relationship", &first.0.to_string()])
        .await;
    assert_eq!(shared["group"], 2);
    assert_eq!(shared["viewer"], pharmacists["address"]);
    let no_one =
        net.medrec(&home, &["patient", "share", "--relationship", &first.0.to_string()]).await;
    assert!(!no_one.status.success());
    let unknown = net
        .medrec(
            &home,
            &["patient", "share", "--group", "7", "--relationship", &first.0.to_string()],
        )
        .await;
    refused(&unknown, "there is no group 7");

    // The patient refuses break-glass: a new break-glass is refused, in a sentence.
    let refusal = net.json(&home, &["patient", "break-glass", "refuse"]).await;
    assert_eq!(refusal["break_glass_allowed"], false);
    let status = net.json(&home, &["patient", "break-glass", "status"]).await;
    assert_eq!(status["break_glass_allowed"], false);
    assert_eq!(status["openings"][0]["state"], "ended", "refusing ended it: {status}");
    let words = net.medrec(&home, &["patient", "inbox"]).await;
    assert!(String::from_utf8_lossy(&words.stdout).contains("ended when you refused break-glass"));
    refused(&net.medrec(&er_dir, &bg).await, "refused break-glass");
    // Refusing ended the opening in force: the gatekeepers stop serving the clinician.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = net.medrec(&er_dir, &emergency).await;
        if !out.status.success() {
            refused(&out, "no break-glass opening for you in force");
            break;
        }
        assert!(Instant::now() < deadline, "the refusal did not end the opening");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removing the clinician from the group: it belongs to none.
    json(&as_dev(&net, &inst, 0, &["group", "remove", "1", &c, "--json"]).await, "group remove");
    let mine = net.json(&er_dir, &["clinician", "groups"]).await;
    assert!(mine["groups"].as_array().unwrap().is_empty(), "{mine}");
}
