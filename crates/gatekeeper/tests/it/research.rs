//! Research bounties end to end: a real devchain served over JSON-RPC (instant or
//! Proof of Work, with real miners), a gatekeeper started by `serve::spawn` on a SQLite
//! store and research ledger in a temporary directory, and clients over HTTP.

use alloy::{
    consensus::TxEip1559,
    primitives::{Address, B256, TxKind, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
    transports::http::reqwest,
};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig, Selection},
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    miner::{MinerConfig, mine},
    node::{Node, SealMode},
    pow,
    server::{ServerHandle, serve as serve_rpc},
    sign::sign_eip1559,
};
use medrec_gatekeeper::{
    auth::{Request, random_nonce, sign_request},
    client::{ClientError, GatekeeperClient},
    limits::RateLimits,
    pointer::PointerQuery,
    serve::{ResearchSetup, RunningGatekeeper, ServeConfig, StoreUrl, spawn},
    server::Enrollment,
};
use medrec_primitives::RelationshipId;
use medrec_research::{
    aggregate::{PatientData, exact},
    ledger::Ledger,
    policy::{Offer, Policy},
    query::{BountyQuery, commitment_of_text},
};
use medrec_store::{
    RecordStore,
    audit::{AccessLog, Action, Decision, sqlite::SqliteAccessLog},
    fhir::Resource,
    sqlite::SqliteStore,
};
use medrec_synth as synthetic;
use serde_json::Value;
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

const CHAIN_ID: u64 = 31337;
/// Funded development accounts on these chains.
const ACCOUNTS: u32 = 40;
/// The founding certified institution (deployed the contracts).
const INSTITUTION: usize = 0;
/// The provider whose gatekeeper serves the bounties.
const PROVIDER: usize = 1;
/// The delegate of the first patient's relationship: it sends the pointer updates
/// that carry the bounties.
const CARRIER: usize = 3;
/// Research entities admitted by the institutions.
const RESEARCHER_A: usize = 4;
const RESEARCHER_B: usize = 5;
/// A miner never admitted.
const ROGUE: usize = 6;
/// Someone with no role.
const STRANGER: usize = 7;
/// Patient `i` of a cohort is dev account `FIRST_PATIENT + i`.
const FIRST_PATIENT: usize = 10;

/// Heart rate: every synthetic visit records one (category vital-signs).
const HEART_RATE: &str = "http://loinc.org|8867-4";
const WINDOW: &str = "date >= 2023-01-01 and date < 2026-01-01";

fn heart_rate(aggregate: &str) -> String {
    format!(
        "{aggregate}(Observation.valueQuantity) where code = {HEART_RATE} and {WINDOW} and range 0..300"
    )
}

/// ε per bounty of [`sharp_policy`].
const SHARP: f64 = 1e6;

/// A policy whose noise is negligible (ε = 10⁶ per bounty), so that a released value
/// equals the exact one to well under 0.01, with `k` and a budget of a million
/// bounties.
fn sharp_policy(k: usize) -> Policy {
    Policy { k, epsilon_per_bounty: SHARP, budget_per_researcher: SHARP * 1e6, ..Policy::default() }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-research-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `done` every 20 ms until it holds; panics with `what` after 60 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- the chain ------------------------------------------------------------------

/// A bounty as the chain recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Bounty {
    relationship: RelationshipId,
    seq: u64,
    owner: Address,
    commitment: B256,
    block: u64,
    /// The block's beneficiary (its miner).
    miner: Address,
}

impl Bounty {
    fn id(&self) -> String {
        format!("{}:{}", self.relationship.0, self.seq)
    }
}

/// A devchain with the MedRec contracts, served over JSON-RPC.
struct World {
    node: Node,
    rpc: ServerHandle,
    at: Deployment,
    accounts: Vec<DevAccount>,
}

/// The coinbase of the blocks the test seals itself on a Proof-of-Work chain (setup
/// transactions; no bounty is ever sealed with it).
const SETUP_SEALER: Address = Address::repeat_byte(0xee);

impl World {
    async fn new(seal: SealMode) -> Self {
        let config = ChainConfig {
            dev_accounts: ACCOUNTS,
            pow_initial_difficulty: 4_000,
            pow_target_block_secs: 1,
            ..ChainConfig::default()
        };
        let node = Node::new(Chain::new(config).unwrap(), seal);
        let at = node.with(Chain::deployment).expect("contracts are predeployed");
        let rpc = serve_rpc(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let world = Self { node, rpc, at, accounts: dev_accounts(ACCOUNTS) };
        let call = Registrar::registerProviderCall {
            identity: keccak256("provider"),
            account: world.address(PROVIDER),
            endpoint: "https://gk.example".into(),
            encryptionKey: keccak256("key"),
        };
        world.run(INSTITUTION, world.at.registrar, call.abi_encode());
        world
    }

    fn address(&self, i: usize) -> Address {
        self.accounts[i].address
    }

    fn signer(&self, i: usize) -> PrivateKeySigner {
        self.accounts[i].signer()
    }

    fn is_pow(&self) -> bool {
        self.node.seal_mode() == SealMode::Pow
    }

    /// Queues a transaction from dev account `from`; returns its hash.
    fn send(&self, from: usize, to: Address, input: Vec<u8>) -> B256 {
        let nonce = self.node.with(|c| c.next_nonce(self.address(from)));
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 1_000_000,
            max_fee_per_gas: 50_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: input.into(),
        };
        self.node.submit_raw(&sign_eip1559(&self.signer(from), tx)).expect("accepted")
    }

