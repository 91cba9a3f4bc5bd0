//! `medrec patient inbox` against `medrec chain`, both as real processes, with the
//! relationship made through JSON-RPC the way a provider's and a patient's software do.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, aliases::U40, keccak256},
    providers::{Provider, ProviderBuilder},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::genesis::dev_accounts;
use serde_json::Value;
use std::process::{Command, Stdio};

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_lists_what_happened_and_who_may_see_what() {
    let chain = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["chain", "--http", "127.0.0.1:0", "--json", "--ephemeral"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut chain = Guard(chain);
    let info: Value = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(chain.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let rpc = info["rpc_url"].as_str().unwrap().to_owned();
    let (registrar, relationships) =
        (address(&info["contracts"]["registrar"]), address(&info["contracts"]["relationships"]));
    let accounts = dev_accounts(6);
    let wallet = |i: usize| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(accounts[i].signer()))
            .connect_http(rpc.parse().unwrap())
    };
    let (provider, patient, delegate, viewer) =
        (accounts[1].address, accounts[2].address, accounts[3].address, accounts[4].address);
    let ok = |r: alloy::rpc::types::TransactionReceipt| assert!(r.status());
    let url = "https://gk.example".to_owned();
    let institution = Registrar::new(registrar, wallet(0));
    let call = institution.registerProvider(keccak256("provider"), provider, url, keccak256("key"));
    ok(call.send().await.unwrap().get_receipt().await.unwrap());
    // The patient creates the relationship from the provider's offer (the provider's
    // name encrypted: any 36 bytes here), already accepted.
    let by_patient = Relationships::new(relationships, wallet(2));
    let create = by_patient.create(delegate, keccak256("q"), keccak256("d"), vec![7u8; 36].into());
    ok(create.send().await.unwrap().get_receipt().await.unwrap());
    let grant = by_patient.grant(
        delegate,
        viewer,
        1,
        U40::ZERO,
        U40::from(4_000_000_000u64),
        alloy::primitives::Bytes::new(),
    );
    ok(grant.send().await.unwrap().get_receipt().await.unwrap());
    assert!(wallet(0).get_block_number().await.unwrap() > 0);

    let inbox = |who: Address| {
        let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
            .args(["patient", "inbox", "--json", "--rpc-url", &rpc])
            .args(["--relationships", &relationships.to_string()])
            .args(["--address", &who.to_string()])
            .env_remove("MEDREC_ADDRESS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let mine = inbox(patient);
    let kinds: Vec<&str> =
        mine["notices"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert!(kinds.contains(&"pointer-added") && kinds.contains(&"granted"), "{kinds:?}");
    let rel = &mine["relationships"][0];
    assert_eq!(rel["status"], "accepted", "{rel}");
    assert_eq!(address(&rel["viewers"][0]), viewer);
    let theirs = inbox(viewer);
    assert_eq!(theirs["notices"].as_array().unwrap().len(), 1, "{theirs}");
    assert_eq!(theirs["notices"][0]["kind"], "granted");
    assert!(inbox(accounts[5].address)["notices"].as_array().unwrap().is_empty());

    // A dead node is a clear error and a non-zero exit.
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["patient", "inbox", "--rpc-url", "http://127.0.0.1:9"])
        .args(["--relationships", &relationships.to_string(), "--address", &patient.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not answer"));
    chain.0.kill().unwrap();
}

/// Kills the chain process when the test ends, however it ends.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
