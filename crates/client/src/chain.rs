//! The one way to connect to the chain: where the node and the MedRec contracts are
//! ([`ChainSpec`]), and a connection to them with the chain's id ([`Chain`]), which reads
//! and, with a party's key, sends.

use crate::error::{Context as _, Error, Result, bail, ensure};
use alloy::{
    eips::{BlockNumberOrTag, eip1559::Eip1559Estimation},
    network::EthereumWallet,
    primitives::{Address, B256, address},
    providers::{
        DynProvider, Provider, ProviderBuilder, fillers::GasFiller, utils::Eip1559Estimator,
    },
    rpc::{client::RpcClient, types::Filter},
    signers::local::PrivateKeySigner,
};
use medrec_chain::inbox::{self, Dated, Summary};
use medrec_contracts::{Registrar, Relationships};
use medrec_gatekeeper::client::GatekeeperClient;
use medrec_primitives::RelationshipId;
use std::collections::BTreeMap;

/// The Registrar of the embedded chain (the first contract its deployer creates).
pub const DEV_REGISTRAR: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
/// The Relationships contract of the embedded chain.
pub const DEV_RELATIONSHIPS: Address = address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
/// The AccessAnchors contract of the embedded chain.
pub const DEV_ANCHORS: Address = address!("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0");
/// The JSON-RPC URL of the embedded chain on this machine (`medrec chain`).
pub const DEV_RPC_URL: &str = "http://127.0.0.1:8545";

/// Where the chain is: the node's JSON-RPC URL and the MedRec contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// JSON-RPC URL of the chain node.
    pub rpc_url: String,
    /// The Registrar contract.
    pub registrar: Address,
    /// The Relationships contract.
    pub relationships: Address,
    /// The AccessAnchors contract.
    pub anchors: Address,
    /// The block the contracts were deployed in (where reading events starts).
    pub from_block: u64,
}

impl Default for ChainSpec {
    /// The embedded chain on this machine, whose deployment is deterministic.
    fn default() -> Self {
        Self {
            rpc_url: DEV_RPC_URL.to_owned(),
            registrar: DEV_REGISTRAR,
            relationships: DEV_RELATIONSHIPS,
            anchors: DEV_ANCHORS,
            from_block: 0,
        }
    }
}

impl ChainSpec {
    /// Connects to the node and asks its chain id (which also checks that it answers).
    pub async fn connect(&self) -> Result<Chain> {
        let url = self
            .rpc_url
            .parse()
            .map_err(|_| Error::invalid(format!("'{}' is not a URL", self.rpc_url)))?;
        Chain::over(RpcClient::new_http(url), self.clone()).await
    }
}

/// A connection to the chain: the node, the MedRec contracts and the chain id. Cheap
/// to clone; every party's session holds one.
#[derive(Debug, Clone)]
pub struct Chain {
    spec: ChainSpec,
    client: RpcClient,
    reader: DynProvider,
    chain_id: u64,
    free_gas: bool,
}

impl Chain {
    /// Connects through `client` (an HTTP client, or an in-process transport) to the
    /// chain `spec` describes, asking the node's chain id.
    pub async fn over(client: RpcClient, spec: ChainSpec) -> Result<Self> {
        let reader = ProviderBuilder::new().connect_client(client.clone()).erased();
        let chain_id = reader
            .get_chain_id()
            .await
            .with_context(|| format!("the chain node at {} does not answer", spec.rpc_url))?;
        // A zero-price consortium chain (`medrec chain --free-gas`, Besu's zeroBaseFee)
        // asks no price: then every transaction is sent at price 0, so that keys nobody
        // funded (and no funding trail) can act.
        let free_gas = reader
            .get_gas_price()
            .await
            .with_context(|| format!("the chain node at {} does not answer", spec.rpc_url))?
            == 0;
        Ok(Self { spec, client, reader, chain_id, free_gas })
    }

    /// Whether gas is free on this chain (its node asks a gas price of 0): transactions
    /// are then sent at price 0 from keys that hold nothing.
    pub const fn free_gas(&self) -> bool {
        self.free_gas
    }

    /// Where the chain is.
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The node's JSON-RPC URL.
    pub fn rpc_url(&self) -> &str {
        &self.spec.rpc_url
    }

    /// The chain id.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// A read-only connection.
    pub const fn reader(&self) -> &DynProvider {
        &self.reader
    }

    /// A connection that signs and sends transactions as `signer`: with the usual fee
    /// estimate, or at price 0 on a free-gas chain (the default estimate never tips
    /// below 1 wei, which a key holding nothing cannot pay).
    pub fn sender(&self, signer: PrivateKeySigner) -> DynProvider {
        let wallet = EthereumWallet::from(signer);
        if !self.free_gas {
            return ProviderBuilder::new()
                .wallet(wallet)
                .connect_client(self.client.clone())
                .erased();
        }
        let mut zero = GasFiller::default();
        zero.estimator = Eip1559Estimator::new(|_, _| Eip1559Estimation {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
        });
        ProviderBuilder::new()
            .disable_recommended_fillers()
            .filler(zero)
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(wallet)
            .connect_client(self.client.clone())
            .erased()
    }

