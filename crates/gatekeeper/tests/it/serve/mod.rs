//! The gatekeeper as `serve` builds it from a [`ServeConfig`]: store from a URL, the
//! chain over JSON-RPC, the follower, the access log and its anchoring, a provider's own
//! database. Most tests drive the assembled router in process (`assembled`); the few
//! that check what only a socket does stay on one (`socket`).

pub(crate) mod assembled;
mod socket;

use crate::client::{As, CHAIN_ID, Client};
use alloy::{primitives::Address, signers::local::PrivateKeySigner, transports::http::reqwest};
use medrec_devchain::server::{ServerHandle, serve as serve_rpc};
use medrec_gatekeeper::{
    limits::RateLimits,
    pointer::{PointerQuery, run},
    serve::{Assembled, RunningGatekeeper, ServeConfig, StoreUrl},
    server::{Enrollment, Gatekeeper},
};
use medrec_primitives::RelationshipId;
use medrec_store::{RecordStore, fhir::Resource};
use medrec_testkit::medrec::{Medrec, VIEWER};
use serde_json::json;
use std::{path::PathBuf, time::Duration};

pub(crate) const GATEKEEPER: Address = Address::repeat_byte(0x6b);

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn observation() -> Resource {
    Resource::parse(json!({
        "resourceType": "Observation", "id": "o1", "status": "final",
        "subject": {"reference": "Patient/p1"},
        "category": [{"coding": [{"code": "laboratory"}]}],
        "effectiveDateTime": "2025-01-02"
    }))
    .unwrap()
}

/// A chain served over JSON-RPC on which the patient shares one pointer of `store`'s
/// records with the viewer.
pub(crate) struct Chain {
    pub(crate) m: Medrec,
    pub(crate) rpc: Option<ServerHandle>,
    pub(crate) relationship: RelationshipId,
    pub(crate) query: PointerQuery,
}

impl Chain {
    pub(crate) async fn new(store: &dyn RecordStore) -> Self {
        store.update(observation()).await.unwrap();
        let query = PointerQuery::parse("Observation?category=laboratory").unwrap();
        let published = run(store, &query, &"p1".parse().unwrap()).await.unwrap();
        let m = Medrec::new().await;
        let relationship = m.relate(query.commitment(), published.data_hash).await;
        m.grant(VIEWER).await;
        let rpc = serve_rpc(m.node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self { m, rpc: Some(rpc), relationship, query }
    }

    pub(crate) fn url(&self) -> String {
        self.rpc.as_ref().unwrap().url()
    }

    pub(crate) fn config(&self, store: StoreUrl) -> ServeConfig {
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            store,
            self.url(),
            self.m.at.relationships,
            GATEKEEPER,
            CHAIN_ID,
        );
        config.reorg_depth = 0;
        config.poll = Duration::from_millis(50);
        config.limits = RateLimits::off();
        config
    }

    pub(crate) fn enroll(&self, gatekeeper: &Gatekeeper) {
        let enrollment = Enrollment {
            patient: "p1".parse().unwrap(),
            pointers: vec![self.query.clone()],
            offer: None,
        };
        gatekeeper.enroll(self.relationship, enrollment).unwrap();
    }

    pub(crate) fn path(&self) -> String {
        format!("/pointers/{}/0", self.relationship.0)
    }

    pub(crate) fn signer(&self, who: usize) -> PrivateKeySigner {
        self.m.accounts[who].signer()
    }

    /// Dev account `who`, signing each request.
    pub(crate) fn key(&self, who: usize) -> As {
        As::Key(self.signer(who))
    }
}

/// The test client of `running`, which serves as `gatekeeper` on chain, over a socket.
pub(crate) fn client_of(running: &RunningGatekeeper, gatekeeper: Address) -> Client {
    Client::over_socket(running.url(), gatekeeper, reqwest::Client::new())
}

/// The test client of `assembled`, which serves as `gatekeeper` on chain, in process.
pub(crate) fn in_process(assembled: &Assembled, gatekeeper: Address) -> Client {
    Client::new(assembled.router(), gatekeeper)
}

/// Waits until `/readyz` answers `status` (the follower polls every 50 ms).
pub(crate) async fn wait_ready(client: &Client, status: u16) {
    for _ in 0..600 {
        if client.get("/readyz", &As::Nobody).await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {status}");
}
