//! Every custom error of the MedRec contracts as one typed Rust error.

use crate::{
    AccessAnchors::AccessAnchorsErrors as AnchE, Registrar::RegistrarErrors as RegE,
    Relationships::RelationshipsErrors as RelE,
};
use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::{Panic, Revert, SolError, SolInterface},
};
use medrec_primitives::{RelationshipId, Status};
use std::fmt;

/// Why a MedRec contract refused a call: its custom error, decoded from revert data.
///
/// `Display` gives a sentence a person understands; the fields keep the details for
/// programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The caller is not a certified institution.
    #[error(
        "{caller} is not a certified institution: only certified institutions may register or remap identities and vote on governance"
    )]
    NotInstitution {
        /// The caller.
        caller: Address,
    },
    /// The caller is not a registered provider.
    #[error(
        "{caller} is not a registered provider: only providers registered by a certified institution may do this"
    )]
    NotProvider {
        /// The caller.
        caller: Address,
    },
    /// A zero address was given where a real one is needed.
    #[error(
        "an address is missing: the zero address cannot be a participant, institution, researcher, delegate or viewer"
    )]
    ZeroAddress,
    /// A zero identity commitment.
    #[error("the identity commitment is empty (zero)")]
    ZeroIdentity,
    /// The identity commitment is already registered.
    #[error("identity {identity} is already registered; remap it to move it to another address")]
    IdentityTaken {
        /// The commitment.
        identity: B256,
    },
    /// No participant has this identity commitment.
    #[error("no participant is registered under identity {identity}")]
    UnknownIdentity {
        /// The commitment.
        identity: B256,
    },
    /// The account already has a provider entry.
    #[error("{account} is already registered as a provider")]
    ProviderExists {
        /// The account.
        account: Address,
    },
    /// The gatekeeper endpoint is empty.
    #[error("a provider needs a gatekeeper endpoint (URL); the one given is empty")]
    EmptyEndpoint,
    /// A remap to the account already mapped.
    #[error("the identity is already mapped to {account}; nothing to remap")]
    SameAccount {
        /// The account.
        account: Address,
    },
    /// A registrar deployed with no institution.
    #[error("the registrar needs at least one certified institution")]
    NoInstitutions,
    /// The address is already an institution.
    #[error("{account} is already a certified institution")]
    AlreadyInstitution {
        /// The account.
        account: Address,
    },
    /// The address is not an institution.
    #[error("{account} is not a certified institution, so it cannot be removed")]
    NotAnInstitution {
        /// The account.
        account: Address,
    },
    /// Removing the last institution.
    #[error("the last certified institution cannot be removed: nobody could govern the registrar")]
    LastInstitution,
    /// The address is already an admitted researcher.
    #[error("{account} is already an admitted research entity")]
    AlreadyResearcher {
        /// The account.
        account: Address,
    },
    /// The address is not an admitted researcher.
    #[error("{account} is not an admitted research entity")]
    NotResearcher {
        /// The account.
        account: Address,
    },
    /// No proposal with this id.
    #[error("there is no proposal {id}")]
    UnknownProposal {
        /// The id.
        id: U256,
    },
    /// The proposal already passed.
    #[error("proposal {id} has already passed and been carried out")]
    ProposalExecuted {
        /// The id.
        id: U256,
    },
    /// The institution set changed since the proposal.
    #[error(
        "proposal {id} is stale: the set of institutions changed since it was made; propose it again"
    )]
    ProposalStale {
        /// The id.
        id: U256,
    },
    /// The institution already voted.
    #[error("{voter} has already voted for proposal {id}")]
    AlreadyVoted {
        /// The id.
        id: U256,
        /// The voter.
        voter: Address,
    },
    /// No group has this id.
    #[error("there is no group {id}")]
    UnknownGroup {
        /// The id.
        id: U256,
    },
    /// Only the group's managing institution changes its members.
    #[error(
        "{caller} does not manage group {id}: only the certified institution that created a group adds or removes its members"
    )]
    NotGroupManager {
        /// The group.
        id: U256,
        /// The caller.
        caller: Address,
    },
    /// Already a member.
    #[error("{member} is already a member of group {id}")]
    AlreadyMember {
        /// The group.
        id: U256,
        /// The member.
        member: Address,
    },
    /// Not a member.
    #[error("{member} is not a member of group {id}")]
    NotMember {
        /// The group.
        id: U256,
        /// The address.
        member: Address,
    },
    /// A group name that is empty or too long.
    #[error("a group's name must be 1 to 64 bytes long")]
    BadGroupName,
    /// Break-glass by someone who is not a member of that emergency group.
    #[error(
        "{caller} is not a member of emergency group {group}: only emergency clinicians of an emergency group may break the glass"
    )]
    NotEmergencyMember {
        /// The group named.
        group: U256,
        /// The caller.
        caller: Address,
    },
    /// The patient refused break-glass access.
    #[error("patient {patient} has refused break-glass access to their records")]
    BreakGlassRefused {
        /// The patient.
        patient: Address,
    },
    /// A break-glass without a reason.
    #[error("a break-glass must state why: unconscious, life-threatening or cannot consent")]
    NoReason,
    /// The delegate named at creation is the patient.
    #[error("the delegate must be an address of the provider's, not the patient's own address")]
    DelegateIsPatient,
    /// A zero hash where a commitment or data hash is needed.
    #[error("a query commitment, data hash or bounty commitment is missing (zero)")]
    ZeroHash,
    /// The relationship already exists.
    #[error(
        "relationship {rel_id} already exists: use a new delegate address for a new relationship"
    )]
    RelationshipExists {
        /// The relationship.
        rel_id: RelationshipId,
    },
    /// No such relationship for the caller.
    #[error(
        "relationship {rel_id} does not exist for this caller: check the patient, the delegate and the account that signs"
    )]
    UnknownRelationship {
        /// The relationship id derived from the caller and the counterparty.
        rel_id: RelationshipId,
    },
    /// The relationship was rejected or deleted.
    #[error("relationship {rel_id} is {status} and takes no more changes")]
    RelationshipClosed {
        /// The relationship.
        rel_id: RelationshipId,
        /// Its status.
        status: Status,
    },
    /// A status change the patient cannot make.
    #[error("relationship {rel_id} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The relationship.
        rel_id: RelationshipId,
        /// Current status.
        from: Status,
        /// Requested status.
        to: Status,
    },
    /// The relationship is full.
    #[error("relationship {rel_id} already holds the maximum of 128 data pointers")]
    TooManyPointers {
        /// The relationship.
        rel_id: RelationshipId,
    },
    /// No such pointer.
    #[error("relationship {rel_id} has no data pointer {pointer_id}")]
    UnknownPointer {
        /// The relationship.
        rel_id: RelationshipId,
        /// The pointer.
        pointer_id: U256,
    },
    /// A grant with no pointers.
    #[error("a grant must share at least one data pointer")]
    EmptyPointerSet,
    /// A grant window that is empty or already over.
    #[error(
        "the grant's window is invalid: it must end after it starts ({not_before}) and after now (it ends at {expires_at})"
    )]
    InvalidWindow {
        /// Start of validity (unix seconds).
        not_before: u64,
        /// End of validity (unix seconds).
        expires_at: u64,
    },
    /// A ciphertext of the wrong length (an encrypted identity or a sealed key).
    #[error(
        "an encrypted provider identity must be 36 bytes and a sealed key at most 96; this one has {length}"
    )]
    BadCiphertext {
        /// Its length.
        length: U256,
    },
    /// The calling key lacks the rights, is retired, or its powers ended.
    #[error(
        "key {key} may not do this for its account: it lacks the right ({needed}), was retired (rotated away, removed or recovered), or its powers ended (a custodian after the handover date)"
    )]
    KeyNotAllowed {
        /// The key.
        key: Address,
        /// The rights needed.
        needed: Rights,
    },
    /// The key already acts for an account.
    #[error("{key} already acts for an account: use a fresh key (one key acts for one account)")]
    KeyInUse {
        /// The key.
        key: Address,
    },
    /// Rights outside SEE | SHARE | DECIDE, or none.
    #[error("a custodian's rights must be some of see, share and decide (got {rights})")]
    BadRights {
        /// The rights given.
        rights: Rights,
    },
    /// The key's acceptance signature is missing or wrong.
    #[error(
        "{key} did not sign its acceptance to act for this account (or signed other rights, or for another chain)"
    )]
    BadKeySignature {
        /// The key.
        key: Address,
    },
    /// Not a custodian key of this account.
    #[error(
        "{key} is not a custodian key of account {account} (the owner key is rotated, not removed)"
    )]
    NotAKeyOf {
        /// The account.
        account: Address,
        /// The key.
        key: Address,
    },
    /// The guardians, salt or threshold differ from the commitment.
    #[error(
        "these guardians, salt and threshold are not the ones account {account} committed to (or it has none)"
    )]
    GuardiansMismatch {
        /// The account.
        account: Address,
    },
    /// Too few guardians signed.
    #[error("only {signed} distinct guardians signed the recovery; {threshold} are needed")]
    NotEnoughGuardians {
        /// Distinct valid signatures.
        signed: U256,
        /// Needed.
        threshold: U256,
    },
    /// A recovery is already waiting.
    #[error(
        "a recovery of account {account} is already waiting: complete it after its time-lock, or veto it"
    )]
    RecoveryPending {
        /// The account.
        account: Address,
    },
    /// No recovery waiting.
    #[error("no recovery of account {account} is waiting")]
    NoRecovery {
        /// The account.
        account: Address,
    },
    /// The time-lock has not passed.
    #[error(
        "the recovery waits for the patient's veto until {ready_at} (unix time); it cannot complete before"
    )]
    RecoveryLocked {
        /// When it may complete.
        ready_at: u64,
    },
    /// The named key is not the owner key.
    #[error("{key} is not the owner key of account {account}")]
    NotOwnerKey {
        /// The account.
        account: Address,
        /// The key.
        key: Address,
    },
    /// An access-log anchor that does not cover more entries than the last one.
    #[error(
        "the access log must have grown since its last anchor: it had {anchored_size} entries then and {size} now"
    )]
    SizeNotGrown {
        /// Size (number of entries) of the provider's latest anchor.
        anchored_size: u64,
        /// Size given for the new anchor.
        size: u64,
    },
    /// An access-log anchor with a zero `head` (the Merkle root of the log's entries).
    #[error("the access log's anchored root is missing (zero): a log's root is never zero")]
    EmptyHead,
    /// A Solidity panic (a bug: arithmetic overflow, bad enum, ...).
    #[error("the contract panicked with code {0:#x} (a bug in the contract)")]
    Panic(U256),
    /// A `require` message.
    #[error("the contract refused: {0}")]
    Message(String),
    /// Revert data that is none of the above.
    #[error("the contract refused without a known reason (revert data {0})")]
    Unrecognized(Bytes),
}

