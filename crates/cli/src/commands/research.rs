//! `medrec research`: what researchers do. They mine the chain by Proof of Work and own
//! the bounties of the blocks they seal; they redeem them at the providers'
//! gatekeepers as private aggregates. Certified institutions admit them by vote.

use super::common::{ChainArgs, WalletArgs};
use crate::output;
use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_client::researcher::{self, Answers, Bounty, owned};
use medrec_devchain::miner::{self, MinerConfig};
use medrec_wallet::{Wallet, WordCount};
use serde_json::{Value, json};
use std::{path::PathBuf, process::ExitCode, time::Duration};

/// Arguments of `medrec research`.
#[derive(Debug, Args)]
pub(crate) struct ResearchArgs {
    #[command(subcommand)]
    what: Research,
}

/// Who the researcher is: their wallet (default) or a raw key in an environment
/// variable (development identities only).
#[derive(Debug, Clone, Args)]
struct Identity {
    #[command(flatten)]
    wallet: WalletArgs,
    /// Sign with the hex private key in this environment variable instead of the
    /// wallet (development identities only).
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
}

impl Identity {
    fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        if let Some(var) = &self.key_env {
            let hex = std::env::var(var)
                .with_context(|| format!("the environment variable {var} is not set"))?;
            return hex
                .trim()
                .parse()
                .with_context(|| format!("{var} does not hold a private key (64 hex digits)"));
        }
        Ok(self.wallet.open(ROLE)?.account().clone())
    }

    /// The researcher's address, without decrypting anything when possible.
    fn address(&self) -> anyhow::Result<Address> {
        if self.key_env.is_some() {
            return Ok(self.signer()?.address());
        }
        let dir = self.wallet.dir(ROLE)?;
        Wallet::read_address(&dir).with_context(|| {
            format!("there is no researcher wallet in {}: run `medrec research new`", dir.display())
        })
    }

    /// Where redeemed answers are kept.
    fn answers_file(&self) -> anyhow::Result<PathBuf> {
        Ok(self.wallet.dir(ROLE)?.join("redeemed.json"))
    }
}

const ROLE: &str = "researcher";