    /// Seals one block with everything pending, in process, as `coinbase`.
    fn seal(&self, coinbase: Address) -> u64 {
        let work = self.node.get_work(coinbase, &Selection::All);
        let nonce = pow::solve(work.seal_hash, work.difficulty, 0, u64::MAX).expect("solvable");
        self.node.submit_work(work.seal_hash, nonce).expect("sealed")
    }

    /// Makes sure `hashes` are mined (sealing them on a Proof-of-Work chain) and
    /// succeeded.
    fn confirm(&self, hashes: &[B256]) {
        if self.is_pow() && hashes.iter().any(|h| self.node.with(|c| c.receipt(h)).is_none()) {
            self.seal(SETUP_SEALER);
        }
        for h in hashes {
            let (block, i) = self.node.with(|c| c.receipt(h)).expect("the transaction is mined");
            assert!(block.receipts[i].success, "transaction {h} reverted");
        }
    }

    fn run(&self, from: usize, to: Address, input: Vec<u8>) {
        let hash = self.send(from, to, input);
        self.confirm(&[hash]);
    }

    fn head(&self) -> u64 {
        self.node.with(|c| c.latest().header.number)
    }

    /// The institutions admit `researcher` (one institution: its vote passes).
    fn admit(&self, researcher: usize) {
        let call = Registrar::proposeCall {
            action: 2, // Registrar.Action.AdmitResearcher
            subject: self.address(researcher),
        };
        self.run(INSTITUTION, self.at.registrar, call.abi_encode());
    }

    async fn is_researcher(&self, who: Address) -> bool {
        let reader =
            alloy::providers::ProviderBuilder::new().connect_http(self.rpc.url().parse().unwrap());
        Registrar::new(self.at.registrar, &reader).isResearcher(who).call().await.unwrap()
    }

    /// Creates the relationships of `patients` (dev account index, delegate) with
    /// [`PROVIDER`], and each patient accepts.
    fn relate(&self, patients: &[(usize, Address)]) -> Vec<RelationshipId> {
        let created: Vec<B256> = patients
            .iter()
            .map(|(p, delegate)| {
                let call = Relationships::createCall {
                    patient: self.address(*p),
                    delegate: *delegate,
                    queryCommitment: keccak256("Observation?category=vital-signs"),
                    dataHash: keccak256("data"),
                };
                self.send(PROVIDER, self.at.relationships, call.abi_encode())
            })
            .collect();
        self.confirm(&created);
        let accepted: Vec<B256> = patients
            .iter()
            .map(|(p, delegate)| {
                let call = Relationships::acceptCall { delegate: *delegate };
                self.send(*p, self.at.relationships, call.abi_encode())
            })
            .collect();
        self.confirm(&accepted);
        patients
            .iter()
            .map(|(p, delegate)| RelationshipId::derive(self.address(*p), *delegate))
            .collect()
    }

    /// Patients opt in or out of research.
    fn consent(&self, choices: &[(usize, Address, bool)]) {
        let sent: Vec<B256> = choices
            .iter()
            .map(|(p, delegate, opt_in)| {
                let call =
                    Relationships::setResearchConsentCall { delegate: *delegate, optIn: *opt_in };
                self.send(*p, self.at.relationships, call.abi_encode())
            })
            .collect();
        self.confirm(&sent);
    }

    /// Queues a pointer update of `patient`'s relationship (delegate [`CARRIER`])
    /// carrying the bounty `commitment`.
    fn queue_bounty(&self, patient: usize, commitment: B256, n: u64) -> B256 {
        let call = Relationships::updatePointerCall {
            patient: self.address(patient),
            pointerId: U256::ZERO,
            dataHash: keccak256(format!("data {n}")),
            bounty: commitment,
        };
        self.send(CARRIER, self.at.relationships, call.abi_encode())
    }

    /// `miner` mines the block holding `tx` (and only it) with the reference miner over
    /// JSON-RPC; on an instant chain, instant sealing is held meanwhile.
    async fn mine_only(&self, miner: Address, tx: B256) -> u64 {
        let config = MinerConfig {
            rpc_url: self.rpc.url(),
            coinbase: miner,
            blocks: Some(1),
            include: Some(vec![tx]),
            refresh: Duration::from_millis(200),
        };
        let mut sealed = None;
        mine(&config, |m| sealed = Some(m.block)).await.expect("mined");
        sealed.expect("one block")
    }

