//! `medrec bench`: measurements printed as results.

use crate::output;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use medrec_devchain::{
    bench,
    gas::{self, GasReport},
};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

mod gatekeeper;
mod research;

/// Arguments of `medrec bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// EIP-712 request-signature verifications per second on one thread (recovery,
    /// time window and replay cache). Run with `--release`.
    Auth {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Signed requests verified.
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
    },
    /// How long after the block holding a grant or a revoke the consent index enforces
    /// it (devchain in process, follower polling). Run with `--release`.
    Enforce {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Grant/revoke pairs measured.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Follower poll interval, milliseconds.
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
    },
    /// The consent index: decision latency and memory per grant. Run with `--release`.
    Consent {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Grants in the index.
        #[arg(long, default_value_t = 1_000_000)]
        grants: usize,
        /// Decisions timed.
        #[arg(long, default_value_t = 1_000_000)]
        samples: usize,
    },
    /// Throughput of MedRec grants through JSON-RPC, devchain beside anvil, and the
    /// restart time and memory of a chain holding many transactions. Run with
    /// `--release`.
    Chain {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Grants sent to each node.
        #[arg(long, default_value_t = 2_000)]
        txs: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Transactions in the chain that is restarted (0 skips the restart measure).
        #[arg(long, default_value_t = 100_000)]
        restart_txs: u64,
        /// Transactions sent to an ephemeral chain before reading its memory (0 skips
        /// the memory measure).
        #[arg(long, default_value_t = 100_000)]
        memory_txs: usize,
        /// The anvil binary to compare with (default: the one `npm ci --prefix
        /// contracts` installs in this checkout).
        #[arg(long, value_name = "PATH")]
        anvil: Option<PathBuf>,
    },
    /// Authorized FHIR reads per second through the gatekeeper over loopback (devchain,
    /// SQLite store and access log in process, load generator included), with bearer
    /// tokens, per-request signatures or authorization off. Run with `--release`.
    Gatekeeper {
        /// Print one JSON object instead of indented JSON.
        #[arg(long)]
        json: bool,
        /// How requests authenticate.
        #[arg(long, value_enum, default_value = "all")]
        mode: gatekeeper::Mode,
        /// Measured seconds per mode.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Warm-up seconds per mode (not measured).
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Keep-alive HTTP/1.1 connections, each sending one request at a time.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Threads of the load generator (the server gets one per CPU).
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
        /// Patients, each with a relationship and their own Observations.
        #[arg(long, default_value_t = 16)]
        patients: usize,
        /// Observations per patient.
        #[arg(long, default_value_t = 500)]
        records: usize,
        /// Signed mode: requests signed beforehand per second of warm-up and window (a
        /// connection that runs out stops, and the run is reported invalid).
        #[arg(long, default_value_t = 16_000)]
        signed_rate: u64,
        /// Also measure from outside the process with wrk (installed separately):
        /// /healthz against bearer reads on 32 connections, and a reader beside a flood
        /// of requests without credentials or signed by unknown keys.
        #[arg(long)]
        wrk: bool,
        /// Also read with SMART access tokens, each got through a standalone launch
        /// (/authorize, /token with PKCE): mode `smart` right after `bearer`, the same
        /// reads (and with --wrk, there too).
        #[arg(long)]
        smart: bool,
    },
    /// How long a research bounty redemption takes at the gatekeeper as the opted-in
    /// cohort grows (devchain, SQLite store and ledger in process; fresh aggregate and
    /// stored replay). Run with `--release`.
    Research {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Cohort sizes, each measured in a fresh scenario.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        patients: Vec<usize>,
        /// Years of synthetic history per patient.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        years: u32,
        /// Bounties posted and redeemed per cohort size.
        #[arg(long, default_value_t = 20)]
        bounties: usize,
    },
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
        Bench::Auth { json, requests } => {
            if requests == 0 {
                bail!("--requests must be at least 1");
            }
            let per_sec = medrec_gatekeeper::auth::bench::verify_signatures(requests);
            let value = serde_json::json!({
                "auth": { "requests": requests, "verifications_per_sec_one_thread": per_sec },
                "machine": machine(),
            });
            output::result(&if json {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value)?
            });
            Ok(ExitCode::SUCCESS)
        }
        Bench::Enforce { json, rounds, poll_ms } => {
            if rounds == 0 || poll_ms == 0 {
                bail!("--rounds and --poll-ms must be at least 1");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(super::enforce::measure(rounds, poll_ms))?;
            let value = serde_json::json!({ "enforcement": report, "machine": machine() });
            output::result(&if json {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value)?
            });
            Ok(ExitCode::SUCCESS)
        }
        Bench::Consent { json, grants, samples } => {
            if grants == 0 || samples == 0 {
                bail!("--grants and --samples must be at least 1");
            }
            let report = medrec_chain::bench::consent(grants, samples, rss_kib);
            let value = serde_json::json!({ "consent": report, "machine": machine() });
            output::result(&if json {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value)?
            });
            Ok(ExitCode::SUCCESS)
        }
        Bench::Chain { json, txs, in_flight, restart_txs, memory_txs, anvil } => {
            let exe = std::env::current_exe().context("cannot find the medrec executable")?;
            let anvil = anvil.unwrap_or_else(|| {
                bench::default_anvil_path(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
            });
            if !anvil.exists() {
                bail!(
                    "anvil is not at {}: run `npm ci --prefix contracts` or pass --anvil PATH",
                    anvil.display()
                );
            }
            output::note(&format!(
                "throughput: {txs} grants, {in_flight} in flight, medrec chain then anvil"
            ));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let throughput = runtime.block_on(bench::throughput(&exe, &anvil, txs, in_flight))?;
            let restart = if restart_txs > 0 {
                output::note(&format!(
                    "restart: loading {restart_txs} transactions into a data directory"
                ));
                let dir = std::env::temp_dir()
                    .join(format!("medrec-bench-restart-{}", std::process::id()));
                let report = bench::restart(&exe, &dir, restart_txs);
                let _ = std::fs::remove_dir_all(&dir);
                Some(report?)
            } else {
                None
            };
            let memory = if memory_txs > 0 {
                output::note(&format!("memory: {memory_txs} grants into medrec chain --ephemeral"));
                Some(runtime.block_on(bench::memory(&exe, memory_txs, in_flight))?)
            } else {
                None
            };
            let value = serde_json::json!({
                "throughput": throughput,
                "restart": restart,
                "memory": memory,
                "machine": machine(),
            });
            if json {
                output::result(&value.to_string());
            } else {
                output::result(&serde_json::to_string_pretty(&value)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Gatekeeper {
            json,
            mode,
            seconds,
            warmup,
            connections,
            client_threads,
            patients,
            records,
            signed_rate,
            wrk,
            smart,
        } => {
            let options = gatekeeper::Options {
                mode,
                seconds,
                warmup,
                connections,
                client_threads,
                patients,
                records,
                signed_rate,
                wrk,
                smart,
            };
            let report = gatekeeper::measure(&options)?;
            let value = serde_json::json!({ "gatekeeper": report, "machine": machine() });
            output::result(&if json {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value)?
            });
            Ok(ExitCode::SUCCESS)
        }
        Bench::Research { json, patients, years, bounties } => {
            let report = research::measure(&research::Options { patients, years, bounties })?;
            if json {
                let value = serde_json::json!({ "research": report, "machine": machine() });
                output::result(&value.to_string());
            } else {
                output::result(&research::table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
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

/// What the numbers were measured on.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "release_build": !cfg!(debug_assertions),
    })
}

/// Resident memory of this process, KiB.
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