impl ContractError {
    /// Decodes revert data from any MedRec contract.
    pub fn decode(data: &[u8]) -> Self {
        if let Ok(e) = AnchE::abi_decode(data) {
            return Self::from_anchors(e);
        }
        if let Ok(e) = RelE::abi_decode(data) {
            return Self::from_relationships(e).unwrap_or_else(|| Self::unrecognized(data));
        }
        if let Ok(e) = RegE::abi_decode(data) {
            return Self::from_registrar(e);
        }
        if let Ok(p) = Panic::abi_decode(data) {
            return Self::Panic(p.code);
        }
        if let Ok(r) = Revert::abi_decode(data) {
            return Self::Message(r.reason);
        }
        Self::unrecognized(data)
    }

    fn unrecognized(data: &[u8]) -> Self {
        Self::Unrecognized(Bytes::copy_from_slice(data))
    }

    fn from_registrar(e: RegE) -> Self {
        match e {
            RegE::NotInstitution(e) => Self::NotInstitution { caller: e.caller },
            RegE::NotProvider(e) => Self::NotProvider { caller: e.caller },
            RegE::ZeroAddress(_) => Self::ZeroAddress,
            RegE::ZeroIdentity(_) => Self::ZeroIdentity,
            RegE::IdentityTaken(e) => Self::IdentityTaken { identity: e.identity },
            RegE::UnknownIdentity(e) => Self::UnknownIdentity { identity: e.identity },
            RegE::ProviderExists(e) => Self::ProviderExists { account: e.account },
            RegE::EmptyEndpoint(_) => Self::EmptyEndpoint,
            RegE::SameAccount(e) => Self::SameAccount { account: e.account },
            RegE::NoInstitutions(_) => Self::NoInstitutions,
            RegE::AlreadyInstitution(e) => Self::AlreadyInstitution { account: e.account },
            RegE::NotAnInstitution(e) => Self::NotAnInstitution { account: e.account },
            RegE::LastInstitution(_) => Self::LastInstitution,
            RegE::AlreadyResearcher(e) => Self::AlreadyResearcher { account: e.account },
            RegE::NotResearcher(e) => Self::NotResearcher { account: e.account },
            RegE::UnknownProposal(e) => Self::UnknownProposal { id: e.id },
            RegE::ProposalExecuted(e) => Self::ProposalExecuted { id: e.id },
            RegE::ProposalStale(e) => Self::ProposalStale { id: e.id },
            RegE::AlreadyVoted(e) => Self::AlreadyVoted { id: e.id, voter: e.voter },
            RegE::UnknownGroup(e) => Self::UnknownGroup { id: e.id },
            RegE::NotGroupManager(e) => Self::NotGroupManager { id: e.id, caller: e.caller },
            RegE::AlreadyMember(e) => Self::AlreadyMember { id: e.id, member: e.member },
            RegE::NotMember(e) => Self::NotMember { id: e.id, member: e.member },
            RegE::BadGroupName(_) => Self::BadGroupName,
        }
    }

