//! The data hash of a pointer: what the chain holds to prove that the data a gatekeeper
//! serves is the data the provider published.
//!
//! `SHA-256( RFC 8785 canonical JSON of [resources sorted by (resourceType, id)] )`, so
//! that anyone holding the resources can recompute it.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why a result set cannot be hashed.
#[derive(Debug, thiserror::Error)]
#[error("the result set cannot be put in canonical JSON: {0}")]
pub struct HashError(String);

/// The data hash of a result set (the order given does not matter).
pub fn data_hash(resources: &[Value]) -> Result<[u8; 32], HashError> {
    let key = |v: &Value| {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        (s("resourceType"), s("id"))
    };
    let mut sorted: Vec<&Value> = resources.iter().collect();
    sorted.sort_by_cached_key(|v| key(v));
    let canonical = serde_jcs::to_vec(&sorted).map_err(|e| HashError(e.to_string()))?;
    Ok(Sha256::digest(&canonical).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(b: [u8; 32]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn the_hash_is_sha256_of_the_canonical_sorted_array() {
        // Expected values computed independently (Python hashlib over the canonical text
        // `[{"a":[1,"x"],"b":1,"id":"1","resourceType":"Observation"},{"id":"2",...},...]`).
        let set = [
            json!({"resourceType": "Patient", "id": "p"}),
            json!({"id": "2", "resourceType": "Observation"}),
            json!({"resourceType": "Observation", "id": "1", "b": 1, "a": [1.0, "x"]}),
        ];
        assert_eq!(
            hex(data_hash(&set).unwrap()),
            "4df8cf545fea1842d9eb4d4811c0e38bb79031dd53533f1c106a89f5a655a606"
        );
        assert_eq!(
            hex(data_hash(&[]).unwrap()),
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
        let mut reordered = set.clone();
        reordered.reverse();
        assert_eq!(data_hash(&reordered).unwrap(), data_hash(&set).unwrap());
        let mut changed = set;
        changed[0]["gender"] = json!("female");
        assert_ne!(data_hash(&changed).unwrap(), data_hash(&reordered).unwrap());
    }
}
