//! What researchers (and the institutions that admit them) do: admission by vote
//! ([`admit`]), the bounties a researcher owns on chain ([`owned`]) and their
//! redemption at the providers' gatekeepers as private aggregates ([`redeem`]), with
//! the answers kept in a file ([`Answers`]). Mining is `medrec_devchain::miner`.

use crate::{
    chain::Chain,
    error::{Context as _, Error, Result, bail, ensure},
    tx,
};
use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Filter, TransactionReceipt},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use medrec_contracts::Relationships;
use medrec_gatekeeper::client::ClientError;
use medrec_primitives::RelationshipId;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// `Registrar.Action.AdmitResearcher` (enums are `uint8` in the ABI).
pub const ADMIT_RESEARCHER: u8 = 2;

/// The outcome of an institution's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the researcher is admitted now.
    pub admitted: bool,
    /// The vote's (or proposal's) transaction.
    pub tx: B256,
}

/// The certified institution `institution` votes to admit `researcher`: on the open
/// proposal to admit it, or a new one. It passes when more than half of the
/// institutions voted.
///
/// # Errors
/// When the researcher is already admitted, `institution` is not an institution or
/// already voted, or the contract refuses.
pub async fn admit(
    chain: &Chain,
    institution: &PrivateKeySigner,
    researcher: Address,
) -> Result<Admission> {
    let voter = institution.address();
    let reader = chain.registrar();
    let answer = "the chain node does not answer";
    if reader.isResearcher(researcher).call().await.context(answer)? {
        bail!("{researcher} is already an admitted research entity");
    }
    ensure!(
        reader.isInstitution(voter).call().await.context(answer)?,
        "{voter} is not a certified institution: only institutions vote on admissions"
    );
    // Vote on an open proposal to admit this researcher, or propose one.
    let count: U256 = reader.proposalCount().call().await.context(answer)?;
    let mut open = None;
    let mut id = count;
    while id > U256::ZERO {
        id -= U256::from(1);
        let p = reader.proposal(id).call().await.context(answer)?;
        if p.subject == researcher && p.action == ADMIT_RESEARCHER && !p.executed {
            open = Some(id);
            break;
        }
    }
    let registrar = chain.registrar_as(institution.clone());
    let receipt = match open {
        Some(id) => {
            if reader.hasVoted(id, voter).call().await.context(answer)? {
                bail!(
                    "{voter} already voted to admit {researcher} (proposal {id}); other institutions must vote"
                );
            }
            tx::send(&registrar.vote(id), "voting to admit the researcher").await?
        }
        None => {
            tx::send(
                &registrar.propose(ADMIT_RESEARCHER, researcher),
                "proposing to admit the researcher",
            )
            .await?
        }
    };
    let admitted = reader.isResearcher(researcher).call().await.context(answer)?;
    Ok(Admission { admitted, tx: receipt.transaction_hash })
}

/// A bounty as the chain recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounty {
    /// The relationship whose pointer change posted it.
    pub relationship: RelationshipId,
    /// Its sequence number in the relationship.
    pub seq: u64,
    /// Its owner (the miner of its block).
    pub owner: Address,
    /// The commitment to its query's text.
    pub commitment: B256,
    /// Its block.
    pub block: Option<u64>,
    /// Its transaction.
    pub tx: Option<B256>,
}

impl Bounty {
    /// `<relationship id>:<sequence>`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.relationship.0, self.seq)
    }

    /// Parses `<relationship id>:<sequence>` into a bounty owned by `owner` whose
    /// commitment is not known.
    ///
    /// # Errors
    /// When the text is not of that form.
    pub fn parse(text: &str, owner: Address) -> Result<Self> {
        let (rel, seq) = text.split_once(':').ok_or_else(|| {
            Error::invalid("a bounty is written <relationship id>:<sequence>, e.g. 0x12…ef:0")
        })?;
        let relationship = RelationshipId(rel.parse().map_err(|_| {
            Error::invalid(format!("'{rel}' is not a relationship id (0x + 64 hex digits)"))
        })?);
        let seq: u64 =
            seq.parse().map_err(|_| Error::invalid(format!("'{seq}' is not a sequence number")))?;
        Ok(Self { relationship, seq, owner, commitment: B256::ZERO, block: None, tx: None })
    }
}

/// The bounty a pointer update's transaction posted, from its receipt.
pub fn posted(receipt: &TransactionReceipt) -> Option<Bounty> {
    receipt.inner.logs().iter().find_map(|l| {
        let e = Relationships::BountyPosted::decode_log(&l.inner).ok()?;
        Some(Bounty {
            relationship: RelationshipId(e.relId),
            seq: e.seq.try_into().ok()?,
            owner: e.owner,
            commitment: e.commitment,
            block: receipt.block_number,
            tx: Some(receipt.transaction_hash),
        })
    })
}

