//! Record stores for MedRec: where a provider's FHIR R4 resources live.
//!
//! A store is split at its one seam: [`RecordReader`] (read, read a version, search,
//! read as stored) and [`RecordWriter`] (create, update, update all at once).
//! [`RecordStore`] is both, the interface the gatekeeper holds; backends implement it
//! over SQLite (the embedded default), PostgreSQL and MySQL/MariaDB. The read-only
//! mapping of a provider's own database ([`legacy`]) is a `RecordReader` only, with
//! no write methods: a server holds a reader and, when it may write, a writer (the
//! gatekeeper's `Records`), never a store whose writes fail. Resources are kept as
//! FHIR JSON with every version, plus indexed search columns (patient compartment,
//! date, category and code tokens, last update) extracted by [`fhir::Resource::parse`],
//! so every backend indexes exactly the same way. Searches are parsed at the edge into
//! a [`search::SearchQuery`]; no requester ever sends SQL, and backends bind every value
//! as a parameter.
//!
//! The conformance suite every backend must pass is the `conformance` module (behind
//! the `test-utils` feature).

pub mod audit;
pub mod legacy;
pub mod sql;
pub mod sqlite;

/// Pure FHIR, from `medrec-fhir`, under the paths users of this crate have always used:
/// [`fhir`] (resource checks and index), [`search`] (typed FHIR search) and [`hash`]
/// (the data hash).
pub use medrec_fhir::{fhir, hash, search};

#[cfg(feature = "test-utils")]
pub mod conformance;

use fhir::{FhirError, Resource, ResourceId, ResourceType};
use search::SearchQuery;
use serde_json::Value;

/// A stored version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its type.
    pub resource_type: ResourceType,
    /// Its id.
    pub id: ResourceId,
    /// Its version, from 1.
    pub version: u64,
    /// When this version was stored, unix milliseconds.
    pub last_updated: i64,
    /// The resource, with `id`, `meta.versionId` and `meta.lastUpdated` set.
    pub json: Value,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// How many resources match in all.
    pub total: u64,
    /// The resources of this page, in order.
    pub entries: Vec<Stored>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create of an id that exists.
    #[error("{resource_type}/{id} already exists")]
    Exists {
        /// Its type.
        resource_type: ResourceType,
        /// Its id.
        id: ResourceId,
    },
    /// An update needs an id.
    #[error("an update needs the resource's id")]
    MissingId,
    /// The resource or search is not valid FHIR for MedRec.
    #[error(transparent)]
    Invalid(#[from] FhirError),
    /// The database failed or is unreachable (details are for the logs, not for
    /// requesters).
    #[error("the record database failed: {0}")]
    Database(String),
}

/// The result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Reading a provider's records: what every store does, the read-only mapping of a
/// provider's own database ([`legacy`]) included.
///
/// Code that only reads should take a `RecordReader` (generic, `R: RecordReader +
/// ?Sized`, or `&dyn RecordReader`, which a `&dyn RecordStore` coerces to), so that a
/// read-only store never has to implement writes.
#[async_trait::async_trait]
pub trait RecordReader: Send + Sync + std::fmt::Debug {
    /// The current version of a resource.
    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>>;

    /// A given version of a resource.
    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>>;

