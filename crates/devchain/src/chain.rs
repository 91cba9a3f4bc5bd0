//! The chain: blocks, receipts, the transaction pool, and sealing.
//!
//! [`Chain`] owns the world state ([`Evm`]) and the sealed blocks. Transactions enter
//! through [`Chain::submit`] (a signed, EIP-2718-encoded transaction, exactly what
//! `eth_sendRawTransaction` carries), which checks them the way a real node's pool
//! does; [`Chain::seal`] executes the executable ones into a new block.
//! Queries answer what the JSON-RPC layer needs.

use crate::{
    blocks::BlockStore,
    deploy::Deployment,
    evm::{BlockCtx, Evm, EvmError, Mode},
    genesis::{DEV_BALANCE, DevAccount, dev_accounts},
    persist::{Fields, Journal, Loaded, PersistError, SNAPSHOT_EVERY, decode_block},
};
use alloy::{
    consensus::{
        EMPTY_OMMER_ROOT_HASH, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction,
        TxEnvelope, TxType, proofs, transaction::SignerRecoverable,
    },
    eips::{
        eip1559::BaseFeeParams,
        eip2718::{Decodable2718, Encodable2718},
    },
    primitives::{Address, B64, B256, Bloom, Bytes, Log, TxKind, U256, keccak256},
    rpc::types::Filter,
};
use revm::context::{
    TxEnv,
    result::{ExecutionResult, Output},
};
use std::path::Path;
use std::sync::Arc;
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
};

/// How a chain starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainConfig {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Timestamp of the genesis block.
    pub genesis_timestamp: u64,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Base fee of the first block after genesis, wei.
    pub initial_base_fee: u64,
    /// Number of funded development accounts (from the standard test mnemonic).
    pub dev_accounts: u32,
    /// Whether to deploy the MedRec contracts in the first blocks, from dev account 0,
    /// with dev account 0 as the founding certified institution.
    pub deploy_medrec: bool,
    /// Difficulty of the first Proof-of-Work block.
    #[serde(default = "default_pow_difficulty")]
    pub pow_initial_difficulty: u64,
    /// Block time that Proof-of-Work difficulty steers towards, seconds.
    #[serde(default = "default_pow_block_secs")]
    pub pow_target_block_secs: u64,
}

const fn default_pow_difficulty() -> u64 {
    1 << 20
}

const fn default_pow_block_secs() -> u64 {
    4
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            genesis_timestamp: 1_767_225_600,
            block_gas_limit: 30_000_000,
            initial_base_fee: 1_000_000_000,
            dev_accounts: 10,
            deploy_medrec: true,
            pow_initial_difficulty: default_pow_difficulty(),
            pow_target_block_secs: default_pow_block_secs(),
        }
    }
}

/// Why a transaction was refused at the door (before any block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes are not a signed transaction.
    #[error("failed to decode signed transaction: {0}")]
    Decode(String),
    /// A type this chain (london) does not run.
    #[error("transaction type {0} not supported (london: legacy, EIP-2930 and EIP-1559 only)")]
    UnsupportedType(u8),
    /// A legacy transaction without EIP-155 replay protection.
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    Unprotected,
    /// Signed for another chain.
    #[error("invalid chain id for signer: have {have} want {want}")]
    WrongChainId {
        /// The transaction's chain id.
        have: u64,
        /// This chain's id.
        want: u64,
    },
    /// The signature does not recover to an address.
    #[error("invalid sender: the signature does not recover")]
    InvalidSignature,
    /// The same transaction was already received.
    #[error("already known")]
    AlreadyKnown,
    /// The nonce was already used.
    #[error("nonce too low: next nonce {next}, tx nonce {got}")]
    NonceTooLow {
        /// The sender's next nonce.
        next: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Too far ahead of the sender's next nonce.
    #[error(
        "nonce too high: next nonce {next}, tx nonce {got} (at most {max_gap} ahead are queued)"
    )]
    NonceTooHigh {
        /// The sender's next nonce.
        next: u64,
        /// The transaction's nonce.
        got: u64,
        /// How far ahead a nonce may be.
        max_gap: u64,
    },
    /// A pending transaction with the same nonce pays at least as much.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// Gas limit below the intrinsic cost.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        have: u64,
        /// The intrinsic gas.
        want: u64,
    },
    /// Gas limit above the block's.
    #[error("exceeds block gas limit: have {have}, block limit {limit}")]
    GasLimitTooHigh {
        /// The transaction's gas limit.
        have: u64,
        /// The block gas limit.
        limit: u64,
    },
    /// Fee cap below the base fee.
    #[error(
        "max fee per gas less than block base fee: maxFeePerGas: {max_fee}, baseFee: {base_fee}"
    )]
    FeeCapTooLow {
        /// The fee cap.
        max_fee: u128,
        /// The next block's base fee.
        base_fee: u64,
    },
    /// The chain stopped after its data directory failed.
    #[error("the chain stopped after a data directory failure ({0}); restart it")]
    Halted(String),
    /// Tip above fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Not enough balance for gas and value.
    #[error("insufficient funds for gas * price + value: have {have} want {want}")]
    InsufficientFunds {
        /// The sender's balance.
        have: U256,
        /// What the transaction may cost.
        want: U256,
    },
}

