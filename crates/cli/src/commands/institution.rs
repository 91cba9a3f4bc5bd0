//! `medrec institution`: what a certified institution does for patients beyond groups:
//! register a minor's custodian (a parent) who acts for the minor with the rights given
//! until the handover date, after which only the patient's own key acts. Signs with
//! the institution's provider wallet (or `--key-env` for development identities).

use super::{
    common::{ChainArgs, WalletArgs, signer_from_env},
    patient::keys::{KeyDirArgs, parse_date, parse_rights},
};
use crate::output;
use alloy::primitives::Address;
use anyhow::ensure;
use clap::{Args, Subcommand};
use medrec_client::{care::InstitutionSession, timeline};
use medrec_contracts::Rights;
use serde_json::json;
use std::process::ExitCode;

/// Arguments of `medrec institution`.
#[derive(Debug, Args)]
pub(crate) struct InstitutionArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Sign with the hex private key in this environment variable instead of the
    /// institution's provider wallet (development identities only).
    #[arg(long, value_name = "VAR", global = true)]
    key_env: Option<String>,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Institution,
}

#[derive(Debug, Subcommand)]
enum Institution {
    /// Let a parent act for a minor patient until the handover date (the parent's own
    /// wallet signs that it accepts).
    AddCustodian {
        /// The minor's account.
        #[arg(long, value_name = "ADDRESS")]
        account: Address,
        #[command(flatten)]
        key: KeyDirArgs,
        /// The rights, comma-separated: see, share, decide.
        #[arg(long, value_name = "RIGHTS", value_parser = parse_rights)]
        rights: u8,
        /// When the minor takes over (a date, 2034-09-01, or an RFC 3339 time): the
        /// parent's powers end then.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        handover: u64,
    },
}

/// Runs `medrec institution`.
pub(crate) fn run(args: &InstitutionArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let Institution::AddCustodian { account, key, rights, handover } = &args.what;
        let signer = match &args.key_env {
            Some(var) => signer_from_env(var)?,
            None => args.wallet.open("provider")?.account().clone(),
        };
        let custodian = key.open()?;
        let chain = args.chain.connect().await?;
        let now = chain.now().await?;
        ensure!(
            *handover > now,
            "the handover date {} has passed: a minor's custodian needs a future one",
            timeline::when(*handover)
        );
        let session = InstitutionSession::new(chain, signer);
        let receipt = session.add_minor_custodian(*account, &custodian, *rights, *handover).await?;
        if args.json {
            output::result(
                &json!({
                    "account": account,
                    "custodian": custodian.address(),
                    "rights": Rights(*rights).to_string(),
                    "handover": handover,
                    "block": receipt.block_number,
                    "tx": receipt.transaction_hash,
                })
                .to_string(),
            );
        } else {
            output::result(&format!(
                "{} may act for the minor {account} ({}) until {}; from then on only the patient's own key acts",
                custodian.address(),
                Rights(*rights),
                timeline::when(*handover)
            ));
        }
        Ok(ExitCode::SUCCESS)
    })
}
