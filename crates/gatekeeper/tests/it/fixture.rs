//! The gatekeeper most in-process tests talk to: a SQLite store in memory, a devchain
//! with one relationship (patient `p1`, pointer 0 = laboratory Observations, accepted
//! and granted to the viewer), the consent follower stepped by hand, and the one test
//! client ([`Client`]) on its router.

use crate::client::{As, CHAIN_ID, Client, DOMAIN};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{Follower, Health},
};
use medrec_gatekeeper::{
    auth::{AuthState, Clock, RequestVerifier, SiweAuthenticator, SiweConfig},
    limits::RateLimits,
    pointer::{PointerQuery, run},
    server::{Enrollment, Gatekeeper, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    audit::{AccessLog, WriterConfig, sqlite::SqliteAccessLog},
    fhir::Resource,
    sqlite::SqliteStore,
};
use medrec_testkit::medrec::{Medrec, PROVIDER, VIEWER};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

/// The test gatekeeper's own address.
pub(crate) const GATEKEEPER: Address = Address::repeat_byte(0x6c);
/// Pointer 0's query.
pub(crate) const LABORATORY: &str = "Observation?category=laboratory";

/// A resource from its JSON.
pub(crate) fn resource(v: Value) -> Resource {
    Resource::parse(v).unwrap()
}

/// An Observation of `patient` in `category` on `date` (LOINC 2498-4).
pub(crate) fn obs(id: &str, patient: &str, category: &str, date: &str) -> Resource {
    resource(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
        "effectiveDateTime": date
    }))
}

/// A gatekeeper over `records` and the devchain, with its test client.
pub(crate) struct Fixture {
    pub(crate) m: Medrec,
    pub(crate) gk: Gatekeeper,
    pub(crate) auth: AuthState,
    pub(crate) log: Arc<dyn AccessLog>,
    pub(crate) index: Arc<RwLock<ConsentIndex>>,
    pub(crate) rel: RelationshipId,
    pub(crate) follower: Follower<alloy::providers::RootProvider>,
    pub(crate) health: tokio::sync::watch::Sender<Health>,
    pub(crate) client: Client,
}

impl Fixture {
    /// `records` in the store; `p1` is enrolled with pointer 0 = [`LABORATORY`],
    /// accepted and granted to [`VIEWER`]; no rate limits.
    pub(crate) async fn new(records: Vec<Resource>) -> Self {
        Self::with_limits(records, RateLimits::off()).await
    }

    /// [`Fixture::new`] with these rate limits.
    pub(crate) async fn with_limits(records: Vec<Resource>, limits: RateLimits) -> Self {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        store.update_all(records).await.unwrap();
        let query = PointerQuery::parse(LABORATORY).unwrap();
        let published = run(store.as_ref(), &query, &"p1".parse().unwrap()).await.unwrap();
        let m = Medrec::new().await;
        let rel = m.relate(query.commitment(), published.data_hash).await;
        m.grant(VIEWER).await;
        let (index, follower) = crate::follow(&m).await;
        let (health, health_rx) = tokio::sync::watch::channel(follower.health());
        let auth = AuthState::with_rate_limits(
            RequestVerifier::new(CHAIN_ID, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new(DOMAIN.parse().unwrap(), CHAIN_ID)),
            Clock::system(),
            limits,
        );
        let log: Arc<dyn AccessLog> = Arc::new(SqliteAccessLog::open_in_memory().unwrap());
        let gk =
            Gatekeeper::new(store, index.clone(), health_rx, Readiness::default(), auth.clone())
                .with_provider(m.address(PROVIDER))
                .with_smart_clients(
                    medrec_gatekeeper::smart::SmartClients::parse(&[crate::smart::CLIENT_REDIRECT])
                        .unwrap(),
                )
                .with_access_log(log.clone(), WriterConfig::default());
        gk.enroll(
            rel,
            Enrollment { patient: "p1".parse().unwrap(), pointers: vec![query], offer: None },
        )
        .unwrap();
        let client = Client::new(gk.router(), GATEKEEPER);
        Self { m, gk, auth, log, index, rel, follower, health, client }
    }

    /// Dev account `who`'s key.
    pub(crate) fn signer(&self, who: usize) -> PrivateKeySigner {
        self.m.accounts[who].signer()
    }

    /// Dev account `who`, signing each request.
    pub(crate) fn key(&self, who: usize) -> As {
        As::Key(self.signer(who))
    }

    /// `GET path` signed by dev account `who`.
    pub(crate) async fn get(&self, path: &str, who: usize) -> crate::client::Answer {
        self.client.get(path, &self.key(who)).await
    }

    /// `method path` with a JSON `body`, signed by dev account `who`.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        who: usize,
    ) -> crate::client::Answer {
        self.client.json(method, path, body, &self.key(who)).await
    }

    /// The ids in the searchset Bundle at `path`, as dev account `who` (asserts a 200).
    pub(crate) async fn ids(&self, path: &str, who: usize) -> Vec<String> {
        let a = self.get(path, who).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.ids()
    }

    /// Signs dev account `who` in: `Bearer <token>`.
    pub(crate) async fn sign_in(&self, who: usize) -> As {
        self.client.sign_in(&self.signer(who)).await
    }

    /// The path of pointer `n` of the relationship.
    pub(crate) fn pointer(&self, n: u8) -> String {
        format!("/pointers/{}/{n}", self.rel.0)
    }

    /// The access log's size once every entry is written.
    pub(crate) async fn log_size(&self) -> u64 {
        self.gk.flush_access_log().await;
        self.log.head().await.unwrap().size
    }

    /// The data hash pointer 0 was published with (its `PointerAdded` event).
    pub(crate) async fn published_hash(&self) -> alloy::primitives::B256 {
        let reader = self.m.reader();
        let added = medrec_contracts::Relationships::new(self.m.at.relationships, &reader)
            .PointerAdded_filter()
            .from_block(0)
            .query()
            .await
            .unwrap();
        added.first().expect("pointer 0 was added").0.dataHash
    }

    /// Follows the chain to its head.
    pub(crate) async fn catch_up(&mut self) {
        self.follower.step().await.unwrap();
        self.health.send_replace(self.follower.health());
    }

    /// Serves the router on a free port of 127.0.0.1 (for the tests of the real HTTP
    /// client): its base URL.
    pub(crate) async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, self.gk.router()).into_future());
        base
    }
}
