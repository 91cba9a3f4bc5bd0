//! What the keys of an account sign, as the `Relationships` contract checks it.
//!
//! A key consents to act for an account with an EIP-712 `KeyAcceptance` (rotation, a
//! custodian, a recovery's new key), and a guardian approves a recovery with an EIP-712
//! `Recovery`; both under the domain "MedRec Relationships", version 2, of the deployed
//! contract. An account's guardians are on chain only as [`guardian_commitment`].

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::{Eip712Domain, SolStruct, SolType, eip712_domain, sol_data},
};

alloy::sol! {
    /// A key's consent to act for `account` with `rights` until `until` (0: no end).
    #[derive(Debug, PartialEq, Eq)]
    struct KeyAcceptance {
        address account;
        address key;
        uint8 rights;
        uint40 until;
    }

    /// A guardian's approval of moving `account` to `newKey`, for the account's current
    /// recovery nonce.
    #[derive(Debug, PartialEq, Eq)]
    struct Recovery {
        address account;
        address newKey;
        uint32 nonce;
    }
}

/// The EIP-712 domain of the `Relationships` contract at `relationships` on `chain_id`.
pub fn domain(chain_id: u64, relationships: Address) -> Eip712Domain {
    eip712_domain! {
        name: "MedRec Relationships",
        version: "2",
        chain_id: chain_id,
        verifying_contract: relationships,
    }
}

/// The digest a key signs to accept acting for `account`.
pub fn key_acceptance_hash(domain: &Eip712Domain, acceptance: &KeyAcceptance) -> B256 {
    acceptance.eip712_signing_hash(domain)
}

/// The digest a guardian signs to approve a recovery.
pub fn recovery_hash(domain: &Eip712Domain, recovery: &Recovery) -> B256 {
    recovery.eip712_signing_hash(domain)
}

/// The commitment an account stores for its guardians:
/// `keccak256(abi.encode(salt, guardians, threshold))` with `guardians` strictly
/// ascending (sorted and deduplicated here: the contract refuses a recovery whose list
/// is not, so that no guardian counts twice).
pub fn guardian_commitment(salt: B256, guardians: &[Address], threshold: u8) -> B256 {
    let mut sorted = guardians.to_vec();
    sorted.sort();
    sorted.dedup();
    type Encoded =
        (sol_data::FixedBytes<32>, sol_data::Array<sol_data::Address>, sol_data::Uint<8>);
    keccak256(Encoded::abi_encode_params(&(salt, sorted, threshold)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn the_commitment_does_not_depend_on_the_order_guardians_are_named_in() {
        let (a, b) = (
            address!("0x00000000000000000000000000000000000000aa"),
            address!("0x00000000000000000000000000000000000000bb"),
        );
        let salt = B256::repeat_byte(7);
        assert_eq!(guardian_commitment(salt, &[a, b], 2), guardian_commitment(salt, &[b, a], 2));
        assert_ne!(guardian_commitment(salt, &[a, b], 2), guardian_commitment(salt, &[a, b], 1));
        assert_ne!(
            guardian_commitment(salt, &[a, b], 2),
            guardian_commitment(B256::repeat_byte(8), &[a, b], 2)
        );
    }
}
