//! What a third party (a pharmacist, another provider) does with what a patient shared
//! with it: see its grants as they stand now ([`shared_with`]) and fetch the shared
//! records, each checked against the hash on chain ([`ViewerSession::fetch`]). Fetching
//! is refused as soon as the grant is revoked or expired on chain.
//!
//! The chain names no provider: a grant carries the relationship's key sealed for the
//! viewer, which opens the provider's address encrypted for the patient. A grant without
//! one (the viewer had published no encryption key, or a group's grant) is served by
//! whichever gatekeeper of the Registrar's directory holds the relationship: the viewer
//! asks them in turn.

use crate::{
    chain::{Chain, pick},
    error::{Context as _, Error, OrInvalid as _, Result, bail},
    patient::records::fetch_pointer,
    privacy::{self, RecordsSecret},
    timeline, tx,
};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use medrec_chain::inbox::Notice;
use medrec_gatekeeper::client::ClientError;
use medrec_primitives::{PointerSet, RelationshipId, Status};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a grant stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// In force.
    Valid,
    /// Revoked by the patient.
    Revoked,
    /// Past its end.
    Expired,
    /// Before its start.
    NotYetValid,
    /// The relationship is not accepted (new, rejected or deleted).
    Inactive,
}

impl GrantState {
    /// `valid`, `revoked`, `expired`, `not-yet-valid` or `inactive`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::Inactive => "inactive",
        }
    }
}

/// One relationship shared with the viewer, as the chain tells it now.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The relationship.
    pub id: RelationshipId,
    /// Its provider, when the grant's sealed key opened it (else the directory's
    /// gatekeepers are asked).
    pub provider: Option<Address>,
    /// Its status.
    pub status: Option<Status>,
    /// The grant in force (pointers, not before, expires at); `None` once revoked.
    pub grant: Option<(PointerSet, u64, u64)>,
    /// Pointers the patient has accepted (viewers see only those).
    pub accepted: u8,
    /// Where the grant stands now.
    pub state: GrantState,
}

impl Shared {
    /// Why fetching is refused, in a sentence.
    pub fn refusal(&self) -> String {
        let why = match (self.state, self.grant) {
            (GrantState::Expired, Some((_, _, exp))) => {
                format!("the grant expired at {}", timeline::when(exp))
            }
            (GrantState::NotYetValid, Some((_, nb, _))) => {
                format!("the grant is valid only from {}", timeline::when(nb))
            }
            (GrantState::Inactive, _) => format!(
                "the relationship is {}",
                self.status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
            ),
            _ => "the grant was revoked".to_owned(),
        };
        format!(
            "the patient has revoked or let expire your access to relationship {}{} ({why})",
            self.id.0,
            self.provider.map(|p| format!(" at provider {p}")).unwrap_or_default()
        )
    }