    /// A bounty on `patient`'s relationship, in a block that `miner` mines.
    async fn bounty_mined_by(&self, miner: Address, patient: usize, commitment: B256) -> Bounty {
        let n = self.head();
        if !self.is_pow() {
            self.node.hold(true).unwrap();
        }
        let tx = self.queue_bounty(patient, commitment, n);
        self.mine_only(miner, tx).await;
        if !self.is_pow() {
            self.node.hold(false).unwrap();
        }
        self.confirm(&[tx]);
        let found: Vec<Bounty> =
            self.bounties().into_iter().filter(|b| b.block == self.tx_block(tx)).collect();
        assert_eq!(found.len(), 1, "one bounty in the block");
        assert_eq!(found[0].owner, miner, "the miner owns it");
        found[0]
    }

    fn tx_block(&self, tx: B256) -> u64 {
        self.node.with(|c| c.receipt(&tx)).expect("mined").0.header.number
    }

    /// Every `BountyPosted` on chain, with the miner of its block.
    fn bounties(&self) -> Vec<Bounty> {
        let head = self.head();
        let mut out = Vec::new();
        for n in 0..=head {
            let block = self.node.with(|c| c.block(n)).expect("the block exists");
            for receipt in &block.receipts {
                for log in &receipt.logs {
                    if log.address != self.at.relationships {
                        continue;
                    }
                    if let Ok(e) = Relationships::BountyPosted::decode_log(log) {
                        out.push(Bounty {
                            relationship: RelationshipId(e.relId),
                            seq: e.seq.to(),
                            owner: e.owner,
                            commitment: e.commitment,
                            block: n,
                            miner: block.header.beneficiary,
                        });
                    }
                }
            }
        }
        out
    }
}

// ----- the provider and its gatekeeper ---------------------------------------------

/// A delegate address for patient `i` of a cohort (the first one is [`CARRIER`]).
fn delegate(world: &World, i: usize) -> Address {
    if i == 0 {
        world.address(CARRIER)
    } else {
        Address::from_word(keccak256(format!("delegate {i}")))
    }
}

/// A provider with a cohort of synthetic patients, each with an accepted relationship
/// enrolled at a research-serving gatekeeper.
struct Clinic {
    world: World,
    dir: PathBuf,
    running: RunningGatekeeper,
    relationships: Vec<RelationshipId>,
    cohort: Vec<PatientData>,
}

