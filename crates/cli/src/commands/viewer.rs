//! `medrec viewer`: what a third party (a pharmacist, another provider) does with what a
//! patient shared with it: create its wallet, see its grants, and fetch the shared
//! records from the provider's gatekeeper, each checked against the hash on chain.
//! Fetching is refused as soon as the grant is revoked or expired on chain.

use crate::{
    commands::{
        common::{ChainArgs, WalletArgs},
        patient::{
            NewArgs, create_wallet, fhir,
            net::{self, endpoint, fetch_pointer},
        },
    },
    output,
};
use alloy::primitives::Address;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use medrec_chain::inbox::{Notice, read};
use medrec_contracts::Relationships;
use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
use medrec_primitives::{PointerSet, RelationshipId, Status};
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::{collections::BTreeMap, process::ExitCode};

/// Arguments of `medrec viewer`.
#[derive(Debug, Args)]
pub(crate) struct ViewerArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Viewer,
}

#[derive(Debug, Subcommand)]
enum Viewer {
    /// Create the viewer's wallet: an address to give patients, and a recovery phrase.
    New(NewArgs),
    /// What patients shared with you: grants and revocations, and whether each grant is
    /// valid now.
    Inbox(InboxArgs),
    /// Fetch what was shared with you, checked against the chain: a timeline, or with
    /// --json one FHIR Bundle.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
struct InboxArgs {
    /// The viewer's address (default: your wallet's).
    #[arg(long, value_name = "ADDRESS")]
    address: Option<Address>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Only this relationship (id or its first hex digits).
    #[arg(long, value_name = "ID")]
    relationship: Option<String>,
}

/// Where a grant stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Valid,
    Revoked,
    Expired,
    NotYetValid,
    /// The relationship is not accepted (new, rejected or deleted).
    Inactive,
}

impl State {
    const fn as_str(self) -> &'static str {
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
struct Shared {
    id: RelationshipId,
    provider: Address,
    status: Option<Status>,
    /// The grant in force (pointers, not before, expires at); `None` once revoked.
    grant: Option<(PointerSet, u64, u64)>,
    /// Pointers the patient has accepted (viewers see only those).
    accepted: u8,
    state: State,
}

impl Shared {
    fn json(&self) -> Value {
        let (pointers, not_before, expires_at) = match self.grant {
            Some((set, nb, exp)) => (set.ids().collect::<Vec<u8>>(), Some(nb), Some(exp)),
            None => (Vec::new(), None, None),
        };
        json!({
            "relationship": self.id.0,
            "provider": self.provider,
            "relationship_status": self.status.map(|s| s.to_string()),
            "pointers": pointers,
            "not_before": not_before,
            "expires_at": expires_at,
            "expires": expires_at.map(fhir::when),
            "state": self.state.as_str(),
            "valid_now": self.state == State::Valid,
        })
    }

    /// Why fetching is refused, in a sentence.
    fn refusal(&self) -> String {
        let why = match (self.state, self.grant) {
            (State::Expired, Some((_, _, exp))) => {
                format!("the grant expired at {}", fhir::when(exp))
            }
            (State::NotYetValid, Some((_, nb, _))) => {
                format!("the grant is valid only from {}", fhir::when(nb))
            }
            (State::Inactive, _) => format!(
                "the relationship is {}",
                self.status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
            ),
            _ => "the grant was revoked".to_owned(),
        };
        format!(
            "the patient has revoked or let expire your access to relationship {} at provider {} ({why})",
            self.id.0, self.provider
        )
    }

    /// The pointers the viewer may run now.
    fn viewable(&self) -> Vec<u8> {
        match (self.state, self.grant) {
            (State::Valid, Some((set, _, _))) => set.ids().filter(|p| *p < self.accepted).collect(),
            _ => Vec::new(),
        }
    }
}

/// Runs `medrec viewer`.
pub(crate) fn run(args: &ViewerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Viewer::New(a) => create_wallet("viewer", &args.wallet, a, args.json),
            Viewer::Inbox(a) => inbox(args, a).await,
            Viewer::Fetch(a) => fetch(args, a).await,
        }
    })
}

/// Every relationship that a grant or revocation names the viewer in, as it stands now.
async fn shared_with(v: &ViewerArgs, me: Address) -> anyhow::Result<Vec<Shared>> {
    let reader = v.chain.reader()?;
    let notices =
        read(&reader, v.chain.relationships, v.chain.from_block, me, 0, None).await.with_context(
            || format!("cannot read your inbox from the chain node at {}", v.chain.rpc_url),
        )?;
    let mut grants: BTreeMap<RelationshipId, Option<(PointerSet, u64, u64)>> = BTreeMap::new();
    for d in &notices {
        match d.notice {
            Notice::Granted { viewer, pointers, not_before, expires_at } if viewer == me => {
                grants.insert(d.relationship, Some((pointers, not_before, expires_at)));
            }
            Notice::Revoked { viewer } if viewer == me => {
                grants.insert(d.relationship, None);
            }
            _ => {}
        }
    }
    let now = net::chain_now(&reader).await?;
    let contract = Relationships::new(v.chain.relationships, &reader);
    let mut out = Vec::new();
    for (id, grant) in grants {
        let r = contract
            .relationship(id.0)
            .call()
            .await
            .with_context(|| format!("cannot read relationship {} on chain", id.0))?;
        let status = Status::try_from(r.status).ok();
        let state = match grant {
            None => State::Revoked,
            Some((_, _, exp)) if now >= exp => State::Expired,
            Some((_, nb, _)) if now < nb => State::NotYetValid,
            Some(_) if !status.is_some_and(Status::is_accepted) => State::Inactive,
            Some(_) => State::Valid,
        };
        out.push(Shared {
            id,
            provider: r.provider,
            status,
            grant,
            accepted: r.acceptedCount,
            state,
        });
    }
    Ok(out)
}

