//! The genesis of a devchain: funded development accounts from the standard test
//! mnemonic, so that every Ethereum tool's defaults (anvil, Hardhat, cast, viem) work.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English},
};

/// The mnemonic anvil and Hardhat use. Its keys are public knowledge: development only.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Balance of every development account at genesis: 10,000 ether.
pub const DEV_BALANCE: U256 = U256::from_limbs([0x19e0_c9ba_b240_0000, 0x21e, 0, 0]);

/// A funded development account.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// Its address.
    pub address: Address,
    /// Its private key (public knowledge; never use on a real network).
    pub private_key: B256,
}

impl DevAccount {
    /// A signer for this account.
    pub fn signer(&self) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&self.private_key).expect("derived keys are valid")
    }
}

/// The first `count` accounts of [`DEV_MNEMONIC`] at `m/44'/60'/0'/0/i`.
pub fn dev_accounts(count: u32) -> Vec<DevAccount> {
    (0..count)
        .map(|i| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(i)
                .expect("index is valid")
                .build()
                .expect("the standard mnemonic derives");
            DevAccount { address: signer.address(), private_key: signer.to_bytes() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn dev_accounts_are_the_ones_every_tool_knows() {
        let accounts = dev_accounts(3);
        assert_eq!(accounts[0].address, address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
        assert_eq!(accounts[1].address, address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"));
        assert_eq!(accounts[2].address, address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"));
        assert_eq!(accounts[0].signer().address(), accounts[0].address);
        assert_eq!(DEV_BALANCE, U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)));
    }
}