/// The bounties `owner` owns on chain (all of them, `owner` `None`), in chain order.
///
/// # Errors
/// When the chain cannot be read.
pub async fn owned(chain: &Chain, owner: Option<Address>) -> Result<Vec<Bounty>> {
    let mut filter = Filter::new()
        .address(chain.spec().relationships)
        .event_signature(Relationships::BountyPosted::SIGNATURE_HASH)
        .from_block(chain.spec().from_block);
    if let Some(owner) = owner {
        filter = filter.topic2(owner.into_word());
    }
    let logs = chain
        .reader()
        .get_logs(&filter)
        .await
        .with_context(|| format!("the chain node at {} does not answer", chain.rpc_url()))?;
    Ok(logs
        .iter()
        .filter_map(|l| {
            let e = Relationships::BountyPosted::decode_log(&l.inner).ok()?;
            Some(Bounty {
                relationship: RelationshipId(e.relId),
                seq: e.seq.try_into().ok()?,
                owner: e.owner,
                commitment: e.commitment,
                block: l.block_number,
                tx: l.transaction_hash,
            })
        })
        .collect())
}

/// The redeemed answers a researcher keeps, by bounty id, in a JSON file.
#[derive(Debug, Clone)]
pub struct Answers {
    file: PathBuf,
    /// The answers, by [`Bounty::id`].
    pub by_bounty: BTreeMap<String, Value>,
}

impl Answers {
    /// The answers in `file` (none when it does not exist).
    ///
    /// # Errors
    /// When it cannot be read or is not such a file.
    pub fn load(file: &Path) -> Result<Self> {
        let by_bounty = match std::fs::read_to_string(file) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a file of redeemed answers", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        Ok(Self { file: file.to_owned(), by_bounty })
    }

    /// Writes the answers back to their file.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self) -> Result<()> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_json::to_vec_pretty(&self.by_bounty)
            .with_context(|| format!("cannot write {}", self.file.display()))?;
        medrec_wallet::fs::write_private(&self.file, &text)
            .with_context(|| format!("cannot write {}", self.file.display()))
    }
}

/// Redeems `bounty` at its provider's gatekeeper (at `gatekeeper`, else whichever
/// gatekeeper of the Registrar's directory holds the relationship: the chain does not
/// say which provider posted it) as `signer`: the private aggregate, with the query's
/// published text (checked against the commitment) under `query`, and the directory's
/// provider whose gatekeeper answered under `provider` (not when `gatekeeper` was given).
///
/// # Errors
/// When no gatekeeper holds the relationship, or the one that does refuses (e.g. the
/// signer does not own the bounty) or its published text does not check out.
pub async fn redeem(
    chain: &Chain,
    signer: &PrivateKeySigner,
    bounty: &Bounty,
    gatekeeper: Option<&str>,
) -> Result<Value> {
    let candidates: Vec<(Address, String)> = match gatekeeper {
        // The gatekeeper's address is in what the request signs: the provider the
        // directory lists at that URL.
        Some(u) => {
            let same = |url: &str| url.trim_end_matches('/') == u.trim_end_matches('/');
            let provider = chain
                .directory()
                .await?
                .into_iter()
                .find(|(_, url)| same(url))
                .map_or(Address::ZERO, |(p, _)| p);
            vec![(provider, u.to_owned())]
        }
        None => chain.directory().await?,
    };
    // A gatekeeper that does not hold the relationship answers 404 (unknown bounty);
    // the one that does answers with the aggregate or its refusal.
    let mut last = None;
    let mut found = None;
    for (provider, url) in candidates {
        let client = chain.gatekeeper(url.clone(), provider, signer.clone());
        match client.redeem(bounty.relationship, bounty.seq).await {
            Err(ClientError::Refused { status: 404, diagnostics }) => {
                last = Some((url, ClientError::Refused { status: 404, diagnostics }));
            }
            answer => {
                found = Some((provider, client, url, answer));
                break;
            }
        }
    }
    let Some((provider, client, url, answer)) = found else {
        let (url, e) = last.ok_or_else(|| {
            Error::invalid("the Registrar's directory lists no gatekeeper to redeem at")
        })?;
        return Err(Error::gatekeeper(
            format!("no gatekeeper holds bounty {} (the last asked, {url}, said)", bounty.id()),
            e,
        ));
    };
    let mut answer = answer.map_err(|e| {
        Error::gatekeeper(
            format!("the gatekeeper at {url} did not release bounty {}", bounty.id()),
            e,
        )
    })?;
    let query = if bounty.commitment == B256::ZERO {
        None
    } else {
        Some(client.bounty_text(bounty.commitment).await.map_err(|e| {
            Error::gatekeeper(
                format!("the published text of bounty {} does not check out", bounty.id()),
                e,
            )
        })?)
    };
    answer["query"] = json!(query);
    // Which provider's gatekeeper answered (the chain does not say who posted it), for
    // the researcher to see; not when the gatekeeper was given by URL.
    if provider != Address::ZERO {
        answer["provider"] = json!(provider);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounty_is_written_relationship_colon_sequence() {
        let id = B256::repeat_byte(0x12);
        let b = Bounty::parse(&format!("{id}:3"), Address::ZERO).unwrap();
        assert_eq!((b.relationship.0, b.seq), (id, 3));
        assert_eq!(b.id(), format!("{id}:3"));
        for bad in ["0x12", "nothex:1", &format!("{id}:x")] {
            assert!(matches!(Bounty::parse(bad, Address::ZERO), Err(Error::Invalid(_))), "{bad}");
        }
        let text = Bounty::parse("0x12", Address::ZERO).unwrap_err().to_string();
        assert!(text.contains("<relationship id>:<sequence>"), "{text}");
    }
}