    /// The Registrar, for reading.
    pub fn registrar(&self) -> medrec_contracts::Registrar::RegistrarInstance<DynProvider> {
        Registrar::new(self.spec.registrar, self.reader.clone())
    }

    /// The Registrar, sending as `signer`.
    pub fn registrar_as(
        &self,
        signer: PrivateKeySigner,
    ) -> medrec_contracts::Registrar::RegistrarInstance<DynProvider> {
        Registrar::new(self.spec.registrar, self.sender(signer))
    }

    /// The Relationships contract, for reading.
    pub fn relationships(
        &self,
    ) -> medrec_contracts::Relationships::RelationshipsInstance<DynProvider> {
        Relationships::new(self.spec.relationships, self.reader.clone())
    }

    /// The Relationships contract, sending as `signer`.
    pub fn relationships_as(
        &self,
        signer: PrivateKeySigner,
    ) -> medrec_contracts::Relationships::RelationshipsInstance<DynProvider> {
        Relationships::new(self.spec.relationships, self.sender(signer))
    }

    /// A client of `provider`'s gatekeeper at `url`, signing as `signer`.
    pub fn gatekeeper(
        &self,
        url: String,
        provider: Address,
        signer: PrivateKeySigner,
    ) -> GatekeeperClient {
        GatekeeperClient::new(url, provider, self.chain_id, signer)
    }

    /// The base URL of `provider`'s gatekeeper, from the Registrar's provider directory.
    pub async fn endpoint(&self, provider: Address) -> Result<String> {
        // `provider` is also the name of the instance's accessor of its RPC provider, so
        // the call is built from its type.
        let entry = self
            .registrar()
            .call_builder(&Registrar::providerCall { account: provider })
            .call()
            .await
            .with_context(|| format!("cannot look up provider {provider} in the Registrar"))?;
        ensure!(
            !entry.endpoint.is_empty(),
            "provider {provider} is not in the Registrar's directory, so its gatekeeper cannot be found"
        );
        Ok(entry.endpoint)
    }

    /// The chain's time: the latest block's timestamp, or this machine's clock if later.
    pub async fn now(&self) -> Result<u64> {
        let block = self
            .reader
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .context("cannot read the latest block")?
            .ok_or_else(|| Error::invalid("the chain has no latest block"))?;
        Ok(block.header.timestamp.max(crate::timeline::unix_now()))
    }

    /// The latest block's number.
    pub async fn head(&self) -> Result<u64> {
        self.reader
            .get_block_number()
            .await
            .with_context(|| format!("the chain node at {} does not answer", self.spec.rpc_url))
    }

    /// The notices about `address`'s relationships (as patient, provider, delegate or
    /// viewer) in blocks `since..=to` (to the latest when `to` is `None`).
    pub async fn notices(
        &self,
        address: Address,
        since: u64,
        to: Option<u64>,
    ) -> Result<Vec<Dated>> {
        inbox::read(&self.reader, self.spec.relationships, self.spec.from_block, address, since, to)
            .await
            .with_context(|| {
                format!(
                    "cannot read the relationships of {address} from the chain node at {}",
                    self.spec.rpc_url
                )
            })
    }

    /// Every relationship `address` takes part in, summarized from the chain's events.
    pub async fn summaries(&self, address: Address) -> Result<BTreeMap<RelationshipId, Summary>> {
        Ok(inbox::summarize(&self.notices(address, 0, None).await?))
    }

    /// The relationships `patient` is the patient of.
    pub async fn patient_relationships(
        &self,
        patient: Address,
    ) -> Result<BTreeMap<RelationshipId, Summary>> {
        Ok(self
            .summaries(patient)
            .await?
            .into_iter()
            .filter(|(_, s)| s.patient == Some(patient))
            .collect())
    }

    /// Everything the chain's events tell about one relationship (its pointers and their
    /// latest data hashes, its grants), whoever asks.
    pub async fn relationship_events(&self, relationship: RelationshipId) -> Result<Summary> {
        let filter = Filter::new()
            .address(self.spec.relationships)
            .from_block(self.spec.from_block)
            .to_block(BlockNumberOrTag::Latest)
            .topic1(relationship.0);
        let mut logs =
            self.reader.get_logs(&filter).await.with_context(|| {
                format!("the chain node at {} does not answer", self.spec.rpc_url)
            })?;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let notices: Vec<Dated> = logs
            .iter()
            .filter(|l| !l.removed)
            .filter_map(|l| inbox::decode_dated(l.block_number?, &l.inner))
            .collect();
        Ok(inbox::summarize(&notices).remove(&relationship).unwrap_or_default())
    }

