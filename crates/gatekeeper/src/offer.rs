//! A provider's offer of a relationship, kept at its gatekeeper until the patient takes
//! it: the patient's key creates the relationship on chain, so the provider never
//! appears there (issue 13).
//!
//! The provider signs each offer with its main key (EIP-712 `Offer` under the domain
//! "MedRec Offer", version 1, of the chain's `Relationships` contract): the patient's
//! client checks that the signer is the provider the Registrar's directory lists at this
//! gatekeeper before it creates anything. `GET /offers` gives a patient (any key acting
//! for the account with DECIDE) the offers made to their account that the chain does not
//! show yet.

use alloy::{
    primitives::{Address, B256, Bytes, Signature},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};
use medrec_primitives::RelationshipId;
use serde::{Deserialize, Serialize};

alloy::sol! {
    /// What a provider signs: its delegate for `account`'s relationship and pointer 0.
    #[derive(Debug, PartialEq, Eq)]
    struct Offer {
        address account;
        address delegate;
        bytes32 queryCommitment;
        bytes32 dataHash;
    }
}

/// The EIP-712 domain of offers on the chain `chain_id` whose `Relationships` contract
/// is at `relationships`.
pub fn domain(chain_id: u64, relationships: Address) -> Eip712Domain {
    eip712_domain! {
        name: "MedRec Offer",
        version: "1",
        chain_id: chain_id,
        verifying_contract: relationships,
    }
}

/// The offer part of an enrollment, as the provider sends it in `PUT /enrollments` (the
/// query commitment is pointer 0's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferBody {
    /// The provider's main address, which signed it.
    pub provider: Address,
    /// The patient's account.
    pub account: Address,
    /// The provider's delegate for this relationship only.
    pub delegate: Address,
    /// Hash of pointer 0's data now.
    pub data_hash: B256,
    /// The provider's EIP-712 signature of the [`Offer`] (65 bytes).
    pub signature: Bytes,
}

impl OfferBody {
    /// The relationship the offer would create.
    pub fn relationship(&self) -> RelationshipId {
        RelationshipId::derive(self.account, self.delegate)
    }
}

/// An offer as `GET /offers` gives it to the patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferView {
    /// The relationship it creates.
    pub relationship: RelationshipId,
    /// The provider that signed it.
    pub provider: Address,
    /// The patient's account.
    pub account: Address,
    /// The provider's delegate for it.
    pub delegate: Address,
    /// Pointer 0's salted query commitment.
    pub query_commitment: B256,
    /// Pointer 0's data hash.
    pub data_hash: B256,
    /// The provider's signature.
    pub signature: Bytes,
}

/// Why an offer is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferInvalid {
    /// The signature does not parse or is not the provider's.
    #[error("the offer is not signed by {provider}, the provider it names")]
    NotSigned {
        /// The provider named.
        provider: Address,
    },
    /// The relationship id does not match the account and delegate.
    #[error("the offer's relationship id does not match its account and delegate")]
    WrongId,
    /// The delegate is the patient's own account.
    #[error("the offer's delegate is the patient's own account")]
    DelegateIsPatient,
}

impl OfferView {
    /// The signed struct.
    pub fn offer(&self) -> Offer {
        Offer {
            account: self.account,
            delegate: self.delegate,
            queryCommitment: self.query_commitment,
            dataHash: self.data_hash,
        }
    }

    /// Checks that `provider` signed exactly this offer under `domain`.
    ///
    /// # Errors
    /// [`OfferInvalid`] when it does not hold together.
    pub fn verify(&self, domain: &Eip712Domain) -> Result<(), OfferInvalid> {
        if RelationshipId::derive(self.account, self.delegate) != self.relationship {
            return Err(OfferInvalid::WrongId);
        }
        if self.delegate == self.account {
            return Err(OfferInvalid::DelegateIsPatient);
        }
        let hash = self.offer().eip712_signing_hash(domain);
        let signer = Signature::try_from(self.signature.as_ref())
            .ok()
            .and_then(|s| s.recover_address_from_prehash(&hash).ok());
        if signer == Some(self.provider) {
            Ok(())
        } else {
            Err(OfferInvalid::NotSigned { provider: self.provider })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    fn signed(provider: &PrivateKeySigner, domain: &Eip712Domain) -> OfferView {
        let (account, delegate) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut view = OfferView {
            relationship: RelationshipId::derive(account, delegate),
            provider: provider.address(),
            account,
            delegate,
            query_commitment: B256::repeat_byte(3),
            data_hash: B256::repeat_byte(4),
            signature: Bytes::new(),
        };
        let hash = view.offer().eip712_signing_hash(domain);
        view.signature = provider.sign_hash_sync(&hash).unwrap().as_bytes().to_vec().into();
        view
    }

    #[test]
    fn an_offer_holds_only_as_signed_by_the_provider_it_names() {
        let provider = PrivateKeySigner::random();
        let domain = domain(31337, Address::repeat_byte(9));
        let view = signed(&provider, &domain);
        assert_eq!(view.verify(&domain), Ok(()));
        // Another chain, another contract, another data hash, another provider: refused.
        assert!(view.verify(&super::domain(1, Address::repeat_byte(9))).is_err());
        let mut changed = view.clone();
        changed.data_hash = B256::repeat_byte(5);
        assert_eq!(
            changed.verify(&domain),
            Err(OfferInvalid::NotSigned { provider: view.provider })
        );
        let mut other = view.clone();
        other.provider = Address::repeat_byte(7);
        assert!(matches!(other.verify(&domain), Err(OfferInvalid::NotSigned { .. })));
        let mut wrong_id = view;
        wrong_id.relationship = RelationshipId(B256::repeat_byte(8));
        assert_eq!(wrong_id.verify(&domain), Err(OfferInvalid::WrongId));
    }
}
