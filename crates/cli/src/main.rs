//! `medrec`: the MedRec command-line tool. Thin: parses arguments and hands over to
//! one module per subcommand; results go to stdout, everything else to stderr.

mod commands;
mod output;
mod signals;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// MedRec: patient-controlled medical records on an Ethereum ledger.
#[derive(Debug, Parser)]
#[command(name = "medrec", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the EHR manager, the web app for your wallet, on this machine.
    App(commands::app::AppArgs),
    /// Run the embedded chain and serve Ethereum JSON-RPC.
    Chain(commands::chain::ChainArgs),
    /// The whole story on this machine, narrated: chain, two providers, a patient, a
    /// pharmacist, an emergency clinician and a researcher.
    Demo(commands::demo::DemoArgs),
    /// What a provider does: init and registration, serve the Database Gatekeeper,
    /// enroll patients, import records, publish changes with bounty queries.
    Provider(commands::provider::ProviderArgs),
    /// What a patient does: wallet, inbox, offers, accept/reject/delete, records,
    /// share/revoke, research opt-in, access log and export, keys, custodians and
    /// guardians.
    Patient(commands::patient::PatientArgs),
    /// What a viewer does with what a patient shared with it: publish its encryption
    /// key, inbox and fetch.
    Viewer(commands::viewer::ViewerArgs),
    /// What a guardian does: approve moving a patient's account to a new key.
    Guardian(commands::recovery::GuardianArgs),
    /// Guardian recovery of a patient's account: start, veto, complete, status.
    Recovery(commands::recovery::RecoveryArgs),
    /// What a certified institution does for patients: a minor's custodian until the
    /// handover date.
    Institution(commands::institution::InstitutionArgs),
    /// Groups of clinicians that certified institutions define (emergency departments,
    /// pharmacists): create, add and remove members, list.
    Group(commands::group::GroupArgs),
    /// What an emergency clinician does: its groups, break the glass for a patient who
    /// cannot consent, read the patient's emergency set.
    Clinician(commands::clinician::ClinicianArgs),
    /// What researchers do: mine the chain, own the bounties of their blocks, redeem
    /// them as private aggregates; institutions admit them by vote.
    Research(commands::research::ResearchArgs),
    /// Measure MedRec (gas of every contract operation, ...).
    Bench(commands::bench::BenchArgs),
    /// Generate deterministic synthetic FHIR R4 patients as transaction Bundles.
    Synth(commands::synth::SynthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::App(args) => commands::app::run(&args),
        Command::Chain(args) => commands::chain::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Provider(args) => commands::provider::run(args),
        Command::Patient(args) => commands::patient::run(&args),
        Command::Viewer(args) => commands::viewer::run(&args),
        Command::Guardian(args) => commands::recovery::run_guardian(&args),
        Command::Recovery(args) => commands::recovery::run(&args),
        Command::Institution(args) => commands::institution::run(&args),
        Command::Group(args) => commands::group::run(&args),
        Command::Clinician(args) => commands::clinician::run(&args),
        Command::Research(args) => commands::research::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Synth(args) => commands::synth::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&err);
            ExitCode::FAILURE
        }
    }
}