impl Clinic {
    /// `patients` synthetic patients (each with heart rates in [`WINDOW`]), none opted
    /// in, served with `policy`.
    async fn new(name: &str, seal: SealMode, patients: usize, policy: Policy) -> Self {
        let world = World::new(seal).await;
        world.admit(RESEARCHER_A);
        world.admit(RESEARCHER_B);
        let dir = temp_dir(name);
        let records = synthetic::generate(&synthetic::Options {
            patients,
            years: 3,
            seed: 6,
            reference_date: synthetic::DEFAULT_REFERENCE_DATE,
        });
        let store = SqliteStore::open(dir.join("records.db")).unwrap();
        let mut cohort = Vec::new();
        for r in &records {
            let observations: Vec<Value> = r
                .resources
                .iter()
                .filter(|x| x["resourceType"] == "Observation")
                .cloned()
                .collect();
            let mut all = vec![Resource::parse(r.patient.clone()).unwrap()];
            all.extend(observations.iter().map(|o| Resource::parse(o.clone()).unwrap()));
            store.update_all(all).await.unwrap();
            cohort.push(PatientData { patient: r.patient.clone(), resources: observations });
        }
        drop(store);
        let pairs: Vec<(usize, Address)> =
            (0..patients).map(|i| (FIRST_PATIENT + i, delegate(&world, i))).collect();
        let relationships = world.relate(&pairs);

        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            StoreUrl::Sqlite(dir.join("records.db")),
            world.rpc.url(),
            world.at.relationships,
            world.address(PROVIDER),
            CHAIN_ID,
        );
        config.reorg_depth = 0;
        config.poll = Duration::from_millis(50);
        config.limits = RateLimits::off();
        config.research = Some(ResearchSetup {
            registrar: world.at.registrar,
            policy,
            ledger: dir.join("research.db"),
        });
        let running = spawn(config).await.unwrap();
        let pointer = PointerQuery::parse("Observation?category=vital-signs").unwrap();
        for (rel, r) in relationships.iter().zip(&records) {
            let enrollment =
                Enrollment { patient: r.id.parse().unwrap(), pointers: vec![pointer.clone()] };
            running.gatekeeper().enroll(*rel, enrollment).unwrap();
        }
        let clinic = Self { world, dir, running, relationships, cohort };
        clinic.caught_up().await;
        clinic
    }

    /// Waits until the gatekeeper's consent index has every block mined so far.
    async fn caught_up(&self) {
        let head = self.world.head();
        until("the gatekeeper indexed the chain", || self.running.health().indexed >= head).await;
    }

    fn patient(&self, i: usize) -> (usize, Address) {
        (FIRST_PATIENT + i, delegate(&self.world, i))
    }

    /// Patients `who` opt in (`true`) or out.
    async fn consent(&self, who: impl IntoIterator<Item = usize>, opt_in: bool) {
        let choices: Vec<(usize, Address, bool)> = who
            .into_iter()
            .map(|i| {
                let (p, d) = self.patient(i);
                (p, d, opt_in)
            })
            .collect();
        self.world.consent(&choices);
        self.caught_up().await;
    }

    fn client(&self, who: usize) -> GatekeeperClient {
        GatekeeperClient::new(
            self.running.url(),
            self.world.address(PROVIDER),
            CHAIN_ID,
            self.world.signer(who),
        )
    }

    /// The provider publishes `text`; returns its commitment.
    async fn publish(&self, text: &str) -> B256 {
        self.client(PROVIDER).publish_bounty(text).await.expect("published")
    }

    /// A bounty with the query `text` (published by the provider) on the first patient's
    /// relationship, mined by dev account `miner`; the gatekeeper has indexed it.
    async fn bounty(&self, miner: usize, text: &str) -> Bounty {
        let commitment = self.publish(text).await;
        let b =
            self.world.bounty_mined_by(self.world.address(miner), FIRST_PATIENT, commitment).await;
        self.caught_up().await;
        b
    }

    async fn redeem(&self, who: usize, b: &Bounty) -> Result<Value, ClientError> {
        self.client(who).redeem(b.relationship, b.seq).await
    }

    /// The research ledger, opened beside the gatekeeper's own connection.
    fn ledger(&self) -> Ledger {
        Ledger::open(self.dir.join("research.db")).unwrap()
    }

    fn spent(&self, who: usize) -> f64 {
        self.ledger().spent(self.world.address(who)).unwrap()
    }

    fn released(&self, b: &Bounty) -> bool {
        self.ledger().answer(&b.id()).unwrap().is_some()
    }

    /// The exact (noise-free, unsuppressed) answer over the patients `who`: the number
    /// of contributing patients and the value.
    fn exact_over(&self, text: &str, who: impl IntoIterator<Item = usize>) -> (usize, f64) {
        let q: BountyQuery = text.parse().unwrap();
        let cohort: Vec<PatientData> = who.into_iter().map(|i| self.cohort[i].clone()).collect();
        let today = time::OffsetDateTime::now_utc().date();
        let result = exact(&q, &sharp_policy(1), &cohort, today);
        assert_eq!(result.cells.len(), 1, "one cell");
        let cell = &result.cells[0];
        let answer = serde_json::to_value(cell.answer.as_ref().expect("a value")).unwrap();
        (cell.patients, number(&answer))
    }

    async fn shutdown(self) {
        self.running.shutdown().await.unwrap();
        self.world.rpc.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number in an answer tagged by its kind (`{"mean": 71.5}`).
fn number(answer: &Value) -> f64 {
    let tagged = answer.as_object().unwrap_or_else(|| panic!("a tagged answer: {answer}"));
    assert_eq!(tagged.len(), 1, "{answer}");
    tagged.values().next().and_then(Value::as_f64).unwrap_or_else(|| panic!("a number: {answer}"))
}

/// The single (ungrouped) cell of a release.
fn single_cell(release: &Value) -> &Value {
    let cells = release["cells"].as_array().unwrap_or_else(|| panic!("cells in {release}"));
    assert_eq!(cells.len(), 1, "one cell: {release}");
    &cells[0]
}

/// The value of the single (ungrouped), unsuppressed cell of a release.
fn single_value(release: &Value) -> f64 {
    let cell = single_cell(release);
    assert_eq!(cell["suppressed"], false, "{release}");
    number(&cell["value"])
}

/// The refusal's status and sentence.
fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Refused { status, diagnostics }) => (status, diagnostics),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// ----- tests -----------------------------------------------------------------------

