//! A devchain with the MedRec contracts and the usual cast, driven through alloy the
//! way a provider's or a patient's software does.

use alloy::{
    network::EthereumWallet,
    primitives::{B256, Bytes, aliases::U40, keccak256},
    providers::{Provider, ProviderBuilder},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
};
use medrec_primitives::RelationshipId;

/// Dev account 0: the founding certified institution.
pub const INSTITUTION: usize = 0;
/// Dev account 1: a provider (registered by [`Medrec::new`]).
pub const PROVIDER: usize = 1;
/// Dev account 2: a patient.
pub const PATIENT: usize = 2;
/// Dev account 3: the provider's delegate for the patient's relationship.
pub const DELEGATE: usize = 3;
/// Dev account 4: a viewer (a pharmacist).
pub const VIEWER: usize = 4;
/// Dev account 5: someone with no role.
pub const STRANGER: usize = 5;

/// An instant-sealing devchain in process with a registered provider.
#[derive(Debug)]
pub struct Medrec {
    /// The chain.
    pub node: Node,
    /// Where the contracts are.
    pub at: Deployment,
    /// The ten development accounts.
    pub accounts: Vec<DevAccount>,
}

impl Medrec {
    /// Starts the chain and registers [`PROVIDER`] through the Registrar.
    ///
    /// # Panics
    /// When the chain cannot start or the registration fails (a test failure).
    pub async fn new() -> Self {
        let node = Node::new(
            Chain::new(ChainConfig::default()).expect("devchain starts"),
            SealMode::Instant,
        );
        let at = node.with(Chain::deployment).expect("contracts are predeployed");
        let m = Self { node, at, accounts: dev_accounts(10) };
        Registrar::new(m.at.registrar, m.wallet(INSTITUTION))
            .registerProvider(
                keccak256("provider"),
                m.address(PROVIDER),
                "https://gk.example".into(),
                keccak256("key"),
            )
            .send()
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("mined");
        m
    }

    /// The address of dev account `i`.
    pub fn address(&self, i: usize) -> alloy::primitives::Address {
        self.accounts[i].address
    }

    /// A provider (alloy) signing as dev account `i`, in process.
    pub fn wallet(&self, i: usize) -> impl Provider + Clone + use<> {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.accounts[i].signer()))
            .connect_client(self.node.rpc_client())
    }

    /// A read-only provider, in process.
    pub fn reader(&self) -> impl Provider + Clone + use<> {
        ProviderBuilder::new().connect_client(self.node.rpc_client())
    }

    /// The id of the [`PATIENT`]–[`DELEGATE`] relationship.
    pub fn relationship(&self) -> RelationshipId {
        RelationshipId::derive(self.address(PATIENT), self.address(DELEGATE))
    }

    /// The [`PATIENT`] creates its relationship with [`PROVIDER`]'s [`DELEGATE`] from
    /// the provider's offer (pointer 0 with these hashes); it starts accepted. The
    /// provider's identity is an opaque 36-byte stand-in: nothing on chain reads it.
    ///
    /// # Panics
    /// When a transaction fails.
    pub async fn relate(&self, query_commitment: B256, data_hash: B256) -> RelationshipId {
        let identity: Bytes = keccak256("identity").iter().chain(&[0x5a; 4]).copied().collect();
        self.patient_does(|r, delegate| {
            r.create(delegate, query_commitment, data_hash, identity).into_transaction_request()
        })
        .await;
        self.relationship()
    }

    /// The [`PATIENT`] grants `viewer` pointer 0 without expiry.
    pub async fn grant(&self, viewer: usize) {
        let v = self.address(viewer);
        self.patient_does(|r, delegate| {
            r.grant(delegate, v, 1, U40::ZERO, U40::from(4_000_000_000u64), Bytes::new())
                .into_transaction_request()
        })
        .await;
    }

    /// The [`PATIENT`] revokes `viewer`.
    pub async fn revoke(&self, viewer: usize) {
        self.revoke_as(PATIENT, viewer).await;
    }

    /// Dev account `who` sends a revocation of `viewer` on the [`PATIENT`]'s
    /// relationship (the contract records anyone's; readers count the patient's keys').
    ///
    /// # Panics
    /// When the transaction fails.
    pub async fn revoke_as(&self, who: usize, viewer: usize) {
        let provider = self.wallet(who).erased();
        let r = Relationships::new(self.at.relationships, provider.clone());
        let tx = r.revoke(self.relationship().0, self.address(viewer)).into_transaction_request();
        let receipt =
            provider.send_transaction(tx).await.expect("sent").get_receipt().await.expect("mined");
        assert!(receipt.status(), "the revocation failed");
    }

    async fn patient_does(
        &self,
        call: impl FnOnce(
            &Relationships::RelationshipsInstance<alloy::providers::DynProvider>,
            alloy::primitives::Address,
        ) -> alloy::rpc::types::TransactionRequest,
    ) {
        let provider = self.wallet(PATIENT).erased();
        let r = Relationships::new(self.at.relationships, provider.clone());
        let tx = call(&r, self.address(DELEGATE));
        let receipt =
            provider.send_transaction(tx).await.expect("sent").get_receipt().await.expect("mined");
        assert!(receipt.status(), "the patient's transaction failed");
    }
}