/// A transaction with its hash and recovered sender.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// The signed transaction.
    pub envelope: TxEnvelope,
    /// Its hash.
    pub hash: B256,
    /// Who signed it.
    pub sender: Address,
}

/// What executing a transaction in a block produced.
#[derive(Debug, Clone)]
pub struct TxReceipt {
    /// Whether it succeeded (status 1).
    pub success: bool,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Its logs.
    pub logs: Vec<Log>,
    /// Address of the contract it created, if any.
    pub contract_address: Option<Address>,
    /// Price per gas actually paid.
    pub effective_gas_price: u128,
    /// Return or revert data (kept for debugging and error reports).
    pub output: Bytes,
}

impl TxReceipt {
    /// The consensus form (with bloom), whose list hashes to the receipts root.
    pub fn envelope(&self, tx_type: TxType) -> ReceiptEnvelope<Log> {
        let receipt = Receipt {
            status: self.success.into(),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs.clone(),
        };
        let with_bloom = ReceiptWithBloom::new(receipt, self.bloom());
        match tx_type {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
        }
    }

    /// The logs bloom of this receipt.
    pub fn bloom(&self) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in &self.logs {
            bloom.accrue_log(log);
        }
        bloom
    }
}

/// A sealed block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Its header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// Its transactions, in order.
    pub txs: Vec<SignedTx>,
    /// Their receipts, in the same order.
    pub receipts: Vec<TxReceipt>,
}

/// Work handed to a Proof-of-Work miner: the block it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkTemplate {
    /// What the nonce must be found for.
    pub seal_hash: B256,
    /// The block's parent.
    pub parent_hash: B256,
    /// The block's number.
    pub number: u64,
    /// The miner, who becomes the block's coinbase (and owns its bounties).
    pub coinbase: Address,
    /// The block's timestamp.
    pub timestamp: u64,
    /// The block's difficulty.
    pub difficulty: U256,
    /// The transactions the block will hold, in order.
    pub txs: Vec<B256>,
}

/// Which pending transactions a new block includes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every executable transaction, in arrival order (per sender in nonce order),
    /// until the block is full.
    All,
    /// Only these (by hash), in arrival order, each with its sender's earlier nonces
    /// already mined or also listed; others wait.
    Only(Vec<B256>),
}

/// The block holding a mined transaction, and the transaction's index in it.
pub type MinedAt = (Arc<Block>, usize);

/// A log with where it sits in the chain.
#[derive(Debug, Clone)]
pub struct LocatedLog {
    /// The log.
    pub log: Log,
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp.
    pub block_timestamp: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Transaction index in the block.
    pub tx_index: u64,
    /// Log index in the block.
    pub log_index: u64,
}

#[derive(Debug, Clone)]
struct PoolTx {
    tx: SignedTx,
    arrival: u64,
}

/// Most nonces ahead of a sender's next nonce that the pool queues.
pub const MAX_NONCE_GAP: u64 = 64;

/// Errors of chain queries and sealing.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The EVM refused to run something.
    #[error(transparent)]
    Evm(#[from] EvmError),
    /// Deploying the MedRec contracts at genesis failed.
    #[error("deploying the MedRec contracts failed: {0}")]
    Deploy(String),
    /// The data directory could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The data directory holds a different chain than the one asked for.
    #[error(
        "the data directory holds another chain ({stored:?}) than the one asked for ({requested:?}); use another directory or the stored settings"
    )]
    ConfigMismatch {
        /// What the directory holds.
        stored: Box<ChainConfig>,
        /// What was asked for.
        requested: Box<ChainConfig>,
    },
    /// Replaying the journal did not reproduce a block.
    #[error("the data directory is inconsistent: replaying block {0} gives a different result")]
    Diverged(u64),
    /// The work was for an older head, or its transactions left the pool.
    #[error(
        "stale work: the chain moved on since it was handed out (head is block {head}); ask for new work"
    )]
    StaleWork {
        /// The current head.
        head: u64,
    },
    /// The nonce does not meet the work's target.
    #[error("the nonce does not meet the target of this work")]
    InvalidWork,
    /// A previous write to the data directory failed; the chain stopped taking blocks.
    #[error("the chain stopped after a data directory failure ({0}); restart it")]
    Halted(String),
}

