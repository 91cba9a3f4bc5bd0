//! A devchain, providers' gatekeepers with synthetic records, a patient's wallet, and
//! the app, all in this process on loopback.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    transports::http::reqwest,
};
use medrec_app::{AppConfig, RunningApp};
use medrec_client::ChainSpec;
use medrec_devchain::genesis::dev_accounts;
use medrec_scenario::signer_of;
use medrec_wallet::{Passphrase, ScryptParams, Wallet, WordCount};
use std::path::PathBuf;

pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

medrec_scenario::scenario! {
    /// The shared scenario (`medrec-scenario`: the chain and providers' gatekeepers with
    /// synthetic records), with what the app's tests add: its chain for the app, a
    /// patient's wallet, the app itself.
    pub(crate) struct Net("app");
}

impl Net {
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

    /// Starts the app for the wallet in `dir`, locked.
    pub(crate) async fn app(&self, dir: PathBuf) -> RunningApp {
        medrec_app::spawn(AppConfig::new("127.0.0.1:0".parse().unwrap(), dir, self.spec()))
            .await
            .unwrap()
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
