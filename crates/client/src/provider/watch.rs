//! Watching the provider's records for changed data, republishing the pointers whose
//! data hash changed (`medrec provider publish --watch SECONDS`).
//!
//! Each round first takes a cheap [`Fingerprint`] of the records: for each resource
//! type the enrolled pointers read, how many resources there are and the newest
//! `meta.lastUpdated` (one count and one single-row sorted search per type, pushed into
//! SQL alike over the native stores and a legacy mapping). When it equals the previous
//! round's, no resource was added or removed and no change moved the newest change
//! time, and the round ends there. Otherwise the round is a
//! [`ProviderSession::publish`]: every pointer's hash is recomputed and only those that
//! differ from the chain are sent. A type whose resources have no change time (a legacy
//! mapping without `last_updated`: every resource dates from the epoch) cannot be
//! fingerprinted, so every round then publishes in full; and every
//! [`FULL_EVERY`]th round does so anyway, so that a change the fingerprint cannot see
//! (a row edited without moving its change column, or replaced by one with an older
//! change time) is still published within that many periods. The fingerprint is taken
//! before the publication it gates, so a change made during a round is seen by the next.

use super::{
    ProviderSession,
    publish::{PublishReport, PublishRequest},
    state::Enrollments,
};
use crate::error::{Context as _, Result};
use medrec_store::{RecordReader, fhir::ResourceType, search::SearchQuery};
use std::{collections::BTreeMap, ops::ControlFlow, time::Duration};

/// A watch recomputes every pointer at least once in this many rounds, whatever the
/// fingerprint says.
pub const FULL_EVERY: u32 = 10;

/// For each resource type the pointers read: how many resources the records hold and
/// the newest `meta.lastUpdated` (unix milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(pub BTreeMap<ResourceType, (u64, i64)>);

impl Fingerprint {
    /// Whether an equal fingerprint shows that nothing changed: every type holding
    /// resources has a change time (with none, all date from the epoch).
    pub fn is_telling(&self) -> bool {
        self.0.values().all(|&(n, newest)| n == 0 || newest > 0)
    }
}

/// The fingerprint of `types` in `store`.
///
/// # Errors
/// When the store cannot be searched.
pub async fn fingerprint(
    store: &dyn RecordReader,
    types: impl IntoIterator<Item = ResourceType>,
) -> Result<Fingerprint> {
    let mut out = BTreeMap::new();
    for ty in types {
        let query = SearchQuery::parse(ty, [("_sort", "-_lastUpdated"), ("_count", "1")])
            .context("the fingerprint's search")?;
        let page = store.search(&query).await.context("cannot read the provider's records")?;
        let newest = page.entries.first().map_or(0, |s| s.last_updated);
        out.insert(ty, (page.total, newest));
    }
    Ok(Fingerprint(out))
}

impl ProviderSession {
    /// The resource types the enrolled pointers read.
    ///
    /// # Errors
    /// When `relationships.json` cannot be read or holds a pointer that does not parse.
    pub fn pointer_types(&self) -> Result<Vec<ResourceType>> {
        let state = Enrollments::load(&self.dir)?;
        let mut types = Vec::new();
        for enrolled in state.relationships.values() {
            for spec in &enrolled.pointers {
                let ty = super::enroll::parse_spec(spec)?.resource_type();
                if !types.contains(&ty) {
                    types.push(ty);
                }
            }
        }
        types.sort_unstable();
        Ok(types)
    }

