//! `medrec chain`: run the embedded chain and serve Ethereum JSON-RPC.

use crate::output;
use anyhow::Context;
use clap::Args;
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    node::{Node, SealMode},
    server,
};
use serde_json::json;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, str::FromStr, time::Duration};

/// Arguments of `medrec chain`.
#[derive(Debug, Args)]
pub(crate) struct ChainArgs {
    /// Address to serve JSON-RPC on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8545")]
    http: SocketAddr,
    /// Keep the chain in memory only (the default when no --data-dir is given).
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// Keep the chain in DIR across restarts.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When to seal blocks: `instant` (one per transaction), `interval:MS`, or `pow`
    /// (external miners, e.g. `medrec research mine`).
    #[arg(long, value_name = "MODE", default_value = "instant")]
    seal: Seal,
    /// EIP-155 chain id.
    #[arg(long, default_value_t = 31337)]
    chain_id: u64,
    /// Difficulty of the first Proof-of-Work block (then it follows --pow-block-time).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    pow_difficulty: u64,
    /// Block time, in seconds, that Proof-of-Work difficulty steers towards.
    #[arg(long, value_name = "SECS", default_value_t = 4)]
    pow_block_time: u64,
    /// Number of funded development accounts (standard test mnemonic).
    #[arg(long, default_value_t = 10)]
    accounts: u32,
    /// Make gas free, so that no account ever needs funding: base fee pinned at 0, and
    /// zero-price transactions admitted only to the MedRec contracts, if they succeed,
    /// within per-sender limits (a --data-dir remembers it).
    #[arg(long)]
    free_gas: bool,
    /// Print one JSON object (RPC URL, chain id, accounts, contracts) once serving.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seal(SealMode);

impl FromStr for Seal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instant" => Ok(Self(SealMode::Instant)),
            "pow" => Ok(Self(SealMode::Pow)),
            other => {
                let ms = other.strip_prefix("interval:").ok_or_else(|| {
                    format!("unknown sealing mode '{other}': use instant, interval:MS or pow")
                })?;
                let ms: u64 =
                    ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        format!("'{ms}' is not a positive number of milliseconds")
                    })?;
                Ok(Self(SealMode::Interval(Duration::from_millis(ms))))
            }
        }
    }
}

/// Runs `medrec chain` until Ctrl-C (or SIGTERM).
pub(crate) fn run(args: &ChainArgs) -> anyhow::Result<ExitCode> {
    let mut config = ChainConfig {
        chain_id: args.chain_id,
        dev_accounts: args.accounts,
        pow_initial_difficulty: args.pow_difficulty,
        pow_target_block_secs: args.pow_block_time,
        free_gas: args.free_gas,
        ..ChainConfig::default()
    };
    if let Some(dir) = &args.data_dir
        && !args.free_gas
        && let Some(stored) = Chain::stored_config(dir)
            .with_context(|| format!("cannot read the chain's settings in {}", dir.display()))?
        && stored.free_gas
    {
        // The directory remembers that its gas is free (and the guard's settings).
        config.free_gas = true;
        config.free_gas_targets = stored.free_gas_targets;
        config.free_gas_deployers = stored.free_gas_deployers;
        config.free_gas_max_pending = stored.free_gas_max_pending;
        config.free_gas_block_gas = stored.free_gas_block_gas;
    }
    let chain = match &args.data_dir {
        Some(dir) => Chain::open(config, dir)
            .with_context(|| format!("cannot open the chain in {}", dir.display()))?,
        None => Chain::new_spilled(config).context("cannot start the chain")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(chain, args))
}

async fn serve(chain: Chain, args: &ChainArgs) -> anyhow::Result<ExitCode> {
    let node = Node::new(chain, args.seal.0);
    if let SealMode::Interval(every) = args.seal.0 {
        tokio::spawn(node.clone().run_interval_sealer(every));
    }
    let handle = server::serve(node.clone(), args.http)
        .await
        .with_context(|| format!("cannot listen on {}", args.http))?;
    let (accounts, deployment, chain_id, head, free_gas) = node.with(|c| {
        (
            c.dev_accounts().to_vec(),
            c.deployment(),
            c.chain_id(),
            c.latest().header.number,
            c.config().free_gas,
        )
    });
    // Listen for Ctrl-C and SIGTERM before saying that the chain is serving.
    let shutdown = crate::signals::Shutdown::install().context("cannot listen for Ctrl-C")?;
    if args.json {
        let value = json!({
            "rpc_url": handle.url(),
            "chain_id": chain_id,
            "block_number": head,
            "seal": seal_name(args.seal.0),
            "free_gas": free_gas,
            "data_dir": args.data_dir,
            "accounts": accounts.iter().map(|a| json!({"address": a.address, "private_key": a.private_key})).collect::<Vec<_>>(),
            "contracts": deployment,
        });
        output::result(&value.to_string());
    } else {
        output::result(&format!("RPC URL      {}", handle.url()));
        output::result(&format!("chain id     {chain_id}"));
        output::result(&format!("head block   {head}"));
        output::result(&format!("sealing      {}", seal_name(args.seal.0)));
        if free_gas {
            output::result(
                "gas          free (base fee 0; zero-price transactions to the MedRec contracts)",
            );
        }
        if let Some(d) = deployment {
            output::result(&format!("Registrar     {}", d.registrar));
            output::result(&format!("Relationships {}", d.relationships));
            output::result(&format!("AccessAnchors {}", d.anchors));
        }
        output::result("development accounts (test mnemonic; never use on a real network):");
        for (i, a) in accounts.iter().enumerate() {
            output::result(&format!("  ({i}) {}  key {}", a.address, a.private_key));
        }
        output::note("serving; press Ctrl-C to stop");
    }
    shutdown.wait().await;
    output::note("stopping: finishing requests in flight");
    handle.shutdown().await.context("the RPC server failed while stopping")?;
    node.with(Chain::snapshot).context("writing the final state snapshot failed")?;
    output::note("stopped");
    Ok(ExitCode::SUCCESS)
}

fn seal_name(mode: SealMode) -> String {
    match mode {
        SealMode::Instant => "instant".into(),
        SealMode::Interval(d) => format!("interval:{}", d.as_millis()),
        SealMode::Pow => "pow".into(),
    }
}