    /// The versions of a resource numbered in `versions`, newest first, leaving out
    /// those the store does not keep. The native backends keep every version, numbered
    /// 1, 2, … without gaps (and answer in one statement); the read-only mapping of
    /// a provider's own database keeps the current one only, as version 1 ([`legacy`]).
    /// This default reads them one by one.
    async fn read_versions(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        versions: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<Stored>> {
        let mut found = Vec::new();
        for version in versions.rev() {
            if let Some(stored) = self.read_version(resource_type, id, version).await? {
                found.push(stored);
            }
        }
        Ok(found)
    }

    /// Current versions matching `query`, one page.
    async fn search(&self, query: &SearchQuery) -> Result<Page>;

    /// The current version of a resource as stored, for serving as is: no JSON parsed
    /// and written again, the compartment's patient from the index. The native
    /// backends answer it from the row; this default reads and serialises again.
    async fn read_raw(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<RawStored>> {
        Ok(self.read(resource_type, id).await?.map(RawStored::from_stored))
    }
}

/// Storing a provider's records: new resources and new versions. The SQLite,
/// PostgreSQL and MySQL/MariaDB backends write; the read-only mapping of a provider's
/// own database ([`legacy`]) does not implement this trait at all.
#[async_trait::async_trait]
pub trait RecordWriter: Send + Sync + std::fmt::Debug {
    /// Stores a new resource; assigns a random id when it has none. Fails with
    /// [`StoreError::Exists`] when the id is taken.
    async fn create(&self, resource: Resource) -> Result<Stored>;

    /// Stores a new version of a resource with an id (version 1 when it is new).
    async fn update(&self, resource: Resource) -> Result<Stored>;

    /// Stores new versions of all `resources` atomically: all or none.
    async fn update_all(&self, resources: Vec<Resource>) -> Result<Vec<Stored>>;
}

/// The current version of a resource exactly as the store keeps it: its JSON text, to
/// be served as is, and the patient whose compartment holds it (the indexed value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStored {
    /// Its type.
    pub resource_type: ResourceType,
    /// Its id.
    pub id: ResourceId,
    /// Its version, from 1.
    pub version: u64,
    /// When this version was stored, unix milliseconds.
    pub last_updated: i64,
    /// The patient whose compartment holds it (a Patient's own id), as indexed.
    pub patient: Option<String>,
    /// The resource's JSON text, as [`Stored::json`] would serialise.
    pub json: String,
}

impl RawStored {
    /// From a parsed stored version (the default path of [`RecordReader::read_raw`]).
    pub fn from_stored(stored: Stored) -> Self {
        let patient = Resource::parse(stored.json.clone()).ok().and_then(|r| r.index.patient);
        Self {
            resource_type: stored.resource_type,
            id: stored.id,
            version: stored.version,
            last_updated: stored.last_updated,
            patient,
            json: stored.json.to_string(),
        }
    }
}

/// A provider's full record store: a [`RecordReader`] and a [`RecordWriter`] in one,
/// for code that does both or holds any store (`Arc<dyn RecordStore>`). It has no
/// methods of its own: every type that reads and writes is a `RecordStore` by the
/// blanket implementation, and a `&dyn RecordStore` coerces to a `&dyn RecordReader`.
///
/// The SQLite, PostgreSQL and MySQL/MariaDB backends are full stores. They also have
/// every reader and writer method as an inherent method, so a concrete store's
/// methods need no trait in scope. A read-only store is a `RecordReader` only: code
/// that may or may not write holds a reader and an optional writer.
pub trait RecordStore: RecordReader + RecordWriter {}

impl<S: RecordReader + RecordWriter + ?Sized> RecordStore for S {}

/// Inherent methods on a full store that call its [`RecordReader`] and
/// [`RecordWriter`] implementations: callers of a concrete store need neither trait
/// in scope, and importing both is never ambiguous.
macro_rules! inherent_record_methods {
    ($store:ty) => {
        impl $store {
            /// The current version of a resource ([`RecordReader::read`]).
            pub async fn read(
                &self,
                resource_type: $crate::fhir::ResourceType,
                id: &$crate::fhir::ResourceId,
            ) -> $crate::Result<Option<$crate::Stored>> {
                $crate::RecordReader::read(self, resource_type, id).await
            }

            /// A given version of a resource ([`RecordReader::read_version`]).
            pub async fn read_version(
                &self,
                resource_type: $crate::fhir::ResourceType,
                id: &$crate::fhir::ResourceId,
                version: u64,
            ) -> $crate::Result<Option<$crate::Stored>> {
                $crate::RecordReader::read_version(self, resource_type, id, version).await
            }

            /// The versions of a resource numbered in `versions`, newest first
            /// ([`RecordReader::read_versions`]).
            pub async fn read_versions(
                &self,
                resource_type: $crate::fhir::ResourceType,
                id: &$crate::fhir::ResourceId,
                versions: std::ops::RangeInclusive<u64>,
            ) -> $crate::Result<Vec<$crate::Stored>> {
                $crate::RecordReader::read_versions(self, resource_type, id, versions).await
            }

            /// Current versions matching `query`, one page ([`RecordReader::search`]).
            pub async fn search(
                &self,
                query: &$crate::search::SearchQuery,
            ) -> $crate::Result<$crate::Page> {
                $crate::RecordReader::search(self, query).await
            }

            /// The current version of a resource as stored
            /// ([`RecordReader::read_raw`]).
            pub async fn read_raw(
                &self,
                resource_type: $crate::fhir::ResourceType,
                id: &$crate::fhir::ResourceId,
            ) -> $crate::Result<Option<$crate::RawStored>> {
                $crate::RecordReader::read_raw(self, resource_type, id).await
            }

            /// Stores a new resource ([`RecordWriter::create`]).
            pub async fn create(
                &self,
                resource: $crate::fhir::Resource,
            ) -> $crate::Result<$crate::Stored> {
                $crate::RecordWriter::create(self, resource).await
            }

            /// Stores a new version of a resource ([`RecordWriter::update`]).
            pub async fn update(
                &self,
                resource: $crate::fhir::Resource,
            ) -> $crate::Result<$crate::Stored> {
                $crate::RecordWriter::update(self, resource).await
            }

            /// Stores new versions of all `resources` atomically
            /// ([`RecordWriter::update_all`]).
            pub async fn update_all(
                &self,
                resources: Vec<$crate::fhir::Resource>,
            ) -> $crate::Result<Vec<$crate::Stored>> {
                $crate::RecordWriter::update_all(self, resources).await
            }
        }
    };
}
pub(crate) use inherent_record_methods;

/// A fresh random id (32 hex characters).
pub fn new_id() -> ResourceId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().parse().expect("hex is a valid id")
}

