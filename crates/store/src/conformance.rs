//! The conformance suite every [`RecordStore`] backend passes.
//!
//! Each case takes a fresh, empty store. A backend's integration tests expand
//! [`conformance_tests!`](crate::conformance_tests) with an expression that makes one.

#![allow(clippy::missing_panics_doc, missing_docs)]

use crate::{
    RecordStore, StoreError,
    fhir::{Resource, ResourceId, ResourceType},
    search::SearchQuery,
};
use serde_json::{Value, json};

/// Expands to one `#[tokio::test]` per conformance case; `$make` is an async
/// expression giving a fresh, empty store (anything that derefs to a `RecordStore`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            create_then_read, create_refuses_an_existing_id, update_keeps_every_version,
            update_needs_an_id, update_all_stores_every_resource, search_by_type_and_id,
            search_by_patient_compartment, search_by_category_and_code, search_by_date,
            search_by_last_updated, paging_is_stable_and_complete, sorting,
                        sql_metacharacters_are_data, json_round_trips_exactly, concurrent_updates_get_distinct_versions,
            reads_of_unknown_resources_are_empty, undated_resources_sort_last_and_match_no_date,
            raw_reads_serve_the_stored_text_and_its_compartment,
            search_by_name_identifier_gender_and_status);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

fn r(v: Value) -> Resource {
    Resource::parse(v).expect("test resources are valid")
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

fn q(ty: ResourceType, params: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::parse(ty, params.iter().copied()).unwrap()
}

async fn ids(store: &dyn RecordStore, query: &SearchQuery) -> Vec<String> {
    let page = store.search(query).await.unwrap();
    page.entries.iter().map(|s| s.id.to_string()).collect()
}

fn obs(id: &str, patient: &str, category: &str, loinc: &str, date: &str) -> Resource {
    r(json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": date,
        "valueQuantity": {"value": 13.2, "unit": "g/dL"}
    }))
}

async fn seed(store: &dyn RecordStore) {
    let batch = vec![
        r(json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-17"})),
        r(json!({"resourceType": "Patient", "id": "p2", "birthDate": "1991-11-02"})),
        obs("o1", "p1", "laboratory", "2498-4", "2024-12-31T23:59:59Z"),
        obs("o2", "p1", "laboratory", "718-7", "2025-01-01T00:00:00Z"),
        obs("o3", "p1", "vital-signs", "8867-4", "2025-03-15T10:30:00+02:00"),
        obs("o4", "p2", "laboratory", "2498-4", "2025-06-01"),
        r(json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}, "onsetDateTime": "2019-04"})),
    ];
    store.update_all(batch).await.unwrap();
}

pub async fn create_then_read(store: &dyn RecordStore) {
    let stored =
        store.create(r(json!({"resourceType": "Patient", "gender": "female"}))).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.json["id"], stored.id.as_str());
    assert_eq!(stored.json["meta"]["versionId"], "1");
    assert!(stored.json["meta"]["lastUpdated"].is_string());
    let read = store.read(ResourceType::Patient, &stored.id).await.unwrap().unwrap();
    assert_eq!(read, stored);
    let named = store.create(r(json!({"resourceType": "Patient", "id": "given"}))).await.unwrap();
    assert_eq!(named.id.as_str(), "given");
    // A Patient created without an id is its own compartment under the assigned id.
    let query =
        SearchQuery::parse(ResourceType::Patient, [("patient", stored.id.as_str())]).unwrap();
    assert_eq!(ids(store, &query).await, [stored.id.to_string()]);
}

pub async fn create_refuses_an_existing_id(store: &dyn RecordStore) {
    store.create(r(json!({"resourceType": "Patient", "id": "dup"}))).await.unwrap();
    let err = store
        .create(r(json!({"resourceType": "Patient", "id": "dup", "gender": "male"})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }), "{err}");
    let kept = store.read(ResourceType::Patient, &id("dup")).await.unwrap().unwrap();
    assert_eq!(kept.version, 1);
    assert!(kept.json.get("gender").is_none(), "the refused create changed nothing");
    // The same id under another type is another resource.
    store.create(r(json!({"resourceType": "Condition", "id": "dup"}))).await.unwrap();
}

