//! The viewer's workflows through the real `medrec` binary: a patient shares a
//! relationship's pointers, the viewer sees the grant and fetches the records (checked
//! against the chain), and is refused as soon as the grant is revoked or expires.

use crate::patient_workflow::{Net, new_wallet};
use alloy::primitives::B256;
use serde_json::Value;

fn grant_state(inbox: &Value, id: B256) -> String {
    inbox["shared"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["relationship"].as_str().unwrap().parse::<B256>().unwrap() == id)
        .map(|g| g["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no grant for {id}: {inbox}"))
}

fn refused(out: &std::process::Output, why: &str) {
    assert!(
        !out.status.success(),
        "the viewer was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the patient has revoked or let expire your access") && err.contains(why),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing is shown when refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_fetches_what_was_shared_and_is_refused_once_revoked() {
    let mut net = Net::start("viewer-revoke", 2).await;
    let home = net.party_dir("patient");
    let pharmacy = net.party_dir("viewer");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let (viewer, _) = new_wallet(&net, "viewer", &pharmacy).await;
    let shared = net.offer(0, patient).await;
    let other = net.offer(1, patient).await;
    for id in [shared, other] {
        net.json(&home, &["patient", "accept", "--relationship", &id.0.to_string()]).await;
    }
    let empty = net.json(&pharmacy, &["viewer", "inbox", "--json"]).await;
    assert!(empty["shared"].as_array().unwrap().is_empty());
    let out = net.medrec(&pharmacy, &["viewer", "fetch"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing has been shared"));

    let rel = shared.0.to_string();
    let v = viewer.to_string();
    let granted = net
        .json(
            &home,
            &["patient", "share", "--viewer", &v, "--relationship", &rel, "--for", "1h", "--json"],
        )
        .await;
    assert_eq!(granted["pointers"], serde_json::json!([0]));
    let inbox = net.json(&pharmacy, &["viewer", "inbox", "--json"]).await;
    assert_eq!(grant_state(&inbox, shared.0), "valid");
    let g = &inbox["shared"][0];
    assert_eq!(
        g["provider"].as_str().unwrap().parse::<alloy::primitives::Address>().unwrap(),
        net.sites[0].account.address
    );
    assert_eq!(g["pointers"], serde_json::json!([0]));
    assert_eq!(g["valid_now"], true);

    // The viewer gets exactly the shared lab results (not the other provider's).
    let bundle = net.json(&pharmacy, &["viewer", "fetch", "--json"]).await;
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let got: std::collections::BTreeSet<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let labs: std::collections::BTreeSet<String> =
        net.labs(0).await.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, labs);
    let human = net.medrec(&pharmacy, &["viewer", "fetch", "--relationship", &rel[..14]]).await;
    assert!(human.status.success(), "{}", String::from_utf8_lossy(&human.stderr));
    assert_eq!(String::from_utf8_lossy(&human.stdout).lines().count(), labs.len());

    // The patient revokes: the next fetch is refused, and the inbox says so.
    net.json(&home, &["patient", "revoke", "--viewer", &v, "--relationship", &rel, "--json"]).await;
    refused(&net.medrec(&pharmacy, &["viewer", "fetch"]).await, "revoked");
    refused(&net.medrec(&pharmacy, &["viewer", "fetch", "--relationship", &rel]).await, "revoked");
    let inbox = net.json(&pharmacy, &["viewer", "inbox", "--json"]).await;
    assert_eq!(grant_state(&inbox, shared.0), "revoked");
    // Revoking again is explained.
    let out =
        net.medrec(&home, &["patient", "revoke", "--viewer", &v, "--relationship", &rel]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no access"));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_expires_on_chain_is_refused() {
    let mut net = Net::start("viewer-expiry", 1).await;
    let home = net.party_dir("patient");
    let pharmacy = net.party_dir("viewer");
    let (patient, _) = new_wallet(&net, "patient", &home).await;
    let (viewer, _) = new_wallet(&net, "viewer", &pharmacy).await;
    let id = net.offer(0, patient).await;
    let rel = id.0.to_string();
    net.json(&home, &["patient", "accept", "--relationship", &rel]).await;
    let v = viewer.to_string();
    // Not valid until a moment that is already past the expiry: refused by the chain.
    let out = net
        .medrec(
            &home,
            &[
                "patient",
                "share",
                "--viewer",
                &v,
                "--relationship",
                &rel,
                "--until",
                "2001-01-01T00:00:00Z",
            ],
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("later --until"));

    net.json(
        &home,
        &["patient", "share", "--viewer", &v, "--relationship", &rel, "--all", "--for", "1h"],
    )
    .await;
    let bundle = net.json(&pharmacy, &["viewer", "fetch", "--json"]).await;
    assert!(!bundle["entry"].as_array().unwrap().is_empty());

    // Two hours later on the chain's clock (a block sealed at the new time).
    net.node.increase_time(7200);
    net.node.mine_now().unwrap();
    refused(&net.medrec(&pharmacy, &["viewer", "fetch", "--json"]).await, "expired");
    let inbox = net.json(&pharmacy, &["viewer", "inbox", "--json"]).await;
    assert_eq!(grant_state(&inbox, id.0), "expired");
    assert_eq!(inbox["shared"][0]["valid_now"], false);
    net.stop().await;
}
