use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

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

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["chain", "--http", "127.0.0.1:0", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    Running { child, info }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn send_transfers(
    url: &str,
    key: &str,
    n: usize,
) -> Vec<alloy::rpc::types::TransactionReceipt> {
    let signer: PrivateKeySigner = key.parse().unwrap();
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.parse().unwrap());
    let mut receipts = Vec::new();
    for _ in 0..n {
        let tx = TransactionRequest::default()
            .with_to(Address::repeat_byte(0x77))
            .with_value(U256::from(5u64));
        receipts.push(p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap());
    }
    receipts
}

fn url(r: &Running) -> String {
    r.info["rpc_url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn json_output_names_the_url_accounts_and_contracts() {
    let r = start(&["--ephemeral"]);
    assert_eq!(r.info["chain_id"], 31337);
    assert_eq!(r.info["accounts"].as_array().unwrap().len(), 10);
    assert_eq!(r.info["accounts"][0]["address"], "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    assert_eq!(r.info["contracts"]["registrar"], "0x5fbdb2315678afecb367f032d93f642f64180aa3");
    assert_eq!(r.info["contracts"]["anchors"], "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0");
    let p = ProviderBuilder::new().connect_http(url(&r).parse().unwrap());
    assert_eq!(p.get_chain_id().await.unwrap(), 31337);
    for contract in ["relationships", "anchors"] {
        let at = r.info["contracts"][contract].as_str().unwrap().parse().unwrap();
        assert!(!p.get_code_at(at).await.unwrap().is_empty(), "{contract} has code");
    }
}

#[tokio::test]
async fn a_killed_chain_restarts_with_every_reported_block() {
    let dir = temp_dir("kill");
    let dir_arg = dir.to_str().unwrap();
    let r = start(&["--data-dir", dir_arg]);
    let key = r.info["accounts"][1]["private_key"].as_str().unwrap().to_owned();
    let receipts = send_transfers(&url(&r), &key, 5).await;
    let last = receipts.last().unwrap().clone();
    // kill -9: no clean shutdown, no final snapshot.
    drop(r);
    let r = start(&["--data-dir", dir_arg]);
    assert_eq!(r.info["block_number"], last.block_number.unwrap());
    let p = ProviderBuilder::new().connect_http(url(&r).parse().unwrap());
    for receipt in &receipts {
        let again = p.get_transaction_receipt(receipt.transaction_hash).await.unwrap().unwrap();
        assert_eq!(again.block_hash, receipt.block_hash);
        assert!(again.status());
    }
    assert_eq!(p.get_balance(Address::repeat_byte(0x77)).await.unwrap(), U256::from(25u64));
    // And it keeps going from there.
    let more = send_transfers(&url(&r), &key, 1).await;
    assert_eq!(more[0].block_number, Some(last.block_number.unwrap() + 1));
    drop(r);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_it_cleanly_with_a_final_snapshot() {
    let dir = temp_dir("term");
    let r = start(&["--data-dir", dir.to_str().unwrap()]);
    let pid = r.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut r = r;
    let status = r.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(Path::new(&dir.join("state.snap")).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_are_explained() {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["chain", "--seal", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown sealing mode 'sometimes'"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["chain", "--ephemeral", "--data-dir", "/tmp/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn research_mine_seals_pow_blocks_with_its_coinbase() {
    let r = start(&["--ephemeral", "--seal", "pow", "--pow-difficulty", "5000"]);
    assert_eq!(r.info["seal"], "pow");
    let coinbase = "0x00000000000000000000000000000000000000c0";
    let out = tokio::task::spawn_blocking({
        let url = url(&r);
        move || {
            Command::new(env!("CARGO_BIN_EXE_medrec"))
                .args([
                    "research",
                    "mine",
                    "--rpc-url",
                    &url,
                    "--coinbase",
                    coinbase,
                    "--blocks",
                    "2",
                    "--json",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one JSON object per sealed block");
    let p = ProviderBuilder::new().connect_http(url(&r).parse().unwrap());
    for line in &lines {
        let n = line["block"].as_u64().unwrap();
        let block = p.get_block_by_number(n.into()).await.unwrap().unwrap();
        assert_eq!(block.header.beneficiary.to_string().to_lowercase(), coinbase);
        assert!(
            medrec_devchain::pow::verify_header(&block.header.inner),
            "block {n} proves its work"
        );
    }
}

#[test]
fn mining_a_node_that_is_not_there_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args([
            "research",
            "mine",
            "--rpc-url",
            "http://127.0.0.1:9",
            "--coinbase",
            "0x00000000000000000000000000000000000000c0",
            "--blocks",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the node at http://127.0.0.1:9 failed"), "{err}");
}

#[tokio::test]
async fn free_gas_is_remembered_by_the_data_directory() {
    use alloy::{primitives::keccak256, signers::local::PrivateKeySigner};
    use medrec_contracts::Registrar;
    let dir = temp_dir("free-gas");
    let dir_arg = dir.to_str().unwrap();
    let r = start(&["--data-dir", dir_arg, "--free-gas"]);
    assert_eq!(r.info["free_gas"], true);
    let p = ProviderBuilder::new().connect_http(url(&r).parse().unwrap());
    assert_eq!(p.get_gas_price().await.unwrap(), 0);
    drop(r);
    // Restarted without the flag: still free; the institution registers a key that
    // never held anything, at price 0.
    let r = start(&["--data-dir", dir_arg]);
    assert_eq!(r.info["free_gas"], true);
    let key = r.info["accounts"][0]["private_key"].as_str().unwrap();
    let institution: PrivateKeySigner = key.parse().unwrap();
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(institution))
        .connect_http(url(&r).parse().unwrap());
    assert_eq!(p.get_gas_price().await.unwrap(), 0);
    let registrar = r.info["contracts"]["registrar"].as_str().unwrap().parse().unwrap();
    let fresh = PrivateKeySigner::from_bytes(&keccak256("fresh patient")).unwrap();
    let receipt = Registrar::new(registrar, &p)
        .registerPatient(keccak256("patient"), fresh.address())
        .gas_price(0)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    drop(r);
    // A chain without free gas stays priced.
    let r = start(&["--ephemeral"]);
    assert_eq!(r.info["free_gas"], false);
    let p = ProviderBuilder::new().connect_http(url(&r).parse().unwrap());
    assert!(p.get_gas_price().await.unwrap() > 0);
    drop(r);
    let help = Command::new(env!("CARGO_BIN_EXE_medrec")).args(["chain", "--help"]).output();
    let help = String::from_utf8(help.unwrap().stdout).unwrap();
    assert!(help.contains("--free-gas"), "{help}");
    assert!(help.contains("Make gas free"), "{help}");
    std::fs::remove_dir_all(&dir).unwrap();
}
