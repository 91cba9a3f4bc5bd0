//! Taking a provider's offer: the patient's key creates the relationship (issue 13).
//!
//! A provider keeps each offer at its gatekeeper ([`medrec_gatekeeper::offer`]); the
//! patient asks every gatekeeper of the Registrar's directory for the offers made to
//! the account, keeps those signed by the provider the directory lists at that
//! gatekeeper, and creates the chosen one on chain with the provider's address
//! encrypted under the relationship's key. No provider address is ever sent to the
//! chain, and nobody can put a relationship in the patient's summary but the patient.

use super::PatientSession;
use crate::{
    error::{Context as _, Error, Result, bail, ensure},
    privacy, tx,
};
use alloy::{primitives::Address, rpc::types::TransactionReceipt};
use medrec_gatekeeper::{
    client::ClientError,
    offer::{self, OfferView},
};
use medrec_primitives::RelationshipId;

/// An offer that checked out: signed by the provider the directory lists at the
/// gatekeeper that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The offer as the gatekeeper gave it.
    pub view: OfferView,
    /// The gatekeeper that holds it.
    pub endpoint: String,
}

/// What asking the directory found.
#[derive(Debug, Clone, Default)]
pub struct Offers {
    /// The offers, by relationship id.
    pub offers: Vec<Offer>,
    /// Gatekeepers that could not be asked, or answered with offers that do not check
    /// out, with why (for the person to see; the other offers still count).
    pub problems: Vec<(Address, String)>,
}

impl PatientSession {
    /// The offers made to the account at the gatekeepers of the Registrar's directory.
    ///
    /// # Errors
    /// When the chain cannot be read (an unreachable gatekeeper is a problem, not an
    /// error).
    pub async fn offers(&self) -> Result<Offers> {
        let chain = self.chain();
        let domain = offer::domain(chain.chain_id(), chain.spec().relationships);
        let mine = self.relationships().await?;
        let mut out = Offers::default();
        for (provider, endpoint) in chain.directory().await? {
            let client = chain.gatekeeper(endpoint.clone(), provider, self.signer().clone());
            let views = match client.offers().await {
                Ok(v) => v,
                // A gatekeeper with nothing for this account does not know it: no offers.
                Err(ClientError::Refused { status: 403, .. }) => Vec::new(),
                Err(e) => {
                    out.problems.push((provider, format!("its gatekeeper did not answer: {e}")));
                    continue;
                }
            };
            for view in views {
                if view.provider != provider || view.account != self.address() {
                    out.problems.push((provider, "an offer names someone else".into()));
                } else if let Err(e) = view.verify(&domain) {
                    out.problems.push((provider, e.to_string()));
                } else if !mine.contains_key(&view.relationship) {
                    out.offers.push(Offer { view, endpoint: endpoint.clone() });
                }
            }
        }
        out.offers.sort_by_key(|o| o.view.relationship);
        Ok(out)
    }

    /// Creates the relationship of `offer` on chain: pointer 0 as the provider signed
    /// it, the provider's address encrypted for the account.
    ///
    /// # Errors
    /// When this session lacks the account's secret (a custodian cannot name the
    /// provider for the patient), or the contract refuses.
    pub async fn take(&self, offer: &Offer) -> Result<(RelationshipId, TransactionReceipt)> {
        let view = &offer.view;
        let Some(secret) = self.secret() else {
            bail!(
                "only the patient's own wallet can take an offer: the provider's name is encrypted with the patient's secret"
            );
        };
        ensure!(view.account == self.address(), "this offer is for another account");
        let id = view.relationship;
        let identity = privacy::encrypt_identity(&secret.relationship_key(id), view.provider);
        let contract = self.chain().relationships_as(self.signer().clone());
        let call =
            contract.create(view.delegate, view.query_commitment, view.data_hash, identity.into());
        let receipt =
            tx::send(&call, &format!("creating relationship {} from its offer", id.0)).await?;
        Ok((id, receipt))
    }

    /// The offer `text` names (a relationship id or its first 6+ hex digits) among
    /// those waiting.
    ///
    /// # Errors
    /// When none or several match, or the directory cannot be read.
    pub async fn offer(&self, text: &str) -> Result<Offer> {
        let found = self.offers().await?;
        let ids: Vec<RelationshipId> = found.offers.iter().map(|o| o.view.relationship).collect();
        let id = crate::chain::pick(&ids, text).context("no such offer")?;
        found
            .offers
            .into_iter()
            .find(|o| o.view.relationship == id)
            .ok_or_else(|| Error::invalid("the offer disappeared"))
    }
}
