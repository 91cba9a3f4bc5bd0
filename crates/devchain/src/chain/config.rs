//! How a chain starts: [`ChainConfig`] and its defaults.

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
