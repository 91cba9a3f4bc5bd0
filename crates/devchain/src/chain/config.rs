//! How a chain starts: [`ChainConfig`] and its defaults.

use alloy::primitives::Address;

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
    /// A zero-price chain (as Besu's `zeroBaseFee` with `--min-gas-price=0`): the base
    /// fee of every block is 0 (`initial_base_fee` is then ignored), the node suggests
    /// no tip, and a sender without any balance can transact at price 0 within the
    /// guard of zero-price transactions (see the `free_gas_*` fields).
    #[serde(default)]
    pub free_gas: bool,
    /// Contracts that zero-price transactions may call besides the MedRec contracts
    /// this chain deployed (for contracts deployed later).
    #[serde(default)]
    pub free_gas_targets: Vec<Address>,
    /// Accounts that may deploy contracts at zero price besides the founding
    /// institution (development account 0).
    #[serde(default)]
    pub free_gas_deployers: Vec<Address>,
    /// Most zero-price transactions one sender may have pending.
    #[serde(default = "default_free_gas_max_pending")]
    pub free_gas_max_pending: u64,
    /// Most gas (counted by gas limit) of one sender's zero-price transactions that a
    /// block includes.
    #[serde(default = "default_free_gas_block_gas")]
    pub free_gas_block_gas: u64,
}

/// Default of [`ChainConfig::free_gas_max_pending`].
pub const DEFAULT_FREE_GAS_MAX_PENDING: u64 = 16;

/// Default of [`ChainConfig::free_gas_block_gas`]: a tenth of the default block, room
/// for a dozen relationship creations or a few hundred acceptances.
pub const DEFAULT_FREE_GAS_BLOCK_GAS: u64 = 3_000_000;

const fn default_free_gas_max_pending() -> u64 {
    DEFAULT_FREE_GAS_MAX_PENDING
}

const fn default_free_gas_block_gas() -> u64 {
    DEFAULT_FREE_GAS_BLOCK_GAS
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
            free_gas: false,
            free_gas_targets: Vec::new(),
            free_gas_deployers: Vec::new(),
            free_gas_max_pending: DEFAULT_FREE_GAS_MAX_PENDING,
            free_gas_block_gas: DEFAULT_FREE_GAS_BLOCK_GAS,
        }
    }
}
