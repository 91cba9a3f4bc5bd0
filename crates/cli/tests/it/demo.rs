//! `medrec demo` as a real process: the story runs to the end, the JSON result says
//! what outside checks need, and `--keep-running` leaves everything serving.

use alloy::transports::http::reqwest;
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[test]
fn the_story_runs_to_the_end_and_reports_what_it_made() {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec")).args(["demo", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["chain_id"], 31337);
    assert!(v["rpc_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    for c in ["registrar", "relationships", "anchors"] {
        assert!(v["contracts"][c].as_str().unwrap().starts_with("0x"), "{c}");
    }
    let providers = v["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    assert!(providers.iter().all(|p| p["name"].is_string()
        && p["gatekeeper_url"].is_string()
        && p["address"].is_string()));
    for who in ["patient", "viewer", "researcher", "clinician"] {
        assert_eq!(v[who]["private_key"].as_str().unwrap().len(), 66, "{who}");
        assert_eq!(v[who]["address"].as_str().unwrap().len(), 42, "{who}");
    }
    let relationships = v["relationships"].as_array().unwrap();
    assert_eq!(relationships.len(), 2);
    assert!(relationships.iter().all(|r| r["status"] == "accepted"), "{relationships:?}");
    // Each relationship's provider is the provider's main address (decrypted by the
    // patient), and its delegate is another address.
    for (r, p) in relationships.iter().zip(providers) {
        assert_eq!(r["provider"], p["address"], "{r}");
        assert!(r["delegate"].is_string() && r["delegate"] != p["address"], "{r}");
    }
    assert_eq!(v["free_gas"], true);
    // A custodian acted with its rights (the grant names its key) and was refused a
    // decision; a guardian recovery completed after its time-lock, the old key refused.
    let c = &v["custodian"];
    assert_eq!(c["granted"]["actor"], c["key"]);
    assert!(c["refused"].as_str().unwrap().contains("decide"), "{c}");
    let r = &v["recovery"];
    assert_eq!((r["guardians"].as_u64(), r["threshold"].as_u64()), (Some(3), Some(2)));
    assert_eq!(r["completed"], true, "{r}");
    assert!(r["refused_before_time_lock"].as_str().unwrap().contains("cannot complete before"));
    assert!(r["old_key_refused"].as_str().unwrap().contains("retired"), "{r}");
    let bounties = v["research"]["bounties"].as_array().unwrap();
    assert_eq!(bounties.len(), 1, "the provider's update carried one bounty");
    assert!(bounties[0]["block"].as_u64().unwrap() > 0 && bounties[0]["owner"].is_string());
    // The researcher mined the block with the bounty, owns it and redeemed it.
    let b = &bounties[0];
    assert_eq!(b["owner"], v["researcher"]["address"], "the researcher's block holds the bounty");
    assert_eq!(b["redeemed"], true);
    assert_eq!(b["epsilon"], 2.0, "the policy's ε per bounty was spent");
    let cells = b["result"]["cells"].as_array().expect("the release has cells");
    assert!(!cells.is_empty());
    for c in cells {
        assert!(
            c["suppressed"] == true
                || c["value"]["mean"].as_f64().is_some_and(|m| (30.0..=150.0).contains(&m)),
            "a released mean lies in the query's range: {c}"
        );
    }
    assert!(cells.iter().any(|c| c["suppressed"] == false), "some cell has at least k patients");
    // Break-glass: the institution's emergency group, the clinician's opening and what
    // it read from both providers (an allergy at Riverside Clinic, medication requests
    // and a condition at Northgate Hospital).
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["name"], "Emergency departments");
    assert_eq!(groups[0]["emergency"], true);
    assert!(groups[0]["id"].as_u64().is_some());
    assert_eq!(groups[0]["address"].as_str().unwrap().len(), 42);
    let bg = &v["break_glass"];
    assert_eq!(bg["clinician"], v["clinician"]["address"]);
    assert_eq!(bg["group"], groups[0]["id"]);
    assert_eq!(bg["reason"], "unconscious");
    assert!(bg["expires_at"].as_u64().unwrap() > 0);
    assert_eq!(bg["tx"].as_str().unwrap().len(), 66);
    assert!(bg["records"].as_u64().unwrap() >= 4, "{bg}");
    // The narration went to stderr, every step of it.
    let narration = String::from_utf8_lossy(&out.stderr);
    for step in [
        "takes both",
        "free gas",
        "sealed for it",
        "custodian",
        "vetoes",
        "recovery completes",
        "accepts",
        "refused",
        "breaks the glass",
        "1 allergy",
        "BREAK-GLASS",
        "logged as allow-break-glass",
        "notified",
        "mines the block",
        "redeems",
        "access log",
        "Done",
    ] {
        assert!(narration.contains(step), "no '{step}' in the narration:\n{narration}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_running_leaves_the_chain_and_gatekeepers_serving() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["demo", "--json", "--keep-running"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let http = reqwest::Client::new();
    let gatekeeper = v["providers"][0]["gatekeeper_url"].as_str().unwrap();
    let health = http.get(format!("{gatekeeper}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
    let rpc = http.post(v["rpc_url"].as_str().unwrap()).json(&body).send().await.unwrap();
    assert_eq!(rpc.status(), 200);
    // The apps serve, already unlocked for the demo identities: the link lets a browser
    // in. The patient has the second provider's new lab result to answer; the pharmacist
    // sees its grant refused (the story revoked it).
    assert_eq!(v["relationships"][1]["status"], "update pending", "{}", v["relationships"]);
    let patient = app_page(v["apps"]["patient"].as_str().unwrap(), "/inbox").await;
    assert!(patient.contains("Update pending") || patient.contains("update pending"), "{patient}");
    assert!(patient.contains(r#"value="accept""#), "an Accept button: {patient}");
    let researcher = app_page(v["apps"]["researcher"].as_str().unwrap(), "/results").await;
    assert!(researcher.contains("mean per group"), "the story's release: {researcher}");
    assert!(researcher.contains("sex = "), "{researcher}");
    // The provider's app (Lakeside Practice, set up as a real provider) offers the
    // patient a relationship. (How the app words an offer, and the patient's Inbox
    // showing it, are the web app's v2 pages: its own tests check them.)
    let provider = v["apps"]["provider"].as_str().unwrap();
    let patients = app_page(provider, "/").await;
    let patient_id = v["lakeside"]["patient_id"].as_str().unwrap();
    assert!(patients.contains(&format!("<li><code>{patient_id}</code>")), "{patients}");
    let patient_address = v["patient"]["address"].as_str().unwrap();
    let enrolled =
        app_post(provider, "/enroll", &[("address", patient_address), ("patient_id", patient_id)])
            .await;
    assert!(enrolled.contains("relationship"), "{enrolled}");
    // Its own access log: every decision of its gatekeeper (its import of the records
    // and its own reads among them), each checked against its anchor.
    let log = app_page(provider, "/access").await;
    assert!(log.contains("Every decision your gatekeeper took"), "{log}");
    assert!(log.contains("new or changed records, written by the provider"), "{log}");
    let viewer = app_page(v["apps"]["viewer"].as_str().unwrap(), "/").await;
    assert!(viewer.contains("Shared with me"), "{viewer}");
    assert!(viewer.contains("Access refused: the patient revoked this grant."), "{viewer}");
    // The emergency clinician's app: a viewer's app, with the clinician's key.
    let clinician = app_page(v["apps"]["clinician"].as_str().unwrap(), "/").await;
    assert!(clinician.contains("Shared with me"), "{clinician}");
    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Opens an app's launch link as a browser would (trading the key for the cookie):
/// the client, the app's base URL and the cookie.
async fn enter(launch: &str) -> (reqwest::Client, String, String) {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let entered = http.get(launch).send().await.unwrap();
    assert_eq!(entered.status(), 303, "the link is traded for the cookie");
    let cookie = entered.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    (http, launch[..launch.find("/?").unwrap()].to_owned(), cookie)
}

/// The page at `path` of the app whose launch link is `launch`.
async fn app_page(launch: &str, path: &str) -> String {
    let (http, base, cookie) = enter(launch).await;
    let page = http.get(format!("{base}{path}")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// Posts a form to the app as its own page would; the page it leads to.
async fn app_post(launch: &str, path: &str, form: &[(&str, &str)]) -> String {
    let (http, base, cookie) = enter(launch).await;
    let answer = http
        .post(format!("{base}{path}"))
        .header("cookie", &cookie)
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "the form leads back to a page");
    let to = answer.headers()["location"].to_str().unwrap().to_owned();
    let page = http.get(format!("{base}{to}")).header("cookie", cookie).send().await.unwrap();
    page.text().await.unwrap()
}