    fn from_anchors(e: AnchE) -> Self {
        match e {
            AnchE::NotProvider(e) => Self::NotProvider { caller: e.caller },
            AnchE::SizeNotGrown(e) => {
                Self::SizeNotGrown { anchored_size: e.anchoredSize, size: e.size }
            }
            AnchE::EmptyHead(_) => Self::EmptyHead,
        }
    }

    /// `None` when a status in the error is not a valid status (only a broken contract
    /// could send that).
    fn from_relationships(e: RelE) -> Option<Self> {
        let status = |s: u8| Status::try_from(s).ok();
        let id = RelationshipId;
        Some(match e {
            RelE::ZeroAddress(_) => Self::ZeroAddress,
            RelE::ZeroHash(_) => Self::ZeroHash,
            RelE::DelegateIsPatient(_) => Self::DelegateIsPatient,
            RelE::RelationshipExists(e) => Self::RelationshipExists { rel_id: id(e.relId) },
            RelE::UnknownRelationship(e) => Self::UnknownRelationship { rel_id: id(e.relId) },
            RelE::RelationshipClosed(e) => {
                Self::RelationshipClosed { rel_id: id(e.relId), status: status(e.status)? }
            }
            RelE::InvalidTransition(e) => Self::InvalidTransition {
                rel_id: id(e.relId),
                from: status(e.from)?,
                to: status(e.to)?,
            },
            RelE::TooManyPointers(e) => Self::TooManyPointers { rel_id: id(e.relId) },
            RelE::UnknownPointer(e) => {
                Self::UnknownPointer { rel_id: id(e.relId), pointer_id: e.pointerId }
            }
            RelE::EmptyPointerSet(_) => Self::EmptyPointerSet,
            RelE::InvalidWindow(e) => Self::InvalidWindow {
                not_before: e.notBefore.to::<u64>(),
                expires_at: e.expiresAt.to::<u64>(),
            },
            RelE::BadCiphertext(e) => Self::BadCiphertext { length: e.length },
            RelE::KeyNotAllowed(e) => Self::KeyNotAllowed { key: e.key, needed: Rights(e.needed) },
            RelE::KeyInUse(e) => Self::KeyInUse { key: e.key },
            RelE::BadRights(e) => Self::BadRights { rights: Rights(e.rights) },
            RelE::BadKeySignature(e) => Self::BadKeySignature { key: e.key },
            RelE::NotAKeyOf(e) => Self::NotAKeyOf { account: e.account, key: e.key },
            RelE::NotInstitution(e) => Self::NotInstitution { caller: e.caller },
            RelE::GuardiansMismatch(e) => Self::GuardiansMismatch { account: e.account },
            RelE::NotEnoughGuardians(e) => {
                Self::NotEnoughGuardians { signed: e.signed, threshold: e.threshold }
            }
            RelE::RecoveryPending(e) => Self::RecoveryPending { account: e.account },
            RelE::NoRecovery(e) => Self::NoRecovery { account: e.account },
            RelE::RecoveryLocked(e) => Self::RecoveryLocked { ready_at: e.readyAt.to() },
            RelE::NotOwnerKey(e) => Self::NotOwnerKey { account: e.account, key: e.key },
            RelE::NotEmergencyMember(e) => {
                Self::NotEmergencyMember { group: e.group, caller: e.caller }
            }
            RelE::BreakGlassRefused(e) => Self::BreakGlassRefused { patient: e.account },
            RelE::NoReason(_) => Self::NoReason,
        })
    }

