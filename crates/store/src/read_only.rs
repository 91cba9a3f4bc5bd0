//! A read-only store where a full [`RecordStore`](crate::RecordStore) is expected.

#[cfg(doc)]
use crate::RecordStore;
use crate::{
    Page, RawStored, RecordReader, RecordWriter, Result, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    search::SearchQuery,
};

/// A [`RecordReader`] served as a full [`RecordStore`]: reads go to the reader, and
/// its [`RecordWriter`] fails every write with [`StoreError::ReadOnly`], changing
/// nothing.
///
/// For the edge only (a server holding any store as a `dyn RecordStore`): code that
/// only reads takes a [`RecordReader`], and code that writes a [`RecordWriter`] or a
/// `RecordStore`, so a read-only store itself never has write methods.
///
/// The legacy stores are readers only: they have no writer, and a full store is never
/// made of one by mistake:
///
/// ```compile_fail
/// fn writer<W: medrec_store::RecordWriter>() {}
/// writer::<medrec_store::legacy::LegacySqliteStore>();
/// ```
///
/// ```compile_fail
/// fn full<S: medrec_store::RecordStore>() {}
/// full::<medrec_store::legacy::LegacySqliteStore>();
/// ```
///
/// ```
/// fn full<S: medrec_store::RecordStore>() {}
/// full::<medrec_store::ReadOnly<medrec_store::legacy::LegacySqliteStore>>();
/// ```
#[derive(Debug, Clone)]
pub struct ReadOnly<R>(R);

impl<R: RecordReader> ReadOnly<R> {
    /// Serves `reader` read-only.
    pub const fn new(reader: R) -> Self {
        Self(reader)
    }

    /// The reader.
    pub const fn get_ref(&self) -> &R {
        &self.0
    }

    /// The reader back.
    pub fn into_inner(self) -> R {
        self.0
    }
}

#[async_trait::async_trait]
impl<R: RecordReader> RecordReader for ReadOnly<R> {
    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        self.0.read(resource_type, id).await
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        self.0.read_version(resource_type, id, version).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page> {
        self.0.search(query).await
    }

    async fn read_raw(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<RawStored>> {
        self.0.read_raw(resource_type, id).await
    }
}

/// The refusing writer: the one place a write is answered with an error rather than
/// left out of the type.
#[async_trait::async_trait]
impl<R: RecordReader> RecordWriter for ReadOnly<R> {
    async fn create(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update_all(&self, _resources: Vec<Resource>) -> Result<Vec<Stored>> {
        Err(StoreError::ReadOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordStore, sqlite::SqliteStore};
    use serde_json::json;

    #[tokio::test]
    async fn reads_pass_through_and_writes_are_refused() {
        let inner = SqliteStore::open_in_memory().unwrap();
        let patient = Resource::parse(json!({"resourceType": "Patient", "id": "p1"})).unwrap();
        inner.update(patient.clone()).await.unwrap();
        let store: &dyn RecordStore = &ReadOnly::new(inner);
        let id: ResourceId = "p1".parse().unwrap();
        assert_eq!(store.read(ResourceType::Patient, &id).await.unwrap().unwrap().version, 1);
        assert!(store.read_version(ResourceType::Patient, &id, 1).await.unwrap().is_some());
        let all = store.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap();
        assert_eq!(all.total, 1);
        for err in [
            store.create(patient.clone()).await.unwrap_err(),
            store.update(patient.clone()).await.unwrap_err(),
            store.update_all(vec![patient]).await.unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::ReadOnly), "{err:?}");
        }
        let all = store.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap();
        assert_eq!(all.entries[0].version, 1);
    }
}
