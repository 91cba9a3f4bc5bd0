//! `medrec provider` as real processes: `serve` against `medrec chain` (`serve`), and
//! `init / register / enroll / import / publish` against an in-process devchain and
//! gatekeeper (`workflow`).

mod serve;
mod workflow;

use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
};

/// A process of the binary, killed when dropped, with the JSON object it printed first.
struct Running {
    child: Child,
    info: Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and reads its first line of stdout as JSON.
fn start_json(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(args)
        .env_remove("MEDREC_STORE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    match serde_json::from_str(&line) {
        Ok(info) => Running { child, info },
        Err(e) => {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            panic!("not JSON ({e}): {line:?}; stderr: {err}")
        }
    }
}

/// `medrec chain` on a free port, in memory.
fn start_chain() -> Running {
    start_json(&["chain", "--http", "127.0.0.1:0", "--json", "--ephemeral"])
}

fn url(r: &Running) -> String {
    r.info["rpc_url"].as_str().unwrap().to_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const GATEKEEPER: &str = "0x6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

fn provider_serve(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medrec"));
    command
        .args(["provider", "serve", "--gatekeeper", GATEKEEPER])
        .args(args)
        // Flags only: no value from the environment of whoever runs the tests.
        .env_remove("MEDREC_STORE")
        .env_remove("RUST_LOG");
    command
}

fn fails(output: &Output) -> String {
    assert!(!output.status.success(), "it should have failed");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
