//! Account: a person with no wallet creates one in the app (the phrase shown once and
//! confirmed), changes its passphrase, and recovers it from the phrase elsewhere.

use crate::net::{Browser, Net};
use medrec_app::AppConfig;
use medrec_wallet::{ScryptParams, Wallet};

/// The twelve words of the Create page, in order.
fn words(page: &str) -> Vec<String> {
    let list = &page[page.find(r#"<ol class="phrase""#).unwrap()..];
    let list = &list[..list.find("</ol>").unwrap()];
    list.split("<strong>").skip(1).map(|w| w[..w.find("</strong>").unwrap()].to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_is_created_confirmed_resealed_and_recovered_in_the_app() {
    let mut net = Net::start("account", 0).await;
    let dir = net.dir.join("new-patient");
    let config = |dir| AppConfig {
        kdf: ScryptParams::light(),
        ..AppConfig::new("127.0.0.1:0".parse().unwrap(), dir, net.spec())
    };
    let app = medrec_app::spawn(config(dir.clone())).await.unwrap();
    let browser = Browser::new(&app);
    let (path, _, welcome) = browser.get("/").await;
    assert_eq!(path, "/unlock");
    assert!(welcome.contains("There is no wallet in this folder yet."), "{welcome}");
    assert!(welcome.contains(r#"href="/account/new">Create a wallet</a>"#), "{welcome}");

    // The phrase is shown once: a reload draws another.
    let (_, _, first) = browser.get("/account/new").await;
    let (_, _, page) = browser.get("/account/new").await;
    let phrase = words(&page);
    assert_eq!(phrase.len(), 12, "{page}");
    assert_ne!(words(&first), phrase);
    for label in [
        r#"<label for="word3">Word 3</label>"#,
        r#"<label for="passphrase">New passphrase</label>"#,
    ] {
        assert!(page.contains(label), "{label}");
    }

    // Wrong words, or passphrases that differ: a sentence, no wallet.
    let form = |w3: &str, pass: &str, repeat: &str| {
        vec![
            ("word3".to_owned(), w3.to_owned()),
            ("word7".to_owned(), phrase[6].clone()),
            ("word11".to_owned(), phrase[10].clone()),
            ("passphrase".to_owned(), pass.to_owned()),
            ("repeat".to_owned(), repeat.to_owned()),
        ]
    };
    let post = |f: Vec<(String, String)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            browser.post("/account/new", &pairs).await
        }
    };
    let (_, _, page) = post(form("nope", "a long passphrase", "a long passphrase")).await;
    assert!(page.contains("The words you typed do not match the phrase"), "{page}");
    assert_eq!(words(&page), phrase, "the same phrase, to try again");
    let (_, _, page) = post(form(&phrase[2], "a long passphrase", "another one")).await;
    assert!(page.contains("The two passphrases differ"), "{page}");
    assert!(!Wallet::exists(&dir));

    // Confirmed: the wallet is written, unlocked, and this browser is in.
    let (path, _, home) =
        post(form(&phrase[2].to_uppercase(), "a long passphrase", "a long passphrase")).await;
    assert_eq!(path, "/", "{home}");
    assert!(home.contains("Your wallet is created and unlocked"), "{home}");
    let address = Wallet::read_address(&dir).unwrap();
    assert!(home.contains(&address.to_string()), "{home}");
    let (_, _, page) = browser.get("/account/new").await;
    assert!(page.contains("already holds a wallet"), "no second wallet over the first: {page}");

    // Change the passphrase: the wrong current one changes nothing.
    let change = |current: &str| {
        vec![
            ("current", current.to_owned()),
            ("passphrase", "the new passphrase".to_owned()),
            ("repeat", "the new passphrase".to_owned()),
        ]
    };
    let pairs = change("not it at all");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, page) = browser.post("/account/passphrase", &pairs).await;
    assert!(page.contains("Your current passphrase is not that one"), "{page}");
    let pairs = change("a long passphrase");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (path, _, page) = browser.post("/account/passphrase", &pairs).await;
    assert_eq!(path, "/account");
    assert!(page.contains("Your passphrase is changed"), "{page}");
    let pass = |p: &str| medrec_wallet::Passphrase::new(p).unwrap();
    assert!(Wallet::open(&dir, &pass("a long passphrase")).unwrap_err().is_wrong_passphrase());
    assert_eq!(Wallet::open(&dir, &pass("the new passphrase")).unwrap().address(), address);

    // Recovered from the phrase in another folder: the same account.
    let other_dir = net.dir.join("recovered");
    let other = medrec_app::spawn(config(other_dir.clone())).await.unwrap();
    let b2 = Browser::new(&other);
    let (_, _, page) = b2
        .post(
            "/account/recover",
            &[("phrase", "not a phrase"), ("passphrase", "12345678"), ("repeat", "12345678")],
        )
        .await;
    assert!(page.contains("That is not a valid recovery phrase"), "{page}");
    let typed = format!("  {}\n", phrase.join("  "));
    let (path, _, page) = b2
        .post(
            "/account/recover",
            &[("phrase", &typed), ("passphrase", "recovered pass"), ("repeat", "recovered pass")],
        )
        .await;
    assert_eq!(path, "/", "{page}");
    assert!(page.contains("Your wallet is recovered and unlocked"), "{page}");
    assert_eq!(Wallet::read_address(&other_dir).unwrap(), address);

    other.shutdown().await.unwrap();
    app.shutdown().await.unwrap();
    net.stop().await;
}