/// Two admitted researchers mine a Proof-of-Work chain against each other while the
/// provider posts bounties; each owns exactly the bounties of the blocks it sealed,
/// and can redeem its own but not the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_researchers_own_and_redeem_exactly_the_bounties_they_mined() {
    let clinic = Clinic::new("compete", SealMode::Pow, 1, sharp_policy(1)).await;
    let w = &clinic.world;
    assert!(w.is_researcher(w.address(RESEARCHER_A)).await);
    assert!(w.is_researcher(w.address(RESEARCHER_B)).await);
    clinic.consent([0], true).await;
    let text = heart_rate("count");
    let commitment = clinic.publish(&text).await;

    // Both researchers mine continuously (one block per round until told to stop),
    // each recording the blocks it sealed.
    let start = w.head();
    let miners = [w.address(RESEARCHER_A), w.address(RESEARCHER_B)];
    let sealed: [Arc<Mutex<BTreeSet<u64>>>; 2] = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = miners
        .iter()
        .zip(&sealed)
        .map(|(coinbase, record)| {
            let config = MinerConfig {
                rpc_url: w.rpc.url(),
                coinbase: *coinbase,
                blocks: Some(1),
                include: None,
                refresh: Duration::from_millis(100),
            };
            let (record, stop) = (Arc::clone(record), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    mine(&config, |m| {
                        record.lock().unwrap().insert(m.block);
                    })
                    .await
                    .expect("mining");
                }
            })
        })
        .collect();
    // The provider posts bounties one after the other; each confirms only when one of
    // the miners seals it. Go on until each researcher owns at least two.
    let mut posted = 0u64;
    loop {
        let tx = w.queue_bounty(FIRST_PATIENT, commitment, posted);
        posted += 1;
        until("a miner sealed the bounty", || w.node.with(|c| c.receipt(&tx)).is_some()).await;
        let owners: Vec<Address> = w.bounties().iter().map(|b| b.owner).collect();
        let each = miners.map(|m| owners.iter().filter(|o| **o == m).count());
        if posted >= 6 && each.iter().all(|n| *n >= 2) {
            break;
        }
        assert!(posted < 60, "after {posted} bounties one miner still owns fewer than two");
    }
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.expect("the miner stops after its round");
    }
    let end = w.head();

    let bounties = w.bounties();
    assert_eq!(bounties.len() as u64, posted, "every update carried one bounty");
    let reader = ProviderBuilder::new().connect_http(w.rpc.url().parse().unwrap());
    for b in &bounties {
        let block = reader.get_block_by_number(b.block.into()).await.unwrap().unwrap();
        assert_eq!(block.header.beneficiary, b.owner, "eth_getBlockByNumber's miner owns it");
        assert_eq!(
            b.owner,
            b.miner,
            "bounty {} is owned by the miner of block {}",
            b.id(),
            b.block
        );
        assert!(miners.contains(&b.owner), "a researcher mined bounty {}", b.id());
    }
    for (who, coinbase) in miners.iter().enumerate() {
        let blocks = sealed[who].lock().unwrap().clone();
        // What the miner says it sealed is what the chain credits it with.
        let credited: BTreeSet<u64> = (start + 1..=end)
            .filter(|n| w.node.with(|c| c.block(*n)).unwrap().header.beneficiary == *coinbase)
            .collect();
        assert_eq!(credited, blocks, "researcher {who}'s blocks");
        let owned: BTreeSet<(RelationshipId, u64)> = bounties
            .iter()
            .filter(|b| b.owner == *coinbase)
            .map(|b| (b.relationship, b.seq))
            .collect();
        let of_its_blocks: BTreeSet<(RelationshipId, u64)> = bounties
            .iter()
            .filter(|b| blocks.contains(&b.block))
            .map(|b| (b.relationship, b.seq))
            .collect();
        assert_eq!(
            owned, of_its_blocks,
            "researcher {who} owns exactly the bounties of its blocks"
        );
        assert!(owned.len() >= 2);
    }

    // Redeem: its own is served, the other's refused.
    clinic.caught_up().await;
    let own = *bounties.iter().find(|b| b.owner == miners[0]).unwrap();
    let other = *bounties.iter().find(|b| b.owner == miners[1]).unwrap();
    let answer = clinic.redeem(RESEARCHER_A, &own).await.expect("its own bounty is served");
    assert_eq!(answer["bounty"], own.id());
    assert_eq!(single_value(&answer["release"]).round(), 1.0, "one opted-in patient: {answer}");
    let spent = clinic.spent(RESEARCHER_A);
    assert_eq!(spent, SHARP, "the release spent its ε");
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &other).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("only its owner may redeem it"), "{why}");
    assert!(!clinic.released(&other), "nothing released for someone else's bounty");
    assert_eq!(clinic.spent(RESEARCHER_A), spent, "the refusal spent nothing");
    // Its owner can.
    clinic.redeem(RESEARCHER_B, &other).await.expect("the owner redeems it");
    clinic.shutdown().await;
}

/// A miner the institutions never admitted owns the bounties of its blocks on chain,
/// but the gatekeeper refuses to redeem them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_never_admitted_owns_bounties_but_cannot_redeem_them() {
    let clinic = Clinic::new("rogue", SealMode::Instant, 1, sharp_policy(1)).await;
    clinic.consent([0], true).await;
    let w = &clinic.world;
    assert!(!w.is_researcher(w.address(ROGUE)).await);
    let text = heart_rate("count");
    let b = clinic.bounty(ROGUE, &text).await;
    assert_eq!((b.owner, b.miner), (w.address(ROGUE), w.address(ROGUE)), "owned on chain");
    let (status, why) = refused(clinic.redeem(ROGUE, &b).await);
    assert_eq!(status, 403, "{why}");
    assert!(
        why.contains("is not a research entity admitted by the certified institutions"),
        "{why}"
    );
    assert!(!clinic.released(&b), "nothing released");
    assert_eq!(clinic.spent(ROGUE), 0.0);
    // Nor can an admitted researcher take it.
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("only its owner may redeem it"), "{why}");
    assert!(!clinic.released(&b));
    // The same bounty mined by an admitted researcher is served: admission was the reason.
    let good = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &good).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 1.0);
    clinic.shutdown().await;
}

