//! The viewer's app: what was shared and until when, the records verified against the
//! chain, and a plain refusal (no records left on the page) once the patient revokes.
//! The viewer's app runs as `medrec demo` runs it: opened with a development key.

use crate::net::{Browser, Net, PASSPHRASE};
use medrec_app::{AppConfig, Role, RunningApp};
use medrec_client::timeline::short_address;
use medrec_devchain::genesis::dev_accounts;
use medrec_wallet::Passphrase;

/// Lets `browser` in through the link the app printed.
async fn enter(browser: &Browser, app: &RunningApp) -> String {
    let launch = app.launch_url();
    let (path, status, page) = browser.get(&launch[launch.find("/?").unwrap()..]).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{page}");
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_reads_what_was_shared_until_the_patient_revokes() {
    let mut net = Net::start("viewer", 1).await;
    let (dir, patient_address) = net.patient().await;
    let rel = net.offer(0, patient_address).await;
    let config = |data_dir, role, passphrase, demo_key| AppConfig {
        passphrase,
        role,
        demo_key,
        ..AppConfig::new("127.0.0.1:0".parse().unwrap(), data_dir, net.spec())
    };
    let patient_app = medrec_app::spawn(config(
        dir,
        Role::Patient,
        Some(Passphrase::new(PASSPHRASE).unwrap()),
        None,
    ))
    .await
    .unwrap();
    let patient = Browser::new(&patient_app);
    enter(&patient, &patient_app).await;
    let id = rel.0.to_string();
    let (_, _, page) =
        patient.post("/inbox/offer", &[("relationship", &id), ("answer", "take")]).await;
    assert!(page.contains("You accepted"), "{page}");

    let pharmacist = &dev_accounts(5)[4];
    let viewer_app = medrec_app::spawn(config(
        net.dir.join("viewer-app"),
        Role::Viewer,
        None,
        Some(pharmacist.signer()),
    ))
    .await
    .unwrap();
    let viewer = Browser::new(&viewer_app);
    let shared = enter(&viewer, &viewer_app).await;
    assert!(shared.contains("Shared with me"), "{shared}");
    assert!(shared.contains("Nothing has been shared with you yet"), "{shared}");
    assert!(shared.contains(&pharmacist.address.to_string()), "the address to give patients");
    assert!(!shared.contains(r#"action="/lock""#), "a demo key cannot be locked");
    // The viewer's encryption key is published as the app starts, and the viewer is
    // told once.
    assert!(shared.contains("Your encryption key is now published on the chain"), "{shared}");
    let (_, _, again) = viewer.get("/").await;
    assert!(!again.contains("Your encryption key is now published"), "told once");

    // The patient shares the lab results for a day, typing the code the viewer's app
    // shows (in lower case, with spaces); a mistyped code is refused before anything.
    let address = pharmacist.address.to_string();
    let code =
        shared.split(r#"<strong id="viewer-code">"#).nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(medrec_primitives::code::decode(code).unwrap(), pharmacist.address);
    let typed = code.to_lowercase().replace('-', " ");
    let mut typo = code.to_owned();
    typo.replace_range(3..4, if &code[3..4] == "A" { "B" } else { "A" });
    let refused = [
        ("relationship", id.as_str()),
        ("viewer", typo.as_str()),
        ("pointer", "0"),
        ("duration", "86400"),
        ("from", ""),
        ("until", ""),
    ];
    let (_, _, page) = patient.post("/share", &refused).await;
    assert!(page.contains("The code&#39;s check characters do not match"), "{page}");
    assert!(!page.contains("may now see"), "{page}");
    let form = [
        ("relationship", id.as_str()),
        ("viewer", typed.as_str()),
        ("pointer", "0"),
        ("duration", "86400"),
        ("from", ""),
        ("until", ""),
    ];
    let (_, _, page) = patient.post("/share", &form).await;
    assert!(page.contains(&format!("{address} may now see 1 set of records")), "{page}");

    let (_, _, shared) = viewer.get("/").await;
    // The provider, read from the key the patient sealed for this viewer.
    let provider = short_address(net.sites[0].account.address);
    assert!(shared.contains(&provider), "{shared}");
    assert!(!shared.contains("found by asking the network"), "{shared}");
    assert!(shared.contains("data pointer 0"), "{shared}");
    assert!(shared.contains("You may read these records until "), "{shared}");
    let (_, _, records) = viewer.get("/records").await;
    let rows = records.matches(r#"<li class="record">"#).count();
    assert!(rows > 0, "{records}");
    assert_eq!(records.matches("Verified against the chain (").count(), rows);
    assert!(records.contains(r#"<h2 id="cat-labs">Lab results"#), "{records}");
    assert!(records.contains(&format!("From Provider {provider}")), "{records}");
    assert!(!records.contains("Access refused"), "{records}");
    let resp = viewer.raw_get("/records/export").send().await.unwrap();
    let bundle: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(bundle["entry"].as_array().unwrap().len(), rows);

    // Revoked: refused plainly at the next visit, and nothing of the records remains.
    let (_, _, page) =
        patient.post("/share/revoke", &[("relationship", &id), ("viewer", &address)]).await;
    assert!(page.contains("can no longer see anything"), "{page}");
    let (_, _, records) = viewer.get("/records").await;
    assert!(records.contains("Access refused: the patient revoked this grant."), "{records}");
    assert_eq!(records.matches(r#"<li class="record">"#).count(), 0, "{records}");
    assert!(records.contains("No records you may read now."), "{records}");
    let (_, _, shared) = viewer.get("/").await;
    assert!(shared.contains("Access refused: the patient revoked this grant."), "{shared}");
    assert!(!shared.contains("Open the records"), "{shared}");

    // The demo identity stays unlocked: Lock says why it cannot, and pages still serve.
    let (path, _, page) = viewer.post("/lock", &[]).await;
    assert_eq!(path, "/");
    assert!(page.contains("cannot be locked"), "{page}");

    // The patient's pages are not the viewer's: the viewer's app has no Share page.
    assert_eq!(viewer.get("/share").await.1, 404);

    viewer_app.shutdown().await.unwrap();
    patient_app.shutdown().await.unwrap();
    net.stop().await;
}