pub async fn update_keeps_every_version(store: &dyn RecordStore) {
    let v1 = store
        .update(r(json!({"resourceType": "Patient", "id": "u", "gender": "male"})))
        .await
        .unwrap();
    let v2 = store
        .update(r(json!({"resourceType": "Patient", "id": "u", "gender": "female"})))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert!(v2.last_updated >= v1.last_updated);
    let current = store.read(ResourceType::Patient, &id("u")).await.unwrap().unwrap();
    assert_eq!(current.json["gender"], "female");
    assert_eq!(current.json["meta"]["versionId"], "2");
    let old = store.read_version(ResourceType::Patient, &id("u"), 1).await.unwrap().unwrap();
    assert_eq!(old.json["gender"], "male");
    assert_eq!(old, v1);
    assert!(store.read_version(ResourceType::Patient, &id("u"), 3).await.unwrap().is_none());
    // Every version, newest first; numbers the store does not keep are left out.
    let all = store.read_versions(ResourceType::Patient, &id("u"), 1..=5).await.unwrap();
    assert_eq!(all, [v2.clone(), v1.clone()]);
    let newest = store.read_versions(ResourceType::Patient, &id("u"), 2..=2).await.unwrap();
    assert_eq!(newest, [v2]);
    let none = store.read_versions(ResourceType::Patient, &id("nobody"), 1..=2).await.unwrap();
    assert!(none.is_empty());
    // Search sees only current versions.
    let page = store.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.entries[0].version, 2);
}

pub async fn update_needs_an_id(store: &dyn RecordStore) {
    let err = store.update(r(json!({"resourceType": "Patient"}))).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingId), "{err}");
    let err = store
        .update_all(vec![
            r(json!({"resourceType": "Patient", "id": "ok"})),
            r(json!({"resourceType": "Patient"})),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingId), "{err}");
    assert!(store.read(ResourceType::Patient, &id("ok")).await.unwrap().is_none(), "all or none");
}

pub async fn update_all_stores_every_resource(store: &dyn RecordStore) {
    seed(store).await;
    assert_eq!(store.search(&SearchQuery::all(ResourceType::Observation)).await.unwrap().total, 4);
    assert_eq!(store.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap().total, 2);
    // Again: every resource gets version 2.
    seed(store).await;
    let o1 = store.read(ResourceType::Observation, &id("o1")).await.unwrap().unwrap();
    assert_eq!(o1.version, 2);
    assert_eq!(store.search(&SearchQuery::all(ResourceType::Observation)).await.unwrap().total, 4);
}

pub async fn search_by_type_and_id(store: &dyn RecordStore) {
    seed(store).await;
    assert_eq!(ids(store, &q(ResourceType::Condition, &[])).await, ["c1"]);
    let mut got = ids(store, &q(ResourceType::Observation, &[("_id", "o3,o1,nope")])).await;
    got.sort();
    assert_eq!(got, ["o1", "o3"]);
    assert!(ids(store, &q(ResourceType::Patient, &[("_id", "o1")])).await.is_empty());
}

pub async fn search_by_patient_compartment(store: &dyn RecordStore) {
    seed(store).await;
    let mut p1 = ids(store, &q(ResourceType::Observation, &[("patient", "p1")])).await;
    p1.sort();
    assert_eq!(p1, ["o1", "o2", "o3"]);
    assert_eq!(
        ids(store, &q(ResourceType::Observation, &[("subject", "Patient/p2")])).await,
        ["o4"]
    );
    assert_eq!(ids(store, &q(ResourceType::Patient, &[("patient", "p2")])).await, ["p2"]);
    assert!(ids(store, &q(ResourceType::Observation, &[("patient", "p3")])).await.is_empty());
}

pub async fn search_by_category_and_code(store: &dyn RecordStore) {
    seed(store).await;
    let count = |params: Vec<(&'static str, &'static str)>| async move {
        let query = SearchQuery::parse(ResourceType::Observation, params).unwrap();
        store.search(&query).await.unwrap().total
    };
    assert_eq!(count(vec![("category", "laboratory")]).await, 3);
    assert_eq!(
        count(vec![(
            "category",
            "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
        )])
        .await,
        1
    );
    assert_eq!(count(vec![("category", "|laboratory")]).await, 0, "|code means: no system");
    assert_eq!(count(vec![("code", "http://loinc.org|2498-4")]).await, 2);
    assert_eq!(count(vec![("code", "http://loinc.org|")]).await, 4);
    assert_eq!(count(vec![("code", "2498-4,718-7")]).await, 3, "comma is OR");
    assert_eq!(count(vec![("code", "2498-4"), ("code", "718-7")]).await, 0, "repeats are AND");
    assert_eq!(count(vec![("category", "laboratory"), ("patient", "p1")]).await, 2);
    assert_eq!(count(vec![("code", "http://snomed.info/sct|44054006")]).await, 0, "other type");
}

