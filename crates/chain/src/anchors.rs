//! Checking an access-log anchor against the chain.
//!
//! A provider's gatekeeper anchors its access log in the `AccessAnchors` contract now
//! and then: the `bytes32` the contract calls `head` is the Merkle root of the log's
//! first `size` entries (RFC 6962, see `medrec_store::audit`). A proof that an entry is
//! in the log ends at one of those anchors, named by `(size, root, block)`. Before a
//! patient's client trusts the proof it asks the chain, with [`check_anchor`], whether
//! that provider really emitted `Anchored(provider, size, root)` in that block: the
//! size and the root together, as the proof's path only means something for both. The answer comes
//! from `eth_getLogs` on any Ethereum node, so the client needs no trust in the
//! provider, only in its own node.

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use medrec_contracts::AccessAnchors;

/// An anchor as a proof names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnchorClaim {
    /// Number of log entries the anchor covers.
    pub size: u64,
    /// The Merkle root of entries `1..=size` (the event's `head`).
    pub root: B256,
    /// The block whose `Anchored` event the claim points at.
    pub block: u64,
}

/// Why an anchor claim does not hold (or could not be checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorCheckError {
    /// The node could not be asked.
    #[error("the chain node could not be asked about the anchor: {0}")]
    Rpc(String),
    /// The block is not on the chain yet.
    #[error("block {block} is not on the chain yet (the chain is at block {head})")]
    BlockNotYetMined {
        /// The claimed block.
        block: u64,
        /// The chain's head block.
        head: u64,
    },
    /// The provider anchored nothing in that block.
    #[error(
        "{provider} anchored no access log in block {block}: the proof's anchor is not on chain"
    )]
    NotAnchored {
        /// The provider.
        provider: Address,
        /// The claimed block.
        block: u64,
    },
    /// The provider anchored something else in that block.
    #[error(
        "{provider} anchored a different root in block {block} (size {anchored_size}, root {anchored_root}): the proof's anchor is not the one on chain"
    )]
    Different {
        /// The provider.
        provider: Address,
        /// The claimed block.
        block: u64,
        /// The size anchored in that block.
        anchored_size: u64,
        /// The root anchored in that block.
        anchored_root: B256,
    },
}

/// Checks on chain that `provider` emitted `Anchored(provider, claim.size, claim.root)`
/// from the `AccessAnchors` contract at `anchors` in block `claim.block`.
///
/// `Ok(())` means the claimed root is anchored exactly as claimed, with its size. A different anchor
/// by the same provider in that block, no anchor there, a block not mined yet, or a
/// node that does not answer are each their own error.
pub async fn check_anchor<P: Provider>(
    chain: &P,
    anchors: Address,
    provider: Address,
    claim: AnchorClaim,
) -> Result<(), AnchorCheckError> {
    let rpc = |e: alloy::transports::TransportError| AnchorCheckError::Rpc(e.to_string());
    let head = chain.get_block_number().await.map_err(rpc)?;
    if claim.block > head {
        return Err(AnchorCheckError::BlockNotYetMined { block: claim.block, head });
    }
    let filter = Filter::new()
        .address(anchors)
        .event_signature(AccessAnchors::Anchored::SIGNATURE_HASH)
        .topic1(provider.into_word())
        .from_block(claim.block)
        .to_block(claim.block);
    let logs = chain.get_logs(&filter).await.map_err(rpc)?;
    let mut other = None;
    for log in logs {
        // The node filtered already; a client that trusts only itself checks again.
        if log.removed || log.address() != anchors || log.block_number != Some(claim.block) {
            continue;
        }
        let Ok(event) = AccessAnchors::Anchored::decode_log(&log.inner) else { continue };
        if event.provider != provider {
            continue;
        }
        if event.size == claim.size && event.head == claim.root {
            return Ok(());
        }
        other.get_or_insert((event.size, event.head));
    }
    Err(match other {
        Some((anchored_size, anchored_root)) => AnchorCheckError::Different {
            provider,
            block: claim.block,
            anchored_size,
            anchored_root,
        },
        None => AnchorCheckError::NotAnchored { provider, block: claim.block },
    })
}