    /// The events of the relationships `ids` (a provider's own, which the chain does not
    /// name as its), summarized.
    pub async fn summaries_of(
        &self,
        ids: &std::collections::BTreeSet<alloy::primitives::B256>,
    ) -> Result<BTreeMap<RelationshipId, Summary>> {
        let notices = inbox::read_relationships(
            &self.reader,
            self.spec.relationships,
            self.spec.from_block,
            ids,
            0,
            None,
        )
        .await
        .with_context(|| format!("the chain node at {} does not answer", self.spec.rpc_url))?;
        Ok(inbox::summarize(&notices))
    }

    /// Every delegate the chain shows a relationship for (a provider never reuses one:
    /// two relationships sharing a delegate would be linked).
    pub async fn delegates(&self) -> Result<std::collections::BTreeSet<Address>> {
        use alloy::sol_types::SolEvent as _;
        let filter = Filter::new()
            .address(self.spec.relationships)
            .from_block(self.spec.from_block)
            .to_block(BlockNumberOrTag::Latest)
            .event_signature(Relationships::RelationshipCreated::SIGNATURE_HASH);
        let logs =
            self.reader.get_logs(&filter).await.with_context(|| {
                format!("the chain node at {} does not answer", self.spec.rpc_url)
            })?;
        Ok(logs
            .iter()
            .filter(|l| !l.removed)
            .filter_map(|l| Relationships::RelationshipCreated::decode_log(&l.inner).ok())
            .map(|e| e.delegate)
            .collect())
    }

    /// The account `key` acts for and the rights it holds now (every right for a key
    /// that is its own account; none for a retired one).
    pub async fn acting_for(&self, key: Address) -> Result<(Address, u8)> {
        let r = self
            .relationships()
            .actingFor(key)
            .call()
            .await
            .with_context(|| format!("cannot ask the chain which account {key} acts for"))?;
        Ok((r.account, r.rights))
    }

    /// The X25519 key `account` published for what is shared with it (`None`: none).
    pub async fn encryption_key_of(&self, account: Address) -> Result<Option<[u8; 32]>> {
        let key =
            self.registrar().encryptionKeyOf(account).call().await.with_context(|| {
                format!("cannot read {account}'s encryption key in the Registrar")
            })?;
        Ok((!key.is_zero()).then_some(key.0))
    }

    /// The Registrar's provider directory: each provider's main address and gatekeeper
    /// endpoint, as last updated.
    pub async fn directory(&self) -> Result<Vec<(Address, String)>> {
        use alloy::sol_types::SolEvent as _;
        let filter = Filter::new()
            .address(self.spec.registrar)
            .from_block(self.spec.from_block)
            .to_block(BlockNumberOrTag::Latest)
            .event_signature(Registrar::ProviderUpdated::SIGNATURE_HASH);
        let mut logs =
            self.reader.get_logs(&filter).await.with_context(|| {
                format!("the chain node at {} does not answer", self.spec.rpc_url)
            })?;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let mut latest: BTreeMap<Address, String> = BTreeMap::new();
        for l in logs.iter().filter(|l| !l.removed) {
            if let Ok(e) = Registrar::ProviderUpdated::decode_log(&l.inner) {
                latest.insert(e.account, e.endpoint.clone());
            }
        }
        Ok(latest.into_iter().collect())
    }
}

/// Which relationship `text` names among `known`: a full id, or an unambiguous prefix
/// of at least 6 hex digits.
pub fn pick<'a>(
    known: impl IntoIterator<Item = &'a RelationshipId>,
    text: &str,
) -> Result<RelationshipId> {
    let wanted = text.trim().trim_start_matches("0x").to_ascii_lowercase();
    ensure!(
        wanted.len() >= 6 && wanted.chars().all(|c| c.is_ascii_hexdigit()),
        "'{text}' is not a relationship id (0x followed by hex digits, at least the first 6)"
    );
    let matching: Vec<RelationshipId> =
        known.into_iter().filter(|id| hex_of(id.0).starts_with(&wanted)).copied().collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => {
            bail!("there is no relationship {text} among yours (`medrec patient inbox` lists them)")
        }
        _ => bail!("'{text}' matches several relationships; give more of the id"),
    }
}

fn hex_of(h: B256) -> String {
    h.to_string().trim_start_matches("0x").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relationship_is_named_by_an_unambiguous_prefix() {
        let ids =
            [RelationshipId(B256::repeat_byte(0xab)), RelationshipId(B256::repeat_byte(0xac))];
        assert_eq!(pick(&ids, &ids[0].0.to_string()).unwrap(), ids[0]);
        assert!(pick(&ids, "0xabab").is_err(), "fewer than 6 digits");
        assert_eq!(pick(&ids, "0xababab").unwrap(), ids[0]);
        assert_eq!(pick(&ids, "ACACAC").unwrap(), ids[1]);
        let none = pick(&ids, "0xffffff").unwrap_err().to_string();
        assert!(none.contains("there is no relationship"), "{none}");
        let both = [
            RelationshipId(B256::repeat_byte(0xab)),
            RelationshipId(B256::right_padding_from(&[0xab; 31])),
        ];
        let many = pick(&both, "0xababab").unwrap_err().to_string();
        assert!(many.contains("several"), "{many}");
        assert!(pick(&ids, "not-hex!").is_err());
    }
}
