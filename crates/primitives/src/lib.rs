//! Domain types of MedRec, shared by every crate. No I/O.
//!
//! Values that cross a boundary (CLI flags, HTTP requests, chain data) are parsed once
//! into these types; past the edge no code passes bare strings or integers around.

use alloy_primitives::{Address, B256, keccak256};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use alloy_primitives;

pub mod code;

/// Status of a relationship in the patient's summary (mirrors `Relationships.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created by the provider, not yet answered by the patient.
    New,
    /// Accepted earlier; the provider changed a pointer since.
    UpdatePending,
    /// Accepted by the patient.
    Accepted,
    /// Rejected by the patient; closed.
    Rejected,
    /// Deleted by the patient; closed.
    Deleted,
}

impl Status {
    /// The on-chain encoding (`None` = 0 is "no such relationship" and has no variant).
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::New => 1,
            Self::UpdatePending => 2,
            Self::Accepted => 3,
            Self::Rejected => 4,
            Self::Deleted => 5,
        }
    }

    /// Whether the relationship takes no more changes.
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::Rejected | Self::Deleted)
    }

    /// Whether the patient has acknowledged it, so that grants apply.
    pub const fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted | Self::UpdatePending)
    }
}

impl TryFrom<u8> for Status {
    type Error = InvalidEnum;

    /// Decodes the on-chain value; 0 (no relationship) and unknown values are errors.
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Ok(match value {
            1 => Self::New,
            2 => Self::UpdatePending,
            3 => Self::Accepted,
            4 => Self::Rejected,
            5 => Self::Deleted,
            other => return Err(InvalidEnum { kind: "relationship status", value: other }),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "new",
            Self::UpdatePending => "update pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Deleted => "deleted",
        })
    }
}

/// Kind of participant an identity belongs to (mirrors `Registrar.Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A patient.
    Patient,
    /// A care provider with a gatekeeper.
    Provider,
}

impl TryFrom<u8> for Role {
    type Error = InvalidEnum;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Self::Patient),
            2 => Ok(Self::Provider),
            other => Err(InvalidEnum { kind: "role", value: other }),
        }
    }
}

/// A value read from the chain that is not a known variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a valid {kind}")]
pub struct InvalidEnum {
    /// What was being decoded.
    pub kind: &'static str,
    /// The value found.
    pub value: u8,
}

/// Id of a patient–provider relationship: `keccak256(abi.encode(patient, delegate))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RelationshipId(pub B256);

impl RelationshipId {
    /// The id of the relationship between `patient` and the provider's `delegate`,
    /// computed exactly as `Relationships.relationshipId` does.
    pub fn derive(patient: Address, delegate: Address) -> Self {
        let mut buf = [0u8; 64];
        buf[12..32].copy_from_slice(patient.as_slice());
        buf[44..64].copy_from_slice(delegate.as_slice());
        Self(keccak256(buf))
    }
}

impl fmt::Display for RelationshipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Most pointers one relationship can hold (the width of a [`PointerSet`]).
pub const MAX_POINTERS: u8 = 128;

/// A set of pointer ids of one relationship, as granted to a viewer (bit i = pointer i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PointerSet(u128);

impl PointerSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// The set from its on-chain bit mask.
    pub const fn from_bits(bits: u128) -> Self {
        Self(bits)
    }

    /// The on-chain bit mask.
    pub const fn bits(self) -> u128 {
        self.0
    }

    /// The set holding `ids`; an id of [`MAX_POINTERS`] or more is an error.
    pub fn from_ids(ids: impl IntoIterator<Item = u8>) -> Result<Self, PointerOutOfRange> {
        ids.into_iter().try_fold(Self::EMPTY, |set, id| set.with(id))
    }

    /// This set plus pointer `id`.
    pub const fn with(self, id: u8) -> Result<Self, PointerOutOfRange> {
        if id >= MAX_POINTERS {
            return Err(PointerOutOfRange(id));
        }
        Ok(Self(self.0 | (1u128 << id)))
    }

    /// Whether pointer `id` is in the set.
    pub const fn contains(self, id: u8) -> bool {
        id < MAX_POINTERS && (self.0 >> id) & 1 == 1
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The pointer ids in the set, ascending.
    pub fn ids(self) -> impl Iterator<Item = u8> {
        (0..MAX_POINTERS).filter(move |id| self.contains(*id))
    }
}

/// A pointer id that does not fit in a [`PointerSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pointer {0} is out of range: a relationship holds at most {MAX_POINTERS} pointers")]
pub struct PointerOutOfRange(pub u8);

/// A salted commitment to an identity string, the only form in which identities reach
/// the chain: `keccak256(salt ‖ identity)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentityCommitment(pub B256);

impl IdentityCommitment {
    /// Commits to `identity` (e.g. a medical record number) under a secret 32-byte salt
    /// held by the registering institution and the participant.
    pub fn new(salt: &B256, identity: &str) -> Self {
        let mut buf = Vec::with_capacity(32 + identity.len());
        buf.extend_from_slice(salt.as_slice());
        buf.extend_from_slice(identity.as_bytes());
        Self(keccak256(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn status_round_trips_through_its_chain_encoding() {
        for s in [
            Status::New,
            Status::UpdatePending,
            Status::Accepted,
            Status::Rejected,
            Status::Deleted,
        ] {
            assert_eq!(Status::try_from(s.as_u8()), Ok(s));
        }
        assert_eq!(Status::try_from(0).unwrap_err().value, 0);
        assert!(Status::try_from(6).is_err());
        assert!(Status::Rejected.is_closed() && !Status::UpdatePending.is_closed());
        assert!(Status::UpdatePending.is_accepted() && !Status::New.is_accepted());
    }

    #[test]
    fn pointer_sets_hold_ids_below_the_limit() {
        let set = PointerSet::from_ids([0, 3, 127]).unwrap();
        assert_eq!(set.bits(), 1 | 1 << 3 | 1 << 127);
        assert_eq!(set.ids().collect::<Vec<_>>(), vec![0, 3, 127]);
        assert!(set.contains(3) && !set.contains(2) && !set.contains(200));
        assert_eq!(PointerSet::from_ids([128]), Err(PointerOutOfRange(128)));
        assert!(PointerSet::EMPTY.is_empty());
    }

    #[test]
    fn relationship_id_is_abi_encoded_keccak() {
        let patient = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
        let delegate = address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
        let id = RelationshipId::derive(patient, delegate);
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0u8; 12]);
        expected.extend_from_slice(patient.as_slice());
        expected.extend_from_slice(&[0u8; 12]);
        expected.extend_from_slice(delegate.as_slice());
        assert_eq!(id.0, keccak256(&expected));
        assert_ne!(id, RelationshipId::derive(delegate, patient));
    }

    #[test]
    fn identity_commitments_depend_on_salt_and_identity() {
        let a = IdentityCommitment::new(&B256::repeat_byte(1), "MRN-0001");
        assert_eq!(a, IdentityCommitment::new(&B256::repeat_byte(1), "MRN-0001"));
        assert_ne!(a, IdentityCommitment::new(&B256::repeat_byte(2), "MRN-0001"));
        assert_ne!(a, IdentityCommitment::new(&B256::repeat_byte(1), "MRN-0002"));
    }
}
