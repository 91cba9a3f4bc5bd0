//! People & keys through the apps: a custodian's app makes an acceptance code, the
//! patient pastes it, the custodian's app then acts for the patient with only the
//! rights given (a refusal says why), every act of it named in the patient's history;
//! guardians named, a recovery they start shown as an alert on every page and vetoed.

use crate::net::{Browser, Net, PASSPHRASE};
use alloy::signers::local::PrivateKeySigner;
use medrec_app::{AppConfig, RunningApp};
use medrec_client::patient::keys::{Guardians, approve_recovery};
use medrec_devchain::genesis::dev_accounts;
use medrec_wallet::Passphrase;

/// Lets `browser` in through the link the app printed.
async fn enter(browser: &Browser, app: &RunningApp) -> String {
    let launch = app.launch_url();
    let (path, status, page) = browser.get(&launch[launch.find("/?").unwrap()..]).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{page}");
    page
}

/// The text around `needle` in a page, for failure messages.
fn around(page: &str, needle: &str) -> String {
    page.find(needle).map_or_else(
        || format!("(not found: {needle})"),
        |i| page[i.saturating_sub(300)..(i + 300).min(page.len())].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_acts_within_its_rights_and_a_recovery_is_shown_and_vetoed() {
    let mut net = Net::start("people", 1).await;
    let (dir, patient_address) = net.patient().await;
    let rel = net.offer(0, patient_address).await;
    let config = |data_dir, passphrase, demo_key| AppConfig {
        passphrase,
        demo_key,
        ..AppConfig::new("127.0.0.1:0".parse().unwrap(), data_dir, net.spec())
    };
    let patient_app =
        medrec_app::spawn(config(dir.clone(), Some(Passphrase::new(PASSPHRASE).unwrap()), None))
            .await
            .unwrap();
    let patient = Browser::new(&patient_app);
    enter(&patient, &patient_app).await;
    let id = rel.0.to_string();
    let (_, _, page) =
        patient.post("/inbox/offer", &[("relationship", &id), ("answer", "take")]).await;
    assert!(page.contains("You accepted"), "{}", around(&page, "flash"));

    // The custodian-to-be (a fresh key) signs its acceptance in its own app: see and
    // decide, not share, until 2030.
    let accounts = dev_accounts(10);
    let spouse = &accounts[8];
    let spouse_dir = net.dir.join("spouse-app");
    let first =
        medrec_app::spawn(config(spouse_dir.clone(), None, Some(spouse.signer()))).await.unwrap();
    let own = Browser::new(&first);
    enter(&own, &first).await;
    let who = patient_address.to_string();
    let (_, _, page) = own
        .post(
            "/people/accept",
            &[("account", &who), ("see", "1"), ("decide", "1"), ("until", "2030-01-01")],
        )
        .await;
    let code = page
        .split(r#"<textarea id="acceptance-code" readonly rows="4" spellcheck="false">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no acceptance code: {}", around(&page, "act-h")))
        .to_owned();
    assert!(code.starts_with("medrec-key-1."), "{code}");
    first.shutdown().await.unwrap();

    // A code for someone else, or tampered with, is refused before anything is sent.
    let mut forged = code.clone();
    forged.replace_range(forged.len() - 5..forged.len() - 4, "0");
    let (_, _, page) =
        patient.post("/people/custodians", &[("code", &forged), ("name", "x")]).await;
    assert!(page.contains("not signed by key"), "{}", around(&page, "flash"));

    // The patient pastes the code: the spouse's key acts for the account.
    let (path, _, page) =
        patient.post("/people/custodians", &[("code", &code), ("name", "your spouse")]).await;
    assert_eq!(path, "/people");
    assert!(
        page.contains("your spouse (key ")
            && page.contains("the rights: see, decide, until 2030-01-01"),
        "{}",
        around(&page, "flash")
    );
    assert!(page.contains("<td>see, decide</td>"), "{}", around(&page, "custodians"));
    assert!(page.contains("acting"), "{}", around(&page, "custodians"));

    // The spouse's app now opens as the patient's, under a banner, with only its rights.
    let custodian_app =
        medrec_app::spawn(config(spouse_dir, None, Some(spouse.signer()))).await.unwrap();
    let custodian = Browser::new(&custodian_app);
    let home = enter(&custodian, &custodian_app).await;
    assert!(
        home.contains(&format!(
            "You are acting for {who} as a custodian until 2030-01-01 00:00 UTC, with the rights: see, decide."
        )),
        "{}",
        around(&home, "acting-banner")
    );
    let (_, _, share) = custodian.get("/share").await;
    let why = format!(
        "You cannot share records for {who}: your custodian key has the rights see, decide, not share."
    );
    assert!(share.contains(&why), "{}", around(&share, "share-refusal"));
    assert!(!share.contains(r#"action="/share" data-busy"#), "no share form");
    let viewer = accounts[4].address.to_string();
    let (_, _, page) = custodian
        .post(
            "/share",
            &[("relationship", &id), ("viewer", &viewer), ("pointer", "0"), ("duration", "3600")],
        )
        .await;
    assert!(page.contains(&why), "{}", around(&page, "flash"));
    // It sees the records: the provider, encrypted for the patient, is found by asking
    // the directory's gatekeepers.
    let (_, _, records) = custodian.post("/records/refresh", &[]).await;
    assert!(records.contains(r#"<h2 id="cat-labs">Lab results"#), "{}", around(&records, "flash"));
    // It decides: research consent, recorded as done by its key.
    let (_, _, page) =
        custodian.post("/research", &[("relationship", &id), ("choice", "in")]).await;
    assert!(page.contains("now feeds research bounties"), "{}", around(&page, "flash"));
    let (_, _, people) = custodian.get("/people").await;
    assert!(!people.contains("Add a custodian") && !people.contains("Name guardians"));
    let (_, _, inbox) = patient.get("/inbox").await;
    assert!(
        inbox.contains("now feeds research bounties, by your spouse&#39;s key."),
        "{}",
        around(&inbox, "feeds research")
    );
    let (_, _, inbox) = custodian.get("/inbox").await;
    assert!(
        inbox.contains("now feeds research bounties, by your key."),
        "{}",
        around(&inbox, "feeds")
    );

    // Guardians: two of two, named in the app; their list stays in the wallet's folder.
    let (alex, sam) = (&accounts[6], &accounts[7]);
    let lines = format!("{} Alex\n{} Sam", alex.address, sam.address);
    let (_, _, page) =
        patient.post("/people/guardians", &[("guardians", &lines), ("threshold", "2")]).await;
    assert!(page.contains("2 of your 2 guardians"), "{}", around(&page, "flash"));
    assert!(page.contains("Alex <code>"), "{}", around(&page, "guardians-h"));
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("guardians.json")).unwrap()).unwrap();
    let guardians: Guardians = serde_json::from_value(kept["guardians"].clone()).unwrap();

    // The guardians start a recovery the patient did not ask for: every page says so.
    let chain = net.spec().connect().await.unwrap();
    let thief = PrivateKeySigner::random();
    let nonce = chain.recovery(patient_address).await.unwrap().nonce;
    let approvals = [alex, sam]
        .iter()
        .map(|g| approve_recovery(&chain, &g.signer(), patient_address, thief.address(), nonce))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    chain
        .start_recovery(alex.signer(), patient_address, &thief, &guardians, approvals)
        .await
        .unwrap();
    let (_, _, home) = patient.get("/").await;
    assert!(
        home.contains(
            "Security alert: your guardians have started moving your account to another key"
        ) && home.contains(&thief.address().to_string()),
        "{}",
        around(&home, "recovery-alert")
    );
    let (_, _, people) = patient.get("/people").await;
    assert!(people.contains("A recovery of your account is waiting"), "{people}");
    assert!(
        people.contains("(in 71 h") || people.contains("(in 72 h"),
        "{}",
        around(&people, "Completes")
    );
    let (_, _, page) = patient.post("/people/veto", &[]).await;
    assert!(page.contains("You vetoed the recovery"), "{}", around(&page, "flash"));
    assert!(!page.contains("recovery-alert"), "{}", around(&page, "recovery-alert"));
    assert!(chain.recovery(patient_address).await.unwrap().new_key.is_zero());

    // The patient removes the custodian: its key stops at once.
    let key = spouse.address.to_string();
    let (_, _, page) = patient.post("/people/custodians/remove", &[("key", &key)]).await;
    assert!(
        page.contains("your spouse no longer acts for your account"),
        "{}",
        around(&page, "flash")
    );
    assert_eq!(chain.acting_for(spouse.address).await.unwrap().1, 0);

    custodian_app.shutdown().await.unwrap();
    patient_app.shutdown().await.unwrap();
    net.stop().await;
}
