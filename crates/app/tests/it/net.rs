//! A devchain, providers' gatekeepers with synthetic records, a patient's wallet, and
//! the app, all in this process on loopback.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    transports::http::reqwest,
};
use medrec_app::{AppConfig, RunningApp};
use medrec_client::ChainSpec;
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
    server::{ServerHandle, serve as serve_rpc},
};
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    pointer::{self, PointerQuery},
    serve::{Anchoring, RunningGatekeeper, ServeConfig, StoreUrl, spawn},
};
use medrec_primitives::RelationshipId;
use medrec_synth::{Options, generate, transaction_bundle};
use medrec_wallet::{Passphrase, ScryptParams, Wallet, WordCount};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

pub(crate) const CHAIN_ID: u64 = 31337;
/// The pointer every provider publishes: the patient's laboratory results.
pub(crate) const LABS: &str = "Observation?category=laboratory";
pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

/// A provider of the scenario.
pub(crate) struct Site {
    pub account: DevAccount,
    pub delegate: DevAccount,
    pub running: Option<RunningGatekeeper>,
    pub store: StoreUrl,
    pub patient_id: String,
}

impl Site {
    fn as_provider(&self) -> GatekeeperClient {
        let url = self.running.as_ref().unwrap().url();
        GatekeeperClient::new(url, self.account.address, CHAIN_ID, self.account.signer())
    }
}

/// The chain, the providers, and a scratch directory.
pub(crate) struct Net {
    pub _node: Node,
    pub rpc: Option<ServerHandle>,
    pub rpc_url: String,
    pub at: Deployment,
    pub sites: Vec<Site>,
    pub dir: PathBuf,
}

fn signer_of(rpc: &str, who: &DevAccount) -> impl Provider + Clone + use<> {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(who.signer()))
        .connect_http(rpc.parse().unwrap())
}

