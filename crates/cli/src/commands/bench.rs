//! `medrec bench`: measurements printed as results.

use crate::output;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use medrec_devchain::gas::{self, GasReport};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

/// Arguments of `medrec bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Gas used by every MedRec contract operation on the in-process EVM, and the size
    /// of a signed relationship-creation transaction.
    Gas {
        /// Print one JSON object (operation → gas) instead of a table.
        #[arg(long)]
        json: bool,
        /// Compare with a committed snapshot (JSON) and fail if anything differs.
        #[arg(long, value_name = "SNAPSHOT")]
        check: Option<PathBuf>,
    },
}

/// Runs `medrec bench`.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Bench::Gas { json, check } => {
            let report = gas::measure().context("measuring gas on the in-process EVM failed")?;
            if let Some(path) = check {
                return check_snapshot(&report, &path);
            }
            if json {
                output::result(&serde_json::to_string_pretty(&report)?);
            } else {
                let width = report.keys().map(|k| k.len()).max().unwrap_or(0);
                for (op, gas) in &report {
                    output::result(&format!("{op:<width$}  {gas:>9}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_snapshot(report: &GasReport, path: &PathBuf) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the gas snapshot {}", path.display()))?;
    let committed: BTreeMap<String, u64> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON object of integers", path.display()))?;
    let measured: BTreeMap<String, u64> =
        report.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    if committed == measured {
        output::note(&format!(
            "gas snapshot {} matches ({} entries)",
            path.display(),
            measured.len()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let keys: std::collections::BTreeSet<&String> =
        committed.keys().chain(measured.keys()).collect();
    for key in keys {
        let (old, new) = (committed.get(key), measured.get(key));
        if old != new {
            let show = |v: Option<&u64>| v.map_or_else(|| "absent".to_owned(), u64::to_string);
            output::note(&format!("{key}: snapshot {} → measured {}", show(old), show(new)));
        }
    }
    bail!(
        "the gas snapshot {} is out of date; regenerate it with `scripts/gas-snapshot` and commit it",
        path.display()
    )
}
