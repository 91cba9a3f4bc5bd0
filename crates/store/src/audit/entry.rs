//! Entries and their encoding: what is logged, how an entry is encoded, and the hash
//! chain (`d_i`, `h_i`) described in the [module docs](super).

use crate::fhir::{ResourceId, ResourceType};
use alloy_primitives::{Address, B256};
use sha2::{Digest, Sha256};
use std::{fmt, str::FromStr};

/// The first bytes of every entry's encoding.
pub const DOMAIN_TAG: &[u8; 15] = b"medrec-audit-v1";

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Running a data pointer's query.
    PointerRead,
    /// Reading one FHIR resource.
    FhirRead,
    /// A FHIR search.
    FhirSearch,
    /// Creating or updating a FHIR resource.
    FhirWrite,
    /// Redeeming a research bounty.
    BountyRedemption,
    /// Signing in (a token request).
    Auth,
    /// A patient reading the access log about their records.
    LogRead,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 7] = [
        Self::PointerRead,
        Self::FhirRead,
        Self::FhirSearch,
        Self::FhirWrite,
        Self::BountyRedemption,
        Self::Auth,
        Self::LogRead,
    ];

    /// Its byte in the entry encoding.
    pub const fn code(self) -> u8 {
        match self {
            Self::PointerRead => 1,
            Self::FhirRead => 2,
            Self::FhirSearch => 3,
            Self::FhirWrite => 4,
            Self::BountyRedemption => 5,
            Self::Auth => 6,
            Self::LogRead => 7,
        }
    }

    /// Its name, as stored: `pointer-read`, `fhir-read`, `fhir-search`, `fhir-write`,
    /// `bounty-redemption`, `auth`, `log-read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PointerRead => "pointer-read",
            Self::FhirRead => "fhir-read",
            Self::FhirSearch => "fhir-search",
            Self::FhirWrite => "fhir-write",
            Self::BountyRedemption => "bounty-redemption",
            Self::Auth => "auth",
            Self::LogRead => "log-read",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| AuditError::UnknownAction(s.chars().take(40).collect()))
    }
}

/// Why a request was refused: a short code, 1 to 64 characters of `a-z`, `0-9`, `-`,
/// `_` and `.` (e.g. `not-a-viewer`, `expired`), so no free text (or patient data)
/// can end up in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DenyReason(String);

impl DenyReason {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DenyReason {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuditError::InvalidReason(s.chars().take(40).collect()))
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gatekeeper decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Served to the patient of the relationship.
    AllowPatient,
    /// Served to a viewer the patient granted.
    AllowViewer,
    /// Served to the provider (steward) itself.
    AllowProvider,
    /// Released to a research entity redeeming a bounty it owns (an aggregate).
    AllowResearcher,
    /// Served to an emergency clinician who broke the glass: the patient's emergency
    /// set, without a prior grant, while the opening on chain lasts.
    AllowBreakGlass,
    /// Refused, and why.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the request was served.
    pub const fn is_allowed(&self) -> bool {
        !matches!(self, Self::Deny(_))
    }

    /// Its byte in the entry encoding.
    pub const fn code(&self) -> u8 {
        match self {
            Self::AllowPatient => 1,
            Self::AllowViewer => 2,
            Self::AllowProvider => 3,
            Self::Deny(_) => 4,
            Self::AllowResearcher => 5,
            Self::AllowBreakGlass => 6,
        }
    }
}

/// As stored: `allow-patient`, `allow-viewer`, `allow-provider`, `allow-researcher`,
/// `allow-break-glass` or `deny:<reason>`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AllowPatient => f.write_str("allow-patient"),
            Self::AllowViewer => f.write_str("allow-viewer"),
            Self::AllowProvider => f.write_str("allow-provider"),
            Self::AllowResearcher => f.write_str("allow-researcher"),
            Self::AllowBreakGlass => f.write_str("allow-break-glass"),
            Self::Deny(reason) => write!(f, "deny:{reason}"),
        }
    }
}

impl FromStr for Decision {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        match s {
            "allow-patient" => Ok(Self::AllowPatient),
            "allow-viewer" => Ok(Self::AllowViewer),
            "allow-provider" => Ok(Self::AllowProvider),
            "allow-researcher" => Ok(Self::AllowResearcher),
            "allow-break-glass" => Ok(Self::AllowBreakGlass),
            _ => match s.strip_prefix("deny:") {
                Some(reason) => Ok(Self::Deny(reason.parse()?)),
                None => Err(AuditError::UnknownDecision(s.chars().take(40).collect())),
            },
        }
    }
}

/// The resource a request was about: its type, and its id when it named one (a search
/// names only a type). Never its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// The type.
    pub resource_type: ResourceType,
    /// The id, when the request named one.
    pub id: Option<ResourceId>,
}

