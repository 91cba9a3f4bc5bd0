//! The researcher's app: admission read from the chain, the miner started and stopped
//! from the page, a bounty it does not own refused in a sentence, and nothing released
//! yet said plainly. (Redemption and the released results' bars run in `medrec demo`'s
//! app and in the views' unit tests.)

use crate::net::{Browser, Net};
use medrec_app::{AppConfig, Role};
use medrec_client::researcher;
use medrec_devchain::genesis::dev_accounts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_researcher_sees_its_admission_mines_and_is_refused_what_it_does_not_own() {
    let mut net = Net::start("researcher", 1).await;
    let accounts = dev_accounts(6);
    let me = &accounts[5];
    let app = medrec_app::spawn(AppConfig {
        role: Role::Researcher,
        demo_key: Some(me.signer()),
        ..AppConfig::new("127.0.0.1:0".parse().unwrap(), net.dir.join("researcher-app"), net.spec())
    })
    .await
    .unwrap();
    let browser = Browser::new(&app);
    let launch = app.launch_url();
    let (_, _, overview) = browser.get(&launch[launch.find("/?").unwrap()..]).await;
    assert!(overview.contains("You are not admitted yet"), "{overview}");
    assert!(overview.contains(&me.address.to_string()), "the address to give institutions");
    assert!(overview.contains("You own no bounty yet"), "{overview}");

    // The certified institution votes it in: the page reads it from the chain.
    let chain = net.spec().connect().await.unwrap();
    let admission = researcher::admit(&chain, &accounts[0].signer(), me.address).await.unwrap();
    assert!(admission.admitted);
    let (_, _, overview) = browser.get("/").await;
    assert!(overview.contains("You are an admitted research entity"), "{overview}");

    // A bounty it does not own: refused in a sentence, nothing kept.
    let bogus = format!("{}:0", alloy::primitives::B256::repeat_byte(9));
    let (path, _, page) = browser.post("/bounties/redeem", &[("bounty", &bogus)]).await;
    assert_eq!(path, "/");
    assert!(page.contains("The bounty was not redeemed. You do not own this bounty"), "{page}");
    assert!(!net.dir.join("researcher-app/redeemed.json").exists());
    let (_, _, results) = browser.get("/results").await;
    assert!(results.contains("Nothing released yet"), "{results}");

    // Mining starts and stops from the page.
    let (_, _, mining) = browser.get("/mining").await;
    assert!(mining.contains("Not mining."), "{mining}");
    let (path, _, mining) = browser.post("/mining", &[("action", "start")]).await;
    assert_eq!(path, "/mining");
    assert!(mining.contains("Mining started"), "{mining}");
    assert!(mining.contains(">Stop mining</button>"), "{mining}");
    let (_, _, mining) = browser.post("/mining", &[("action", "stop")]).await;
    assert!(mining.contains("Mining stopped after"), "{mining}");
    assert!(mining.contains(">Start mining</button>"), "{mining}");

    app.shutdown().await.unwrap();
    net.stop().await;
}