pub async fn search_by_date(store: &dyn RecordStore) {
    seed(store).await;
    let got = |params: Vec<(&'static str, &'static str)>| async move {
        let query = SearchQuery::parse(ResourceType::Observation, params).unwrap();
        let mut v: Vec<String> =
            store.search(&query).await.unwrap().entries.iter().map(|s| s.id.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(got(vec![("date", "ge2025-01-01")]).await, ["o2", "o3", "o4"]);
    assert_eq!(got(vec![("date", "lt2025")]).await, ["o1"]);
    assert_eq!(got(vec![("date", "le2024-12-31")]).await, ["o1"]);
    assert_eq!(got(vec![("date", "gt2025-01-01")]).await, ["o3", "o4"]);
    assert_eq!(got(vec![("date", "2025-03")]).await, ["o3"]);
    assert_eq!(got(vec![("date", "eq2025-03-15T08:30:00Z")]).await, ["o3"], "offsets are honoured");
    assert_eq!(got(vec![("date", "ge2025-01-01"), ("date", "lt2025-06")]).await, ["o2", "o3"]);
    let conditions =
        SearchQuery::parse(ResourceType::Condition, [("date", "ge2019-04-30")]).unwrap();
    assert_eq!(
        store.search(&conditions).await.unwrap().total,
        0,
        "a month's range starts on its first day"
    );
}

pub async fn search_by_last_updated(store: &dyn RecordStore) {
    let before = crate::format_instant(crate::now_ms() - 2_000);
    seed(store).await;
    let after = crate::format_instant(crate::now_ms() + 2_000);
    let ge = format!("ge{before}");
    let lt = format!("lt{after}");
    let gt_after = format!("gt{after}");
    let query = SearchQuery::parse(
        ResourceType::Observation,
        [("_lastUpdated", ge.as_str()), ("_lastUpdated", lt.as_str())],
    )
    .unwrap();
    assert_eq!(store.search(&query).await.unwrap().total, 4);
    let query =
        SearchQuery::parse(ResourceType::Observation, [("_lastUpdated", gt_after.as_str())])
            .unwrap();
    assert_eq!(store.search(&query).await.unwrap().total, 0);
}

pub async fn paging_is_stable_and_complete(store: &dyn RecordStore) {
    let batch: Vec<Resource> = (0..23)
        .map(|i| obs(&format!("pg{i:02}"), "p9", "laboratory", "2498-4", "2025-01-01"))
        .collect();
    store.update_all(batch).await.unwrap();
    let mut seen = Vec::new();
    for offset in (0..30).step_by(5) {
        let mut query = SearchQuery::all(ResourceType::Observation);
        query.count = 5;
        query.offset = offset;
        let page = store.search(&query).await.unwrap();
        assert_eq!(page.total, 23, "total is the whole match, whatever the page");
        assert!(page.entries.len() <= 5);
        seen.extend(page.entries.into_iter().map(|s| s.id.to_string()));
    }
    let expected: Vec<String> = (0..23).map(|i| format!("pg{i:02}")).collect();
    assert_eq!(seen, expected, "pages are disjoint, complete and in _id order");
    let mut query = SearchQuery::all(ResourceType::Observation);
    query.count = 0;
    let page = store.search(&query).await.unwrap();
    assert_eq!((page.total, page.entries.len()), (23, 0), "_count=0 counts only");
}

pub async fn sorting(store: &dyn RecordStore) {
    seed(store).await;
    assert_eq!(
        ids(store, &q(ResourceType::Observation, &[("_sort", "date")])).await,
        ["o1", "o2", "o3", "o4"]
    );
    assert_eq!(
        ids(store, &q(ResourceType::Observation, &[("_sort", "-date")])).await,
        ["o4", "o3", "o2", "o1"]
    );
    assert_eq!(
        ids(store, &q(ResourceType::Observation, &[("_sort", "-_id")])).await,
        ["o4", "o3", "o2", "o1"]
    );
    // Ties on date fall back to _id ascending.
    store.update(obs("o0", "p1", "laboratory", "718-7", "2025-01-01T00:00:00Z")).await.unwrap();
    assert_eq!(
        ids(store, &q(ResourceType::Observation, &[("_sort", "date")])).await,
        ["o1", "o0", "o2", "o3", "o4"]
    );
}

pub async fn sql_metacharacters_are_data(store: &dyn RecordStore) {
    seed(store).await;
    let evil = "x' OR '1'='1\"; DROP TABLE resources; --";
    let query = SearchQuery::parse(ResourceType::Observation, [("code", evil)]).unwrap();
    assert_eq!(store.search(&query).await.unwrap().total, 0);
    let system_evil = format!("{evil}|{evil}");
    let query = SearchQuery::parse(ResourceType::Observation, [("category", system_evil.as_str())])
        .unwrap();
    assert_eq!(store.search(&query).await.unwrap().total, 0);
    let stored = store
        .create(r(json!({"resourceType": "Observation", "code": {"coding": [{"system": evil, "code": evil}]}, "note": [{"text": evil}]})))
        .await
        .unwrap();
    let query =
        SearchQuery::parse(ResourceType::Observation, [("code", system_evil.as_str())]).unwrap();
    assert_eq!(ids(store, &query).await, [stored.id.to_string()], "stored and found as plain data");
    assert_eq!(
        store.search(&SearchQuery::all(ResourceType::Observation)).await.unwrap().total,
        5,
        "nothing dropped"
    );
}

pub async fn json_round_trips_exactly(store: &dyn RecordStore) {
    let big = "é漢字🙂\u{0}\\\"\n".repeat(2_000);
    let value = json!({
        "resourceType": "DocumentReference",
        "id": "doc-1",
        "status": "current",
        "description": big,
        "content": [{"attachment": {"contentType": "text/plain", "data": "SGVsbG8="}}],
        "extension": [{"url": "http://example.org/n", "valueDecimal": 1.5e-7}, {"url": "http://example.org/i", "valueInteger": -42}]
    });
    let stored = store.update(r(value.clone())).await.unwrap();
    let read = store.read(ResourceType::DocumentReference, &id("doc-1")).await.unwrap().unwrap();
    let mut expected = value;
    expected["meta"] = stored.json["meta"].clone();
    assert_eq!(read.json, expected);
}

pub async fn concurrent_updates_get_distinct_versions(store: &dyn RecordStore) {
    store.update(r(json!({"resourceType": "Patient", "id": "hot"}))).await.unwrap();
    let results = futures::future::join_all((0..12).map(|i| store.update(r(json!({"resourceType": "Patient", "id": "hot", "gender": if i % 2 == 0 { "male" } else { "female" }}))))).await;
    let mut versions: Vec<u64> = results.into_iter().map(|r| r.unwrap().version).collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=13).collect::<Vec<_>>());
    let current = store.read(ResourceType::Patient, &id("hot")).await.unwrap().unwrap();
    assert_eq!(current.version, 13);
}

