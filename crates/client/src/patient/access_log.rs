//! Who read what of the patient's records, and when: each provider's access log
//! entries about the patient, every entry's proof verified and its anchor checked on
//! chain.

use super::PatientSession;
use crate::{
    chain::pick,
    error::{Error, Result},
};
use alloy::primitives::Address;
use medrec_chain::anchors::{AnchorClaim, check_anchor};
use medrec_store::audit::verify;
use serde_json::Value;
use std::collections::BTreeSet;

/// Where an entry's proof stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofStatus {
    /// Proven against a root anchored on chain in this block.
    Verified {
        /// The anchor's block.
        block: u64,
    },
    /// Not covered by an anchor yet.
    Pending,
    /// The proof does not check out, or its anchor is not on chain.
    Invalid {
        /// Why.
        message: String,
    },
}

/// One entry of a provider's access log.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    /// The provider whose gatekeeper logged it.
    pub provider: Address,
    /// The entry as the gatekeeper serves it (`seq`, `time`, `requester`, `action`,
    /// `relationship`, `pointer`, `resource`, `decision`, …).
    pub entry: Value,
    /// Its proof.
    pub proof: ProofStatus,
}

impl PatientSession {
    /// The access log entries about the patient at every provider of their
    /// relationships (only `relationship`'s, when given: an id or its first hex digits),
    /// oldest first, each proof checked.
    ///
    /// # Errors
    /// When the chain or a provider's gatekeeper cannot be read.
    pub async fn access_log(&self, relationship: Option<&str>) -> Result<Vec<AccessEntry>> {
        let mine = self.relationships().await?;
        let only = match relationship {
            Some(text) => Some(pick(mine.keys(), text)?),
            None => None,
        };
        let providers: BTreeSet<Address> = mine
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == **id))
            .filter_map(|(_, s)| s.provider)
            .collect();
        let mut rows = Vec::new();
        for provider in providers {
            let url = self.chain.endpoint(provider).await?;
            let client = self.chain.gatekeeper(url, provider, self.signer.clone());
            let entries = client.audit(0).await.map_err(|e| {
                Error::gatekeeper(format!("cannot read the access log of provider {provider}"), e)
            })?;
            for e in entries {
                if let Some(o) = only
                    && e.entry["relationship"].as_str().and_then(|r| r.parse().ok()) != Some(o.0)
                {
                    continue;
                }
                let proof = proof_status(&self.chain, provider, e.proof.as_ref()).await;
                rows.push(AccessEntry { provider, entry: e.entry, proof });
            }
        }
        rows.sort_by_key(|r| (r.entry["time"].as_u64(), r.entry["seq"].as_u64()));
        Ok(rows)
    }
}

/// Whether an entry's inclusion proof holds and its anchor is the one `provider` put
/// on chain.
pub(crate) async fn proof_status(
    chain: &crate::Chain,
    provider: Address,
    proof: Option<&medrec_store::audit::Proof>,
) -> ProofStatus {
    let Some(proof) = proof else { return ProofStatus::Pending };
    if let Err(err) = verify(proof) {
        return ProofStatus::Invalid { message: err.to_string() };
    }
    let claim =
        AnchorClaim { size: proof.anchor.size, root: proof.anchor.root, block: proof.anchor.block };
    match check_anchor(chain.reader(), chain.spec().anchors, provider, claim).await {
        Ok(()) => ProofStatus::Verified { block: proof.anchor.block },
        Err(err) => ProofStatus::Invalid { message: err.to_string() },
    }
}
