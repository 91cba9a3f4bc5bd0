//! Integration tests of the gatekeeper: the library's public interface, and its HTTP
//! routes in process through one signing test client ([`client::Client`] on the
//! router, tower's `oneshot`), the gatekeeper as `serve::assemble` builds it from its
//! configuration included ([`serve`]). The few tests that need a real socket (TLS, a
//! restart of the server, the reqwest-based `GatekeeperClient`) are in `serve::socket`.

mod anchor;
mod auth;
mod client;
mod fhir;
mod fixture;
mod offers;
mod pipeline;
mod pointer;
mod research;
mod serve;
mod server;
mod smart;

/// A follower of `m`'s chain filling a fresh consent index, stepped once to the head.
async fn follow(
    m: &medrec_testkit::medrec::Medrec,
) -> (
    std::sync::Arc<std::sync::RwLock<medrec_chain::consent::ConsentIndex>>,
    medrec_chain::follower::Follower<alloy::providers::RootProvider>,
) {
    use medrec_chain::follower::{FollowConfig, Follower};
    let index =
        std::sync::Arc::new(std::sync::RwLock::new(medrec_chain::consent::ConsentIndex::new(0)));
    let mut follower = Follower::new(
        alloy::providers::ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(m.node.rpc_client()),
        FollowConfig {
            reorg_depth: 0,
            registrar: Some(m.at.registrar),
            ..FollowConfig::new(m.at.relationships, 0)
        },
        index.clone(),
    );
    follower.step().await.unwrap();
    (index, follower)
}
