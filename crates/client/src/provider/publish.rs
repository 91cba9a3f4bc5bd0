//! Publishing new data behind enrolled pointers, announced on chain.
//!
//! For each enrolled relationship (or those named) that the patient has created from its
//! offer, each pointer's query is run again over the record store and its data hash
//! compared with the latest one on chain (`PointerAdded` / `PointerUpdated` events).
//! Each changed pointer gets `updatePointer(patient, pointer, newHash, bounty)` from the
//! relationship's delegate, and each pointer still waiting in `relationships.json` gets
//! `addPointer`; either sets *update pending* in the patient's summary and posts the
//! bounty, owned by the block's miner. The bounty query's text is published at the
//! gatekeeper first, so anyone can check it against the commitment on chain. Offers the
//! patient has not taken yet are left as they are.

use super::{
    ProviderSession,
    bounty::Bounty,
    state::{Enrolled, Enrollments, RELATIONSHIPS_FILE},
};
use crate::{
    error::{Context as _, OrInvalid as _, Result, bail, ensure},
    plural, tx,
};
use alloy::primitives::{B256, U256};
use medrec_gatekeeper::pointer;
use medrec_primitives::{RelationshipId, Status};
use medrec_store::fhir::ResourceId;

/// What to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// Only these relationships; empty means every enrolled one.
    pub only: Vec<B256>,
    /// The bounty query every update carries (needed when anything changed).
    pub bounty: Option<Bounty>,
    /// Wei sent to a delegate for its gas when it runs low.
    pub delegate_funding: U256,
    /// Each relationship's update is sent at a random moment within this long from the
    /// start (zero: at once), so that a provider's publication does not form a burst in
    /// consecutive blocks that would tie its patients together.
    pub spread: std::time::Duration,
}

/// A pointer update sent on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedChange {
    /// The relationship.
    pub relationship: B256,
    /// The pointer's number.
    pub pointer: usize,
    /// Its query.
    pub query: String,
    /// The data hash on chain before (zero for a pointer added now).
    pub old_hash: B256,
    /// The new data hash.
    pub new_hash: B256,
    /// How many resources it covers now.
    pub resources: usize,
    /// The update's transaction.
    pub tx: B256,
    /// Its block.
    pub block: Option<u64>,
}

/// What [`ProviderSession::publish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// The updates sent.
    pub changes: Vec<PublishedChange>,
    /// Pointers whose data matches the chain.
    pub unchanged: usize,
    /// Relationships left out because they are closed, with their status.
    pub skipped: Vec<(B256, String)>,
    /// Relationships looked at (selected, on chain and not closed).
    pub relationships: usize,
    /// Offers the patient has not taken yet (nothing to publish for them).
    pub waiting: Vec<B256>,
    /// Interrupted enrollments whose pointers the gatekeeper was told now.
    pub finished: Vec<B256>,
    /// The bounty the updates carry, with its commitment, when any was sent.
    pub bounty: Option<Bounty>,
}

/// A pointer whose data changed since it was last published.
struct Change {
    relationship: B256,
    pointer: usize,
    query: String,
    /// The data hash on chain, or the query commitment of a pointer to add.
    old: Option<B256>,
    new: B256,
    resources: usize,
    commitment: B256,
}