/// The chain: state, blocks and pool.
#[derive(Debug)]
pub struct Chain {
    config: ChainConfig,
    evm: Evm,
    blocks: BlockStore,
    by_hash: HashMap<B256, u64>,
    tx_index: HashMap<B256, (u64, usize)>,
    pool: BTreeMap<Address, BTreeMap<u64, PoolTx>>,
    pool_hashes: HashMap<B256, (Address, u64)>,
    arrivals: u64,
    accounts: Vec<DevAccount>,
    deployment: Option<Deployment>,
    journal: Option<Journal>,
    halted: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredChain {
    config: ChainConfig,
    deployment: Option<Deployment>,
}

impl Chain {
    /// A new chain: genesis block with the funded development accounts and, if
    /// configured, the MedRec contracts deployed in blocks 1 to 3.
    pub fn new(config: ChainConfig) -> Result<Self, ChainError> {
        let mut chain = Self::genesis(config);
        if chain.config.deploy_medrec && !chain.accounts.is_empty() {
            chain.deployment = Some(chain.deploy_contracts()?);
        }
        Ok(chain)
    }

    /// A new chain that keeps nothing across restarts but spills its older blocks to
    /// an unnamed temporary file, so that its memory does not grow with its length
    /// (what `medrec chain --ephemeral` runs).
    pub fn new_spilled(config: ChainConfig) -> Result<Self, ChainError> {
        let mut chain = Self::genesis(config);
        let journal = Journal::anonymous()?;
        chain.blocks.use_disk(journal.reader()?);
        chain.journal = Some(journal);
        if chain.config.deploy_medrec && !chain.accounts.is_empty() {
            chain.deployment = Some(chain.deploy_contracts()?);
        }
        Ok(chain)
    }

    /// Opens the chain kept in `dir`, or starts one there from `config`. Blocks are
    /// journaled before they are reported; a restart loads the last state snapshot and
    /// re-executes the blocks after it.
    pub fn open(config: ChainConfig, dir: &Path) -> Result<Self, ChainError> {
        let (journal, loaded) = Journal::open(dir)?;
        let meta_path = dir.join("chain.json");
        let stored: Option<StoredChain> = match std::fs::read(&meta_path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| PersistError::Corrupt(format!("chain.json: {e}")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PersistError::Io(e).into()),
        };
        let Some(stored) = stored else {
            if !loaded.records.is_empty() {
                return Err(PersistError::Corrupt("blocks.log without chain.json".into()).into());
            }
            let mut chain = Self::genesis(config);
            chain.blocks.use_disk(journal.reader()?);
            chain.journal = Some(journal);
            if chain.config.deploy_medrec && !chain.accounts.is_empty() {
                chain.deployment = Some(chain.deploy_contracts()?);
            }
            let meta = StoredChain { config: chain.config.clone(), deployment: chain.deployment };
            let text = serde_json::to_vec_pretty(&meta).expect("serializable");
            write_atomically(&meta_path, &text)?;
            return Ok(chain);
        };
        if stored.config != config {
            return Err(ChainError::ConfigMismatch {
                stored: Box::new(stored.config),
                requested: Box::new(config),
            });
        }
        let mut chain = Self::genesis(stored.config);
        chain.deployment = stored.deployment;
        chain.blocks.use_disk(journal.reader()?);
        chain.restore(&journal, &loaded)?;
        drop(loaded);
        chain.journal = Some(journal);
        Ok(chain)
    }

    fn restore(&mut self, journal: &Journal, loaded: &Loaded) -> Result<(), ChainError> {
        let tip = loaded.records.len() as u64;
        let mut from = 1;
        if let Some(bytes) = journal.read_snapshot()? {
            let mut f = Fields(&bytes);
            let number = f.u64()?;
            let hash = B256::from_slice(f.take(32)?);
            let matches = number >= 1
                && number <= tip
                && decode_block(loaded.payload((number - 1) as usize))?.hash == hash;
            if matches {
                self.evm = Evm::decode_state(self.config.chain_id, &mut f)?;
                from = number + 1;
            } else {
                tracing::warn!(target: "medrec::devchain", number, "ignoring a snapshot that does not match the journal");
            }
        }
        for (i, location) in loaded.records.iter().enumerate() {
            let block = decode_block(loaded.payload(i))?;
            let number = block.header.number;
            if number != self.latest().header.number + 1
                || block.header.parent_hash != self.latest().hash
            {
                return Err(ChainError::Diverged(number));
            }
            if number >= from {
                self.replay(&block)?;
            }
            for (i, tx) in block.txs.iter().enumerate() {
                self.tx_index.insert(tx.hash, (number, i));
            }
            self.by_hash.insert(block.hash, number);
            self.blocks.push(block, Some(*location));
        }
        Ok(())
    }