    /// The Solidity name of the error (`"NotInstitution"`, ...), for logs and tests.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NotInstitution { .. } => "NotInstitution",
            Self::NotProvider { .. } => "NotProvider",
            Self::ZeroAddress => "ZeroAddress",
            Self::ZeroIdentity => "ZeroIdentity",
            Self::IdentityTaken { .. } => "IdentityTaken",
            Self::UnknownIdentity { .. } => "UnknownIdentity",
            Self::ProviderExists { .. } => "ProviderExists",
            Self::EmptyEndpoint => "EmptyEndpoint",
            Self::SameAccount { .. } => "SameAccount",
            Self::NoInstitutions => "NoInstitutions",
            Self::AlreadyInstitution { .. } => "AlreadyInstitution",
            Self::NotAnInstitution { .. } => "NotAnInstitution",
            Self::LastInstitution => "LastInstitution",
            Self::AlreadyResearcher { .. } => "AlreadyResearcher",
            Self::NotResearcher { .. } => "NotResearcher",
            Self::UnknownProposal { .. } => "UnknownProposal",
            Self::ProposalExecuted { .. } => "ProposalExecuted",
            Self::ProposalStale { .. } => "ProposalStale",
            Self::AlreadyVoted { .. } => "AlreadyVoted",
            Self::UnknownGroup { .. } => "UnknownGroup",
            Self::NotGroupManager { .. } => "NotGroupManager",
            Self::AlreadyMember { .. } => "AlreadyMember",
            Self::NotMember { .. } => "NotMember",
            Self::BadGroupName => "BadGroupName",
            Self::NotEmergencyMember { .. } => "NotEmergencyMember",
            Self::BreakGlassRefused { .. } => "BreakGlassRefused",
            Self::NoReason => "NoReason",
            Self::ZeroHash => "ZeroHash",
            Self::DelegateIsPatient => "DelegateIsPatient",
            Self::RelationshipExists { .. } => "RelationshipExists",
            Self::UnknownRelationship { .. } => "UnknownRelationship",
            Self::RelationshipClosed { .. } => "RelationshipClosed",
            Self::InvalidTransition { .. } => "InvalidTransition",
            Self::TooManyPointers { .. } => "TooManyPointers",
            Self::UnknownPointer { .. } => "UnknownPointer",
            Self::EmptyPointerSet => "EmptyPointerSet",
            Self::InvalidWindow { .. } => "InvalidWindow",
            Self::BadCiphertext { .. } => "BadCiphertext",
            Self::KeyNotAllowed { .. } => "KeyNotAllowed",
            Self::KeyInUse { .. } => "KeyInUse",
            Self::BadRights { .. } => "BadRights",
            Self::BadKeySignature { .. } => "BadKeySignature",
            Self::NotAKeyOf { .. } => "NotAKeyOf",
            Self::GuardiansMismatch { .. } => "GuardiansMismatch",
            Self::NotEnoughGuardians { .. } => "NotEnoughGuardians",
            Self::RecoveryPending { .. } => "RecoveryPending",
            Self::NoRecovery { .. } => "NoRecovery",
            Self::RecoveryLocked { .. } => "RecoveryLocked",
            Self::NotOwnerKey { .. } => "NotOwnerKey",
            Self::SizeNotGrown { .. } => "SizeNotGrown",
            Self::EmptyHead => "EmptyHead",
            Self::Panic(_) => "Panic",
            Self::Message(_) => "Error",
            Self::Unrecognized(_) => "Unrecognized",
        }
    }
}

