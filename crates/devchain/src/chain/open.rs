//! Creating and opening a chain: genesis with the funded development accounts, the
//! MedRec contracts deployed in the first blocks, the data directory (`chain.json`,
//! the block journal and state snapshots) and replaying it after a restart.

use super::{Block, Chain, ChainConfig, ChainError, Selection, tx_env};
use crate::{
    blocks::BlockStore,
    deploy::Deployment,
    evm::{BlockCtx, Evm, Mode},
    genesis::{DEV_BALANCE, DevAccount, dev_accounts},
    persist::{Fields, Journal, Loaded, PersistError, decode_block},
};
use alloy::{
    consensus::{EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, TxEnvelope, proofs},
    primitives::{Address, B64, B256, Bloom, Bytes, Log, TxKind, U256, keccak256},
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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

    /// The settings of the chain kept in `dir` (its `chain.json`), if there is one: what
    /// [`Chain::open`] must be given to open it.
    pub fn stored_config(dir: &Path) -> Result<Option<ChainConfig>, ChainError> {
        Ok(read_stored(&dir.join("chain.json"))?.map(|s| s.config))
    }

    /// Opens the chain kept in `dir`, or starts one there from `config`. Blocks are
    /// journaled before they are reported; a restart loads the last state snapshot and
    /// re-executes the blocks after it.
    pub fn open(config: ChainConfig, dir: &Path) -> Result<Self, ChainError> {
        let (journal, loaded) = Journal::open(dir)?;
        let meta_path = dir.join("chain.json");
        let stored = read_stored(&meta_path)?;
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
    /// [`SNAPSHOT_EVERY`](crate::persist::SNAPSHOT_EVERY) blocks).
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
            base_fee_per_gas: Some(if config.free_gas { 0 } else { config.initial_base_fee }),
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
        // At zero price on a free-gas chain too: the founding institution's contract
        // creations are bounded by the block, not by one sender's allowance.
        let gas_limit = 5_000_000;
        let tx = alloy::consensus::TxEip1559 {
            chain_id: self.config.chain_id,
            nonce: self.next_nonce(deployer.address),
            gas_limit,
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
}

fn read_stored(path: &Path) -> Result<Option<StoredChain>, PersistError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| PersistError::Corrupt(format!("chain.json: {e}")))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PersistError::Io(e)),
    }
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