    /// Publishes every `every` (see the module's documentation) until `round` breaks:
    /// `round` gets each publication's report (or why the round failed; the watch goes
    /// on unless `round` breaks). A round that the fingerprint lets skip calls nothing.
    ///
    /// # Errors
    /// When the records cannot be opened at the start.
    pub async fn watch<F>(
        &self,
        request: &PublishRequest,
        every: Duration,
        mut round: F,
    ) -> Result<()>
    where
        F: FnMut(Result<PublishReport>) -> ControlFlow<()>,
    {
        let store = self.store().await?;
        let mut last: Option<Fingerprint> = None;
        let mut skipped = 0;
        loop {
            let outcome = async {
                let now = fingerprint(store.as_ref(), self.pointer_types()?).await?;
                if now.is_telling() && last.as_ref() == Some(&now) && skipped + 1 < FULL_EVERY {
                    return Ok(None);
                }
                let report = self.publish(request).await?;
                Ok::<_, crate::Error>(Some((now, report)))
            }
            .await;
            let flow = match outcome {
                Ok(None) => {
                    skipped += 1;
                    ControlFlow::Continue(())
                }
                Ok(Some((now, report))) => {
                    (last, skipped) = (Some(now), 0);
                    round(Ok(report))
                }
                Err(e) => {
                    (last, skipped) = (None, 0);
                    round(Err(e))
                }
            };
            if flow.is_break() {
                return Ok(());
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fingerprint, fingerprint};
    use medrec_store::{
        fhir::{Resource, ResourceType},
        sqlite::SqliteStore,
    };
    use serde_json::json;

    fn lab(id: &str, value: u32) -> Resource {
        Resource::parse(json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
            "valueQuantity": {"value": value}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn the_fingerprint_moves_with_every_change_and_says_when_it_cannot_tell() {
        let store = SqliteStore::open_in_memory().unwrap();
        let types = [ResourceType::Observation, ResourceType::Condition];
        store.update(lab("a", 1)).await.unwrap();
        let one = fingerprint(&store, types).await.unwrap();
        assert!(one.is_telling());
        assert_eq!(one.0[&ResourceType::Observation].0, 1);
        assert_eq!(one.0[&ResourceType::Condition], (0, 0));
        assert_eq!(fingerprint(&store, types).await.unwrap(), one, "nothing changed");

        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.update(lab("a", 2)).await.unwrap();
        let two = fingerprint(&store, types).await.unwrap();
        assert_ne!(two, one, "a changed resource moves the newest change");
        store.update(lab("b", 3)).await.unwrap();
        let three = fingerprint(&store, types).await.unwrap();
        assert_eq!(three.0[&ResourceType::Observation].0, 2);
        assert_ne!(three, two);

        // Resources without a change time (a legacy mapping without `last_updated`)
        // cannot show that nothing changed.
        let undated = Fingerprint([(ResourceType::Observation, (3, 0))].into());
        assert!(!undated.is_telling());
    }

    #[tokio::test]
    async fn over_a_legacy_mapping_the_fingerprint_follows_the_change_column() {
        use medrec_store::legacy::{LegacyConfig, LegacySqliteStore};
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../store/fixtures/legacy");
        let path = std::env::temp_dir().join(format!("medrec-watch-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let own = rusqlite::Connection::open(&path).unwrap();
        for f in ["medrec-v1-schema.sql", "medrec-v1-seed.sql"] {
            own.execute_batch(&std::fs::read_to_string(format!("{fixtures}/{f}")).unwrap())
                .unwrap();
        }
        let config = LegacyConfig::load(format!("{fixtures}/medrec-v1.json")).unwrap();
        let store = LegacySqliteStore::open(&path, config).unwrap();
        let obs = ResourceType::Observation;

        // MedicationRequest maps no `last_updated`: it cannot tell.
        let both = fingerprint(&store, [obs, ResourceType::MedicationRequest]).await.unwrap();
        assert!(!both.is_telling());
        let labs = fingerprint(&store, [obs]).await.unwrap();
        assert!(labs.is_telling());
        assert_eq!(labs.0[&obs].0, 6);
        assert_eq!(fingerprint(&store, [obs]).await.unwrap(), labs);
        // A result changes, and the provider's application moves its change time.
        own.execute_batch(
            "UPDATE resultdetail_info SET Value = '12.9' WHERE ResultDetailID = 9011;
             UPDATE result_info SET LastUpdated = '2026-01-05 09:00:00' WHERE ResultID = 901;",
        )
        .unwrap();
        let moved = fingerprint(&store, [obs]).await.unwrap();
        assert_ne!(moved, labs);
        assert_eq!(moved.0[&obs].0, 6);
        // A result removed.
        own.execute_batch("DELETE FROM resultdetail_info WHERE ResultDetailID = 9032;").unwrap();
        assert_eq!(fingerprint(&store, [obs]).await.unwrap().0[&obs].0, 5);
        drop((store, own));
        let _ = std::fs::remove_file(&path);
    }
}
