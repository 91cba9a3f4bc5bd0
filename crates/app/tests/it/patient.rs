//! The patient's story through the app's pages: unlock, the live inbox, accept, records
//! from two providers verified against the chain, share and revoke, export, research,
//! and the access log with its proofs.

use crate::net::{Browser, Net, PASSPHRASE};
use medrec_client::timeline::short_address;
use std::time::{Duration, Instant};

/// The text around `needle` in a page, for failure messages.
fn around(page: &str, needle: &str) -> String {
    page.find(needle).map_or_else(
        || format!("(not found: {needle})"),
        |i| page[i.saturating_sub(300)..(i + 300).min(page.len())].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_unlocks_answers_sees_verified_records_shares_and_revokes() {
    let mut net = Net::start("story", 2).await;
    let (dir, patient) = net.patient().await;
    let first = net.offer(0, patient).await;
    let app = net.app(dir).await;
    let browser = Browser::new(&app);

    // Locked: every page leads to the unlock form, whose field is labelled.
    let (path, _, page) = browser.get("/records").await;
    assert_eq!(path, "/unlock");
    assert!(page.contains(r#"<label for="passphrase">Wallet passphrase</label>"#), "{page}");

    // Forms from elsewhere are refused before anything happens.
    let (_, status, page) = browser
        .post_from("/unlock", &[("passphrase", PASSPHRASE)], Some("http://evil.example"))
        .await;
    assert_eq!(status, 403);
    assert!(page.contains("did not come from the MedRec app"), "{page}");
    let (_, status, _) = browser.post_from("/unlock", &[("passphrase", PASSPHRASE)], None).await;
    assert_eq!(status, 403);

    // A wrong passphrase is a sentence, and the form again.
    let (path, _, page) = browser.post("/unlock", &[("passphrase", "wrong")]).await;
    assert_eq!(path, "/unlock");
    assert!(page.contains("That passphrase does not open this wallet"), "{page}");

    // Unlocked: the provider's offer waits in the Inbox, first, with what each answer
    // does; nothing is on chain yet.
    let (path, _, home) = browser.post("/unlock", &[("passphrase", PASSPHRASE)]).await;
    assert_eq!(path, "/");
    assert!(home.contains("Providers connected"));
    assert!(home.contains(&patient.to_string()), "Home says who is signed in");
    let provider0 = short_address(net.sites[0].account.address);
    let (_, _, inbox) = browser.get("/inbox").await;
    assert!(
        inbox.contains(&format!("Provider {provider0}"))
            && inbox.contains("offers to share your records"),
        "{}",
        around(&inbox, "offer-")
    );
    assert!(inbox.contains(&format!(r#"name="relationship" value="{}""#, first.0)), "{inbox}");
    assert!(inbox.contains("Accept: your key creates the relationship on the chain"), "{inbox}");
    assert!(inbox.contains("Not now: nothing is sent"), "{inbox}");
    let (path, _, page) = browser
        .post("/inbox/offer", &[("relationship", &first.0.to_string()), ("answer", "take")])
        .await;
    assert_eq!(path, "/inbox");
    assert!(page.contains("You accepted"), "{}", around(&page, "flash"));
    assert!(!page.contains(r#"id="offer-"#), "the offer is taken: {}", around(&page, "offer-"));
    let (_, _, home) = browser.get("/").await;
    assert!(home.contains(&provider0), "the provider's name, decrypted: {home}");
    assert!(home.contains("<strong>accepted</strong>"), "{home}");

    // Unlocked, the app still serves only a browser holding its key: another program on
    // this machine is led to the unlock form, its actions refused, and the passphrase
    // or the link printed at start (which carries the key) lets it in.
    let other = Browser::new(&app);
    let (path, _, _) = other.get("/records").await;
    assert_eq!(path, "/unlock");
    let (path, status, page) = other.post("/research", &[("relationship", "x")]).await;
    assert_eq!((path.as_str(), status), ("/research", 403), "{page}");
    assert!(page.contains("has not unlocked the app"), "{page}");
    let (path, _, _) = other.get("/?key=0123").await;
    assert_eq!(path, "/unlock", "a wrong key is no key");
    let launch = app.launch_url();
    let (path, _, page) = other.get(&launch[launch.find("/?").unwrap()..]).await;
    assert_eq!(path, "/");
    assert!(page.contains("Providers connected"), "{page}");
    let third = Browser::new(&app);
    let (path, _, page) = third.post("/unlock", &[("passphrase", "wrong")]).await;
    assert_eq!(path, "/unlock", "already unlocked, the passphrase is still checked");
    assert!(page.contains("That passphrase does not open this wallet"), "{page}");
    assert_eq!(third.get("/").await.0, "/unlock");

    // Live: a second provider makes an offer; the app, which asks the gatekeepers every
    // few seconds (offers are not on chain), tells an open page without reloading.
    let mut events = browser.raw_get("/events").send().await.unwrap();
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream",
        "server-sent events"
    );
    let second = net.offer(1, patient).await;
    let offered = Instant::now();
    let mut seen = String::new();
    while !seen.contains("New offer") {
        let left = Duration::from_secs(8).saturating_sub(offered.elapsed());
        match tokio::time::timeout(left, events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no live event within 8 s of the offer ({other:?}); got: {seen}"),
        }
    }
    assert!(seen.contains("event: notice"), "{seen}");
    assert!(seen.contains(&short_address(net.sites[1].account.address)), "{seen}");
    drop(events);

    // Not now: the offer waits aside, nothing sent; then Accept from there.
    let second_id = second.0.to_string();
    let (_, _, page) =
        browser.post("/inbox/offer", &[("relationship", &second_id), ("answer", "later")]).await;
    assert!(page.contains("Not now:"), "{}", around(&page, "flash"));
    assert!(page.contains("Offers set aside (1)"), "{}", around(&page, "aside-h"));
    let (_, _, page) =
        browser.post("/inbox/offer", &[("relationship", &second_id), ("answer", "take")]).await;
    assert!(page.contains("You accepted"), "{}", around(&page, "flash"));
    assert!(!page.contains("Offers set aside"), "{}", around(&page, "aside-h"));
    // The history says who acted only when it was not the account's own key.
    assert!(page.contains("was created from its offer"), "{}", around(&page, "news"));
    assert!(!page.contains(", by "), "{}", around(&page, ", by "));
    let _ = first;
    let (_, _, home) = browser.get("/").await;
    assert_eq!(home.matches("<strong>accepted</strong>").count(), 2, "{home}");

    // Records: from both providers, by category, each verified against the chain.
    let (path, _, records) = browser.post("/records/refresh", &[]).await;
    assert_eq!(path, "/records");
    assert!(
        records.contains("fetched and checked against the chain"),
        "{}",
        around(&records, "flash")
    );
    assert!(records.contains(r#"<h2 id="cat-labs">Lab results"#), "{records}");
    // The refresh is a long action: its form says what happens while it runs.
    assert!(
        records.contains(
            r#"action="/records/refresh" data-busy="Fetching your records from every provider"#
        ),
        "{}",
        around(&records, "/records/refresh")
    );
    for site in &net.sites {
        let from = format!("From Provider {}", short_address(site.account.address));
        assert!(records.contains(&from), "{from}");
    }
    let rows = records.matches(r#"<li class="record">"#).count();
    assert!(rows > 2, "the lab results of both providers: {rows}");
    assert_eq!(records.matches("Verified against the chain (").count(), rows);
    assert!(!records.contains("Mismatch"), "{}", around(&records, "Mismatch"));

    // Filter and search.
    let (_, _, none) = browser.get("/records?category=labs&q=no-such-test-xyz").await;
    assert!(none.contains("No record matches."));
    let (_, _, vitals) = browser.get("/records?category=vitals").await;
    assert!(!vitals.contains(r#"<h2 id="cat-labs">"#));

    // Lab results over time: a chart per test, the laboratory's reference range as a
    // band, each chart described in a sentence; none on the unfiltered timeline.
    let (_, _, labs) = browser.get("/records?category=labs").await;
    assert!(labs.contains(r#"<h2 id="trends-h">Over time</h2>"#), "{}", around(&labs, "cat-labs"));
    assert!(labs.contains(r#"<rect class="chart-band""#), "{}", around(&labs, "trends-h"));
    assert!(labs.contains("; reference range "), "{}", around(&labs, "aria-label"));
    assert!(labs.contains(r#"<polyline class="chart-line""#));
    assert!(!records.contains("trends-h"), "charts only when filtered to labs or vitals");

    // Export: one FHIR Bundle holding every record.
    let resp = browser.raw_get("/records/export").send().await.unwrap();
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let bundle: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), rows);

    // Share the first provider's lab results with a pharmacist for a day, then revoke.
    let viewer = medrec_devchain::genesis::dev_accounts(5)[4].address.to_string();
    let (_, _, share) = browser.get("/share").await;
    assert!(share.contains("Lab results ("), "pointers are named in words: {share}");
    let rel = first.0.to_string();
    let form = [
        ("relationship", rel.as_str()),
        ("viewer", &viewer),
        ("pointer", "0"),
        ("duration", "86400"),
        ("from", ""),
        ("until", ""),
    ];
    let (path, _, shared) = browser.post("/share", &form).await;
    assert_eq!(path, "/share");
    assert!(
        shared.contains(&format!("{viewer} may now see 1 set of records")),
        "{}",
        around(&shared, "flash")
    );
    assert!(shared.contains(&format!("<td><code>{viewer}</code></td>")), "{shared}");
    assert!(
        shared.contains("(ends in 23 h") || shared.contains("(ends in 24 h"),
        "{}",
        around(&shared, "ends in")
    );
    let (_, _, revoked) =
        browser.post("/share/revoke", &[("relationship", &rel), ("viewer", &viewer)]).await;
    assert!(
        revoked.contains(&format!("{viewer} can no longer see anything")),
        "{}",
        around(&revoked, "flash")
    );
    assert!(revoked.contains("You are not sharing anything."));

    // Research: opt in, in plain words.
    let (_, _, research) =
        browser.post("/research", &[("relationship", &rel), ("choice", "in")]).await;
    assert!(research.contains("now feeds research bounties"), "{}", around(&research, "flash"));
    assert!(research.contains("<strong>opted in</strong>"));

    // The Inbox tells the story in sentences.
    let (_, _, inbox) = browser.get("/inbox").await;
    assert!(inbox.contains("Grant given"));
    assert!(inbox.contains(&format!("{viewer} may no longer see anything")), "{inbox}");

    // Access log: the patient's own reads, allowed, each proven once anchored.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, log) = browser.get("/access").await;
        assert!(log.contains("<td>You</td>"), "{log}");
        assert!(log.contains("Allowed"));
        if log.contains("Checked against its anchor on chain (block")
            && !log.contains("Waiting for the provider")
        {
            assert!(
                log.contains("each checked against its anchor on chain."),
                "{}",
                around(&log, "access-summary")
            );
            break;
        }
        assert!(Instant::now() < deadline, "the access log was never fully anchored: {log}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Lock: every browser is back at the unlock form, the one that locked without its
    // key, and nothing is served until the passphrase is typed again.
    let (path, _, page) = browser.post("/lock", &[]).await;
    assert_eq!(path, "/unlock");
    assert!(page.contains("Wallet passphrase"), "{page}");
    assert_eq!(browser.get("/records").await.0, "/unlock");
    assert_eq!(other.get("/records").await.0, "/unlock", "locked for every browser");
    let (path, _, home) = browser.post("/unlock", &[("passphrase", PASSPHRASE)]).await;
    assert_eq!(path, "/");
    assert!(home.contains("Providers connected"), "{home}");

    app.shutdown().await.unwrap();
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_is_shown_plainly_and_the_other_records_still_display() {
    let mut net = Net::start("mismatch", 2).await;
    let (dir, patient) = net.patient().await;
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(net.offer(i, patient).await);
    }
    let app = net.app(dir).await;
    let browser = Browser::new(&app);
    let (path, _, _) = browser.post("/unlock", &[("passphrase", PASSPHRASE)]).await;
    assert_eq!(path, "/");
    for id in &ids {
        let id = id.0.to_string();
        let (_, _, page) =
            browser.post("/inbox/offer", &[("relationship", &id), ("answer", "take")]).await;
        assert!(page.contains("You accepted"), "{}", around(&page, "flash"));
    }
    let (_, _, before) = browser.post("/records/refresh", &[]).await;
    let rows = before.matches(r#"<li class="record">"#).count();
    assert!(rows > 2, "{before}");

    // Provider 0 changes a published value behind the chain's back.
    let tampered = net.tamper(0).await;
    let (_, _, after) = browser.post("/records/refresh", &[]).await;
    assert!(
        after.contains("did not match the chain and was not accepted"),
        "{}",
        around(&after, "flash")
    );
    assert!(
        after.contains(
            r#"<p class="flash flash-error mismatch" role="alert"><strong>Mismatch.</strong>"#
        ),
        "{after}"
    );
    assert!(after.contains("does not match the hash on chain"));
    // Provider 0's records are the copy verified earlier, marked; provider 1's are
    // verified as ever; the tampered value is nowhere.
    let marked = after.matches(r#"<li class="record record-mismatch">"#).count();
    let verified = after.matches(r#"<li class="record">"#).count();
    assert!(marked > 0, "{after}");
    assert_eq!(marked + verified, rows, "every record is still shown");
    assert!(
        after.contains(&format!("From Provider {}", short_address(net.sites[1].account.address)))
    );
    assert!(!after.contains(&tampered.to_string()), "the tampered value is not shown");

    app.shutdown().await.unwrap();
    net.stop().await;
}