    /// The pointers the viewer may run now.
    pub fn viewable(&self) -> Vec<u8> {
        match (self.state, self.grant) {
            (GrantState::Valid, Some((set, _, _))) => {
                set.ids().filter(|p| *p < self.accepted).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Every relationship that a grant or revocation names `viewer` in, as it stands now.
///
/// # Errors
/// When the chain cannot be read.
pub async fn shared_with(
    chain: &Chain,
    viewer: Address,
    secret: Option<&RecordsSecret>,
) -> Result<Vec<Shared>> {
    let notices = chain.notices(viewer, 0, None).await?;
    let mut grants: BTreeMap<RelationshipId, Option<(PointerSet, u64, u64)>> = BTreeMap::new();
    for d in &notices {
        match d.notice {
            Notice::Granted { viewer: v, pointers, not_before, expires_at, .. } if v == viewer => {
                grants.insert(d.relationship, Some((pointers, not_before, expires_at)));
            }
            Notice::Revoked { viewer: v } if v == viewer => {
                grants.insert(d.relationship, None);
            }
            _ => {}
        }
    }
    let now = chain.now().await?;
    let contract = chain.relationships();
    let mut out = Vec::new();
    for (id, grant) in grants {
        let r = contract
            .relationship(id.0)
            .call()
            .await
            .with_context(|| format!("cannot read relationship {} on chain", id.0))?;
        let status = Status::try_from(r.status).ok();
        let state = match grant {
            None => GrantState::Revoked,
            Some((_, _, exp)) if now >= exp => GrantState::Expired,
            Some((_, nb, _)) if now < nb => GrantState::NotYetValid,
            Some(_) if !status.is_some_and(Status::is_accepted) => GrantState::Inactive,
            Some(_) => GrantState::Valid,
        };
        // The provider, from the key sealed for the viewer in its latest grant.
        let provider = match secret {
            Some(secret) => {
                let events = chain.relationship_events(id).await?;
                events
                    .sealed_keys
                    .get(&viewer)
                    .and_then(|sealed| privacy::open(secret, sealed))
                    .and_then(|key| privacy::decrypt_identity(&key, &events.identity))
            }
            None => None,
        };
        out.push(Shared { id, provider, status, grant, accepted: r.acceptedCount, state });
    }
    Ok(out)
}

/// One shared resource, verified against the chain.
#[derive(Debug, Clone)]
pub struct SharedRecord {
    /// The provider that serves it.
    pub provider: Address,
    /// The relationship it came through.
    pub relationship: RelationshipId,
    /// The data pointer that returned it.
    pub pointer: u8,
    /// The hash on chain that the pointer's data matched.
    pub data_hash: alloy::primitives::B256,
    /// The provider's gatekeeper.
    pub endpoint: String,
    /// The resource.
    pub resource: Value,
}

/// What [`ViewerSession::fetch`] got.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The verified resources.
    pub records: Vec<SharedRecord>,
    /// Relationships whose grant is not in force (see [`Shared::refusal`]).
    pub refused: Vec<Shared>,
    /// Pointers whose data did not match the chain (not shown): relationship, pointer
    /// and why.
    pub mismatches: Vec<(RelationshipId, u8, String)>,
}

/// A viewer, signing with its account's key, connected to the chain.
#[derive(Debug, Clone)]
pub struct ViewerSession {
    chain: Chain,
    signer: PrivateKeySigner,
    secret: RecordsSecret,
}

impl ViewerSession {
    /// The viewer that signs with `signer` (its wallet's account) on `chain`.
    pub fn new(chain: Chain, signer: PrivateKeySigner) -> Self {
        let secret = RecordsSecret::of(&signer);
        Self { chain, signer, secret }
    }

    /// Publishes the viewer's encryption key in the Registrar (once: nothing is sent
    /// when it is there already), so that patients seal each relationship's key for it
    /// and the viewer reads the provider from the chain. Returns whether it sent it.
    ///
    /// # Errors
    /// When the chain refuses.
    pub async fn publish_encryption_key(&self) -> Result<bool> {
        let key = self.secret.encryption_key();
        if self.chain.encryption_key_of(self.address()).await? == Some(key) {
            return Ok(false);
        }
        let registrar = self.chain.registrar_as(self.signer.clone());
        tx::send(&registrar.setEncryptionKey(key.into()), "publishing the viewer's encryption key")
            .await?;
        Ok(true)
    }

    /// The viewer's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain.
    pub const fn chain(&self) -> &Chain {
        &self.chain
    }

    /// What was shared with the viewer, as the chain tells it now.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn shared(&self) -> Result<Vec<Shared>> {
        shared_with(&self.chain, self.address(), Some(&self.secret)).await
    }

    /// Fetches what was shared with the viewer (only `relationship`'s when given: an id
    /// or its first hex digits), each pointer checked against the hash on chain.
    ///
    /// # Errors
    /// When nothing was shared, no grant is in force (the refusals say why), or a
    /// gatekeeper refuses.
    pub async fn fetch(&self, relationship: Option<&str>) -> Result<Fetched> {
        let all = shared_with(&self.chain, self.signer.address(), Some(&self.secret)).await?;
        let directory = self.chain.directory().await?;
        let chosen: Vec<Shared> = match relationship {
            Some(text) => {
                let id = pick(all.iter().map(|s| &s.id), text)?;
                all.into_iter().filter(|s| s.id == id).collect()
            }
            None => all,
        };
        if chosen.is_empty() {
            bail!("nothing has been shared with you yet");
        }
        let (valid, refused): (Vec<Shared>, Vec<Shared>) =
            chosen.into_iter().partition(|s| s.state == GrantState::Valid);
        if valid.is_empty() {
            let reasons: Vec<String> = refused.iter().map(Shared::refusal).collect();
            bail!("{}", reasons.join("; "));
        }
        let mut out = Fetched { refused, ..Fetched::default() };
        for s in &valid {
            // The provider the grant named, or else each of the directory's.
            let candidates: Vec<(Address, String)> = match s.provider {
                Some(p) => vec![(p, self.chain.endpoint(p).await?)],
                None => directory.clone(),
            };
            let events = self.chain.relationship_events(s.id).await?;
            let Some((provider, url)) = self.locate(s, &candidates).await else {
                out.mismatches.push((
                    s.id,
                    0,
                    "no gatekeeper of the directory serves this relationship to you".into(),
                ));
                continue;
            };
            let client = self.chain.gatekeeper(url.clone(), provider, self.signer.clone());
            for n in s.viewable() {
                let on_chain =
                    events.pointers.get(usize::from(n)).map(|p| p.1).or_invalid(|| {
                        format!("the chain has no pointer {n} for relationship {}", s.id.0)
                    })?;
                let data = match fetch_pointer(&client, s.id, n).await {
                    Ok(data) => data,
                    Err(ClientError::Refused { status: 403, diagnostics }) => bail!(
                        "the provider's gatekeeper refused pointer {n} of relationship {}: {diagnostics} (the patient may have just revoked or let expire your access)",
                        s.id.0
                    ),
                    Err(e) => {
                        return Err(Error::gatekeeper(
                            format!("fetching pointer {n} of relationship {} failed", s.id.0),
                            e,
                        ));
                    }
                };
                if let Err(e) = data.verify(on_chain) {
                    out.mismatches.push((s.id, n, e.to_string()));
                    continue;
                }
                out.records.extend(data.resources.into_iter().map(|r| SharedRecord {
                    provider,
                    relationship: s.id,
                    pointer: n,
                    data_hash: on_chain,
                    endpoint: url.clone(),
                    resource: r,
                }));
            }
        }
        Ok(out)
    }

    /// The first of `candidates` whose gatekeeper serves one of `shared`'s pointers to
    /// this viewer (a gatekeeper that does not hold the relationship refuses, as it does
    /// anything it does not serve).
    async fn locate(
        &self,
        shared: &Shared,
        candidates: &[(Address, String)],
    ) -> Option<(Address, String)> {
        let n = *shared.viewable().first()?;
        for (provider, url) in candidates {
            let client = self.chain.gatekeeper(url.clone(), *provider, self.signer.clone());
            if candidates.len() == 1 || fetch_pointer(&client, shared.id, n).await.is_ok() {
                return Some((*provider, url.clone()));
            }
        }
        None
    }
}