    /// Re-executes a journaled block on the current state and checks the result.
    fn replay(&mut self, block: &Block) -> Result<(), ChainError> {
        let h = &block.header;
        let ctx = BlockCtx {
            number: h.number,
            timestamp: h.timestamp,
            coinbase: h.beneficiary,
            base_fee: h.base_fee_per_gas.unwrap_or(0),
            gas_limit: h.gas_limit,
            difficulty: h.difficulty,
        };
        let mut cumulative = 0;
        for (tx, stored) in block.txs.iter().zip(&block.receipts) {
            let result = self.evm.run(&ctx, tx_env(tx), Mode::Commit)?;
            cumulative += result.tx_gas_used();
            if result.is_success() != stored.success || cumulative != stored.cumulative_gas_used {
                return Err(ChainError::Diverged(h.number));
            }
        }
        Ok(())
    }

    /// Writes a state snapshot now (at clean shutdown, and every
    /// [`SNAPSHOT_EVERY`] blocks).
    pub fn snapshot(&self) -> Result<(), ChainError> {
        let Some(journal) = &self.journal else { return Ok(()) };
        let latest = self.latest();
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(&latest.header.number.to_le_bytes());
        out.extend_from_slice(latest.hash.as_slice());
        self.evm.encode_state(&mut out);
        journal.write_snapshot(&out)?;
        Ok(())
    }

    /// For bulk loading only: do not wait for the disk after each block (a crash may
    /// then lose recent blocks). Call [`Chain::flush`] at the end.
    pub fn set_sync_each_block(&mut self, on: bool) {
        if let Some(j) = &mut self.journal {
            j.set_sync_each(on);
        }
    }

    /// Waits until every sealed block is on disk.
    pub fn flush(&mut self) -> Result<(), ChainError> {
        if let Some(j) = &mut self.journal {
            j.flush()?;
        }
        Ok(())
    }

    fn genesis(config: ChainConfig) -> Self {
        let mut evm = Evm::new(config.chain_id, config.genesis_timestamp);
        let accounts = dev_accounts(config.dev_accounts);
        for a in &accounts {
            evm.fund(a.address, DEV_BALANCE);
        }
        let genesis = Header {
            parent_hash: B256::ZERO,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: Address::ZERO,
            state_root: keccak256(config.chain_id.to_be_bytes()),
            transactions_root: proofs::calculate_transaction_root::<TxEnvelope>(&[]),
            receipts_root: proofs::calculate_receipt_root::<ReceiptEnvelope<Log>>(&[]),
            logs_bloom: Bloom::ZERO,
            difficulty: U256::from(1u64),
            number: 0,
            gas_limit: config.block_gas_limit,
            gas_used: 0,
            timestamp: config.genesis_timestamp,
            extra_data: Bytes::from_static(b"medrec devchain"),
            mix_hash: B256::ZERO,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(config.initial_base_fee),
            ..Default::default()
        };
        let hash = genesis.hash_slow();
        Self {
            evm,
            blocks: BlockStore::new(Block { header: genesis, hash, txs: vec![], receipts: vec![] }),
            by_hash: HashMap::from([(hash, 0)]),
            tx_index: HashMap::new(),
            pool: BTreeMap::new(),
            pool_hashes: HashMap::new(),
            arrivals: 0,
            accounts,
            deployment: None,
            journal: None,
            halted: None,
            config,
        }
    }

    /// Deploys `Registrar` (dev account 0 the founding institution), `Relationships`
    /// and `AccessAnchors`, in that order, as ordinary signed transactions from dev
    /// account 0, one block each.
    fn deploy_contracts(&mut self) -> Result<Deployment, ChainError> {
        use alloy::sol_types::SolConstructor;
        use medrec_contracts::{AccessAnchors, Registrar, Relationships};
        let deployer = self.accounts[0].clone();
        let institutions = vec![deployer.address];
        let registrar_init = [
            Registrar::BYTECODE.as_ref(),
            &Registrar::constructorCall { institutions }.abi_encode(),
        ]
        .concat();
        let registrar = self.deploy_one(&deployer, registrar_init)?;
        let relationships_init = [
            Relationships::BYTECODE.as_ref(),
            &Relationships::constructorCall { registrar_: registrar }.abi_encode(),
        ]
        .concat();
        let relationships = self.deploy_one(&deployer, relationships_init)?;
        let anchors_init = [
            AccessAnchors::BYTECODE.as_ref(),
            &AccessAnchors::constructorCall { registrar_: registrar }.abi_encode(),
        ]
        .concat();
        let anchors = self.deploy_one(&deployer, anchors_init)?;
        Ok(Deployment { registrar, relationships, anchors })
    }

    fn deploy_one(&mut self, deployer: &DevAccount, init: Vec<u8>) -> Result<Address, ChainError> {
        let tx = alloy::consensus::TxEip1559 {
            chain_id: self.config.chain_id,
            nonce: self.next_nonce(deployer.address),
            gas_limit: 5_000_000,
            max_fee_per_gas: u128::from(self.next_base_fee()) * 2,
            max_priority_fee_per_gas: 0,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: init.into(),
        };
        let raw = crate::sign::sign_eip1559(&deployer.signer(), tx);
        let hash = self.submit(&raw).map_err(|e| ChainError::Deploy(e.to_string()))?;
        self.seal(Address::ZERO, self.latest().header.timestamp + 1, &Selection::All)?;
        match self.receipt(&hash) {
            Some((b, i)) if b.receipts[i].success => b.receipts[i]
                .contract_address
                .ok_or_else(|| ChainError::Deploy("no contract address".into())),
            other => Err(ChainError::Deploy(format!("deployment failed: {other:?}"))),
        }
    }

