//! Benchmarks of the devchain, run by `medrec bench chain` (never by tests).
//!
//! - [`throughput`]: sustained MedRec grants per second through JSON-RPC over HTTP,
//!   against a `medrec chain` process and an anvil process on the same workload,
//!   with send-to-receipt latency percentiles.
//! - [`restart`]: a chain holding many transactions in a data directory, restarted as
//!   a `medrec chain` process: time until it serves RPC, and its resident memory.

use crate::{
    chain::{Chain, ChainConfig, Selection},
    genesis::{DevAccount, dev_accounts},
    sign::sign_eip1559,
};
use alloy::{
    consensus::TxEip1559,
    primitives::{Address, Bytes, TxKind, U256, aliases::U40, keccak256},
    sol_types::{SolCall, SolConstructor},
    transports::http::reqwest,
};
use medrec_contracts::{Registrar, Relationships};
use serde::Serialize;
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A process could not be started or did not say where it listens.
    #[error("starting {what} failed: {detail}")]
    Spawn {
        /// Which process.
        what: String,
        /// Why.
        detail: String,
    },
    /// An RPC call failed.
    #[error("RPC call {method} failed: {detail}")]
    Rpc {
        /// The method.
        method: String,
        /// Why.
        detail: String,
    },
    /// Something else.
    #[error("{0}")]
    Other(String),
}

/// A child process killed when dropped.
#[derive(Debug)]
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `exe args…` and waits for a line of stdout that `find` maps to a value.
fn spawn_until<T>(
    what: &str,
    exe: &Path,
    args: &[&str],
    mut find: impl FnMut(&str) -> Option<T>,
) -> Result<(Proc, T, Duration), BenchError> {
    let started = Instant::now();
    let mut child =
        Command::new(exe).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(
            |e| BenchError::Spawn { what: what.into(), detail: format!("{}: {e}", exe.display()) },
        )?;
    let stdout = child.stdout.take().expect("piped");
    let proc = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line =
            line.map_err(|e| BenchError::Spawn { what: what.into(), detail: e.to_string() })?;
        if let Some(v) = find(&line) {
            let elapsed = started.elapsed();
            std::thread::spawn(move || for _ in lines {});
            return Ok((proc, v, elapsed));
        }
    }
    Err(BenchError::Spawn { what: what.into(), detail: "it exited before serving".into() })
}

fn spawn_medrec(exe: &Path, extra: &[&str]) -> Result<(Proc, Value, Duration), BenchError> {
    let mut args = vec!["chain", "--http", "127.0.0.1:0", "--json"];
    args.extend_from_slice(extra);
    spawn_until("medrec chain", exe, &args, |l| serde_json::from_str::<Value>(l).ok())
}

fn spawn_anvil(exe: &Path) -> Result<(Proc, String), BenchError> {
    let args =
        ["--host", "127.0.0.1", "--port", "0", "--hardfork", "london", "--chain-id", "31337"];
    let (p, url, _) = spawn_until("anvil", exe, &args, |l| {
        l.strip_prefix("Listening on ").map(|a| format!("http://{}", a.trim()))
    })?;
    Ok((p, url))
}

/// A minimal JSON-RPC client (one HTTP connection pool, no fillers).
#[derive(Debug, Clone)]
struct Rpc {
    http: reqwest::Client,
    url: Arc<str>,
}