/// The resource a create stores: as given when it has an id, otherwise under a fresh
/// random one (a Patient then becomes its own compartment's patient).
pub fn with_id_for_create(resource: &Resource) -> std::borrow::Cow<'_, Resource> {
    match resource.id {
        Some(_) => std::borrow::Cow::Borrowed(resource),
        None => std::borrow::Cow::Owned(resource.clone().with_id(new_id())),
    }
}

/// The JSON to store for version `version` of `resource` at `last_updated` (unix ms):
/// `id`, `meta.versionId` and `meta.lastUpdated` are set, the rest untouched.
pub fn stamp(resource: &Resource, id: &ResourceId, version: u64, last_updated: i64) -> Value {
    let mut json = resource.json.clone();
    let obj = json.as_object_mut().expect("a parsed resource is an object");
    obj.insert("id".into(), Value::String(id.to_string()));
    let meta = obj.entry("meta").or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        *meta = Value::Object(Default::default());
    }
    let meta = meta.as_object_mut().expect("just made an object");
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert("lastUpdated".into(), Value::String(format_instant(last_updated)));
    json
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A FHIR instant (`YYYY-MM-DDThh:mm:ss.fffZ`) for unix milliseconds.
pub fn format_instant(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil from days, after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_the_date_parser() {
        for ms in [0, 1_000, 86_399_999, 951_782_400_123, 1_767_225_600_000, -86_400_000] {
            let text = format_instant(ms);
            assert_eq!(fhir::date_range(&text).unwrap().0, ms - ms.rem_euclid(1000), "{text}");
        }
        assert_eq!(format_instant(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn ids_are_random_and_valid() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn stamping_sets_id_and_meta_and_keeps_the_rest() {
        let r = Resource::parse(serde_json::json!({"resourceType": "Patient", "meta": {"source": "x"}, "gender": "female"})).unwrap();
        let id: ResourceId = "p1".parse().unwrap();
        let v = stamp(&r, &id, 3, 0);
        assert_eq!(v["id"], "p1");
        assert_eq!(v["meta"]["versionId"], "3");
        assert_eq!(v["meta"]["lastUpdated"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["meta"]["source"], "x");
        assert_eq!(v["gender"], "female");
    }
}
