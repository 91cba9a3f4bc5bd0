//! The chain of the research tests: a devchain with the MedRec contracts served over
//! JSON-RPC (instant or Proof of Work), driven by dev accounts, and the bounties it
//! records.

use super::{ACCOUNTS, CARRIER, CHAIN_ID, INSTITUTION, PROVIDER};
use alloy::{
    consensus::TxEip1559,
    primitives::{Address, B256, TxKind, U256, keccak256},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
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
use medrec_primitives::RelationshipId;
use std::time::Duration;

/// A bounty as the chain recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Bounty {
    pub(crate) relationship: RelationshipId,
    pub(crate) seq: u64,
    pub(crate) owner: Address,
    pub(crate) commitment: B256,
    pub(crate) block: u64,
    /// The block's beneficiary (its miner).
    pub(crate) miner: Address,
}

impl Bounty {
    pub(crate) fn id(&self) -> String {
        format!("{}:{}", self.relationship.0, self.seq)
    }
}

/// A devchain with the MedRec contracts, served over JSON-RPC.
pub(crate) struct World {
    pub(crate) node: Node,
    pub(crate) rpc: ServerHandle,
    pub(crate) at: Deployment,
    pub(crate) accounts: Vec<DevAccount>,
}

/// The coinbase of the blocks the test seals itself on a Proof-of-Work chain (setup
/// transactions; no bounty is ever sealed with it).
const SETUP_SEALER: Address = Address::repeat_byte(0xee);

impl World {
    pub(crate) async fn new(seal: SealMode) -> Self {
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

    pub(crate) fn address(&self, i: usize) -> Address {
        self.accounts[i].address
    }

    pub(crate) fn signer(&self, i: usize) -> PrivateKeySigner {
        self.accounts[i].signer()
    }

    pub(crate) fn is_pow(&self) -> bool {
        self.node.seal_mode() == SealMode::Pow
    }

    /// Queues a transaction from dev account `from`; returns its hash.
    pub(crate) fn send(&self, from: usize, to: Address, input: Vec<u8>) -> B256 {
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
    pub(crate) fn seal(&self, coinbase: Address) -> u64 {
        let work = self.node.get_work(coinbase, &Selection::All);
        let nonce = pow::solve(work.seal_hash, work.difficulty, 0, u64::MAX).expect("solvable");
        self.node.submit_work(work.seal_hash, nonce).expect("sealed")
    }

    /// Makes sure `hashes` are mined (sealing them on a Proof-of-Work chain) and
    /// succeeded.
    pub(crate) fn confirm(&self, hashes: &[B256]) {
        if self.is_pow() && hashes.iter().any(|h| self.node.with(|c| c.receipt(h)).is_none()) {
            self.seal(SETUP_SEALER);
        }
        for h in hashes {
            let (block, i) = self.node.with(|c| c.receipt(h)).expect("the transaction is mined");
            assert!(block.receipts[i].success, "transaction {h} reverted");
        }
    }

    pub(crate) fn run(&self, from: usize, to: Address, input: Vec<u8>) {
        let hash = self.send(from, to, input);
        self.confirm(&[hash]);
    }

    pub(crate) fn head(&self) -> u64 {
        self.node.with(|c| c.latest().header.number)
    }

    /// The institutions admit `researcher` (one institution: its vote passes).
    pub(crate) fn admit(&self, researcher: usize) {
        let call = Registrar::proposeCall {
            action: 2, // Registrar.Action.AdmitResearcher
            subject: self.address(researcher),
        };
        self.run(INSTITUTION, self.at.registrar, call.abi_encode());
    }

    pub(crate) async fn is_researcher(&self, who: Address) -> bool {
        let reader =
            alloy::providers::ProviderBuilder::new().connect_http(self.rpc.url().parse().unwrap());
        Registrar::new(self.at.registrar, &reader).isResearcher(who).call().await.unwrap()
    }

    /// Each of `patients` (dev account index, delegate) creates its relationship with
    /// [`PROVIDER`]'s delegate from the provider's offer.
    pub(crate) fn relate(&self, patients: &[(usize, Address)]) -> Vec<RelationshipId> {
        let created: Vec<B256> = patients
            .iter()
            .map(|(p, delegate)| {
                let call = Relationships::createCall {
                    delegate: *delegate,
                    queryCommitment: keccak256("Observation?category=vital-signs"),
                    dataHash: keccak256("data"),
                    identity: vec![0x5a; 36].into(),
                };
                self.send(*p, self.at.relationships, call.abi_encode())
            })
            .collect();
        self.confirm(&created);
        patients
            .iter()
            .map(|(p, delegate)| RelationshipId::derive(self.address(*p), *delegate))
            .collect()
    }

    /// Patients opt in or out of research.
    pub(crate) fn consent(&self, choices: &[(usize, Address, bool)]) {
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
    pub(crate) fn queue_bounty(&self, patient: usize, commitment: B256, n: u64) -> B256 {
        let call = Relationships::updatePointerCall {
            account: self.address(patient),
            pointerId: U256::ZERO,
            dataHash: keccak256(format!("data {n}")),
            bounty: commitment,
        };
        self.send(CARRIER, self.at.relationships, call.abi_encode())
    }

    /// `miner` mines the block holding `tx` (and only it) with the reference miner over
    /// JSON-RPC; on an instant chain, instant sealing is held meanwhile.
    pub(crate) async fn mine_only(&self, miner: Address, tx: B256) -> u64 {
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
    pub(crate) async fn bounty_mined_by(
        &self,
        miner: Address,
        patient: usize,
        commitment: B256,
    ) -> Bounty {
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

    pub(crate) fn tx_block(&self, tx: B256) -> u64 {
        self.node.with(|c| c.receipt(&tx)).expect("mined").0.header.number
    }

    /// Every `BountyPosted` on chain, with the miner of its block.
    pub(crate) fn bounties(&self) -> Vec<Bounty> {
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