/// Only the patients opted in at redemption time contribute: compared with the exact
/// computation over the opted-in patients only (and shown to differ from including
/// the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_patients_never_contribute() {
    const N: usize = 14;
    let clinic = Clinic::new("opt-out", SealMode::Instant, N, sharp_policy(10)).await;
    let (count, mean) = (heart_rate("count"), heart_rate("mean"));
    assert_eq!(clinic.exact_over(&count, 0..N), (N, N as f64), "every patient has values");

    // Patients 0..11 opt in; 11..14 never do.
    clinic.consent(0..11, true).await;
    let b = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 11.0, "the eleven opted in: {answer}");

    // Patient 10 opts out again: from now on, ten.
    clinic.consent([10], false).await;
    let b = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 10.0, "patient 10 left: {answer}");

    let (patients, opted_in) = clinic.exact_over(&mean, 0..10);
    assert_eq!(patients, 10);
    let (_, with_10) = clinic.exact_over(&mean, 0..11);
    let (_, everyone) = clinic.exact_over(&mean, 0..N);
    // The check below can tell the cohorts apart.
    assert!((with_10 - opted_in).abs() > 0.01, "{with_10} vs {opted_in}");
    assert!((everyone - opted_in).abs() > 0.01, "{everyone} vs {opted_in}");
    let b = clinic.bounty(RESEARCHER_A, &mean).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    let released = single_value(&answer["release"]);
    assert!(
        (released - opted_in).abs() < 0.001,
        "released {released}, exact over the opted-in {opted_in} (with patient 10: {with_10}, everyone: {everyone})"
    );
    clinic.shutdown().await;
}

/// A cohort below k (10) is suppressed: no value; at k it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_below_k_is_suppressed() {
    let clinic = Clinic::new("below-k", SealMode::Instant, 10, sharp_policy(10)).await;
    let text = heart_rate("mean");
    clinic.consent(0..9, true).await;
    let b = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("answered");
    let cell = single_cell(&answer["release"]);
    assert_eq!(cell["suppressed"], true, "{answer}");
    assert!(cell["value"].is_null(), "no value below k: {answer}");
    assert_eq!(answer["k"], 10);
    let (patients, exact_mean) = clinic.exact_over(&text, 0..9);
    assert_eq!(patients, 9, "nine contributed");
    assert!(!answer.to_string().contains(&format!("{exact_mean}")), "{answer}");

    clinic.consent([9], true).await;
    let b = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("answered");
    let (_, exact_mean) = clinic.exact_over(&text, 0..10);
    assert!((single_value(&answer["release"]) - exact_mean).abs() < 0.001, "{answer}");
    clinic.shutdown().await;
}

/// Asking again returns the stored answer and spends nothing; an exhausted budget is
/// refused and releases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_free_and_an_exhausted_budget_is_refused() {
    let policy =
        Policy { k: 1, epsilon_per_bounty: 0.5, budget_per_researcher: 1.0, ..Policy::default() };
    let clinic = Clinic::new("budget", SealMode::Instant, 3, policy).await;
    clinic.consent(0..3, true).await;
    let text = heart_rate("mean");
    let first = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &first).await.expect("served");
    assert_eq!(
        (&answer["epsilon"], &answer["spent"], &answer["replayed"]),
        (&0.5.into(), &0.5.into(), &false.into())
    );
    assert_eq!(clinic.spent(RESEARCHER_A), 0.5);
    for _ in 0..3 {
        let again = clinic.redeem(RESEARCHER_A, &first).await.expect("served again");
        assert_eq!(again["release"], answer["release"], "the same noisy answer");
        assert_eq!(again["replayed"], true);
        assert_eq!(clinic.spent(RESEARCHER_A), 0.5, "asking again spends nothing");
    }
    let second = clinic.bounty(RESEARCHER_A, &text).await;
    clinic.redeem(RESEARCHER_A, &second).await.expect("within the budget");
    assert_eq!(clinic.spent(RESEARCHER_A), 1.0);

    let third = clinic.bounty(RESEARCHER_A, &text).await;
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &third).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("privacy budget is exhausted"), "{why}");
    assert!(why.contains("1 of 1 spent"), "{why}");
    assert!(!clinic.released(&third), "nothing released");
    assert_eq!(clinic.spent(RESEARCHER_A), 1.0, "nothing spent");
    // The stored answers stay available; another researcher has its own budget.
    let again = clinic.redeem(RESEARCHER_A, &first).await.expect("a replay spends nothing");
    assert_eq!(again["release"], answer["release"]);
    let other = clinic.bounty(RESEARCHER_B, &text).await;
    clinic.redeem(RESEARCHER_B, &other).await.expect("B's budget is B's");
    assert_eq!(clinic.spent(RESEARCHER_B), 0.5);
    clinic.shutdown().await;
}