impl ProviderSession {
    /// Publishes what changed behind the enrolled pointers (see the module's
    /// documentation), finishing interrupted enrollments first.
    ///
    /// # Errors
    /// When nothing is enrolled, `relationships.json` disagrees with the chain, data
    /// changed but no bounty was given, or a transaction or the gatekeeper refuses.
    pub async fn publish(&self, request: &PublishRequest) -> Result<PublishReport> {
        let mut state = Enrollments::load(&self.dir)?;
        let selected: Vec<(B256, Enrolled)> = if request.only.is_empty() {
            state.relationships.iter().map(|(id, e)| (*id, e.clone())).collect()
        } else {
            request
                .only
                .iter()
                .map(|id| {
                    state.relationships.get(id).map(|e| (*id, e.clone())).or_invalid(|| {
                        format!(
                            "relationship {id} is not one this provider enrolled (see {RELATIONSHIPS_FILE} in {})",
                            self.dir.display()
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        ensure!(
            !selected.is_empty(),
            "this provider has enrolled no relationship yet: run `medrec provider enroll` first"
        );

        let chain = self.connect().await?;
        let ids = selected.iter().map(|(id, _)| *id).collect();
        let on_chain = chain.summaries_of(&ids).await?;
        let mut report = PublishReport::default();
        let store = self.store().await?;

        let mut changes = Vec::new();
        for (id, enrolled) in &selected {
            let Some(summary) = on_chain.get(&RelationshipId(*id)) else {
                ensure!(
                    enrolled.offer.is_some(),
                    "relationship {id} is not on this chain (was it enrolled on another one?)"
                );
                report.waiting.push(*id);
                continue;
            };
            if summary.status.is_some_and(Status::is_closed) {
                let status = summary.status.map(|s| s.to_string()).unwrap_or_default();
                report.skipped.push((*id, status));
                continue;
            }
            let patient: ResourceId = enrolled.patient_id.parse().map_err(|_| {
                crate::Error::invalid(format!("relationships.json: bad patient id for {id}"))
            })?;
            for (i, spec) in enrolled.pointers.iter().enumerate() {
                let query = super::enroll::parse_spec(spec)?;
                // Pointers beyond those on chain are added in order below (the offer
                // carried pointer 0; the others wait for the patient to take it).
                let published = summary.pointers.get(i);
                if let Some((commitment, _)) = published {
                    ensure!(
                        *commitment == query.commitment(),
                        "pointer {i} of relationship {id} has another query (or salt) on chain than in relationships.json"
                    );
                }
                let data = pointer::run(store.as_ref(), &query, &patient)
                    .await
                    .with_context(|| format!("cannot compute pointer {i} of {id}"))?;
                let old = published.map(|p| p.1);
                if old == Some(data.data_hash) {
                    report.unchanged += 1;
                } else {
                    changes.push(Change {
                        relationship: *id,
                        pointer: i,
                        query: spec.text().to_owned(),
                        old,
                        new: data.data_hash,
                        resources: data.resources.len(),
                        commitment: query.commitment(),
                    });
                }
            }
        }
        report.relationships = selected.len() - report.skipped.len() - report.waiting.len();

        // Enrollments the gatekeeper was not told about (an interrupted enrollment) are
        // finished first, so that it serves what the chain announces.
        for (id, enrolled) in &selected {
            let closed = on_chain
                .get(&RelationshipId(*id))
                .and_then(|s| s.status)
                .is_some_and(Status::is_closed);
            if enrolled.gatekeeper_enrolled || closed {
                continue;
            }
            self.client()
                .enroll(
                    RelationshipId(*id),
                    &enrolled.patient_id,
                    &enrolled.pointers,
                    enrolled.offer.as_ref(),
                )
                .await
                .map_err(|e| {
                    crate::Error::gatekeeper(
                        format!("the gatekeeper did not take the enrollment of {id}"),
                        e,
                    )
                })?;
            if let Some(e) = state.relationships.get_mut(id) {
                e.gatekeeper_enrolled = true;
            }
            state.save(&self.dir)?;
            report.finished.push(*id);
        }

        if changes.is_empty() {
            return Ok(report);
        }
        let Some(bounty) = &request.bounty else {
            bail!(
                "{} changed: every update carries a bounty query, pass --bounty TEXT or --offer NAME",
                plural(changes.len(), "pointer")
            );
        };
        let commitment = bounty.publish(&self.client()).await?;
        let by_provider = chain.sender(self.wallet.account().clone());
        // Each relationship at its own random moment in the window (its pointers in
        // order, together).
        let start = tokio::time::Instant::now();
        let mut at: std::collections::BTreeMap<B256, std::time::Duration> =
            std::collections::BTreeMap::new();
        for c in &changes {
            if let std::collections::btree_map::Entry::Vacant(e) = at.entry(c.relationship) {
                e.insert(random_moment(request.spread)?);
            }
        }
        changes.sort_by_key(|c| (at[&c.relationship], c.relationship, c.pointer));
        for c in &changes {
            tokio::time::sleep_until(start + at[&c.relationship]).await;
            let enrolled = state.relationships.get(&c.relationship).or_invalid(|| "enrolled")?;
            let delegate =
                self.wallet.delegate(enrolled.delegate_index).context("no delegate key")?;
            ensure!(
                delegate.address() == enrolled.delegate,
                "relationships.json names delegate {} for {}, but index {} of this wallet is {}",
                enrolled.delegate,
                c.relationship,
                enrolled.delegate_index,
                delegate.address()
            );
            tx::fund(&by_provider, enrolled.delegate, request.delegate_funding, "the delegate")
                .await?;
            let rels = chain.relationships_as(delegate);
            let receipt = if c.old.is_some() {
                let call =
                    rels.updatePointer(enrolled.patient, U256::from(c.pointer), c.new, commitment);
                tx::send(&call, &format!("updating pointer {} of {}", c.pointer, c.relationship))
                    .await?
            } else {
                let call = rels.addPointer(enrolled.patient, c.commitment, c.new, commitment);
                tx::send(&call, &format!("adding pointer {} to {}", c.pointer, c.relationship))
                    .await?
            };
            report.changes.push(PublishedChange {
                relationship: c.relationship,
                pointer: c.pointer,
                query: c.query.clone(),
                old_hash: c.old.unwrap_or_default(),
                new_hash: c.new,
                resources: c.resources,
                tx: receipt.transaction_hash,
                block: receipt.block_number,
            });
        }
        report.bounty = Some(Bounty { text: bounty.text.clone(), commitment });
        Ok(report)
    }
}

/// A uniformly random moment in `[0, window)` (zero for an empty window).
fn random_moment(window: std::time::Duration) -> Result<std::time::Duration> {
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Ok(std::time::Duration::ZERO);
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::Error::invalid(format!("no randomness to spread the updates: {e}")))?;
    Ok(std::time::Duration::from_millis(u64::from_le_bytes(bytes) % millis))
}