    // ----- configuration and state ----------------------------------------------------

    /// The chain id.
    pub const fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// The configuration.
    pub const fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The funded development accounts.
    pub fn dev_accounts(&self) -> &[DevAccount] {
        &self.accounts
    }

    /// Where the MedRec contracts were deployed at genesis, if they were.
    pub const fn deployment(&self) -> Option<Deployment> {
        self.deployment
    }

    /// The latest sealed block.
    pub fn latest(&self) -> &Block {
        self.blocks.latest()
    }

    /// Block by number (read back from the data directory if it is not in memory).
    pub fn block(&self, number: u64) -> Option<Arc<Block>> {
        self.blocks.get(number)
    }

    /// Block by hash.
    pub fn block_by_hash(&self, hash: &B256) -> Option<Arc<Block>> {
        self.by_hash.get(hash).and_then(|n| self.block(*n))
    }

    /// Balance at the latest block.
    pub fn balance(&self, account: Address) -> U256 {
        self.evm.balance(account)
    }

    /// Nonce at the latest block.
    pub fn nonce(&self, account: Address) -> u64 {
        self.evm.nonce(account)
    }

    /// The nonce the sender's next transaction needs, counting pending ones.
    pub fn next_nonce(&self, account: Address) -> u64 {
        let mut next = self.evm.nonce(account);
        if let Some(queue) = self.pool.get(&account) {
            while queue.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Code at the latest block.
    pub fn code(&self, account: Address) -> Bytes {
        self.evm.code(account)
    }

    /// Storage at the latest block.
    pub fn storage(&self, account: Address, slot: U256) -> U256 {
        self.evm.storage(account, slot)
    }

    /// The base fee the next block will have (EIP-1559).
    pub fn next_base_fee(&self) -> u64 {
        let parent = &self.latest().header;
        if parent.number == 0 {
            return self.config.initial_base_fee;
        }
        parent
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(self.config.initial_base_fee)
    }

    /// A transaction and, if mined, its block number and index.
    pub fn transaction(&self, hash: &B256) -> Option<(SignedTx, Option<MinedAt>)> {
        if let Some(&(number, index)) = self.tx_index.get(hash) {
            let block = self.block(number)?;
            return Some((block.txs[index].clone(), Some((block, index))));
        }
        let (sender, nonce) = self.pool_hashes.get(hash)?;
        Some((self.pool.get(sender)?.get(nonce)?.tx.clone(), None))
    }

    /// The block holding a mined transaction, and its index there (the receipt is
    /// `block.receipts[index]`).
    pub fn receipt(&self, hash: &B256) -> Option<(Arc<Block>, usize)> {
        let &(number, index) = self.tx_index.get(hash)?;
        Some((self.block(number)?, index))
    }

    /// Number of transactions waiting in the pool.
    pub fn pending_count(&self) -> usize {
        self.pool_hashes.len()
    }

    /// Logs matching `filter` in blocks `from..=to`.
    pub fn logs(&self, filter: &Filter, from: u64, to: u64) -> Vec<LocatedLog> {
        let mut out = Vec::new();
        let to = to.min(self.latest().header.number);
        for number in from..=to {
            let Some(block) = self.block(number) else { break };
            if !filter.matches_bloom(block.header.logs_bloom) {
                continue;
            }
            let mut log_index = 0;
            for (i, receipt) in block.receipts.iter().enumerate() {
                for log in &receipt.logs {
                    if filter.matches(log) {
                        out.push(LocatedLog {
                            log: log.clone(),
                            block_number: number,
                            block_hash: block.hash,
                            block_timestamp: block.header.timestamp,
                            tx_hash: block.txs[i].hash,
                            tx_index: i as u64,
                            log_index,
                        });
                    }
                    log_index += 1;
                }
            }
        }
        out
    }

    // ----- transactions ---------------------------------------------------------------

    /// Checks a signed transaction and queues it; returns its hash.
    pub fn submit(&mut self, raw: &[u8]) -> Result<B256, TxError> {
        let mut buf = raw;
        let envelope =
            TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))?;
        if !buf.is_empty() {
            return Err(TxError::Decode("trailing bytes after the transaction".into()));
        }
        self.submit_envelope(envelope)
    }