/// A stored text that no longer matches the commitment on chain, or a commitment to a
/// text the provider never published, releases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_unpublished_bounty_text_is_rejected() {
    let clinic = Clinic::new("tamper", SealMode::Instant, 2, sharp_policy(1)).await;
    clinic.consent(0..2, true).await;
    let b = clinic.bounty(RESEARCHER_A, &heart_rate("mean")).await;
    let reader = clinic.client(STRANGER);
    assert_eq!(reader.bounty_text(b.commitment).await.unwrap(), heart_rate("mean"));
    // Someone rewrites the published text behind the gatekeeper's back.
    let db = rusqlite::Connection::open(clinic.dir.join("research.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE research_queries SET text = ?1 WHERE commitment = ?2",
            [heart_rate("count"), b.commitment.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1, "the row was rewritten");
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 409, "{why}");
    assert!(why.contains("does not match the commitment on chain"), "{why}");
    assert!(!clinic.released(&b), "nothing released");
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0);
    let (status, why) = refused(reader.bounty_text(b.commitment).await);
    assert_eq!(
        status, 409,
        "the gatekeeper does not serve a text that fails its commitment: {why}"
    );

    // A commitment on chain to a text never published.
    let unpublished = commitment_of_text(&heart_rate("sum"));
    let b = clinic
        .world
        .bounty_mined_by(clinic.world.address(RESEARCHER_A), FIRST_PATIENT, unpublished)
        .await;
    clinic.caught_up().await;
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 404, "{why}");
    assert!(why.contains("has not published the text"), "{why}");
    assert!(!clinic.released(&b));
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0);
    clinic.shutdown().await;
}

/// A signed request with any path and body.
async fn signed(
    clinic: &Clinic,
    who: usize,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let gatekeeper = clinic.world.address(PROVIDER);
    let request = Request::new(method, path, body, now, random_nonce().unwrap(), gatekeeper);
    let headers = sign_request(&clinic.world.signer(who), CHAIN_ID, &request).unwrap();
    let url = format!("{}{path}", clinic.running.url());
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url).body(body.to_vec());
    for (name, value) in &headers {
        req = req.header(name.as_str(), value.to_str().unwrap());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The OperationOutcome's sentence.
fn diagnostics(body: &Value) -> &str {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["diagnostics"].as_str().unwrap()
}

/// Malformed ids, unknown bounties, bad or excluded or unoffered queries, and
/// publishing by someone other than the provider: clear errors, nothing released, and
/// the gatekeeper keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_the_gatekeeper_keeps_serving() {
    let offered = heart_rate("mean");
    let policy = Policy {
        offers: vec![Offer { name: "heart-rate".into(), query: offered.clone() }],
        ..sharp_policy(1)
    };
    let clinic = Clinic::new("bad-input", SealMode::Instant, 1, policy).await;
    clinic.consent([0], true).await;
    let rel = clinic.relationships[0];

    // Redemption paths.
    let cases = [
        ("/research/redeem/not-an-id/0".to_owned(), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/first", rel.0), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/-1", rel.0), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/0", rel.0), 404, "there is no bounty"),
        (format!("/research/redeem/{}/0", B256::repeat_byte(7)), 404, "there is no bounty"),
    ];
    for (path, status, says) in &cases {
        let (got, body) = signed(&clinic, RESEARCHER_A, "POST", path, b"").await;
        assert_eq!(got, *status, "{path}: {body}");
        assert!(diagnostics(&body).contains(says), "{path}: {body}");
    }
    // Query texts.
    let (got, body) = signed(&clinic, STRANGER, "GET", "/research/queries/xyz", b"").await;
    assert_eq!(got, 400, "{body}");
    let unknown = format!("/research/queries/{}", B256::repeat_byte(9));
    let (got, body) = signed(&clinic, STRANGER, "GET", &unknown, b"").await;
    assert_eq!(got, 404, "{body}");
    assert!(diagnostics(&body).contains("no query with that commitment"), "{body}");

    // Publishing.
    let provider = clinic.client(PROVIDER);
    let median = offered.replacen("mean", "median", 1);
    let excluded = format!(
        "mean(Observation.valueQuantity) where code = {HEART_RATE} and category = psychotherapy-notes and {WINDOW} and range 0..300"
    );
    let not_offered = heart_rate("count").replace("8867-4", "2498-4");
    let texts = [
        (median.as_str(), 400, "unknown aggregate 'median'"),
        ("", 400, "the query is empty"),
        (
            "mean(Observation.valueQuantity) where code = http://loinc.org|8867-4",
            400,
            "the query needs",
        ),
        (excluded.as_str(), 422, "excluded by the provider's policy"),
        (not_offered.as_str(), 422, "does not offer this query"),
    ];
    for (text, status, says) in texts {
        let (got, why) = refused(provider.publish_bounty(text).await);
        assert_eq!(got, status, "{text}: {why}");
        assert!(why.contains(says), "{text}: {why}");
    }
    let (got, body) =
        signed(&clinic, PROVIDER, "PUT", "/research/queries", &[0xff, 0xfe, 0x00]).await;
    assert_eq!(got, 400, "{body}");
    assert!(diagnostics(&body).contains("UTF-8"), "{body}");
    // A stranger the chain does not know is refused before any handler; an admitted
    // researcher by the route itself.
    for (who, says) in
        [(STRANGER, "nothing here for your address"), (RESEARCHER_A, "only the provider")]
    {
        let (got, why) = refused(clinic.client(who).publish_bounty(&offered).await);
        assert_eq!(got, 403, "{why}");
        assert!(why.contains(says), "{why}");
    }
    assert!(clinic.client(STRANGER).bounty_text(commitment_of_text(&offered)).await.is_err());
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0, "nothing released");

    // Still serving: the policy, publishing the offered query, and a redemption.
    let policy = clinic.client(STRANGER).research_policy().await.expect("the policy");
    assert_eq!(policy["k"], 1);
    assert_eq!(policy["offers"][0]["query"], offered.as_str());
    let commitment = offered.parse::<BountyQuery>().unwrap().commitment();
    assert_eq!(policy["offers"][0]["commitment"], commitment.to_string());
    let b = clinic.bounty(RESEARCHER_A, &offered).await;
    assert_eq!(b.commitment, commitment);
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(answer["release"]["query"], offered.as_str());
    clinic.shutdown().await;
}