pub async fn reads_of_unknown_resources_are_empty(store: &dyn RecordStore) {
    assert!(store.read(ResourceType::Patient, &id("nobody")).await.unwrap().is_none());
    assert!(store.read_version(ResourceType::Patient, &id("nobody"), 1).await.unwrap().is_none());
    let page = store.search(&SearchQuery::all(ResourceType::Encounter)).await.unwrap();
    assert_eq!((page.total, page.entries.len()), (0, 0));
}

pub async fn undated_resources_sort_last_and_match_no_date(store: &dyn RecordStore) {
    seed(store).await;
    store.update(r(json!({"resourceType": "Observation", "id": "o-undated", "subject": {"reference": "Patient/p1"}}))).await.unwrap();
    let asc = ids(store, &q(ResourceType::Observation, &[("_sort", "date")])).await;
    let desc = ids(store, &q(ResourceType::Observation, &[("_sort", "-date")])).await;
    assert_eq!(asc.last().map(String::as_str), Some("o-undated"));
    assert_eq!(desc.last().map(String::as_str), Some("o-undated"));
    for bound in ["ge1900", "lt3000"] {
        let query = SearchQuery::parse(ResourceType::Observation, [("date", bound)]).unwrap();
        assert!(!ids(store, &query).await.contains(&"o-undated".to_owned()), "{bound}");
    }
}

