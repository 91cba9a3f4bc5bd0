//! An in-process EVM at the `london` spec: the execution core of the devchain.
//!
//! [`Evm`] keeps the world state (revm's in-memory database) and a block context
//! (number, timestamp, coinbase). Each transaction runs in its own block, as on an
//! instant-sealing chain: the block number and timestamp advance before it executes.
//! It executes transactions from a named sender without signatures; the JSON-RPC node
//! built on it (issue 3) verifies signatures before handing transactions here.

use alloy::primitives::{Address, B256, Bytes, Log, U256};
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
        let (number, timestamp) = (self.number + 1, self.timestamp + BLOCK_TIME);
        let mut evm = self.evm_at(number, timestamp);
        let result = evm.transact(tx).map_err(|e| EvmError::Rejected(e.to_string()))?;
        Ok(outcome(result.result))
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
        let (number, timestamp) = (self.number + 1, self.timestamp + BLOCK_TIME);
        let result = {
            let mut evm = self.evm_at(number, timestamp);
            evm.transact_commit(tx).map_err(|e| EvmError::Rejected(e.to_string()))?
        };
        self.number = number;
        self.timestamp = timestamp;
        Ok(result)
    }

    fn evm_at(
        &mut self,
        number: u64,
        timestamp: u64,
    ) -> revm::MainnetEvm<revm::handler::MainnetContext<&mut InMemoryDB>> {
        let (chain_id, coinbase) = (self.chain_id, self.coinbase);
        Context::mainnet()
            .with_db(&mut self.db)
            .modify_cfg_chained(|c| {
                c.chain_id = chain_id;
                // Not `c.spec = SPEC`: the gas schedule must follow the spec too.
                c.set_spec_and_mainnet_gas_params(SPEC);
            })
            .modify_block_chained(|b| {
                b.number = U256::from(number);
                b.timestamp = U256::from(timestamp);
                b.beneficiary = coinbase;
                b.gas_limit = BLOCK_GAS_LIMIT;
                b.basefee = 0;
                b.difficulty = U256::from(1u64);
                b.prevrandao = Some(B256::ZERO);
            })
            .build_mainnet()
    }
}

fn outcome(result: ExecutionResult) -> Outcome {
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
