//! Care beyond one viewer through the app's own forms: the patient shares with a group
//! (listed by its name), refuses and allows break-glass; a clinician of an emergency
//! group breaks the glass in the viewer's app and reads the emergency set, which the
//! patient's Inbox shows at once (live, and on the page).

use crate::net::{Browser, Net, PASSPHRASE};
use medrec_app::{AppConfig, Role, RunningApp};
use medrec_client::care::{InstitutionSession, group_address};
use medrec_devchain::genesis::dev_accounts;
use medrec_wallet::Passphrase;
use std::time::Duration;

/// Lets `browser` in through the link the app printed.
async fn enter(browser: &Browser, app: &RunningApp) -> String {
    let launch = app.launch_url();
    let (path, status, page) = browser.get(&launch[launch.find("/?").unwrap()..]).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{page}");
    page
}

/// The `<strong id="glass-state">` of the Share page.
fn glass_state(page: &str) -> &str {
    page.split(r#"<strong id="glass-state">"#).nth(1).unwrap().split('<').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_break_glass_through_the_patients_and_the_clinicians_apps() {
    let mut net = Net::start("care", 1).await;
    let (dir, patient_address) = net.patient().await;
    let rel = net.offer(0, patient_address).await;
    // The emergency set the provider holds: the synthetic patient's, and an allergy and
    // a condition of theirs added here (so that the set is never empty).
    let site = &net.sites[0];
    let subject = serde_json::json!({"reference": format!("Patient/{}", site.patient_id)});
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "AllergyIntolerance", "id": "care-alg", "patient": subject,
            "code": {"text": "Allergy to penicillin (care test)"}, "recordedDate": "2024-05-06"},
         "request": {"method": "PUT", "url": "AllergyIntolerance/care-alg"}},
        {"resource": {"resourceType": "Condition", "id": "care-cond", "subject": subject,
            "code": {"text": "Asthma (care test)"}, "onsetDateTime": "2019-02-03"},
         "request": {"method": "PUT", "url": "Condition/care-cond"}}
    ]});
    let provider_view = site.as_provider();
    provider_view.import(&bundle).await.unwrap();
    let mut held = 0;
    for ty in ["AllergyIntolerance", "MedicationRequest", "Condition"] {
        held += provider_view.search(ty, "").await.unwrap().len();
    }
    assert!(held >= 2);
    let accounts = dev_accounts(10);
    // The founding certified institution defines the groups; the clinician joins the
    // emergency departments.
    let chain = net.spec().connect().await.unwrap();
    let institution = InstitutionSession::new(chain, accounts[0].signer());
    let (er, _) = institution.create_group("Emergency departments", true).await.unwrap();
    let (pharmacists, _) = institution.create_group("Pharmacists", false).await.unwrap();
    let (clinician, stranger) = (&accounts[4], &accounts[8]);
    institution.add_member(er, clinician.address).await.unwrap();

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

    // Share: the chain's groups by name; a share with one lists it by name.
    let (_, _, share) = patient.get("/share").await;
    assert!(
        share.contains(&format!(
            r#"<option value="{er}">Emergency departments (emergency clinicians)</option>"#
        )),
        "{share}"
    );
    assert!(
        share.contains(&format!(r#"<option value="{pharmacists}">Pharmacists</option>"#)),
        "{share}"
    );
    assert!(share.contains("You are not sharing anything."), "{share}");
    let both = [
        ("relationship", id.as_str()),
        ("viewer", "0x0000000000000000000000000000000000000001"),
        ("group", &pharmacists.to_string()),
        ("pointer", "0"),
        ("duration", "86400"),
    ];
    let (_, _, page) = patient.post("/share", &both).await;
    assert!(page.contains("either a viewer (code or address) or a group, not both"), "{page}");
    let form = [
        ("relationship", id.as_str()),
        ("viewer", ""),
        ("group", &pharmacists.to_string()),
        ("pointer", "0"),
        ("duration", "86400"),
        ("from", ""),
        ("until", ""),
    ];
    let (_, _, page) = patient.post("/share", &form).await;
    assert!(
        page.contains(
            "Every member of the group &#34;Pharmacists&#34; may now see 1 set of records"
        ),
        "{page}"
    );
    let grants =
        page.split(r#"<h2 id="grants-h">"#).nth(1).unwrap().split("</section>").next().unwrap();
    assert!(grants.contains("Group: Pharmacists"), "{grants}");
    // Its revoke form names the group's address, as the chain knows the grant.
    assert!(
        grants.contains(&format!(r#"name="viewer" value="{}""#, group_address(pharmacists))),
        "{grants}"
    );
    assert!(
        !grants.contains(&format!("<code>{}</code>", group_address(pharmacists))),
        "the group is named, not shown as its address: {grants}"
    );

    let (_, _, inbox) = patient.get("/inbox").await;
    assert!(inbox.contains("The group &#34;Pharmacists&#34; may see 1 pointer"), "{inbox}");

    // Break-glass: allowed by default, said in words; the patient refuses it.
    assert!(page.contains("for 4 hours without asking you first"), "{page}");
    assert!(glass_state(&page).starts_with("Allowed"), "{page}");
    assert!(page.contains(r#"<input type="hidden" name="allowed" value="false">"#), "{page}");
    let (_, _, page) = patient.post("/share/break-glass", &[("allowed", "false")]).await;
    assert!(page.contains("Break-glass is now refused"), "{page}");
    assert!(glass_state(&page).starts_with("Refused"), "{page}");
    let (_, _, page) = patient.post("/share/break-glass", &[("allowed", "false")]).await;
    assert!(page.contains("Break-glass already was refused; nothing changed."), "{page}");

    // The clinician's app (a viewer's, opened with the clinician's key).
    let clinician_app = medrec_app::spawn(config(
        net.dir.join("clinician-app"),
        Role::Viewer,
        None,
        Some(clinician.signer()),
    ))
    .await
    .unwrap();
    let doctor = Browser::new(&clinician_app);
    let home = enter(&doctor, &clinician_app).await;
    assert!(home.contains(r#"<a href="/emergency">Emergency</a>"#), "in the menu: {home}");
    let (_, status, page) = doctor.get("/emergency").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"name="reason" value="unconscious""#), "{page}");
    assert!(page.contains("The patient is unconscious or cannot communicate"), "{page}");
    assert!(page.contains("recorded on the chain"), "{page}");
    let patient_text = patient_address.to_string();
    let glass = [("patient", patient_text.as_str()), ("reason", "unconscious"), ("confirm", "yes")];
    // Refused while the patient refuses: the contract's sentence, nothing opened.
    let (_, _, page) = doctor.post("/emergency", &glass).await;
    assert!(page.contains("refused break-glass"), "{page}");
    assert!(!page.contains("Emergency records of patient"), "{page}");
    // Without the confirmation, nothing is sent.
    let (_, _, page) = doctor.post("/emergency", &glass[..2]).await;
    assert!(page.contains("Confirm that this is an emergency"), "{page}");

    // Someone in no emergency group: no menu entry, and the page says who may.
    let stranger_app = medrec_app::spawn(config(
        net.dir.join("stranger-app"),
        Role::Viewer,
        None,
        Some(stranger.signer()),
    ))
    .await
    .unwrap();
    let other = Browser::new(&stranger_app);
    let home = enter(&other, &stranger_app).await;
    assert!(!home.contains(r#"href="/emergency""#), "{home}");
    let (_, _, page) = other.get("/emergency").await;
    assert!(page.contains("Only members of an emergency group may break the glass"), "{page}");
    assert!(!page.contains(r#"action="/emergency""#), "{page}");

    // The patient allows break-glass again and keeps the Inbox open (live events).
    let (_, _, page) = patient.post("/share/break-glass", &[("allowed", "true")]).await;
    assert!(page.contains("Break-glass is now allowed"), "{page}");
    assert!(glass_state(&page).starts_with("Allowed"), "{page}");
    let (_, _, inbox) = patient.get("/inbox").await;
    assert!(!inbox.contains("Emergency access to your records"), "no opening yet: {inbox}");
    let mut live = patient.raw_get("/events").send().await.unwrap();
    assert_eq!(live.status(), 200);

    // The clinician breaks the glass and reads the emergency set.
    let (path, _, page) = doctor.post("/emergency", &glass).await;
    assert_eq!(path, "/emergency");
    assert!(page.contains(&format!("You broke the glass for patient {patient_text}")), "{page}");
    assert!(page.contains("Emergency departments"), "{page}");
    assert!(page.contains("The opening ends at "), "{page}");
    assert!(page.contains("not checked against a pointer hash"), "{page}");
    assert!(!page.contains("flash-error"), "{page}");
    let provider = medrec_client::timeline::short_address(net.sites[0].account.address);
    assert!(page.contains(&format!("Provider {provider}")), "{page}");
    for heading in ["<h4>Allergies</h4>", "<h4>Medications</h4>", "<h4>Conditions</h4>"] {
        assert!(page.contains(heading), "{heading}: {page}");
    }
    let items = page.matches(r#"<li class="emergency-item">"#).count();
    assert_eq!(items, held, "every record of the set the provider holds: {page}");
    assert!(page.contains("Allergy to penicillin (care test) · 2024-05-06"), "{page}");
    assert!(page.contains("Asthma (care test)"), "{page}");
    assert!(page.contains(&format!("{held} records served by")), "{page}");
    assert!(!page.contains("<code>Observation/"), "labs are not in the emergency set: {page}");

    // The patient is told at once: live, and on the Inbox page.
    let told = tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = String::new();
        while let Some(chunk) = live.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("Emergency access") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("the opening is pushed to the open pages");
    assert!(told.contains(&clinician.address.to_string()), "{told}");
    assert!(told.contains("If you did not expect this"), "{told}");
    let (_, _, inbox) = patient.get("/inbox").await;
    let section = inbox
        .split(r#"<h2 id="glass-h">Emergency access to your records</h2>"#)
        .nth(1)
        .expect("the openings come first")
        .split("</section>")
        .next()
        .unwrap();
    assert!(
        inbox.find("glass-h").unwrap() < inbox.find("waiting-h").unwrap(),
        "shown before everything else"
    );
    assert!(section.contains(&clinician.address.to_string()), "{section}");
    assert!(section.contains("<dd>Emergency departments</dd>"), "{section}");
    assert!(
        section.contains("<dd>the patient was unconscious or could not communicate</dd>"),
        "{section}"
    );
    assert!(section.contains(r#"role="alert""#), "in force: {section}");
    assert!(
        section.contains("In force: it ends in 3 h 59 min")
            || section.contains("In force: it ends in 4 h 0 min"),
        "{section}"
    );
    assert!(section.contains("If you did not expect this"), "{section}");
    // The open page's stream would keep the app from stopping.
    drop(live);

    // Refusing ends it: the Inbox says so, and the clinician's page no longer lists records.
    let (_, _, page) = patient.post("/share/break-glass", &[("allowed", "false")]).await;
    assert!(page.contains("any opening in force has ended"), "{page}");
    let (_, _, inbox) = patient.get("/inbox").await;
    assert!(inbox.contains("Ended: you refused break-glass."), "{inbox}");
    assert!(!inbox.contains(r#"opening-in-force"#), "{inbox}");
    // The gatekeeper refuses once it has followed the refusal's block.
    let mut page = String::new();
    for _ in 0..40 {
        page = doctor.get("/emergency").await.2;
        if page.contains("there is no break-glass opening for you in force") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(page.contains("there is no break-glass opening for you in force"), "{page}");
    assert_eq!(page.matches(r#"<li class="emergency-item">"#).count(), 0, "{page}");

    stranger_app.shutdown().await.unwrap();
    clinician_app.shutdown().await.unwrap();
    patient_app.shutdown().await.unwrap();
    net.stop().await;
}