impl Net {
    /// The chain and `providers` gatekeepers (at most 2), each with one synthetic
    /// patient's records, registered in the Registrar.
    pub(crate) async fn start(name: &str, providers: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("medrec-app-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
        let at: Deployment = node.with(Chain::deployment).unwrap();
        let rpc = serve_rpc(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let rpc_url = rpc.url();
        let accounts = dev_accounts(10);
        let mut sites = Vec::new();
        for (i, (account, delegate, seed)) in
            [(1usize, 3usize, 11u64), (6, 7, 12)].into_iter().take(providers).enumerate()
        {
            let (account, delegate) = (accounts[account].clone(), accounts[delegate].clone());
            let store = StoreUrl::Sqlite(dir.join(format!("provider-{i}.db")));
            let mut config = ServeConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                store.clone(),
                rpc_url.clone(),
                at.relationships,
                account.address,
                CHAIN_ID,
            );
            config.reorg_depth = 0;
            config.poll = Duration::from_millis(100);
            config.enrollments = Some(dir.join(format!("provider-{i}-enrollments.json")));
            config.anchoring = Some(Anchoring {
                anchors: at.anchors,
                period: Duration::from_millis(500),
                signer: account.signer(),
            });
            let running = spawn(config).await.unwrap();
            let registrar = Registrar::new(at.registrar, signer_of(&rpc_url, &accounts[0]));
            let call = registrar.registerProvider(
                keccak256(format!("provider {i}")),
                account.address,
                running.url(),
                keccak256(format!("provider {i} key")),
            );
            assert!(call.send().await.unwrap().get_receipt().await.unwrap().status());
            let record = generate(&Options { patients: 1, years: 2, seed, ..Options::default() })
                .pop()
                .unwrap();
            let site = Site {
                account,
                delegate,
                running: Some(running),
                store,
                patient_id: record.id.clone(),
            };
            site.as_provider().import(&transaction_bundle(&record)).await.unwrap();
            sites.push(site);
        }
        Self { _node: node, rpc: Some(rpc), rpc_url, at, sites, dir }
    }

    /// Where the chain is, for the app.
    pub(crate) fn spec(&self) -> ChainSpec {
        ChainSpec {
            rpc_url: self.rpc_url.clone(),
            registrar: self.at.registrar,
            relationships: self.at.relationships,
            anchors: self.at.anchors,
            from_block: 0,
        }
    }

    /// A patient's wallet in a fresh directory (light key derivation: a test), with
    /// ether for gas.
    pub(crate) async fn patient(&self) -> (PathBuf, Address) {
        let dir = self.dir.join("patient");
        let pass = Passphrase::new(PASSPHRASE).unwrap();
        let wallet = Wallet::create(&dir, WordCount::Twelve, &pass, ScryptParams::light()).unwrap();
        let bank = signer_of(&self.rpc_url, &dev_accounts(10)[9]);
        let tx =
            TransactionRequest::default().to(wallet.address()).value(U256::from(10u128.pow(18)));
        assert!(bank.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status());
        (dir, wallet.address())
    }

    /// Provider `i` opens a relationship with `patient` with a pointer to the lab results
    /// (on chain only; the gatekeeper is told by [`Net::tell_gatekeeper`]).
    pub(crate) async fn create(&self, i: usize, patient: Address) -> RelationshipId {
        let site = &self.sites[i];
        let query = PointerQuery::parse(LABS).unwrap();
        let store = site.store.open().await.unwrap();
        let data =
            pointer::run(store.as_ref(), &query, &site.patient_id.parse().unwrap()).await.unwrap();
        assert!(!data.resources.is_empty(), "the synthetic patient has lab results");
        let r = Relationships::new(self.at.relationships, signer_of(&self.rpc_url, &site.account));
        let call = r.create(patient, site.delegate.address, query.commitment(), data.data_hash);
        // The gatekeeper anchors its access log with the same account now and then, so
        // a nonce can be taken under our feet: send again then.
        let mut tries = 0;
        let pending = loop {
            match call.send().await {
                Ok(pending) => break pending,
                Err(e) if e.to_string().contains("nonce") && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating the relationship failed: {e}"),
            }
        };
        assert!(pending.get_receipt().await.unwrap().status());
        RelationshipId::derive(patient, site.delegate.address)
    }

    /// Provider `i` tells its gatekeeper what relationship `id` serves.
    pub(crate) async fn tell_gatekeeper(&self, i: usize, id: RelationshipId) {
        let site = &self.sites[i];
        let client = site.as_provider();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client.enroll(id, &site.patient_id, &[LABS]).await {
                Ok(()) => break,
                Err(ClientError::Refused { status: 403 | 409 | 503, .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("enrolling failed: {e}"),
            }
        }
    }

    /// Provider `i` changes a published lab value without publishing a new hash; returns
    /// the value it wrote.
    pub(crate) async fn tamper(&self, i: usize) -> f64 {
        let site = &self.sites[i];
        let store = site.store.open().await.unwrap();
        let query = PointerQuery::parse(LABS).unwrap();
        let labs = pointer::run(store.as_ref(), &query, &site.patient_id.parse().unwrap())
            .await
            .unwrap()
            .resources;
        let mut lab = labs[0].clone();
        let value = 987_654.5;
        lab["valueQuantity"]["value"] = serde_json::json!(value);
        let target =
            format!("{}/{}", lab["resourceType"].as_str().unwrap(), lab["id"].as_str().unwrap());
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": lab, "request": {"method": "PUT", "url": target}}
        ]});
        site.as_provider().import(&bundle).await.unwrap();
        value
    }

    /// Starts the app for the wallet in `dir`, locked.
    pub(crate) async fn app(&self, dir: PathBuf) -> RunningApp {
        medrec_app::spawn(AppConfig::new("127.0.0.1:0".parse().unwrap(), dir, self.spec()))
            .await
            .unwrap()
    }

    /// Stops every gatekeeper and the chain's RPC server.
    pub(crate) async fn stop(&mut self) {
        for site in &mut self.sites {
            if let Some(r) = site.running.take() {
                r.shutdown().await.unwrap();
            }
        }
        if let Some(rpc) = self.rpc.take() {
            rpc.shutdown().await.unwrap();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A browser of the app: keeps the app's cookie, follows redirects itself (so that a
/// cookie set on a redirect is kept), and sends its forms from the app's own origin.
pub(crate) struct Browser {
    pub base: String,
    http: reqwest::Client,
    cookie: std::sync::Mutex<Option<String>>,
}

impl Browser {
    pub(crate) fn new(app: &RunningApp) -> Self {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: app.url(), http, cookie: std::sync::Mutex::new(None) }
    }

    /// A `GET path` with this browser's cookie, to send as it is (no redirects followed).
    pub(crate) fn raw_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.with_cookie(self.http.get(format!("{}{path}", self.base)))
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.cookie.lock().unwrap().clone() {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        }
    }

    /// Sends `request`, keeps any cookie it sets, and follows redirects with `GET`s:
    /// the final path, the status and the page.
    async fn follow(&self, request: reqwest::RequestBuilder) -> (String, u16, String) {
        let mut resp = self.with_cookie(request).send().await.unwrap();
        for _ in 0..10 {
            if let Some(set) = resp.headers().get("set-cookie") {
                let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
                *self.cookie.lock().unwrap() = Some(pair);
            }
            if !resp.status().is_redirection() {
                break;
            }
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            resp = self.raw_get(&location).send().await.unwrap();
        }
        let (url, status) = (resp.url().path().to_owned(), resp.status().as_u16());
        (url, status, resp.text().await.unwrap())
    }

    /// `GET path`: the final URL's path (after redirects), the status and the page.
    pub(crate) async fn get(&self, path: &str) -> (String, u16, String) {
        self.follow(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Posts a form from the app's own page, following the redirect back.
    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> (String, u16, String) {
        self.post_from(path, form, Some(&self.base.clone())).await
    }

    /// Posts a form with the given `Origin` (none when `None`).
    pub(crate) async fn post_from(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (String, u16, String) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        self.follow(req).await
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
