//! An in-process EVM at the `london` spec: the execution core of the devchain.
//!
//! [`Evm`] keeps the world state (revm's in-memory database) and a block context
//! (number, timestamp, coinbase). Each transaction runs in its own block, as on an
//! instant-sealing chain: the block number and timestamp advance before it executes.
//! It executes transactions from a named sender without signatures; the JSON-RPC node
//! built on it (issue 3) verifies signatures before handing transactions here.

use alloy::primitives::{Address, Bytes, Log, U256};
use revm::{
    Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext,
    context::{
        TxEnv,
        result::{ExecutionResult, Output},
    },
    database::InMemoryDB,
    primitives::hardfork::SpecId,
    state::AccountInfo,
};

/// The EVM revision the devchain runs and the contracts are compiled for.
pub const SPEC: SpecId = SpecId::LONDON;

/// Gas limit of every block.
pub const BLOCK_GAS_LIMIT: u64 = 30_000_000;

/// Seconds between consecutive blocks.
pub const BLOCK_TIME: u64 = 12;

/// Errors of the EVM itself (not of the contract code it runs, see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    /// revm refused the transaction (bad nonce, gas above the block limit, ...).
    #[error("transaction rejected by the EVM: {0}")]
    Rejected(String),
    /// A deployment succeeded but produced no contract address.
    #[error("deployment returned no contract address")]
    NoAddress,
}

/// What executing a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to the end; its state changes are committed.
    Success {
        /// Gas used, after refunds (what a receipt reports).
        gas_used: u64,
        /// Logs emitted.
        logs: Vec<Log>,
        /// Return data.
        output: Bytes,
    },
    /// It reverted; `output` holds the revert data (a custom error, usually).
    Revert {
        /// Gas used.
        gas_used: u64,
        /// Revert data.
        output: Bytes,
    },
    /// It halted exceptionally (out of gas, invalid opcode, ...).
    Halt {
        /// Gas used (all of the limit, usually).
        gas_used: u64,
        /// What went wrong.
        reason: String,
    },
}

impl Outcome {
    /// Gas used, whatever the outcome.
    pub const fn gas_used(&self) -> u64 {
        match self {
            Self::Success { gas_used, .. }
            | Self::Revert { gas_used, .. }
            | Self::Halt { gas_used, .. } => *gas_used,
        }
    }
}

/// The state and block context of an in-process chain.
#[derive(Debug)]
pub struct Evm {
    db: InMemoryDB,
    chain_id: u64,
    number: u64,
    timestamp: u64,
    coinbase: Address,
}

impl Evm {
    /// An empty chain with id `chain_id` at block 0, timestamp `genesis_time`.
    pub fn new(chain_id: u64, genesis_time: u64) -> Self {
        Self {
            db: InMemoryDB::default(),
            chain_id,
            number: 0,
            timestamp: genesis_time,
            coinbase: Address::ZERO,
        }
    }

    /// The chain id.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Number of the last block.
    pub const fn block_number(&self) -> u64 {
        self.number
    }

    /// Timestamp of the last block.
    pub const fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Sets the coinbase (miner) of the blocks that follow.
    pub const fn set_coinbase(&mut self, coinbase: Address) {
        self.coinbase = coinbase;
    }

    /// Moves the clock forward by `seconds` (the next block is that much later).
    pub const fn advance_time(&mut self, seconds: u64) {
        self.timestamp += seconds;
    }

    /// Credits `wei` to `account`.
    pub fn fund(&mut self, account: Address, wei: U256) {
        let mut info =
            self.db.cache.accounts.get(&account).map(|a| a.info.clone()).unwrap_or_default();
        info.balance += wei;
        self.db.insert_account_info(account, info);
    }

    /// Balance of `account`.
    pub fn balance(&self, account: Address) -> U256 {
        self.account(account).balance
    }

    /// Nonce of `account`.
    pub fn nonce(&self, account: Address) -> u64 {
        self.account(account).nonce
    }

    /// Runtime code of `account` (empty for externally owned accounts).
    pub fn code(&self, account: Address) -> Bytes {
        self.account(account).code.map(|c| c.original_bytes()).unwrap_or_default()
    }

    /// Storage slot `slot` of `account`.
    pub fn storage(&self, account: Address, slot: U256) -> U256 {
        self.db
            .cache
            .accounts
            .get(&account)
            .and_then(|a| a.storage.get(&slot).copied())
            .unwrap_or_default()
    }

    fn account(&self, account: Address) -> AccountInfo {
        self.db.cache.accounts.get(&account).map(|a| a.info.clone()).unwrap_or_default()
    }