/// An entry to append: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// When the request was decided, unix milliseconds.
    pub time: i64,
    /// The address that signed the request (the zero address when unauthenticated).
    pub requester: Address,
    /// What it asked for.
    pub action: Action,
    /// The relationship (PPR) it was about, when known.
    pub relationship: Option<B256>,
    /// The pointer of that relationship, when it ran one.
    pub pointer: Option<u8>,
    /// The resource, when it named one.
    pub resource: Option<ResourceRef>,
    /// The decision.
    pub decision: Decision,
    /// SHA-256 of the response body served (none when refused).
    pub response_hash: Option<B256>,
    /// The differential-privacy budget a research release spent.
    pub epsilon: Option<f64>,
}

impl NewEntry {
    /// An entry at `time` with no relationship, pointer, resource, response or epsilon.
    pub const fn new(time: i64, requester: Address, action: Action, decision: Decision) -> Self {
        Self {
            time,
            requester,
            action,
            relationship: None,
            pointer: None,
            resource: None,
            decision,
            response_hash: None,
            epsilon: None,
        }
    }

    /// The entry's encoding at position `seq` (see the module docs).
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
            match bytes {
                None => out.push(0),
                Some(bytes) => {
                    out.push(1);
                    out.extend_from_slice(bytes);
                }
            }
        }
        fn short(out: &mut Vec<u8>, s: &str) {
            // Types, ids (<= 64) and reasons (<= 64) are short ASCII by construction.
            let len = u8::try_from(s.len()).expect("short strings only");
            out.push(len);
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::with_capacity(200);
        out.extend_from_slice(DOMAIN_TAG);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.time.to_be_bytes());
        out.extend_from_slice(self.requester.as_slice());
        out.push(self.action.code());
        optional(&mut out, self.relationship.as_ref().map(B256::as_slice));
        optional(&mut out, self.pointer.map(|p| [p]).as_ref().map(<[u8; 1]>::as_slice));
        match &self.resource {
            None => out.push(0),
            Some(resource) => {
                out.push(1);
                short(&mut out, resource.resource_type.as_str());
                match &resource.id {
                    None => out.push(0),
                    Some(id) => {
                        out.push(1);
                        short(&mut out, id.as_str());
                    }
                }
            }
        }
        out.push(self.decision.code());
        if let Decision::Deny(reason) = &self.decision {
            short(&mut out, reason.as_str());
        }
        optional(&mut out, self.response_hash.as_ref().map(B256::as_slice));
        let epsilon = self.epsilon.map(|e| e.to_bits().to_be_bytes());
        optional(&mut out, epsilon.as_ref().map(<[u8; 8]>::as_slice));
        out
    }

    /// The content digest of the entry at position `seq`: SHA-256 of its encoding.
    pub fn digest(&self, seq: u64) -> B256 {
        B256::from(<[u8; 32]>::from(Sha256::digest(self.encode(seq))))
    }
}

/// The entry hash that follows `prev` for an entry with content digest `digest`.
pub fn chain_hash(prev: &B256, digest: &B256) -> B256 {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(digest);
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// An entry in its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEntry {
    /// Its position, from 1.
    pub seq: u64,
    /// The entry.
    pub entry: NewEntry,
    /// The hash of the entry before it (zero for the first).
    pub prev_hash: B256,
    /// Its hash: `SHA-256(prev_hash ‖ digest)`.
    pub hash: B256,
}

impl LoggedEntry {
    /// `entry` at position `seq` after an entry hashed `prev_hash`.
    pub fn chain(seq: u64, prev_hash: B256, entry: NewEntry) -> Self {
        Self::chain_with_digest(seq, prev_hash, entry).0
    }

    /// As [`LoggedEntry::chain`], with the content digest it hashed (which a backend
    /// stores beside the entry).
    pub(super) fn chain_with_digest(seq: u64, prev_hash: B256, entry: NewEntry) -> (Self, B256) {
        let digest = entry.digest(seq);
        let hash = chain_hash(&prev_hash, &digest);
        (Self { seq, entry, prev_hash, hash }, digest)
    }

    /// Its content digest, recomputed from its fields.
    pub fn digest(&self) -> B256 {
        self.entry.digest(self.seq)
    }

    /// Whether `hash` is what the fields and `prev_hash` give.
    pub fn is_consistent(&self) -> bool {
        chain_hash(&self.prev_hash, &self.digest()) == self.hash
    }
}

