//! Conformance of the postgres backend, on a real PostgreSQL server.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/postgres` unless
//! `MEDREC_TEST_PG_URL` names another (its user must be able to create databases).
//! Every case gets a database of its own. An unreachable server fails the tests.

use medrec_store::{
    StoreError,
    fhir::{Resource, ResourceType},
    search::SearchQuery,
    sql::{PostgresStore, testing::TestStore},
};

const URL_VAR: &str = "MEDREC_TEST_PG_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

async fn fresh() -> TestStore<PostgresStore> {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    TestStore::postgres(&url).await.unwrap_or_else(|e| {
        panic!(
            "the PostgreSQL server for the tests is unusable ({e}); start it, or set {URL_VAR} \
             to the URL of one (default {DEFAULT_URL})"
        )
    })
}

medrec_store::conformance_tests!(fresh());

#[tokio::test]
async fn an_unreachable_server_is_a_database_error() {
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("cannot connect to PostgreSQL at"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let err = PostgresStore::connect("postgres://root:secret@127.0.0.1:port/x").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("invalid PostgreSQL URL") && !message.contains("secret"), "{message}");
}

/// The tests every SQL server backend runs beyond the conformance suite; `$fresh` is an
/// async expression giving a fresh store. mysql.rs expands it too.
macro_rules! sql_server_tests {
    ($fresh:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn connecting_again_keeps_the_schema_and_the_records() {
            let store = $fresh.await;
            let json = serde_json::json!({"resourceType": "Patient", "id": "again"});
            store.update(Resource::parse(json).unwrap()).await.unwrap();
            let other = store.reconnect().await.unwrap();
            let read = other.read(ResourceType::Patient, &"again".parse().unwrap()).await.unwrap();
            assert_eq!(read.unwrap().version, 1);
            assert_eq!(other.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap().total, 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn ids_codes_and_systems_compare_exactly() {
            $crate::postgres::checks::ids_codes_and_systems_compare_exactly(&*$fresh.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn resources_without_a_date_sort_last() {
            $crate::postgres::checks::resources_without_a_date_sort_last(&*$fresh.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn racing_writes_serialise() {
            $crate::postgres::checks::racing_writes_serialise(&*$fresh.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn long_values_are_stored_and_found() {
            $crate::postgres::checks::long_values_are_stored_and_found(&*$fresh.await).await;
        }
    };
}
pub(crate) use sql_server_tests;

sql_server_tests!(fresh());

/// Checks beyond the conformance suite, of what SQL servers could get wrong (collations,
/// NULL ordering, locking, column sizes). mysql.rs runs them too.
pub(crate) mod checks {
    use futures::future::join_all;
    use medrec_store::{
        RecordStore, StoreError,
        fhir::{Resource, ResourceType},
        new_id,
        search::SearchQuery,
    };
    use serde_json::{Value, json};

    fn r(v: Value) -> Resource {
        Resource::parse(v).unwrap()
    }

    async fn ids(
        store: &dyn RecordStore,
        ty: ResourceType,
        params: &[(&str, &str)],
    ) -> Vec<String> {
        let query = SearchQuery::parse(ty, params.iter().copied()).unwrap();
        store.search(&query).await.unwrap().entries.iter().map(|s| s.id.to_string()).collect()
    }

    fn coded(id: &str, system: &str, code: &str) -> Resource {
        r(json!({"resourceType": "Condition", "id": id,
                 "code": {"coding": [{"system": system, "code": code}]}}))
    }

    pub(crate) async fn ids_codes_and_systems_compare_exactly(store: &dyn RecordStore) {
        let patients = ["a.b", "a0", "A", "a-b", "a"]
            .map(|id| r(json!({"resourceType": "Patient", "id": id})));
        store.update_all(patients.to_vec()).await.unwrap();
        let all = ids(store, ResourceType::Patient, &[]).await;
        assert_eq!(all, ["A", "a", "a-b", "a.b", "a0"], "_id orders by bytes");
        assert_eq!(ids(store, ResourceType::Patient, &[("_sort", "-_id")]).await[0], "a0");
        assert_eq!(ids(store, ResourceType::Patient, &[("_id", "a")]).await, ["a"]);
        assert_eq!(ids(store, ResourceType::Patient, &[("patient", "A")]).await, ["A"]);
        let read = store.read(ResourceType::Patient, &"A".parse().unwrap()).await.unwrap();
        assert_eq!(read.unwrap().json["id"], "A");

        store
            .update_all(vec![
                coded("upper", "http://S", "ABC"),
                coded("lower", "http://s", "abc"),
                coded("spaced", "http://s", "abc "),
                coded("accent", "http://s", "abç"),
            ])
            .await
            .unwrap();
        let found = |params: &'static [(&'static str, &'static str)]| async move {
            let mut v = ids(store, ResourceType::Condition, params).await;
            v.sort();
            v
        };
        assert_eq!(found(&[("code", "abc")]).await, ["lower"]);
        assert_eq!(found(&[("code", "ABC")]).await, ["upper"]);
        assert_eq!(found(&[("code", "abc ")]).await, ["spaced"], "trailing spaces count");
        assert_eq!(found(&[("code", "abç")]).await, ["accent"]);
        assert_eq!(found(&[("code", "http://s|")]).await, ["accent", "lower", "spaced"]);
        assert_eq!(found(&[("code", "http://S|abc")]).await, Vec::<String>::new());
        let err = store.create(coded("upper", "x", "y")).await.unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }), "{err}");
        store.create(coded("UPPER", "x", "y")).await.unwrap();
    }

    pub(crate) async fn resources_without_a_date_sort_last(store: &dyn RecordStore) {
        let obs = |id: &str, date: Option<&str>| {
            let mut v = json!({"resourceType": "Observation", "id": id, "status": "final",
                               "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}});
            if let Some(date) = date {
                v["effectiveDateTime"] = json!(date);
            }
            r(v)
        };
        store
            .update_all(vec![
                obs("n1", None),
                obs("d2", Some("2025-02-01")),
                obs("n0", None),
                obs("d1", Some("2025-01-01")),
            ])
            .await
            .unwrap();
        let ty = ResourceType::Observation;
        assert_eq!(ids(store, ty, &[("_sort", "date")]).await, ["d1", "d2", "n0", "n1"]);
        assert_eq!(ids(store, ty, &[("_sort", "-date")]).await, ["d2", "d1", "n0", "n1"]);
        assert_eq!(ids(store, ty, &[("_sort", "-date,-_id")]).await, ["d2", "d1", "n1", "n0"]);
        assert_eq!(ids(store, ty, &[("date", "ge1900"), ("_sort", "date")]).await, ["d1", "d2"]);
        assert_eq!(ids(store, ty, &[("date", "lt3000"), ("_sort", "date")]).await, ["d1", "d2"]);
        let mut newest = ids(store, ty, &[("_sort", "-_lastUpdated"), ("_count", "1")]).await;
        assert_eq!(newest.len(), 1);
        assert!(["n1", "d2", "n0", "d1"].contains(&newest.pop().unwrap().as_str()));
    }

    pub(crate) async fn racing_writes_serialise(store: &dyn RecordStore) {
        let patient = |id: &str, n: usize| r(json!({"resourceType": "Patient", "id": id, "n": n}));
        // Many first versions of one new id at once.
        let results =
            join_all((0..10).map(|n| async move { store.update(patient("new", n)).await })).await;
        let mut versions: Vec<u64> = results.into_iter().map(|r| r.unwrap().version).collect();
        versions.sort_unstable();
        assert_eq!(versions, (1..=10).collect::<Vec<_>>());
        // Creates of one new id at once: one wins.
        let results =
            join_all((0..6).map(|n| async move { store.create(patient("once", n)).await })).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results.iter().flatten().all(|s| s.version == 1));
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, StoreError::Exists { .. }))
        );
        // Batches over the same ids in crossed orders: no deadlock, no lost version.
        let names = ["x", "y", "z", "w"];
        let results = join_all((0..8).map(|n| async move {
            let mut batch: Vec<Resource> = names.iter().map(|id| patient(id, n)).collect();
            batch.rotate_left(n % names.len());
            if n % 2 == 1 {
                batch.reverse();
            }
            store.update_all(batch).await
        }))
        .await;
        for result in results {
            result.unwrap();
        }
        for id in names {
            let current = store.read(ResourceType::Patient, &id.parse().unwrap()).await.unwrap();
            assert_eq!(current.unwrap().version, 8, "{id}");
        }
    }

    pub(crate) async fn long_values_are_stored_and_found(store: &dyn RecordStore) {
        // Random text does not compress, so it cannot hide in a compressed index entry.
        let long = |n: usize| (0..n).map(|_| new_id().to_string()).collect::<String>();
        let (system, code) = (format!("http://{}", long(40)), long(200));
        let patient = format!("Patient/{}", long(10));
        let big = long(40_000);
        let stored = store
            .update(r(json!({"resourceType": "Observation", "id": "long", "status": "final",
                             "subject": {"reference": patient},
                             "code": {"coding": [{"system": system, "code": code}]},
                             "note": [{"text": big}]})))
            .await
            .unwrap();
        let token = format!("{system}|{code}");
        assert_eq!(ids(store, ResourceType::Observation, &[("code", &token)]).await, ["long"]);
        assert_eq!(ids(store, ResourceType::Observation, &[("code", &code)]).await, ["long"]);
        let read = store.read(ResourceType::Observation, &stored.id).await.unwrap().unwrap();
        assert_eq!(read.json, stored.json);
        assert_eq!(read.json["note"][0]["text"].as_str().map(str::len), Some(big.len()));
    }
}