impl fmt::Display for RevertSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.0.name())
    }
}

/// A key's rights as the contract counts them (SEE 1, SHARE 2, DECIDE 4, OWNER 8),
/// shown in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights(pub u8);

impl Rights {
    /// Read the account's records.
    pub const SEE: u8 = 1;
    /// Grant and revoke viewers.
    pub const SHARE: u8 = 2;
    /// Create, accept, reject and delete relationships; research consent; break-glass.
    pub const DECIDE: u8 = 4;
    /// Manage the account's keys and guardians.
    pub const OWNER: u8 = 8;
    /// Every right.
    pub const ALL: u8 = 15;

    /// Whether every right in `needed` is held.
    pub const fn contains(self, needed: u8) -> bool {
        self.0 & needed == needed
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::SEE, "see"),
            (Self::SHARE, "share"),
            (Self::DECIDE, "decide"),
            (Self::OWNER, "owner"),
        ];
        let held: Vec<&str> =
            names.iter().filter(|(bit, _)| self.0 & bit != 0).map(|(_, n)| *n).collect();
        if held.is_empty() { f.write_str("none") } else { f.write_str(&held.join(", ")) }
    }
}

/// `Display` of an error followed by its Solidity name, e.g. for CLI output.
#[derive(Debug)]
pub struct RevertSummary<'a>(pub &'a ContractError);

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    /// Every custom error of every ABI decodes to its own typed variant (not
    /// `Unrecognized`), so no refusal reaches a person as raw bytes.
    #[test]
    fn every_custom_error_of_every_contract_is_mapped() {
        let all = RegE::SELECTORS
            .iter()
            .zip(RegE::VARIANT_NAMES)
            .chain(RelE::SELECTORS.iter().zip(RelE::VARIANT_NAMES))
            .chain(AnchE::SELECTORS.iter().zip(AnchE::VARIANT_NAMES));
        let mut checked = 0;
        for (selector, name) in all {
            // Four words of value 1 are a valid encoding of every MedRec error's fields
            // (addresses, hashes, integers, and status 1 = New).
            let mut data = selector.to_vec();
            for _ in 0..4 {
                data.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
            }
            let err = ContractError::decode(&data);
            assert_eq!(err.name(), *name, "selector {selector:?} decoded as {err:?}");
            assert!(!err.to_string().is_empty());
            checked += 1;
        }
        assert_eq!(checked, RegE::SELECTORS.len() + RelE::SELECTORS.len() + AnchE::SELECTORS.len());
        assert!(checked >= 33, "the contracts define many errors, found {checked}");
    }

    #[test]
    fn errors_read_as_sentences_with_their_details() {
        let caller = address!("0x00000000000000000000000000000000000000aa");
        let data = crate::Registrar::NotInstitution { caller }.abi_encode();
        let err = ContractError::decode(&data);
        assert_eq!(err, ContractError::NotInstitution { caller });
        assert_eq!(
            err.to_string(),
            "0x00000000000000000000000000000000000000AA is not a certified institution: only \
             certified institutions may register or remap identities and vote on governance"
        );
        assert_eq!(RevertSummary(&err).to_string(), format!("{err} (NotInstitution)"));
    }

    #[test]
    fn an_anchor_refusal_names_both_sizes() {
        let data = crate::AccessAnchors::SizeNotGrown { anchoredSize: 7, size: 5 }.abi_encode();
        let err = ContractError::decode(&data);
        assert_eq!(err, ContractError::SizeNotGrown { anchored_size: 7, size: 5 });
        assert_eq!(
            err.to_string(),
            "the access log must have grown since its last anchor: it had 7 entries then and 5 now"
        );
        assert_eq!(
            ContractError::decode(&crate::AccessAnchors::EmptyHead {}.abi_encode()),
            ContractError::EmptyHead
        );
    }

    #[test]
    fn solidity_panics_messages_and_junk_are_kept_apart() {
        let panic = Panic { code: U256::from(0x11) }.abi_encode();
        assert_eq!(ContractError::decode(&panic), ContractError::Panic(U256::from(0x11)));
        let message = Revert { reason: "nope".into() }.abi_encode();
        assert_eq!(ContractError::decode(&message), ContractError::Message("nope".into()));
        assert!(
            matches!(ContractError::decode(&[1, 2, 3]), ContractError::Unrecognized(b) if b.len() == 3)
        );
        assert!(matches!(ContractError::decode(&[]), ContractError::Unrecognized(_)));
    }

    #[test]
    fn an_invalid_status_in_revert_data_is_not_misreported() {
        // InvalidTransition with from = 9: only a broken contract sends that.
        let data =
            crate::Relationships::InvalidTransition { relId: B256::repeat_byte(7), from: 9, to: 3 }
                .abi_encode();
        assert!(matches!(ContractError::decode(&data), ContractError::Unrecognized(_)));
    }
}