    /// Checks a decoded signed transaction and queues it; returns its hash.
    pub fn submit_envelope(&mut self, envelope: TxEnvelope) -> Result<B256, TxError> {
        if let Some(reason) = &self.halted {
            return Err(TxError::Halted(reason.clone()));
        }
        let tx_type = envelope.tx_type();
        if !matches!(tx_type, TxType::Legacy | TxType::Eip2930 | TxType::Eip1559) {
            return Err(TxError::UnsupportedType(tx_type as u8));
        }
        match envelope.chain_id() {
            None => return Err(TxError::Unprotected),
            Some(id) if id != self.config.chain_id => {
                return Err(TxError::WrongChainId { have: id, want: self.config.chain_id });
            }
            Some(_) => {}
        }
        let sender = envelope.recover_signer().map_err(|_| TxError::InvalidSignature)?;
        let hash = *envelope.tx_hash();
        if self.pool_hashes.contains_key(&hash) || self.tx_index.contains_key(&hash) {
            return Err(TxError::AlreadyKnown);
        }
        let next = self.evm.nonce(sender);
        let nonce = envelope.nonce();
        if nonce < next {
            return Err(TxError::NonceTooLow { next, got: nonce });
        }
        if nonce > next + MAX_NONCE_GAP {
            return Err(TxError::NonceTooHigh { next, got: nonce, max_gap: MAX_NONCE_GAP });
        }
        let intrinsic = intrinsic_gas(&envelope);
        if envelope.gas_limit() < intrinsic {
            return Err(TxError::IntrinsicGasTooLow {
                have: envelope.gas_limit(),
                want: intrinsic,
            });
        }
        if envelope.gas_limit() > self.config.block_gas_limit {
            return Err(TxError::GasLimitTooHigh {
                have: envelope.gas_limit(),
                limit: self.config.block_gas_limit,
            });
        }
        if let Some(tip) = envelope.max_priority_fee_per_gas()
            && tip > envelope.max_fee_per_gas()
        {
            return Err(TxError::TipAboveFeeCap);
        }
        let base_fee = self.next_base_fee();
        if envelope.max_fee_per_gas() < u128::from(base_fee) {
            return Err(TxError::FeeCapTooLow { max_fee: envelope.max_fee_per_gas(), base_fee });
        }
        let want = U256::from(envelope.gas_limit()) * U256::from(envelope.max_fee_per_gas())
            + envelope.value();
        let have = self.evm.balance(sender);
        if have < want {
            return Err(TxError::InsufficientFunds { have, want });
        }
        let queue = self.pool.entry(sender).or_default();
        if let Some(old) = queue.get(&nonce) {
            let bump = |old: u128| old + old / 10;
            let old_tip = old.tx.envelope.max_priority_fee_per_gas().unwrap_or(0);
            let new_tip = envelope.max_priority_fee_per_gas().unwrap_or(0);
            if envelope.max_fee_per_gas() < bump(old.tx.envelope.max_fee_per_gas())
                || new_tip < bump(old_tip)
            {
                return Err(TxError::ReplacementUnderpriced);
            }
            self.pool_hashes.remove(&old.tx.hash);
        }
        self.arrivals += 1;
        queue.insert(
            nonce,
            PoolTx { tx: SignedTx { envelope, hash, sender }, arrival: self.arrivals },
        );
        self.pool_hashes.insert(hash, (sender, nonce));
        Ok(hash)
    }

    /// Simulates `tx` on the latest state in the context of the next block (`eth_call`).
    pub fn simulate(&mut self, tx: TxEnv) -> Result<ExecutionResult, EvmError> {
        let block = self.next_block_ctx(self.latest().header.timestamp, Address::ZERO);
        self.evm.run(&block, tx, Mode::Simulate)
    }

    /// The context of the next block.
    pub fn next_block_ctx(&self, timestamp: u64, coinbase: Address) -> BlockCtx {
        let parent = &self.latest().header;
        BlockCtx {
            number: parent.number + 1,
            timestamp: timestamp.max(parent.timestamp),
            coinbase,
            base_fee: self.next_base_fee(),
            gas_limit: self.config.block_gas_limit,
            difficulty: U256::from(1u64),
        }
    }

    // ----- sealing --------------------------------------------------------------------

    /// Executes the selected pending transactions into a new block mined by `coinbase`
    /// at `timestamp` (never earlier than the parent's); returns its number. Seals an
    /// empty block when nothing is selected.
    pub fn seal(
        &mut self,
        coinbase: Address,
        timestamp: u64,
        selection: &Selection,
    ) -> Result<u64, ChainError> {
        if let Some(reason) = &self.halted {
            return Err(ChainError::Halted(reason.clone()));
        }
        let ctx = self.next_block_ctx(timestamp, coinbase);
        let chosen = self.choose(selection, ctx.gas_limit);
        self.execute_block(&ctx, chosen, None)
    }