/// Every release is in the access log, once per contributing relationship, with its
/// ε; contributing patients see it, others do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_release_is_in_the_access_log_with_its_epsilon() {
    let clinic = Clinic::new("log", SealMode::Instant, 3, sharp_policy(1)).await;
    clinic.consent(0..2, true).await;
    let b = clinic.bounty(RESEARCHER_A, &heart_rate("mean")).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    let epsilon = answer["epsilon"].as_f64().unwrap();
    assert_eq!(epsilon, SHARP);
    clinic.redeem(RESEARCHER_A, &b).await.expect("a replay");
    refused(clinic.redeem(RESEARCHER_B, &b).await);
    clinic.running.gatekeeper().flush_access_log().await;

    // Through GET /audit, as each patient.
    let researcher = clinic.world.address(RESEARCHER_A);
    for i in 0..3 {
        let entries = clinic.client(FIRST_PATIENT + i).audit(0).await.expect("the patient's log");
        let releases: Vec<&Value> = entries
            .iter()
            .map(|e| &e.entry)
            .filter(|e| e["action"] == "bounty-redemption")
            .collect();
        if i == 2 {
            assert!(releases.is_empty(), "an opted-out patient's data was not used: {releases:?}");
            continue;
        }
        assert_eq!(releases.len(), 1, "patient {i}: one release: {releases:?}");
        let e = releases[0];
        assert_eq!(e["decision"], "allow-researcher");
        assert_eq!(e["requester"].as_str().unwrap().parse::<Address>().unwrap(), researcher);
        let about: B256 = e["relationship"].as_str().unwrap().parse().unwrap();
        assert_eq!(about, clinic.relationships[i].0);
        assert_eq!(e["epsilon_bits"], epsilon.to_bits().to_string(), "{e}");
    }

    // Through the store's access log.
    let log = SqliteAccessLog::open(clinic.dir.join("records.db")).unwrap();
    let all = log.entries(0, 1000).await.unwrap();
    let redemptions: Vec<_> =
        all.iter().map(|e| &e.entry).filter(|e| e.action == Action::BountyRedemption).collect();
    let released: Vec<_> = redemptions
        .iter()
        .filter(|e| e.decision == Decision::AllowResearcher && e.epsilon.is_some())
        .collect();
    assert_eq!(released.len(), 2, "one entry per contributing relationship");
    let mut about: Vec<B256> = released.iter().map(|e| e.relationship.unwrap()).collect();
    about.sort();
    let mut expected = vec![clinic.relationships[0].0, clinic.relationships[1].0];
    expected.sort();
    assert_eq!(about, expected);
    assert!(released.iter().all(|e| e.epsilon == Some(SHARP) && e.requester == researcher));
    let replays = redemptions
        .iter()
        .filter(|e| e.decision == Decision::AllowResearcher && e.epsilon.is_none())
        .count();
    assert_eq!(replays, 1, "the replay is logged, spending nothing");
    let refusals: Vec<_> =
        redemptions.iter().filter(|e| e.decision.to_string() == "deny:not-owner").collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].requester, clinic.world.address(RESEARCHER_B));
    clinic.shutdown().await;
}
