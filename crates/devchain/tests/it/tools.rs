//! Unmodified Ethereum tools against the devchain's JSON-RPC: foundry's cast and viem
//! (both installed into contracts/node_modules by `npm ci --prefix contracts`).

use medrec_devchain::{
    chain::{Chain, ChainConfig},
    node::{Node, SealMode},
    server,
};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(path: &Path) -> &Path {
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix contracts` (scripts/test does)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_works_against_the_devchain() {
    let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
    let h = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let registrar = node.with(|c| c.deployment()).unwrap().registrar.to_string();
    let cast = repo().join("contracts/node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let cast = tool(&cast).to_owned();
    let url = h.url();
    let out = tokio::task::spawn_blocking(move || {
        let c = || {
            let mut cmd = Command::new(&cast);
            cmd.env("ETH_RPC_URL", &url).env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
            cmd
        };
        let mut seen = Vec::new();
        seen.push(run(c().args(["chain-id"])));
        seen.push(run(c().args(["block-number"])));
        seen.push(run(c().args(["call", &registrar, "institutionCount()(uint256)"])));
        let receipt = run(c().args([
            "send",
            "--private-key",
            KEY0,
            "--json",
            &registrar,
            "registerPatient(bytes32,address)",
            "0x1111111111111111111111111111111111111111111111111111111111111111",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        ]));
        let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
        seen.push(receipt["status"].as_str().unwrap().to_owned());
        seen.push(run(c().args([
            "call",
            &registrar,
            "resolve(bytes32)(address,uint8,uint40)",
            "0x1111111111111111111111111111111111111111111111111111111111111111",
        ])));
        // A refusal: cast shows the custom error's data.
        let err = c()
            .args([
                "call",
                "--from",
                "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
                &registrar,
                "registerPatient(bytes32,address)",
                "0x2222222222222222222222222222222222222222222222222222222222222222",
                "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            ])
            .output()
            .unwrap();
        seen.push(String::from_utf8_lossy(&err.stderr).into_owned());
        seen.push(run(c().args(["balance", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])));
        seen
    })
    .await
    .unwrap();
    assert_eq!(out[0], "31337");
    assert_eq!(out[1], "3", "genesis and three deployment blocks");
    assert_eq!(out[2], "1");
    assert_eq!(out[3], "0x1");
    assert!(out[4].starts_with("0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n1\n"), "{}", out[4]);
    // NotInstitution(address) has selector 0xbdc4ce88.
    assert!(out[5].contains("0xbdc4ce88"), "{}", out[5]);
    assert_eq!(out[6], "10000000000000000000000");
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viem_works_against_the_devchain() {
    let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
    let h = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let registrar = node.with(|c| c.deployment()).unwrap().registrar.to_string();
    tool(&repo().join("contracts/node_modules/viem/package.json"));
    let script = repo().join("contracts/tools/viem-check.mjs");
    let url = h.url();
    let out = tokio::task::spawn_blocking(move || {
        run(Command::new("node").arg(script).arg(url).arg(registrar))
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chainId"], 31337);
    assert_eq!(v["blockNumber"], 3, "genesis and three deployment blocks");
    assert_eq!(v["status"], "success");
    assert_eq!(v["logs"], 1);
    assert_eq!(v["resolved"], "0x90F79bf6EB2c4f870365E785982E1f101E93b906");
    assert_eq!(v["revert"], "NotInstitution", "viem decodes the custom error: {v}");
    assert_eq!(v["events"], serde_json::json!(["0x90F79bf6EB2c4f870365E785982E1f101E93b906"]));
    assert_eq!(v["fees"], true);
    h.shutdown().await.unwrap();
}
