//! Test harness for MedRec: spawns the real things tests run against.
//!
//! - [`Anvil`]: foundry's anvil (the reference Ethereum node) on a free loopback port,
//!   from the npm package that `npm ci --prefix contracts` installs; killed on drop.
//! - [`medrec::Medrec`]: a devchain in process with the MedRec contracts, a registered
//!   provider, and helpers for the usual story (relate, grant, revoke).
//!
//! To come (issue 5): a devchain with gatekeepers on fresh databases and wallets, all
//! in process on port 0.

pub mod medrec;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// A running anvil, killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    /// Where `npm ci --prefix contracts` puts anvil in this checkout.
    pub fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
    }

    /// Starts anvil at the `london` hardfork with chain id 31337 on 127.0.0.1 and a
    /// free port, plus `extra` arguments; waits until it listens.
    ///
    /// # Panics
    /// When anvil is not installed (with the command that installs it) or does not
    /// start: a test that needs anvil must fail, never skip.
    pub fn spawn(extra: &[&str]) -> Self {
        let path = Self::path();
        assert!(
            path.exists(),
            "anvil is not installed at {}: run `npm ci --prefix contracts` (scripts/test does)",
            path.display()
        );
        let mut child = Command::new(&path)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--hardfork",
                "london",
                "--chain-id",
                "31337",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("Listening on ") {
                        break format!("http://{}", addr.trim());
                    }
                }
                _ => panic!("anvil exited before listening"),
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