    /// Deploys `init_code` from `from` in a new block; returns the contract's address
    /// and the outcome. A reverted deployment is an `Ok` with a `Revert` outcome.
    pub fn deploy(
        &mut self,
        from: Address,
        init_code: Bytes,
    ) -> Result<(Option<Address>, Outcome), EvmError> {
        let nonce = self.nonce(from);
        let tx = self.tx(from, nonce).create().data(init_code);
        let result = self.execute(tx)?;
        let address = match &result {
            ExecutionResult::Success { output: Output::Create(_, addr), .. } => {
                Some(addr.ok_or(EvmError::NoAddress)?)
            }
            _ => None,
        };
        Ok((address, outcome(result)))
    }

    /// Sends a transaction calling `to` with `data` from `from`, in a new block, and
    /// commits its effects when it succeeds.
    pub fn transact(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<Outcome, EvmError> {
        let nonce = self.nonce(from);
        let tx = self.tx(from, nonce).call(to).data(data);
        self.execute(tx).map(outcome)
    }

    /// Runs a call against the current state without committing it (`eth_call`), in
    /// the context of the next block.
    pub fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Outcome, EvmError> {
        let nonce = self.nonce(from);
        let tx = self
            .tx(from, nonce)
            .call(to)
            .data(data)
            .build()
            .map_err(|e| EvmError::Rejected(format!("{e:?}")))?;
        let block = self.next_block();
        self.run(&block, tx, Mode::Simulate).map(outcome)
    }

    fn tx(&self, from: Address, nonce: u64) -> revm::context::tx::TxEnvBuilder {
        TxEnv::builder()
            .caller(from)
            .nonce(nonce)
            .chain_id(Some(self.chain_id))
            .gas_limit(BLOCK_GAS_LIMIT)
            .gas_price(0)
    }

    fn execute(
        &mut self,
        tx: revm::context::tx::TxEnvBuilder,
    ) -> Result<ExecutionResult, EvmError> {
        let tx = tx.build().map_err(|e| EvmError::Rejected(format!("{e:?}")))?;
        let block = self.next_block();
        let result = self.run(&block, tx, Mode::Commit)?;
        self.number = block.number;
        self.timestamp = block.timestamp;
        Ok(result)
    }

    fn next_block(&self) -> BlockCtx {
        BlockCtx {
            number: self.number + 1,
            timestamp: self.timestamp + BLOCK_TIME,
            coinbase: self.coinbase,
            base_fee: 0,
            gas_limit: BLOCK_GAS_LIMIT,
            difficulty: U256::from(1u64),
        }
    }

    /// Executes `tx` in the context of `block`. In [`Mode::Commit`] its effects are
    /// applied to the state (even when it reverts: nonce and gas are spent); in
    /// [`Mode::Simulate`] nothing is kept, and the nonce and base-fee checks are off
    /// (what `eth_call` and `eth_estimateGas` need).
    pub fn run(
        &mut self,
        block: &BlockCtx,
        tx: TxEnv,
        mode: Mode,
    ) -> Result<ExecutionResult, EvmError> {
        run_on(&mut self.db, self.chain_id, block, tx, mode)
    }

    /// Simulates `tx` (as [`Mode::Simulate`]) on the state that `before` leaves when
    /// executed first, in order, as in a block (one that fails is skipped); nothing is
    /// kept. What a pool checks a transaction against: the pending state.
    pub fn simulate_after(
        &self,
        block: &BlockCtx,
        before: impl IntoIterator<Item = TxEnv>,
        tx: TxEnv,
    ) -> Result<ExecutionResult, EvmError> {
        let mut overlay = revm::database::CacheDB::new(&self.db);
        for earlier in before {
            let _ = run_on(&mut overlay, self.chain_id, block, earlier, Mode::Commit);
        }
        run_on(&mut overlay, self.chain_id, block, tx, Mode::Simulate)
    }
}

fn run_on<DB>(
    db: DB,
    chain_id: u64,
    block: &BlockCtx,
    tx: TxEnv,
    mode: Mode,
) -> Result<ExecutionResult, EvmError>
where
    DB: revm::Database + revm::DatabaseCommit,
    DB::Error: std::fmt::Display,
{
    let simulate = mode == Mode::Simulate;
    let mut evm = Context::mainnet()
        .with_db(db)
        .modify_cfg_chained(|c| {
            c.chain_id = chain_id;
            // Not `c.spec = SPEC`: the gas schedule must follow the spec too.
            c.set_spec_and_mainnet_gas_params(SPEC);
            c.disable_nonce_check = simulate;
            c.disable_base_fee = simulate;
        })
        .modify_block_chained(|b| {
            b.number = U256::from(block.number);
            b.timestamp = U256::from(block.timestamp);
            b.beneficiary = block.coinbase;
            b.gas_limit = block.gas_limit;
            b.basefee = block.base_fee;
            b.difficulty = block.difficulty;
            b.prevrandao = None;
        })
        .build_mainnet();
    match mode {
        Mode::Commit => evm.transact_commit(tx).map_err(|e| EvmError::Rejected(e.to_string())),
        Mode::Simulate => {
            evm.transact(tx).map(|r| r.result).map_err(|e| EvmError::Rejected(e.to_string()))
        }
    }
}

/// Whether [`Evm::run`] keeps the effects of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply the effects (a transaction in a block).
    Commit,
    /// Discard them (a call or a gas estimate).
    Simulate,
}