/// A problem with an access log entry's values (when parsing them or reading them back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Not one of the [`Action`] names.
    #[error("'{0}' is not an access log action")]
    UnknownAction(String),
    /// Not one of the [`Decision`] forms.
    #[error(
        "'{0}' is not an access log decision (allow-patient, allow-viewer, allow-provider or deny:<reason>)"
    )]
    UnknownDecision(String),
    /// Not a valid [`DenyReason`].
    #[error("'{0}' is not a deny reason code (1 to 64 characters of a-z, 0-9, '-', '_' and '.')")]
    InvalidReason(String),
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An entry with every field set.
    pub(in crate::audit) fn sample() -> NewEntry {
        NewEntry {
            time: 1_767_225_600_000,
            requester: Address::repeat_byte(0xab),
            action: Action::PointerRead,
            relationship: Some(B256::repeat_byte(0x11)),
            pointer: Some(3),
            resource: Some(ResourceRef {
                resource_type: ResourceType::Observation,
                id: Some("o-1".parse().unwrap()),
            }),
            decision: Decision::AllowViewer,
            response_hash: Some(B256::repeat_byte(0x22)),
            epsilon: Some(0.5),
        }
    }

    #[test]
    fn the_encoding_is_as_documented() {
        let e = sample();
        let mut expected = b"medrec-audit-v1".to_vec();
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&1_767_225_600_000i64.to_be_bytes());
        expected.extend_from_slice(&[0xab; 20]);
        expected.push(1);
        expected.push(1);
        expected.extend_from_slice(&[0x11; 32]);
        expected.extend_from_slice(&[1, 3]);
        expected.extend_from_slice(&[1, 11]);
        expected.extend_from_slice(b"Observation");
        expected.extend_from_slice(&[1, 3]);
        expected.extend_from_slice(b"o-1");
        expected.push(2);
        expected.push(1);
        expected.extend_from_slice(&[0x22; 32]);
        expected.push(1);
        expected.extend_from_slice(&0.5f64.to_bits().to_be_bytes());
        assert_eq!(e.encode(7), expected);

        let mut bare =
            NewEntry::new(-1, Address::ZERO, Action::Auth, "deny:expired".parse().unwrap());
        let mut expected = b"medrec-audit-v1".to_vec();
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[0; 20]);
        expected.extend_from_slice(&[6, 0, 0, 0, 4, 7]);
        expected.extend_from_slice(b"expired");
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(bare.encode(1), expected);
        // A search: a type and no id.
        bare.resource = Some(ResourceRef { resource_type: ResourceType::Patient, id: None });
        assert!(bare.encode(1).windows(10).any(|w| w == b"\x01\x07Patient\x00"));
    }

    #[test]
    fn hashes_are_sha256_of_prev_and_digest() {
        let e = sample();
        let digest = e.digest(1);
        let direct: [u8; 32] = Sha256::digest(e.encode(1)).into();
        assert_eq!(digest.0, direct);
        let logged = LoggedEntry::chain(1, B256::ZERO, e.clone());
        let mut both = [0u8; 64];
        both[32..].copy_from_slice(digest.as_slice());
        let expected: [u8; 32] = Sha256::digest(both).into();
        assert_eq!(logged.hash.0, expected);
        assert!(logged.is_consistent());
        // The position is part of the hash.
        assert_ne!(e.digest(2), digest);
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = sample();
        let d = base.digest(5);
        let mut changes: Vec<NewEntry> = Vec::new();
        let mut push = |f: &dyn Fn(&mut NewEntry)| {
            let mut e = base.clone();
            f(&mut e);
            changes.push(e);
        };
        push(&|e| e.time += 1);
        push(&|e| e.requester = Address::repeat_byte(0xac));
        push(&|e| e.action = Action::FhirRead);
        push(&|e| e.relationship = None);
        push(&|e| e.pointer = Some(4));
        push(&|e| e.pointer = None);
        push(&|e| e.resource = None);
        push(&|e| e.resource.as_mut().unwrap().id = None);
        push(&|e| e.decision = Decision::AllowPatient);
        push(&|e| e.decision = Decision::Deny("x".parse().unwrap()));
        push(&|e| e.response_hash = None);
        push(&|e| e.epsilon = Some(0.25));
        push(&|e| e.epsilon = None);
        for (i, e) in changes.iter().enumerate() {
            assert_ne!(e.digest(5), d, "change {i}");
        }
    }

    #[test]
    fn decisions_and_actions_round_trip_as_text() {
        for d in ["allow-patient", "allow-viewer", "allow-provider", "deny:not-a-viewer"] {
            assert_eq!(d.parse::<Decision>().unwrap().to_string(), d);
        }
        assert!("deny:".parse::<Decision>().is_err());
        assert!("deny:Patient Smith".parse::<Decision>().is_err(), "no free text");
        assert!("allow".parse::<Decision>().is_err());
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        let err = "read".parse::<Action>().unwrap_err();
        assert_eq!(err.to_string(), "'read' is not an access log action");
    }
}