#[derive(Debug, Subcommand)]
enum Research {
    /// Create a researcher's wallet (its address is what institutions admit and what
    /// blocks record as their miner).
    New {
        #[command(flatten)]
        wallet: WalletArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mine Proof-of-Work blocks with your address as coinbase: you become the owner of
    /// the bounties in the blocks you seal.
    Mine {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        who: Identity,
        /// The coinbase (default: your wallet's address).
        #[arg(long, value_name = "ADDRESS")]
        coinbase: Option<Address>,
        /// Stop after this many blocks (default: until Ctrl-C).
        #[arg(long)]
        blocks: Option<u64>,
        /// Only include these pending transactions (repeat the flag): choose which
        /// bounties to mine.
        #[arg(long = "include", value_name = "TX_HASH")]
        include: Vec<B256>,
        /// Print one JSON object per sealed block.
        #[arg(long)]
        json: bool,
    },
    /// A certified institution votes to admit a research entity (it passes when more
    /// than half of the institutions voted). Run with the institution's provider wallet.
    Admit {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
        /// Sign with the hex private key in this environment variable instead of the
        /// provider wallet (development identities only).
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// The researcher's address.
        researcher: Address,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The bounties you own on chain: block, provider, query commitment, and whether you
    /// redeemed them (pending otherwise).
    Bounties {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        who: Identity,
        /// Whose bounties (default: yours).
        #[arg(long, value_name = "ADDRESS")]
        owner: Option<Address>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Redeem a bounty you own at its provider's gatekeeper: a private aggregate.
    Redeem {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        who: Identity,
        /// The bounty: `<relationship id>:<sequence>` (as `medrec research bounties`
        /// lists them), or `all` for every bounty you own and have not redeemed.
        bounty: String,
        /// The gatekeeper's URL (default: the provider's endpoint in the Registrar).
        #[arg(long, value_name = "URL")]
        gatekeeper: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `medrec research`.
pub(crate) fn run(args: ResearchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.what {
        Research::New { wallet, json } => new(&wallet, json),
        Research::Mine { chain, who, coinbase, blocks, include, json } => {
            let coinbase = match coinbase {
                Some(c) => c,
                None => who.address()?,
            };
            runtime.block_on(mine(&chain, coinbase, blocks, include, json))
        }
        Research::Admit { chain, wallet, key_env, researcher, json } => {
            let signer = match &key_env {
                Some(_) => Identity { wallet, key_env }.signer()?,
                None => wallet.open("provider")?.account().clone(),
            };
            runtime.block_on(admit(&chain, signer, researcher, json))
        }
        Research::Bounties { chain, who, owner, json } => {
            let owner = match owner {
                Some(o) => o,
                None => who.address()?,
            };
            runtime.block_on(bounties(&chain, &who, owner, json))
        }
        Research::Redeem { chain, who, bounty, gatekeeper, json } => {
            runtime.block_on(redeem(&chain, &who, &bounty, gatekeeper.as_deref(), json))
        }
    }
}

fn new(wallet: &WalletArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = wallet.dir(ROLE)?;
    let passphrase = wallet.new_passphrase()?;
    let w = Wallet::create(&dir, WordCount::Twelve, &passphrase, wallet.scrypt_params())
        .with_context(|| format!("cannot create a wallet in {}", dir.display()))?;
    if json {
        output::result(
            &json!({"address": w.address(), "data_dir": dir, "mnemonic": w.mnemonic().phrase()})
                .to_string(),
        );
    } else {
        output::note("Write these words down and keep them safe: they recover this wallet.");
        output::note(&format!("   {}", w.mnemonic().phrase()));
        output::result(&format!("researcher {} (wallet in {})", w.address(), dir.display()));
        output::note(
            "Ask the certified institutions to admit this address (`medrec research admit`).",
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn mine(
    chain: &ChainArgs,
    coinbase: Address,
    blocks: Option<u64>,
    include: Vec<B256>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = MinerConfig {
        rpc_url: chain.rpc_url.clone(),
        coinbase,
        blocks,
        include: (!include.is_empty()).then_some(include),
        refresh: Duration::from_secs(1),
    };
    output::note(&format!("mining at {} as {coinbase}", config.rpc_url));
    let sealed = tokio::select! {
        r = miner::mine(&config, |m| {
            if json {
                output::result(&serde_json::to_string(m).unwrap_or_default());
            } else {
                output::result(&format!(
                    "sealed block {} ({} transactions, difficulty {}, nonce {})",
                    m.block, m.transactions, m.difficulty, m.nonce
                ));
            }
        }) => Some(r.context("mining stopped")?),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(n) = sealed {
        output::note(&format!("sealed {n} blocks"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn admit(
    chain: &ChainArgs,
    institution: PrivateKeySigner,
    researcher: Address,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let voter = institution.address();
    let chain = chain.connect().await?;
    let outcome = researcher::admit(&chain, &institution, researcher).await?;
    if json {
        output::result(
            &json!({"researcher": researcher, "voter": voter, "admitted": outcome.admitted, "tx": outcome.tx})
                .to_string(),
        );
    } else if outcome.admitted {
        output::result(&format!("{researcher} is admitted: its mined bounties can be redeemed"));
    } else {
        output::result(&format!(
            "voted to admit {researcher}; it needs votes from more than half of the institutions"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn bounties(
    chain: &ChainArgs,
    who: &Identity,
    owner: Address,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let chain = chain.connect().await?;
    let list = owned(&chain, Some(owner)).await?;
    let answers = match who.answers_file() {
        Ok(f) => Answers::load(&f)?.by_bounty,
        Err(_) => std::collections::BTreeMap::new(),
    };
    let admitted = chain
        .registrar()
        .isResearcher(owner)
        .call()
        .await
        .context("the chain node does not answer")?;
    let rows: Vec<Value> = list
        .iter()
        .map(|b| {
            let answer = answers.get(&b.id());
            json!({
                "id": b.id(),
                "relationship": b.relationship.0,
                "seq": b.seq,
                "block": b.block,
                "tx": b.tx,
                "owner": b.owner,
                "commitment": b.commitment,
                "status": if answer.is_some() { "redeemed" } else { "pending" },
                "redeemed": answer.is_some(),
                "epsilon": answer.map(|a| a["epsilon"].clone()),
                "result": answer.map(|a| a["release"].clone()),
            })
        })
        .collect();
    if json {
        output::result(
            &json!({"owner": owner, "admitted": admitted, "bounties": rows}).to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !admitted {
        output::note(&format!(
            "{owner} is not an admitted research entity: gatekeepers will not redeem its bounties"
        ));
    }
    if rows.is_empty() {
        output::note("no bounties owned yet: mine blocks that hold providers' updates");
    }
    for r in &rows {
        output::result(&format!(
            "{}  block {:>6}  {}",
            r["id"].as_str().unwrap_or(""),
            r["block"],
            r["status"].as_str().unwrap_or("")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn redeem(
    chain: &ChainArgs,
    who: &Identity,
    bounty: &str,
    gatekeeper: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let signer = who.signer()?;
    let me = signer.address();
    let mut answers = Answers::load(&who.answers_file()?)?;
    // A malformed bounty id is an error before the chain is asked anything.
    let wanted = if bounty == "all" { None } else { Some(Bounty::parse(bounty, me)?) };
    let chain = chain.connect().await?;
    let mine = owned(&chain, Some(me)).await?;
    let chosen: Vec<Bounty> = match wanted {
        None => mine.into_iter().filter(|b| !answers.by_bounty.contains_key(&b.id())).collect(),
        // Not ours (or unknown): ask anyway so the gatekeeper's refusal says which.
        Some(w) => vec![
            mine.into_iter()
                .find(|b| b.relationship == w.relationship && b.seq == w.seq)
                .unwrap_or(w),
        ],
    };
    if chosen.is_empty() {
        output::note("nothing to redeem: every bounty you own is redeemed");
    }
    let mut results = Vec::new();
    for b in chosen {
        let answer = researcher::redeem(&chain, &signer, &b, gatekeeper).await?;
        answers.by_bounty.insert(b.id(), answer.clone());
        answers.save()?;
        results.push(answer);
    }
    if json {
        output::result(&json!({"redeemed": results}).to_string());
    } else {
        for a in &results {
            output::result(&describe(a));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A redeemed answer in a few lines.
fn describe(a: &Value) -> String {
    let mut out = format!(
        "bounty {} (block {}): {}\n   ε spent {} (total {} of {})",
        a["bounty"].as_str().unwrap_or("?"),
        a["block"],
        a["query"].as_str().unwrap_or("?"),
        a["epsilon"],
        a["spent"],
        a["budget"],
    );
    for cell in a["release"]["cells"].as_array().into_iter().flatten() {
        let group = cell["group"]
            .as_object()
            .map(|g| {
                g.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "everyone".to_owned());
        let value = if cell["suppressed"].as_bool() == Some(true) {
            "suppressed (fewer than k patients)".to_owned()
        } else {
            answer(&cell["value"])
        };
        out.push_str(&format!("\n   {group}: {value}"));
    }
    out
}

/// A released value in words: `mean 66.00`, `count 12`, `p50 80.10, p90 97.30`, or the
/// histogram's bins.
pub(crate) fn answer(v: &Value) -> String {
    let Some((kind, value)) = v.as_object().and_then(|o| o.iter().next()) else {
        return v.to_string();
    };
    match (kind.as_str(), value) {
        ("count", n) => format!("count {n}"),
        ("quantiles", Value::Array(qs)) => qs
            .iter()
            .map(|q| format!("p{} {:.2}", q["p"], q["value"].as_f64().unwrap_or(f64::NAN)))
            .collect::<Vec<_>>()
            .join(", "),
        ("histogram", Value::Array(bins)) => bins
            .iter()
            .map(|b| format!("[{}, {}): {}", b["from"], b["to"], b["count"]))
            .collect::<Vec<_>>()
            .join("; "),
        (kind, Value::Number(n)) => format!("{kind} {:.2}", n.as_f64().unwrap_or(f64::NAN)),
        _ => v.to_string(),
    }
}