    /// Work for a Proof-of-Work block mined by `coinbase`: the selected transactions
    /// that can surely execute (each sender's balance covers all of its selected
    /// transactions at their full gas limit and fee cap).
    pub fn prepare_work(
        &self,
        coinbase: Address,
        timestamp: u64,
        selection: &Selection,
    ) -> WorkTemplate {
        let mut ctx = self.next_block_ctx(timestamp, coinbase);
        let parent = &self.latest().header;
        let grandparent = parent.number.checked_sub(1).and_then(|n| self.block(n));
        ctx.difficulty = crate::pow::next_difficulty(
            parent,
            grandparent.as_deref().map(|b| &b.header),
            self.config.pow_initial_difficulty,
            self.config.pow_target_block_secs,
        );
        let mut spend: HashMap<Address, U256> = HashMap::new();
        let mut blocked = std::collections::HashSet::new();
        let chosen: Vec<SignedTx> = self
            .choose(selection, ctx.gas_limit)
            .into_iter()
            .filter(|t| {
                if blocked.contains(&t.sender) {
                    return false;
                }
                let cost = U256::from(t.envelope.gas_limit())
                    * U256::from(t.envelope.max_fee_per_gas())
                    + t.envelope.value();
                let total = spend.entry(t.sender).or_default();
                *total += cost;
                if *total > self.evm.balance(t.sender) {
                    blocked.insert(t.sender);
                    return false;
                }
                true
            })
            .collect();
        let root = proofs::calculate_transaction_root(
            &chosen.iter().map(|t| t.envelope.clone()).collect::<Vec<_>>(),
        );
        WorkTemplate {
            seal_hash: crate::pow::seal_hash(
                self.latest().hash,
                ctx.number,
                coinbase,
                ctx.timestamp,
                ctx.difficulty,
                root,
            ),
            parent_hash: self.latest().hash,
            number: ctx.number,
            coinbase,
            timestamp: ctx.timestamp,
            difficulty: ctx.difficulty,
            txs: chosen.iter().map(|t| t.hash).collect(),
        }
    }

    /// Seals the block of `work` with a nonce that solves it.
    pub fn seal_work(&mut self, work: &WorkTemplate, nonce: u64) -> Result<u64, ChainError> {
        if let Some(reason) = &self.halted {
            return Err(ChainError::Halted(reason.clone()));
        }
        let head = self.latest().header.number;
        if work.parent_hash != self.latest().hash {
            return Err(ChainError::StaleWork { head });
        }
        if !crate::pow::meets(work.seal_hash, nonce, work.difficulty) {
            return Err(ChainError::InvalidWork);
        }
        let mut chosen = Vec::with_capacity(work.txs.len());
        for hash in &work.txs {
            let Some((sender, n)) = self.pool_hashes.get(hash) else {
                return Err(ChainError::StaleWork { head });
            };
            chosen.push(self.pool[sender][n].tx.clone());
        }
        let mut ctx = self.next_block_ctx(work.timestamp, work.coinbase);
        ctx.difficulty = work.difficulty;
        self.execute_block(&ctx, chosen, Some((work.seal_hash, crate::pow::nonce_field(nonce))))
    }