/// The block a transaction executes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCtx {
    /// Block number.
    pub number: u64,
    /// Unix timestamp, seconds.
    pub timestamp: u64,
    /// The miner, who receives priority fees (and owns the block's bounties).
    pub coinbase: Address,
    /// EIP-1559 base fee, wei.
    pub base_fee: u64,
    /// Gas limit of the block.
    pub gas_limit: u64,
    /// Proof-of-Work difficulty.
    pub difficulty: U256,
}

/// Converts revm's result into an [`Outcome`].
pub fn outcome(result: ExecutionResult) -> Outcome {
    match result {
        ExecutionResult::Success { gas, logs, output, .. } => {
            Outcome::Success { gas_used: gas.tx_gas_used(), logs, output: output.into_data() }
        }
        ExecutionResult::Revert { gas, output, .. } => {
            Outcome::Revert { gas_used: gas.tx_gas_used(), output }
        }
        ExecutionResult::Halt { gas, reason, .. } => {
            Outcome::Halt { gas_used: gas.tx_gas_used(), reason: format!("{reason:?}") }
        }
    }
}

impl Evm {
    /// Encodes the world state (accounts, code, storage) for a snapshot.
    pub fn encode_state(&self, out: &mut Vec<u8>) {
        let accounts: Vec<_> = self
            .db
            .cache
            .accounts
            .iter()
            .filter(|(_, a)| {
                !(a.info.is_empty() && a.storage.is_empty())
                    || a.account_state != revm::database::AccountState::NotExisting
            })
            .collect();
        out.extend_from_slice(&(accounts.len() as u32).to_le_bytes());
        for (address, account) in accounts {
            out.extend_from_slice(address.as_slice());
            out.extend_from_slice(&account.info.balance.to_le_bytes::<32>());
            out.extend_from_slice(&account.info.nonce.to_le_bytes());
            let code = self.code(*address);
            out.extend_from_slice(&(code.len() as u32).to_le_bytes());
            out.extend_from_slice(&code);
            let slots: Vec<_> = account.storage.iter().filter(|(_, v)| !v.is_zero()).collect();
            out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
            for (slot, value) in slots {
                out.extend_from_slice(&slot.to_le_bytes::<32>());
                out.extend_from_slice(&value.to_le_bytes::<32>());
            }
        }
    }

    /// Rebuilds a world state encoded by [`Evm::encode_state`].
    pub(crate) fn decode_state(
        chain_id: u64,
        fields: &mut crate::persist::Fields<'_>,
    ) -> Result<Self, crate::persist::PersistError> {
        let mut evm = Self::new(chain_id, 0);
        let count = fields.u32()?;
        for _ in 0..count {
            let address = Address::from_slice(fields.take(20)?);
            let balance = U256::from_le_slice(fields.take(32)?);
            let nonce = fields.u64()?;
            let code = fields.field()?;
            let mut info = AccountInfo { balance, nonce, ..Default::default() };
            if !code.is_empty() {
                let bytecode = revm::bytecode::Bytecode::new_raw(Bytes::copy_from_slice(code));
                info.code_hash = bytecode.hash_slow();
                info.code = Some(bytecode);
            }
            evm.db.insert_account_info(address, info);
            let slots = fields.u32()?;
            for _ in 0..slots {
                let slot = U256::from_le_slice(fields.take(32)?);
                let value = U256::from_le_slice(fields.take(32)?);
                evm.db
                    .insert_account_storage(address, slot, value)
                    .map_err(|e| crate::persist::PersistError::Corrupt(e.to_string()))?;
            }
        }
        Ok(evm)
    }
}
