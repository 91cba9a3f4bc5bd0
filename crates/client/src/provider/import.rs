//! Importing FHIR transaction or batch Bundles into the provider's records, through its
//! gatekeeper (as the provider, whose requests it signs).
//!
//! Every file is read and checked ([`read_bundle`]) before anything is sent, so a
//! malformed file imports nothing. A transaction is all or nothing; a batch reports
//! each entry.

use super::ProviderSession;
use crate::error::{Context as _, Error, Result, bail};
use serde_json::Value;
use std::{collections::BTreeMap, path::Path};

/// Reads and checks one Bundle file: a FHIR Bundle of type `transaction` or `batch`
/// with at least one entry.
///
/// # Errors
/// When the file cannot be read or is not such a Bundle.
pub fn read_bundle(path: &Path) -> Result<Value> {
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
    let bundle: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("{name} is not valid JSON: {e}")))?;
    if bundle["resourceType"] != "Bundle" {
        bail!("{name} is not a FHIR Bundle (its resourceType is not \"Bundle\")");
    }
    match bundle["type"].as_str() {
        Some("transaction" | "batch") => {}
        Some(other) => bail!(
            "{name} is a Bundle of type \"{other}\": only transaction and batch Bundles can be imported"
        ),
        None => bail!("{name} is a Bundle without a type: use \"transaction\" or \"batch\""),
    }
    let entries = bundle["entry"].as_array().map_or(0, Vec::len);
    if entries == 0 {
        bail!("{name} is a Bundle with no entries: nothing to import");
    }
    Ok(bundle)
}

/// What importing one Bundle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries in the Bundle.
    pub entries: usize,
    /// Resources created.
    pub created: usize,
    /// Resources updated.
    pub updated: usize,
    /// Entries that failed (a batch only).
    pub failed: usize,
    /// How many entries of each resource type the Bundle held.
    pub resource_types: BTreeMap<String, usize>,
}

impl ProviderSession {
    /// Imports one checked Bundle (see [`read_bundle`]) through the gatekeeper; `name`
    /// names it in errors.
    ///
    /// # Errors
    /// When the provider's records are its own database read through a legacy mapping
    /// (MedRec never writes it), or the gatekeeper refuses or fails the Bundle as a
    /// whole.
    pub async fn import(&self, bundle: &Value, name: &str) -> Result<ImportReport> {
        if let Some(mapping) = &self.config.legacy {
            bail!(
                "this provider's records are its own database, read through the legacy mapping {} and never written by MedRec: add {name}'s records with the database's own application",
                mapping.display()
            );
        }
        let answer =
            self.client().import(bundle).await.map_err(|e| {
                Error::gatekeeper(format!("the gatekeeper did not import {name}"), e)
            })?;
        let mut report = ImportReport {
            entries: bundle["entry"].as_array().map_or(0, Vec::len),
            ..ImportReport::default()
        };
        for e in bundle["entry"].as_array().into_iter().flatten() {
            let ty = e["resource"]["resourceType"].as_str().unwrap_or("(none)");
            *report.resource_types.entry(ty.to_owned()).or_default() += 1;
        }
        for e in answer["entry"].as_array().into_iter().flatten() {
            let status = e["response"]["status"].as_str().unwrap_or("");
            match status.split_whitespace().next() {
                Some("201") => report.created += 1,
                Some(s) if s.starts_with('2') => report.updated += 1,
                _ => report.failed += 1,
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir()
            .join(format!("medrec-client-import-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn only_transaction_and_batch_bundles_with_entries_are_read() {
        let entry = r#"[{"resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "PUT", "url": "Patient/p"}}]"#;
        let ok = file(
            "ok",
            &format!(r#"{{"resourceType": "Bundle", "type": "batch", "entry": {entry}}}"#),
        );
        assert_eq!(read_bundle(&ok).unwrap()["type"], "batch");
        for (name, text, says) in [
            ("json", "{", "not valid JSON"),
            ("kind", r#"{"resourceType": "Patient"}"#, "not a FHIR Bundle"),
            (
                "type",
                r#"{"resourceType": "Bundle", "type": "collection", "entry": []}"#,
                "only transaction and batch",
            ),
            ("untyped", r#"{"resourceType": "Bundle"}"#, "without a type"),
            ("empty", r#"{"resourceType": "Bundle", "type": "transaction"}"#, "no entries"),
        ] {
            let path = file(name, text);
            let err = read_bundle(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{name}: {err}");
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(ok);
    }
}
