//! `medrec research`: what researchers do (today: mine the chain for bounties).

use crate::output;
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_devchain::miner::{self, MinerConfig};
use std::{process::ExitCode, time::Duration};

/// Arguments of `medrec research`.
#[derive(Debug, Args)]
pub(crate) struct ResearchArgs {
    #[command(subcommand)]
    what: Research,
}

#[derive(Debug, Subcommand)]
enum Research {
    /// Mine Proof-of-Work blocks with your address as coinbase: you become the owner of
    /// the bounties in the blocks you seal.
    Mine {
        /// JSON-RPC URL of a chain sealing by Proof of Work (`medrec chain --seal pow`).
        #[arg(long, value_name = "URL")]
        rpc_url: String,
        /// Your address, recorded as each block's miner.
        #[arg(long, value_name = "ADDRESS")]
        coinbase: alloy::primitives::Address,
        /// Stop after this many blocks (default: until Ctrl-C).
        #[arg(long)]
        blocks: Option<u64>,
        /// Only include these pending transactions (repeat the flag): choose which
        /// bounties to mine.
        #[arg(long = "include", value_name = "TX_HASH")]
        include: Vec<alloy::primitives::B256>,
        /// Print one JSON object per sealed block.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `medrec research`.
pub(crate) fn run(args: ResearchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Research::Mine { rpc_url, coinbase, blocks, include, json } => {
            let config = MinerConfig {
                rpc_url,
                coinbase,
                blocks,
                include: (!include.is_empty()).then_some(include),
                refresh: Duration::from_secs(1),
            };
            output::note(&format!("mining at {} as {coinbase}", config.rpc_url));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let sealed = runtime
                .block_on(async {
                    tokio::select! {
                        r = miner::mine(&config, |m| {
                            if json {
                                output::result(&serde_json::to_string(m).unwrap_or_default());
                            } else {
                                output::result(&format!(
                                    "sealed block {} ({} transactions, difficulty {}, nonce {})",
                                    m.block, m.transactions, m.difficulty, m.nonce
                                ));
                            }
                        }) => r.map(Some),
                        _ = tokio::signal::ctrl_c() => Ok(None),
                    }
                })
                .context("mining stopped")?;
            if let Some(n) = sealed {
                output::note(&format!("sealed {n} blocks"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
