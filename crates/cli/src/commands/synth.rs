//! `medrec synth`: deterministic synthetic FHIR R4 patients, one transaction Bundle
//! each, for the demo, tests and benchmarks.

use crate::output;
use anyhow::Context;
use clap::Args;
use medrec_synth::{self as synthetic, Date, Options};
use serde_json::Value;
use std::{path::PathBuf, process::ExitCode};

/// Arguments of `medrec synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Number of patients.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    patients: u32,
    /// Years of history per patient, ending the day before --reference-date.
    #[arg(long, value_name = "Y", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(synthetic::MAX_YEARS)))]
    years: u32,
    /// Seed: the same seed and sizes give byte-identical output.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// The day histories end before and ages are counted to (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", default_value = "2026-01-01")]
    reference_date: Date,
    /// Write one `<patient-id>.json` transaction Bundle per patient into DIR (created
    /// if missing) instead of one JSON array of Bundles on stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `medrec synth`.
pub(crate) fn run(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    let options = Options {
        patients: args.patients as usize,
        years: args.years,
        seed: args.seed,
        reference_date: args.reference_date,
    };
    let records = synthetic::generate(&options);
    let resources: usize = records.iter().map(|r| r.all().count()).sum();
    let bundles = records.iter().map(|r| (r.id.as_str(), synthetic::transaction_bundle(r)));
    let place = if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        for (id, bundle) in bundles {
            let path = dir.join(format!("{id}.json"));
            let mut text = serde_json::to_vec(&bundle)?;
            text.push(b'\n');
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        format!("into {}", dir.display())
    } else {
        let all: Vec<Value> = bundles.map(|(_, b)| b).collect();
        output::result(&serde_json::to_string(&all)?);
        "on stdout".to_owned()
    };
    output::note(&format!(
        "synthesized {} patients, {resources} resources, {} year{} of history up to {} (seed {}), {place}",
        records.len(),
        options.years,
        if options.years == 1 { "" } else { "s" },
        options.reference_date,
        options.seed,
    ));
    Ok(ExitCode::SUCCESS)
}