impl Rpc {
    fn new(url: &str) -> Self {
        Self { http: reqwest::Client::new(), url: url.into() }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, BenchError> {
        crate::client::call(&self.http, &self.url, method, params)
            .await
            .map_err(|detail| BenchError::Rpc { method: method.into(), detail })
    }

    async fn send(&self, raw: &Bytes) -> Result<Value, BenchError> {
        self.call("eth_sendRawTransaction", json!([raw])).await
    }

    /// Sends and polls for the receipt; returns it. Gives up after [`STALL`].
    async fn send_and_wait(&self, raw: &Bytes) -> Result<Value, BenchError> {
        let hash = self.send(raw).await?;
        let deadline = Instant::now() + STALL;
        loop {
            let r = self.call("eth_getTransactionReceipt", json!([hash])).await?;
            if !r.is_null() {
                return Ok(r);
            }
            if Instant::now() > deadline {
                return Err(BenchError::Other(format!(
                    "no receipt for {hash} within {} s: the node stalled",
                    STALL.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

struct Signer<'a> {
    account: &'a DevAccount,
    nonce: u64,
}

impl Signer<'_> {
    fn tx(&mut self, to: Option<Address>, input: Vec<u8>, gas_limit: u64) -> Bytes {
        let tx = TxEip1559 {
            chain_id: 31337,
            nonce: self.nonce,
            gas_limit,
            max_fee_per_gas: 50_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: to.map_or(TxKind::Create, TxKind::Call),
            value: U256::ZERO,
            access_list: Default::default(),
            input: input.into(),
        };
        self.nonce += 1;
        sign_eip1559(&self.account.signer(), tx)
    }
}

/// How long a transaction may wait for its receipt before the node counts as stalled.
const STALL: Duration = Duration::from_secs(30);

/// The `i`-th benchmark patient and its relationship's delegate (keys derived from
/// fixed labels: benchmark identities only).
fn bench_patient(i: usize) -> (DevAccount, Address) {
    let key = keccak256(format!("medrec bench patient {i}"));
    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(&key).expect("valid key");
    let delegate = Address::from_word(keccak256(format!("medrec bench delegate {i}")));
    (DevAccount { address: signer.address(), private_key: key }, delegate)
}

/// Deploys the contracts from dev account 5, registers provider 6, and gives each of
/// `patients` benchmark patients funds and an accepted relationship. Works on any node
/// with the standard dev accounts. Returns the relationships contract.
async fn setup_many(
    rpc: &Rpc,
    accounts: &[DevAccount],
    patients: usize,
) -> Result<Address, BenchError> {
    let (_, relationships) = setup(rpc, accounts).await?;
    let nonce_of = async |a: Address| -> Result<u64, BenchError> {
        let v = rpc.call("eth_getTransactionCount", json!([a, "latest"])).await?;
        u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)
            .map_err(|e| BenchError::Other(e.to_string()))
    };
    let mut funder = Signer { account: &accounts[4], nonce: nonce_of(accounts[4].address).await? };
    for i in 0..patients {
        let (patient, delegate) = bench_patient(i);
        let fund = TxEip1559 {
            chain_id: 31337,
            nonce: funder.nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 50_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(patient.address),
            value: U256::from(10u64).pow(U256::from(19u64)),
            access_list: Default::default(),
            input: Default::default(),
        };
        funder.nonce += 1;
        expect_success(&rpc.send_and_wait(&sign_eip1559(&funder.account.signer(), fund)).await?)?;
        let mut p = Signer { account: &patient, nonce: 0 };
        let create = Relationships::createCall {
            delegate,
            queryCommitment: keccak256("q"),
            dataHash: keccak256("d"),
            identity: BENCH_IDENTITY.into(),
        };
        expect_success(
            &rpc.send_and_wait(&p.tx(Some(relationships), create.abi_encode(), 200_000)).await?,
        )?;
    }
    Ok(relationships)
}

/// Deploys the contracts from dev account 5 and makes one accepted relationship
/// (provider 6, patient 7, delegate 8); returns the patient's signer state and the
/// relationships contract. Works on any node with the standard dev accounts.
async fn setup(rpc: &Rpc, accounts: &[DevAccount]) -> Result<(u64, Address), BenchError> {
    let (institution, provider, patient, delegate) =
        (&accounts[5], &accounts[6], &accounts[7], &accounts[8]);
    let nonce_of = async |a: Address| -> Result<u64, BenchError> {
        let v = rpc.call("eth_getTransactionCount", json!([a, "latest"])).await?;
        u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)
            .map_err(|e| BenchError::Other(e.to_string()))
    };
    let mut inst = Signer { account: institution, nonce: nonce_of(institution.address).await? };
    let registrar = institution.address.create(inst.nonce);
    let relationships = institution.address.create(inst.nonce + 1);
    let init = [
        Registrar::BYTECODE.as_ref(),
        &Registrar::constructorCall { institutions: vec![institution.address] }.abi_encode(),
    ]
    .concat();
    let steps = [
        inst.tx(None, init, 5_000_000),
        inst.tx(
            None,
            [
                Relationships::BYTECODE.as_ref(),
                &Relationships::constructorCall { registrar_: registrar }.abi_encode(),
            ]
            .concat(),
            5_000_000,
        ),
        inst.tx(
            Some(registrar),
            Registrar::registerProviderCall {
                identity: keccak256("provider"),
                account: provider.address,
                endpoint: "https://gk.example".into(),
                encryptionKey: keccak256("key"),
            }
            .abi_encode(),
            300_000,
        ),
    ];
    for raw in &steps {
        expect_success(&rpc.send_and_wait(raw).await?)?;
    }
    let mut pat = Signer { account: patient, nonce: nonce_of(patient.address).await? };
    let create = Relationships::createCall {
        delegate: delegate.address,
        queryCommitment: keccak256("q"),
        dataHash: keccak256("d"),
        identity: BENCH_IDENTITY.into(),
    };
    expect_success(
        &rpc.send_and_wait(&pat.tx(Some(relationships), create.abi_encode(), 200_000)).await?,
    )?;
    Ok((pat.nonce, relationships))
}

/// A stand-in for a provider's encrypted identity: 36 bytes, the size the contract takes.
const BENCH_IDENTITY: [u8; 36] = [0x5a; 36];

fn expect_success(receipt: &Value) -> Result<(), BenchError> {
    if receipt["status"] == "0x1" {
        Ok(())
    } else {
        Err(BenchError::Other(format!("setup transaction failed: {receipt}")))
    }
}

/// `n` signed grants from the patient, each to a new viewer.
fn grants(
    accounts: &[DevAccount],
    first_nonce: u64,
    relationships: Address,
    n: usize,
) -> Vec<Bytes> {
    let mut pat = Signer { account: &accounts[7], nonce: first_nonce };
    (0..n)
        .map(|i| {
            let grant = Relationships::grantCall {
                delegate: accounts[8].address,
                viewer: Address::from_word(keccak256((i as u64).to_be_bytes())),
                pointers: 1,
                notBefore: U40::ZERO,
                expiresAt: U40::from(4_000_000_000u64),
                sealedKey: Bytes::new(),
            };
            pat.tx(Some(relationships), grant.abi_encode(), 80_000)
        })
        .collect()
}

/// Throughput and latency of one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeThroughput {
    /// Transactions confirmed per second over the whole run.
    pub tx_per_sec: f64,
    /// Median send-to-receipt latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile send-to-receipt latency, milliseconds.
    pub p99_ms: f64,
    /// Transactions sent (all confirmed successfully).
    pub txs: usize,
}

/// The throughput benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// The devchain (`medrec chain --seal instant --ephemeral`).
    pub medrec: NodeThroughput,
    /// anvil 1.7.1 (`--hardfork london`, automine).
    pub anvil: NodeThroughput,
    /// `medrec.tx_per_sec / anvil.tx_per_sec` (goal ≥ 1.0).
    pub ratio: f64,
    /// Concurrent senders (patients), each with one request in flight.
    pub in_flight: usize,
}

/// Sends the grant workload to the node at `url`: `in_flight` patients, each sending
/// its grants one after another (so no sender ever has a nonce gap), all at once.
async fn drive(url: &str, txs: usize, in_flight: usize) -> Result<NodeThroughput, BenchError> {
    let rpc = Rpc::new(url);
    let accounts = dev_accounts(10);
    let relationships = setup_many(&rpc, &accounts, in_flight).await?;
    let per_worker = txs.div_ceil(in_flight);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..in_flight {
        let rpc = rpc.clone();
        let (patient, delegate) = bench_patient(w);
        let count = per_worker.min(txs.saturating_sub(w * per_worker));
        // Nonce 0 accepted the relationship.
        let mut signer_state = 1u64;
        let work: Vec<Bytes> = (0..count)
            .map(|i| {
                let mut s = Signer { account: &patient, nonce: signer_state };
                signer_state += 1;
                let grant = Relationships::grantCall {
                    delegate,
                    viewer: Address::from_word(keccak256(
                        ((w * per_worker + i) as u64).to_be_bytes(),
                    )),
                    pointers: 1,
                    notBefore: U40::ZERO,
                    expiresAt: U40::from(4_000_000_000u64),
                    sealedKey: Bytes::new(),
                };
                s.tx(Some(relationships), grant.abi_encode(), 80_000)
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(work.len());
            for raw in &work {
                let t = Instant::now();
                expect_success(&rpc.send_and_wait(raw).await?)?;
                latencies.push(t.elapsed());
            }
            Ok::<_, BenchError>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(txs);
    for t in tasks {
        latencies.extend(t.await.map_err(|e| BenchError::Other(e.to_string()))??);
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    Ok(NodeThroughput {
        tx_per_sec: txs as f64 / wall.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        txs,
    })
}

/// Runs the grant workload against a fresh `medrec chain` process and a fresh anvil.
pub async fn throughput(
    medrec_exe: &Path,
    anvil_exe: &Path,
    txs: usize,
    in_flight: usize,
) -> Result<ThroughputReport, BenchError> {
    let medrec = {
        let (_proc, info, _) = spawn_medrec(medrec_exe, &["--ephemeral"])?;
        let url = info["rpc_url"].as_str().unwrap_or_default().to_owned();
        drive(&url, txs, in_flight).await?
    };
    let anvil = {
        let (_proc, url) = spawn_anvil(anvil_exe)?;
        drive(&url, txs, in_flight).await?
    };
    Ok(ThroughputReport { ratio: medrec.tx_per_sec / anvil.tx_per_sec, medrec, anvil, in_flight })
}

/// Memory of an ephemeral chain after a long run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Grant transactions sent through JSON-RPC (one block each).
    pub txs: usize,
    /// Resident memory of the `medrec chain --ephemeral` process afterwards, MiB.
    pub rss_mib: f64,
    /// Throughput over the whole run.
    pub tx_per_sec: f64,
}

/// Sends `txs` grants to a `medrec chain --ephemeral` process, then reads its RSS.
pub async fn memory(
    medrec_exe: &Path,
    txs: usize,
    in_flight: usize,
) -> Result<MemoryReport, BenchError> {
    let (proc, info, _) = spawn_medrec(medrec_exe, &["--ephemeral"])?;
    let url = info["rpc_url"].as_str().unwrap_or_default().to_owned();
    let run = drive(&url, txs, in_flight).await?;
    Ok(MemoryReport { txs, rss_mib: rss_kib(proc.0.id()) / 1024.0, tx_per_sec: run.tx_per_sec })
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The restart benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct RestartReport {
    /// Transactions (one block each) in the data directory.
    pub txs: u64,
    /// Milliseconds from starting `medrec chain --data-dir` to its first answer.
    pub restart_ms: f64,
    /// Resident memory of that process once serving, MiB.
    pub rss_mib: f64,
    /// Size of the data directory, MiB.
    pub data_dir_mib: f64,
}

/// Fills `dir` with `txs` grant transactions (one per block), then restarts it as a
/// `medrec chain` process and measures.
pub fn restart(medrec_exe: &Path, dir: &Path, txs: u64) -> Result<RestartReport, BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Other(e.to_string());
    let _ = std::fs::remove_dir_all(dir);
    {
        let mut chain = Chain::open(ChainConfig::default(), dir).map_err(|e| err(&e))?;
        chain.set_sync_each_block(false);
        let accounts = dev_accounts(10);
        let d = chain.deployment().ok_or_else(|| BenchError::Other("no contracts".into()))?;
        let t = |c: &Chain| c.latest().header.timestamp + 1;
        let setup = |c: &mut Chain,
                     from: &DevAccount,
                     to: Address,
                     input: Vec<u8>|
         -> Result<(), BenchError> {
            let mut s = Signer { account: from, nonce: c.next_nonce(from.address) };
            c.submit(&s.tx(Some(to), input, 300_000)).map_err(|e| err(&e))?;
            let ts = t(c);
            c.seal(Address::ZERO, ts, &Selection::All).map_err(|e| err(&e))?;
            Ok(())
        };
        let (inst, prov, pat, del) = (&accounts[0], &accounts[6], &accounts[7], &accounts[8]);
        setup(
            &mut chain,
            inst,
            d.registrar,
            Registrar::registerProviderCall {
                identity: keccak256("provider"),
                account: prov.address,
                endpoint: "https://gk.example".into(),
                encryptionKey: keccak256("key"),
            }
            .abi_encode(),
        )?;
        setup(
            &mut chain,
            pat,
            d.relationships,
            Relationships::createCall {
                delegate: del.address,
                queryCommitment: keccak256("q"),
                dataHash: keccak256("d"),
                identity: BENCH_IDENTITY.into(),
            }
            .abi_encode(),
        )?;
        let first = chain.next_nonce(pat.address);
        for (i, raw) in
            grants(&accounts, first, d.relationships, txs as usize).into_iter().enumerate()
        {
            chain.submit(&raw).map_err(|e| err(&format!("grant {i}: {e}")))?;
            let ts = t(&chain);
            chain.seal(Address::ZERO, ts, &Selection::All).map_err(|e| err(&e))?;
        }
        chain.flush().map_err(|e| err(&e))?;
    }
    let dir_arg = dir.to_str().ok_or_else(|| BenchError::Other("data dir is not UTF-8".into()))?;
    let (proc, _, elapsed) = spawn_medrec(medrec_exe, &["--data-dir", dir_arg])?;
    let rss_kib = rss_kib(proc.0.id());
    drop(proc);
    let size: u64 = std::fs::read_dir(dir)
        .map_err(|e| err(&e))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(RestartReport {
        txs,
        restart_ms: elapsed.as_secs_f64() * 1e3,
        rss_mib: rss_kib / 1024.0,
        data_dir_mib: size as f64 / (1024.0 * 1024.0),
    })
}

/// Where the npm-installed anvil lives in a checkout.
pub fn default_anvil_path(repo_root: &Path) -> PathBuf {
    repo_root.join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}