fn my_address(v: &ViewerArgs, given: Option<Address>) -> anyhow::Result<Address> {
    if let Some(a) = given {
        return Ok(a);
    }
    let dir = v.wallet.dir("viewer")?;
    Wallet::read_address(&dir).with_context(|| {
        format!(
            "no address given and no wallet in {}: pass --address or create one (`medrec viewer new`)",
            dir.display()
        )
    })
}

async fn inbox(v: &ViewerArgs, a: &InboxArgs) -> anyhow::Result<ExitCode> {
    let me = my_address(v, a.address)?;
    v.chain.chain_id().await?;
    let list = shared_with(v, me).await?;
    if v.json {
        output::result(
            &json!({"address": me, "shared": list.iter().map(Shared::json).collect::<Vec<_>>()})
                .to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        output::note("nothing has been shared with you yet");
    }
    for s in &list {
        let detail = match s.grant {
            Some((set, _, exp)) => {
                format!("pointers {:?}, until {}", set.ids().collect::<Vec<u8>>(), fhir::when(exp))
            }
            None => "no pointers".to_owned(),
        };
        output::result(&format!(
            "{}…  provider {}  {detail}  → {}",
            &s.id.0.to_string()[..10],
            s.provider,
            s.state.as_str()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(v: &ViewerArgs, a: &FetchArgs) -> anyhow::Result<ExitCode> {
    let wallet = v.wallet.open("viewer")?;
    let chain_id = v.chain.chain_id().await?;
    let all = shared_with(v, wallet.address()).await?;
    let chosen: Vec<Shared> = match &a.relationship {
        Some(text) => {
            let id = net::pick(all.iter().map(|s| &s.id), text)?;
            all.into_iter().filter(|s| s.id == id).collect()
        }
        None => all,
    };
    if chosen.is_empty() {
        bail!("nothing has been shared with you yet");
    }
    let (valid, refused): (Vec<Shared>, Vec<Shared>) =
        chosen.into_iter().partition(|s| s.state == State::Valid);
    if valid.is_empty() {
        let reasons: Vec<String> = refused.iter().map(Shared::refusal).collect();
        bail!("{}", reasons.join("; "));
    }
    for s in &refused {
        output::note(&format!("note: {}", s.refusal()));
    }
    let reader = v.chain.reader()?;
    let mut items: Vec<(Address, RelationshipId, String, Value)> = Vec::new();
    let mut mismatches = 0usize;
    for s in &valid {
        let url = endpoint(&reader, v.chain.registrar, s.provider).await?;
        let events = net::relationship_events(&reader, &v.chain, s.id).await?;
        let client =
            GatekeeperClient::new(url.clone(), s.provider, chain_id, wallet.account().clone());
        for n in s.viewable() {
            let on_chain = events.pointers.get(usize::from(n)).map(|p| p.1).with_context(|| {
                format!("the chain has no pointer {n} for relationship {}", s.id.0)
            })?;
            let data = match fetch_pointer(&client, s.id, n).await {
                Ok(data) => data,
                Err(ClientError::Refused { status: 403, diagnostics }) => bail!(
                    "the provider's gatekeeper refused pointer {n} of relationship {}: {diagnostics} (the patient may have just revoked or let expire your access)",
                    s.id.0
                ),
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "fetching pointer {n} of relationship {} failed",
                        s.id.0
                    )));
                }
            };
            if let Err(e) = data.verify(on_chain) {
                mismatches += 1;
                output::note(&format!(
                    "WARNING: pointer {n} of relationship {} does not match the hash on chain, so it is not shown: {e}",
                    s.id.0
                ));
                continue;
            }
            items.extend(data.resources.into_iter().map(|r| (s.provider, s.id, url.clone(), r)));
        }
    }
    if v.json {
        output::result(
            &fhir::collection(items.iter().map(|(_, _, url, r)| (url.as_str(), r))).to_string(),
        );
    } else {
        let lines = fhir::timeline(items.iter().map(|(p, id, _, r)| (*p, id.0, r)));
        output::note(&format!(
            "{} records shared with you, each checked against the hash on chain",
            lines.len()
        ));
        for line in &lines {
            output::result(&line.human());
        }
    }
    Ok(if mismatches > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
