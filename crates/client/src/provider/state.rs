//! The provider's files beside its wallet: `provider.json` (who it is, where its
//! gatekeeper, store and chain are) and `relationships.json` (what it enrolled: each
//! relationship's delegate index, patient and pointer queries).
//!
//! Both are written atomically (a temporary file, then a rename) with mode 0600. Neither
//! holds a secret, but `relationships.json` names patients' FHIR ids, so it stays private
//! to the provider.

use crate::{
    chain::{ChainSpec, DEV_ANCHORS, DEV_REGISTRAR, DEV_RELATIONSHIPS, DEV_RPC_URL},
    error::{Context as _, Result},
};
use alloy::primitives::{Address, B256};
use medrec_gatekeeper::pointer::PointerSpec;
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// The configuration file in the data directory.
pub const CONFIG_FILE: &str = "provider.json";
/// The enrolled relationships in the data directory.
pub const RELATIONSHIPS_FILE: &str = "relationships.json";
/// The research policy read by default by `publish --offer`.
pub const POLICY_FILE: &str = "policy.json";

/// Where the chain is, as recorded at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// JSON-RPC URL of the node.
    pub rpc_url: String,
    /// The Registrar contract.
    pub registrar: Address,
    /// The Relationships contract.
    pub relationships: Address,
    /// The AccessAnchors contract.
    pub anchors: Address,
    /// The block the contracts were deployed in.
    pub from_block: u64,
    /// The chain id.
    pub chain_id: u64,
}

impl ChainConfig {
    /// Records where `spec` says the chain is, with its id.
    pub fn new(spec: &ChainSpec, chain_id: u64) -> Self {
        Self {
            rpc_url: spec.rpc_url.clone(),
            registrar: spec.registrar,
            relationships: spec.relationships,
            anchors: spec.anchors,
            from_block: spec.from_block,
            chain_id,
        }
    }

    /// The chain recorded here, unless `args` names another one: a setting that differs
    /// from the embedded chain's default wins.
    pub fn merged(&self, args: &ChainSpec) -> ChainSpec {
        let pick = |given, default, recorded| if given == default { recorded } else { given };
        ChainSpec {
            rpc_url: if args.rpc_url == DEV_RPC_URL {
                self.rpc_url.clone()
            } else {
                args.rpc_url.clone()
            },
            registrar: pick(args.registrar, DEV_REGISTRAR, self.registrar),
            relationships: pick(args.relationships, DEV_RELATIONSHIPS, self.relationships),
            anchors: pick(args.anchors, DEV_ANCHORS, self.anchors),
            from_block: if args.from_block == 0 { self.from_block } else { args.from_block },
        }
    }
}

/// `provider.json`: who the provider is and where everything is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The provider's name (its identity commitment is `keccak256(name)`).
    pub name: String,
    /// The account (the wallet's address, which the gatekeeper serves as).
    pub address: Address,
    /// Base URL of the provider's gatekeeper.
    pub endpoint: String,
    /// The record store URL (`sqlite:PATH`, `postgres://…`, `mysql://…`).
    pub store: String,
    /// A legacy mapping (`medrec_store::legacy`): `store` is then the provider's own
    /// database, read through this mapping file and never written, by the gatekeeper
    /// (`provider serve`), `enroll` and `publish` alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<PathBuf>,
    /// The chain.
    pub chain: ChainConfig,
}

impl ProviderConfig {
    /// Reads `provider.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "there is no provider configuration {}: run `medrec provider init` first (or pass --data-dir)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid provider configuration", path.display()))
    }

    /// The legacy mapping file, when there is one (a relative path is taken from the
    /// data directory `dir`).
    pub fn legacy_mapping(&self, dir: &Path) -> Option<PathBuf> {
        self.legacy.as_ref().map(|m| if m.is_relative() { dir.join(m) } else { m.clone() })
    }

    /// Writes `provider.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(CONFIG_FILE), self)
    }
}

/// One enrolled relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The HD index of its delegate (`m/44'/60'/1'/0/i'`).
    pub delegate_index: u32,
    /// The delegate's address.
    pub delegate: Address,
    /// The patient's address.
    pub patient: Address,
    /// The patient's FHIR `Patient` id in the provider's store.
    pub patient_id: String,
    /// The pointer queries with their commitments' salts, pointer 0 first (a pointer
    /// enrolled before salting is its bare text, which still reads).
    pub pointers: Vec<PointerSpec>,
    /// Whether the gatekeeper was told the pointers (`enroll` finished).
    #[serde(default)]
    pub gatekeeper_enrolled: bool,
    /// The signed offer the patient takes (kept so that the gatekeeper can be told it
    /// again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferBody>,
}

