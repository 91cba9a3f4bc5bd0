//! `medrec app`: the EHR manager, a web app on loopback for the party whose wallet is
//! in `--data-dir`. Thin: reads the flags (and the passphrase when a script gives one)
//! and runs `medrec_app`.

use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use anyhow::Context;
use clap::Args;
use medrec_app::{AppConfig, Role};
use std::{net::SocketAddr, process::ExitCode};

/// Arguments of `medrec app`.
#[derive(Debug, Args)]
pub(crate) struct AppArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Where to listen: loopback only (the keys never leave this machine).
    #[arg(long, value_name = "ADDR", default_value = AppConfig::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Whose app: `patient` (your records, sharing, access log) or `viewer` (what
    /// patients shared with you).
    #[arg(long, value_name = "ROLE", default_value = "patient")]
    role: Role,
}

/// Runs `medrec app` until Ctrl-C.
pub(crate) fn run(args: &AppArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = crate::signals::Shutdown::install().context("cannot listen for Ctrl-C")?;
        // Without --passphrase-env / --passphrase-file the first page asks for it.
        let passphrase = match (&args.wallet.passphrase_env, &args.wallet.passphrase_file) {
            (None, None) => None,
            _ => Some(args.wallet.passphrase()?),
        };
        let config = AppConfig {
            listen: args.listen,
            data_dir: args.wallet.dir(args.role.as_str())?,
            chain: args.chain.spec(),
            passphrase,
            role: args.role,
            demo_key: None,
            kdf: args.wallet.scrypt_params(),
        };
        let app = medrec_app::spawn(config).await?;
        // The link carries this run's key: a browser that opens it needs no passphrase.
        output::result(&app.launch_url());
        output::note(&format!(
            "The MedRec app is serving on {}: open the link above in your browser (it lets that browser in; keep it to yourself), or unlock with your passphrase. Press Ctrl-C to stop.",
            app.url()
        ));
        app.run_until(shutdown.wait()).await.context("the app stopped with an error")?;
        Ok(ExitCode::SUCCESS)
    })
}