    fn execute_block(
        &mut self,
        ctx: &BlockCtx,
        chosen: Vec<SignedTx>,
        pow: Option<(B256, B64)>,
    ) -> Result<u64, ChainError> {
        let ctx = ctx.clone();
        let mut txs = Vec::with_capacity(chosen.len());
        let mut receipts = Vec::with_capacity(chosen.len());
        let mut cumulative = 0u64;
        for tx in chosen {
            self.remove_from_pool(&tx);
            if cumulative + tx.envelope.gas_limit() > ctx.gas_limit {
                continue;
            }
            let env = tx_env(&tx);
            // A transaction no longer valid (an earlier one spent the funds) is dropped.
            let Ok(result) = self.evm.run(&ctx, env, Mode::Commit) else { continue };
            let (success, gas_used, logs, output, created) = match result {
                ExecutionResult::Success { gas, logs, output, .. } => {
                    let created = match &output {
                        Output::Create(_, addr) => *addr,
                        Output::Call(_) => None,
                    };
                    (true, gas.tx_gas_used(), logs, output.into_data(), created)
                }
                ExecutionResult::Revert { gas, output, .. } => {
                    (false, gas.tx_gas_used(), vec![], output, None)
                }
                ExecutionResult::Halt { gas, .. } => {
                    (false, gas.tx_gas_used(), vec![], Bytes::new(), None)
                }
            };
            cumulative += gas_used;
            receipts.push(TxReceipt {
                success,
                gas_used,
                cumulative_gas_used: cumulative,
                logs,
                contract_address: created,
                effective_gas_price: tx.envelope.effective_gas_price(Some(ctx.base_fee)),
                output,
            });
            txs.push(tx);
        }
        let block = self.build_block(&ctx, txs, receipts, cumulative, pow);
        let number = block.header.number;
        let mut location = None;
        if let Some(journal) = &mut self.journal {
            match journal.append(&block) {
                Ok(loc) => location = Some(loc),
                Err(e) => {
                    // The block is executed in memory but not durable: stop taking
                    // blocks rather than report one that a crash would lose.
                    self.halted = Some(e.to_string());
                    return Err(e.into());
                }
            }
        }
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (number, i));
        }
        self.by_hash.insert(block.hash, number);
        self.blocks.push(block, location);
        if self.journal.is_some() && number.is_multiple_of(SNAPSHOT_EVERY) {
            self.snapshot()?;
        }
        Ok(number)
    }

    fn build_block(
        &self,
        ctx: &BlockCtx,
        txs: Vec<SignedTx>,
        receipts: Vec<TxReceipt>,
        gas_used: u64,
        pow: Option<(B256, B64)>,
    ) -> Block {
        let parent = &self.latest().header;
        let parent_hash = self.latest().hash;
        let envelopes: Vec<ReceiptEnvelope<Log>> =
            receipts.iter().zip(&txs).map(|(r, t)| r.envelope(t.envelope.tx_type())).collect();
        let mut bloom = Bloom::ZERO;
        for r in &receipts {
            bloom.accrue_bloom(&r.bloom());
        }
        let transactions_root = proofs::calculate_transaction_root(
            &txs.iter().map(|t| t.envelope.clone()).collect::<Vec<_>>(),
        );
        let receipts_root = proofs::calculate_receipt_root(&envelopes);
        // Not a Merkle-Patricia state root: a hash chain over the parent's state
        // commitment and this block's receipts, which is what the devchain can keep
        // cheaply (documented in the devchain README).
        let state_root =
            keccak256([parent.state_root.as_slice(), receipts_root.as_slice()].concat());
        let header = Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: ctx.coinbase,
            state_root,
            transactions_root,
            receipts_root,
            logs_bloom: bloom,
            difficulty: ctx.difficulty,
            number: ctx.number,
            gas_limit: ctx.gas_limit,
            gas_used,
            timestamp: ctx.timestamp,
            extra_data: Bytes::new(),
            mix_hash: pow.map_or(B256::ZERO, |p| p.0),
            nonce: pow.map_or(B64::ZERO, |p| p.1),
            base_fee_per_gas: Some(ctx.base_fee),
            ..Default::default()
        };
        let hash = header.hash_slow();
        Block { header, hash, txs, receipts }
    }

    fn remove_from_pool(&mut self, tx: &SignedTx) {
        self.pool_hashes.remove(&tx.hash);
        if let Some(queue) = self.pool.get_mut(&tx.sender) {
            queue.remove(&tx.envelope.nonce());
            if queue.is_empty() {
                self.pool.remove(&tx.sender);
            }
        }
    }

    /// Picks pending transactions: per sender, contiguous nonces from the state's;
    /// across senders, by arrival.
    fn choose(&self, selection: &Selection, gas_limit: u64) -> Vec<SignedTx> {
        let wanted: Option<std::collections::HashSet<B256>> = match selection {
            Selection::All => None,
            Selection::Only(hashes) => Some(hashes.iter().copied().collect()),
        };
        let allowed = |t: &PoolTx| wanted.as_ref().is_none_or(|w| w.contains(&t.tx.hash));
        let mut heads = BinaryHeap::new();
        for (sender, queue) in &self.pool {
            let next = self.evm.nonce(*sender);
            if let Some(t) = queue.get(&next).filter(|t| allowed(t)) {
                heads.push(Reverse((t.arrival, *sender, next)));
            }
        }
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some(Reverse((_, sender, nonce))) = heads.pop() {
            let t = &self.pool[&sender][&nonce];
            if gas + t.tx.envelope.gas_limit() > gas_limit {
                continue;
            }
            gas += t.tx.envelope.gas_limit();
            out.push(t.tx.clone());
            if let Some(n) = self.pool[&sender].get(&(nonce + 1)).filter(|t| allowed(t)) {
                heads.push(Reverse((n.arrival, sender, nonce + 1)));
            }
        }
        out
    }
}

/// The EVM transaction for a signed transaction.
pub fn tx_env(tx: &SignedTx) -> TxEnv {
    let e = &tx.envelope;
    TxEnv {
        tx_type: e.tx_type() as u8,
        caller: tx.sender,
        gas_limit: e.gas_limit(),
        gas_price: e.max_fee_per_gas(),
        kind: e.kind(),
        value: e.value(),
        data: e.input().clone(),
        nonce: e.nonce(),
        chain_id: e.chain_id(),
        access_list: e.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: e.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

/// Intrinsic gas of a transaction at the london spec.
pub fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let data = tx.input();
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = data.len() as u64 - zeros;
    let mut gas = 21_000 + zeros * 4 + nonzeros * 16;
    if tx.kind() == TxKind::Create {
        gas += 32_000;
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
        }
    }
    gas
}

/// Encodes `tx` as the raw bytes `eth_sendRawTransaction` carries.
pub fn encode_raw(tx: &TxEnvelope) -> Bytes {
    tx.encoded_2718().into()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