pub use medrec_gatekeeper::offer::OfferBody;

/// `relationships.json`: relationship id → what the provider enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollments {
    /// By relationship id.
    pub relationships: BTreeMap<B256, Enrolled>,
}

impl Enrollments {
    fn path(dir: &Path) -> PathBuf {
        dir.join(RELATIONSHIPS_FILE)
    }

    /// Reads `relationships.json` (empty when there is none yet).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid relationships file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `relationships.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json(&Self::path(dir), self)
    }

    /// The first delegate index above every index recorded here.
    pub fn next_index(&self) -> u32 {
        self.relationships.values().map(|r| r.delegate_index.saturating_add(1)).max().unwrap_or(0)
    }
}

/// Writes `value` as pretty JSON to `path`, atomically, mode 0600.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)
        .with_context(|| format!("cannot write {}", path.display()))?;
    medrec_wallet::fs::write_private(path, &json)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn the_recorded_chain_holds_unless_a_setting_names_another() {
        let recorded = ChainConfig {
            rpc_url: "http://node:8545".to_owned(),
            registrar: address!("0x0000000000000000000000000000000000000001"),
            relationships: address!("0x0000000000000000000000000000000000000002"),
            anchors: address!("0x0000000000000000000000000000000000000003"),
            from_block: 7,
            chain_id: 5,
        };
        let same = recorded.merged(&ChainSpec::default());
        assert_eq!(
            same,
            ChainSpec {
                rpc_url: recorded.rpc_url.clone(),
                registrar: recorded.registrar,
                relationships: recorded.relationships,
                anchors: recorded.anchors,
                from_block: 7,
            }
        );
        let other = ChainSpec {
            rpc_url: "http://other:8545".to_owned(),
            from_block: 9,
            ..ChainSpec::default()
        };
        let merged = recorded.merged(&other);
        assert_eq!((merged.rpc_url.as_str(), merged.from_block), ("http://other:8545", 9));
        assert_eq!(merged.registrar, recorded.registrar);
        assert_eq!(ChainConfig::new(&merged, 5).rpc_url, "http://other:8545");
    }

    #[test]
    fn files_round_trip_privately_and_the_next_delegate_index_is_past_every_one() {
        let dir = std::env::temp_dir().join(format!("medrec-client-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Enrollments::load(&dir).unwrap(), Enrollments::default());
        let mut e = Enrollments::default();
        assert_eq!(e.next_index(), 0);
        for (i, index) in [3u32, 1].into_iter().enumerate() {
            e.relationships.insert(
                B256::repeat_byte(u8::try_from(i).unwrap()),
                Enrolled {
                    delegate_index: index,
                    delegate: Address::repeat_byte(1),
                    patient: Address::repeat_byte(2),
                    patient_id: "p1".to_owned(),
                    pointers: vec![PointerSpec::salted("Condition")],
                    gatekeeper_enrolled: false,
                    offer: None,
                },
            );
        }
        assert_eq!(e.next_index(), 4);
        e.save(&dir).unwrap();
        assert_eq!(Enrollments::load(&dir).unwrap(), e);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.join(RELATIONSHIPS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A file written before pointer commitments were salted names bare query texts:
        // they still read, as unsalted pointers.
        let before = r#"{"relationships": {"0x0505050505050505050505050505050505050505050505050505050505050505":
            {"delegate_index": 0, "delegate": "0x0101010101010101010101010101010101010101",
             "patient": "0x0202020202020202020202020202020202020202", "patient_id": "p1",
             "pointers": ["Condition"], "gatekeeper_enrolled": true}}}"#;
        std::fs::write(dir.join(RELATIONSHIPS_FILE), before).unwrap();
        let old = Enrollments::load(&dir).unwrap();
        let pointers = &old.relationships[&B256::repeat_byte(5)].pointers;
        assert_eq!(pointers, &vec![PointerSpec::Unsalted("Condition".into())]);
        let missing = ProviderConfig::load(&dir).unwrap_err().to_string();
        assert!(missing.contains("medrec provider init"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