pub async fn raw_reads_serve_the_stored_text_and_its_compartment(store: &dyn RecordStore) {
    seed(store).await;
    let obs = store
        .update(r(json!({
            "resourceType": "Observation", "id": "o-raw", "status": "final",
            "subject": {"reference": "Patient/p1"}, "valueString": "a \"quoted\" ü"
        })))
        .await
        .unwrap();
    let raw = store.read_raw(ResourceType::Observation, &id("o-raw")).await.unwrap().unwrap();
    assert_eq!(raw.json, obs.json.to_string(), "the text served is the resource, byte for byte");
    assert_eq!((raw.version, raw.last_updated), (obs.version, obs.last_updated));
    assert_eq!(raw.patient.as_deref(), Some("p1"));
    let patient = store.read_raw(ResourceType::Patient, &id("p1")).await.unwrap().unwrap();
    assert_eq!(patient.patient.as_deref(), Some("p1"), "a Patient is its own compartment");
    assert!(store.read_raw(ResourceType::Patient, &id("nobody")).await.unwrap().is_none());
}

pub async fn search_by_name_identifier_gender_and_status(store: &dyn RecordStore) {
    seed(store).await;
    let batch = vec![
        r(
            json!({"resourceType": "Patient", "id": "n1", "gender": "female", "birthDate": "1970-02-03",
                 "identifier": [{"system": "urn:mrn", "value": "M-1"}],
                 "name": [{"family": "Ørsted-Ébert", "given": ["Zoë", "Anne"]}]}),
        ),
        r(json!({"resourceType": "Patient", "id": "n2", "gender": "male",
                 "identifier": [{"system": "urn:other", "value": "M-1"}],
                 "name": [{"text": "Ann Percent%_Sign"}]})),
        r(json!({"resourceType": "Observation", "id": "s1", "status": "amended",
                 "subject": {"reference": "Patient/n1"}})),
    ];
    store.update_all(batch).await.unwrap();
    let patients = |params: &[(&str, &str)]| q(ResourceType::Patient, params);
    assert_eq!(ids(store, &patients(&[("name", "ann")])).await, ["n1", "n2"]);
    assert_eq!(ids(store, &patients(&[("name", "ANNE")])).await, ["n1"]);
    assert_eq!(ids(store, &patients(&[("name", "zoe")])).await, ["n1"], "accents folded");
    assert_eq!(
        ids(store, &patients(&[("name", "ebert")])).await,
        Vec::<String>::new(),
        "a prefix of a part, not a substring"
    );
    assert_eq!(ids(store, &patients(&[("name", "ørsted-é")])).await, ["n1"]);
    assert_eq!(ids(store, &patients(&[("name", "percent%")])).await, ["n2"], "% is data");
    assert!(ids(store, &patients(&[("name", "percent_")])).await.is_empty(), "_ is data");
    assert_eq!(ids(store, &patients(&[("name", "zoe"), ("name", "ann")])).await, ["n1"]);
    assert_eq!(ids(store, &patients(&[("identifier", "M-1")])).await, ["n1", "n2"]);
    assert_eq!(ids(store, &patients(&[("identifier", "urn:mrn|M-1")])).await, ["n1"]);
    assert_eq!(ids(store, &patients(&[("gender", "male")])).await, ["n2"]);
    assert_eq!(ids(store, &patients(&[("birthdate", "1970")])).await, ["n1"]);
    let observations = |params: &[(&str, &str)]| q(ResourceType::Observation, params);
    assert_eq!(ids(store, &observations(&[("status", "amended")])).await, ["s1"]);
    assert_eq!(ids(store, &observations(&[("status", "final")])).await, ["o1", "o2", "o3", "o4"]);
    assert_eq!(
        ids(store, &observations(&[("status", "final,amended"), ("patient", "n1")])).await,
        ["s1"]
    );
}
