//! What patients and viewers ask of the chain and of providers' gatekeepers: the
//! provider directory, the chain's clock, a relationship's events, sending a transaction
//! with a readable refusal, and fetching a pointer while a gatekeeper catches up.

use crate::commands::common::ChainArgs;
use alloy::{
    eips::BlockNumberOrTag,
    network::Ethereum,
    primitives::{Address, B256},
    providers::{PendingTransactionBuilder, Provider},
    rpc::types::{Filter, TransactionReceipt},
};
use anyhow::{Context, anyhow, bail, ensure};
use medrec_chain::inbox::{self, Summary};
use medrec_contracts::{ContractError, Registrar};
use medrec_gatekeeper::client::{ClientError, GatekeeperClient, PointerData};
use medrec_primitives::RelationshipId;
use std::time::Duration;

/// How long a gatekeeper may take to see the latest blocks before a refusal counts.
const CATCH_UP: Duration = Duration::from_secs(15);

/// A contract call that failed, in a sentence: the decoded custom error when the
/// contract refused, else what went wrong.
pub(crate) fn refused(e: &alloy::contract::Error, what: &str) -> anyhow::Error {
    match e.as_revert_data() {
        Some(data) => anyhow!("{what} was refused by the chain: {}", ContractError::decode(&data)),
        None if e.to_string().contains("insufficient funds") => anyhow!(
            "{what} failed: the account that signs has too little ether to pay for the transaction's gas; send it some first"
        ),
        None => anyhow!("{what} failed: {e}"),
    }
}

/// Waits for a sent transaction and checks that it succeeded.
pub(crate) async fn confirm(
    sent: Result<PendingTransactionBuilder<Ethereum>, alloy::contract::Error>,
    what: &str,
) -> anyhow::Result<TransactionReceipt> {
    let pending = sent.map_err(|e| refused(&e, what))?;
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("{what}: the transaction was not confirmed"))?;
    ensure!(receipt.status(), "{what} was reverted on chain");
    Ok(receipt)
}

/// The base URL of `provider`'s gatekeeper, from the Registrar's provider directory.
pub(crate) async fn endpoint<P: Provider>(
    chain: &P,
    registrar: Address,
    provider: Address,
) -> anyhow::Result<String> {
    // `provider` is also the name of the instance's accessor of its RPC provider, so
    // the call is built from its type.
    let entry = Registrar::new(registrar, chain)
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
pub(crate) async fn chain_now<P: Provider>(chain: &P) -> anyhow::Result<u64> {
    let block = chain
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .context("cannot read the latest block")?
        .context("the chain has no latest block")?;
    Ok(block.header.timestamp.max(super::fhir::unix_now()))
}

/// Everything the chain's events tell about one relationship (its pointers and their
/// latest data hashes, its grants), whoever asks.
pub(crate) async fn relationship_events<P: Provider>(
    chain: &P,
    at: &ChainArgs,
    relationship: RelationshipId,
) -> anyhow::Result<Summary> {
    let filter = Filter::new()
        .address(at.relationships)
        .from_block(at.from_block)
        .to_block(BlockNumberOrTag::Latest)
        .topic1(relationship.0);
    let mut logs = chain
        .get_logs(&filter)
        .await
        .with_context(|| format!("the chain node at {} does not answer", at.rpc_url))?;
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let notices: Vec<inbox::Dated> = logs
        .iter()
        .filter(|l| !l.removed)
        .filter_map(|l| {
            let (relationship, notice) = inbox::decode(&l.inner)?;
            Some(inbox::Dated { block: l.block_number?, relationship, notice })
        })
        .collect();
    Ok(inbox::summarize(&notices).remove(&relationship).unwrap_or_default())
}

/// Which relationship `text` names among `known`: a full id, or an unambiguous prefix
/// of at least 6 hex digits.
pub(crate) fn pick<'a>(
    known: impl IntoIterator<Item = &'a RelationshipId>,
    text: &str,
) -> anyhow::Result<RelationshipId> {
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

/// Fetches pointer `n` of `relationship`, retrying while the gatekeeper has not yet
/// seen the latest blocks (it answers 403, 409 or 503 then) for a bounded time.
pub(crate) async fn fetch_pointer(
    client: &GatekeeperClient,
    relationship: RelationshipId,
    n: u8,
) -> Result<PointerData, ClientError> {
    crate::commands::common::until_caught_up(Duration::from_millis(150), CATCH_UP, || {
        client.pointer(relationship, n)
    })
    .await
}
