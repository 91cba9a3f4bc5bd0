//! The cases every legacy backend passes, over any reader.

use super::{config, found, id, page, read};
use medrec_store::{
    RecordReader,
    fhir::{Resource, ResourceType},
    hash::data_hash,
    search::SearchQuery,
    sqlite::SqliteStore,
};
use serde_json::{Value, json};

pub(super) async fn each_type_reads_by_id_as_fhir(store: &dyn RecordReader) {
    let p = read(store, ResourceType::Patient, "1001").await;
    assert_eq!((p.version, p.last_updated), (1, 0));
    assert_eq!(p.json["resourceType"], "Patient");
    assert_eq!(p.json["id"], "1001");
    assert_eq!(
        p.json["meta"],
        json!({"versionId": "1", "lastUpdated": "1970-01-01T00:00:00.000Z"})
    );
    assert_eq!(p.json["name"], json!([{"family": "Testperson", "given": ["Alba"]}]));
    assert_eq!(p.json["gender"], "female");
    assert_eq!(p.json["birthDate"], "1980-05-17");
    assert_eq!(p.json["identifier"][0]["value"], "1001");
    assert_eq!(p.json["communication"][0]["language"]["text"], "English");
    assert_eq!(p.json["extension"].as_array().unwrap().len(), 3);
    // NULL columns leave no trace, not even the url of an extension they fed.
    let p3 = read(store, ResourceType::Patient, "1003").await;
    assert!(p3.json.get("address").is_none(), "{}", p3.json);
    let urls: Vec<&str> = p3.json["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"]);
    assert_eq!(p3.json["gender"], "other");

    let e = read(store, ResourceType::Encounter, "501").await;
    assert_eq!(e.json["subject"], json!({"reference": "Patient/1001"}));
    assert_eq!(
        e.json["period"],
        json!({"end": "2024-03-01T09:30:00Z", "start": "2024-03-01T09:00:00Z"})
    );
    assert_eq!(
        e.json["type"],
        json!([{"coding": [{"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}]}])
    );
    assert_eq!(e.json["class"]["code"], "AMB");
    let e2 = read(store, ResourceType::Encounter, "502").await;
    assert_eq!(e2.json["period"], json!({"start": "2025-02-10T14:15:00Z"}));

    let i = read(store, ResourceType::Immunization, "703").await;
    assert_eq!(i.json["patient"], json!({"reference": "Patient/1003"}));
    assert_eq!(i.json["occurrenceDateTime"], "2013-03-30");
    assert_eq!(i.json["vaccineCode"]["coding"][0]["code"], "08");
    assert_eq!(i.json["status"], "completed");
    assert!(i.json.get("lotNumber").is_none());

    let m = read(store, ResourceType::MedicationRequest, "302").await;
    assert_eq!(m.json["status"], "completed");
    assert_eq!(m.json["intent"], "order");
    assert_eq!(m.json["authoredOn"], "2022-01-15");
    assert_eq!(
        m.json["medicationCodeableConcept"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(m.json["medicationCodeableConcept"]["coding"][0]["code"], "860975");
    assert_eq!(m.json["category"][0]["coding"][0]["code"], "outpatient");
    assert_eq!(m.json["dosageInstruction"][0]["text"], "1 tablet twice daily");

    let o = read(store, ResourceType::Observation, "9021").await;
    assert_eq!(o.json["subject"], json!({"reference": "Patient/1001"}));
    assert_eq!(o.json["effectiveDateTime"], "2025-02-11T07:30:00Z");
    assert_eq!(
        o.json["valueQuantity"],
        json!({"value": 48, "unit": "ug/dL", "system": "http://unitsofmeasure.org", "code": "ug/dL"})
    );
    assert_eq!(
        o.json["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "2498-4", "display": "Iron [Mass/volume] in Serum or Plasma"})
    );
    assert_eq!(o.json["category"][0]["coding"][0]["code"], "laboratory");
    assert_eq!(o.json["identifier"][0]["value"], "902-9021");
    assert_eq!(o.json["note"][0]["text"], "Ordered as Iron panel");
    // last_updated comes from result_info.LastUpdated.
    assert_eq!(o.json["meta"]["lastUpdated"], "2025-02-12T16:45:00.000Z");
    assert_eq!(o.last_updated, 1_739_378_700_000);
    let text = read(store, ResourceType::Observation, "9032").await;
    assert_eq!(text.json["valueString"], "see note");
    assert!(text.json.get("referenceRange").is_none());
    assert_eq!(
        read(store, ResourceType::Observation, "9011").await.json["valueQuantity"]["value"],
        13.5
    );

    // Missing ids, other versions and unmapped types are simply not there.
    assert!(store.read(ResourceType::Observation, &id("1001")).await.unwrap().is_none());
    assert!(store.read(ResourceType::Condition, &id("1")).await.unwrap().is_none());
    assert_eq!(
        store.read_version(ResourceType::Observation, &id("9021"), 1).await.unwrap().unwrap(),
        o
    );
    assert!(store.read_version(ResourceType::Observation, &id("9021"), 2).await.unwrap().is_none());
    // No history: the current version alone.
    let history = store.read_versions(ResourceType::Observation, &id("9021"), 1..=3).await.unwrap();
    assert_eq!(history, [o]);
    assert_eq!(page(store, ResourceType::Condition, &[]).await, (0, vec![]));
}

pub(super) async fn searches_filter_in_sql_like_the_native_backends(store: &dyn RecordReader) {
    let (obs, enc, pat) =
        (ResourceType::Observation, ResourceType::Encounter, ResourceType::Patient);
    let (med, imm) = (ResourceType::MedicationRequest, ResourceType::Immunization);

    // Patient compartment.
    assert_eq!(found(store, obs, &[("patient", "1001")]).await, ["9011", "9012", "9021", "9022"]);
    assert_eq!(found(store, obs, &[("subject", "Patient/1002")]).await, ["9031", "9032"]);
    assert_eq!(found(store, enc, &[("patient", "1001")]).await, ["501", "502"]);
    assert_eq!(found(store, imm, &[("patient", "1003")]).await, ["703"]);
    assert_eq!(found(store, pat, &[("patient", "1002")]).await, ["1002"]);
    assert!(found(store, obs, &[("patient", "1003")]).await.is_empty());
    assert!(found(store, obs, &[("patient", "01001")]).await.is_empty(), "ids compare as text");
    assert_eq!(found(store, obs, &[("_id", "9012,9031,77")]).await, ["9012", "9031"]);

    // Codes: system|code, code alone, system| and |code; OR inside, AND across.
    assert_eq!(found(store, obs, &[("code", "http://loinc.org|2498-4")]).await, ["9021"]);
    assert_eq!(found(store, obs, &[("code", "2498-4,718-7")]).await, ["9011", "9021"]);
    assert!(found(store, obs, &[("code", "http://snomed.info/sct|2498-4")]).await.is_empty());
    assert!(found(store, obs, &[("code", "|2498-4")]).await.is_empty());
    assert_eq!(found(store, obs, &[("code", "http://loinc.org|")]).await.len(), 6);
    assert!(found(store, obs, &[("code", "2498-4"), ("code", "718-7")]).await.is_empty());
    assert_eq!(
        found(store, med, &[("code", "http://www.nlm.nih.gov/research/umls/rxnorm|197361")]).await,
        ["303"]
    );
    assert_eq!(found(store, imm, &[("code", "08")]).await, ["703"]);
    assert!(found(store, imm, &[("code", "8")]).await.is_empty(), "codes compare as text");
    assert_eq!(found(store, enc, &[("code", "185349003"), ("patient", "1002")]).await, ["503"]);
    assert!(found(store, pat, &[("code", "1001")]).await.is_empty(), "a Patient has no code");

    // Categories, fixed by the mapping.
    assert_eq!(found(store, obs, &[("category", "laboratory")]).await.len(), 6);
    let lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
    assert_eq!(
        found(store, obs, &[("category", lab), ("patient", "1002")]).await,
        ["9031", "9032"]
    );
    assert!(found(store, obs, &[("category", "vital-signs")]).await.is_empty());
    assert!(found(store, obs, &[("category", "http://other|laboratory")]).await.is_empty());
    assert_eq!(found(store, med, &[("category", "outpatient")]).await, ["301", "302", "303"]);
    assert!(found(store, enc, &[("category", "outpatient")]).await.is_empty());

    // Dates and their prefixes.
    assert_eq!(found(store, obs, &[("date", "ge2025")]).await, ["9021", "9022", "9031", "9032"]);
    assert_eq!(found(store, obs, &[("date", "lt2025")]).await, ["9011", "9012"]);
    assert_eq!(found(store, obs, &[("date", "2025-02")]).await, ["9021", "9022"]);
    assert_eq!(
        found(store, obs, &[("date", "ge2025-01-01"), ("date", "lt2025-06-01")]).await,
        ["9021", "9022"]
    );
    assert_eq!(found(store, obs, &[("date", "gt2025-02-11")]).await, ["9031", "9032"]);
    assert_eq!(found(store, obs, &[("date", "le2024-03-01")]).await, ["9011", "9012"]);
    assert!(found(store, obs, &[("date", "gt2025-06-21T11:00:00Z")]).await.is_empty());
    assert_eq!(found(store, obs, &[("date", "ge2025-06-21T11:00:00Z")]).await, ["9031", "9032"]);
    assert_eq!(found(store, enc, &[("date", "eq2024-03-01T09:00:00Z")]).await, ["501"]);
    assert_eq!(found(store, pat, &[("date", "lt1960")]).await, ["1002"]);
    assert_eq!(found(store, imm, &[("date", "2013")]).await, ["703"]);

    // _lastUpdated: a configured column, or the epoch.
    assert_eq!(
        found(store, obs, &[("_lastUpdated", "ge2025-02-12")]).await,
        ["9021", "9022", "9031", "9032"]
    );
    assert!(found(store, obs, &[("_lastUpdated", "lt2024-03-02T08:00:00Z")]).await.is_empty());
    assert_eq!(
        found(store, obs, &[("_lastUpdated", "le2024-03-02T08:00:00Z")]).await,
        ["9011", "9012"]
    );
    assert!(found(store, pat, &[("_lastUpdated", "gt2000")]).await.is_empty());
    assert_eq!(found(store, pat, &[("_lastUpdated", "lt2000")]).await, ["1001", "1002", "1003"]);
    assert_eq!(found(store, pat, &[("_lastUpdated", "1970-01-01")]).await.len(), 3);
}

pub(super) async fn paging_and_sorting_give_the_totals_and_orders_of_the_native_backends(
    store: &dyn RecordReader,
) {
    let obs = ResourceType::Observation;
    let pages = [
        (&[("_sort", "-date"), ("_count", "2")][..], vec!["9031", "9032"]),
        (&[("_sort", "-date"), ("_count", "2"), ("_offset", "2")][..], vec!["9021", "9022"]),
        (&[("_sort", "-date"), ("_count", "2"), ("_offset", "4")][..], vec!["9011", "9012"]),
        (&[("_sort", "-date"), ("_count", "2"), ("_offset", "6")][..], vec![]),
        (&[("_sort", "-_id"), ("_count", "3")][..], vec!["9032", "9031", "9022"]),
        (&[("_sort", "-_lastUpdated,_id"), ("_count", "3")][..], vec!["9031", "9032", "9021"]),
        (&[("_count", "0")][..], vec![]),
    ];
    for (params, ids) in pages {
        assert_eq!(
            page(store, obs, params).await,
            (6, ids.iter().map(|s| (*s).to_owned()).collect()),
            "{params:?}"
        );
    }
    assert_eq!(
        page(
            store,
            obs,
            &[("patient", "1001"), ("_count", "1"), ("_offset", "1"), ("_sort", "date")]
        )
        .await,
        (4, vec!["9012".to_owned()])
    );
    assert_eq!(
        found(store, ResourceType::Patient, &[("_sort", "date")]).await,
        ["1002", "1001", "1003"]
    );
    assert_eq!(
        found(store, ResourceType::Patient, &[("_sort", "-date")]).await,
        ["1003", "1001", "1002"]
    );

    // The same resources in a native store answer the same searches the same way.
    let native = SqliteStore::open_in_memory().unwrap();
    for ty in config().resource_types() {
        for stored in store.search(&SearchQuery::all(ty)).await.unwrap().entries {
            native.update(Resource::parse(stored.json).unwrap()).await.unwrap();
        }
    }
    let searches: &[(ResourceType, &[(&str, &str)])] = &[
        (obs, &[("_sort", "-date"), ("_count", "4"), ("_offset", "1")]),
        (obs, &[("code", "http://loinc.org|2498-4,6690-2,2951-2"), ("_sort", "date")]),
        (
            obs,
            &[
                ("category", "laboratory"),
                ("date", "ge2025-02-11"),
                ("date", "lt2025-06-21T11:00:01Z"),
            ],
        ),
        (obs, &[("patient", "1002"), ("_sort", "-_id")]),
        (ResourceType::Encounter, &[("date", "2025"), ("_sort", "-date")]),
        (ResourceType::Encounter, &[("code", "http://snomed.info/sct|185349003")]),
        (ResourceType::Immunization, &[("patient", "1002"), ("code", "208")]),
        (
            ResourceType::MedicationRequest,
            &[("category", "outpatient"), ("_count", "2"), ("_sort", "_id")],
        ),
        (ResourceType::Patient, &[("date", "ge1980"), ("_sort", "-date")]),
        (ResourceType::Patient, &[("_id", "1003,1001")]),
    ];
    for (ty, params) in searches {
        assert_eq!(
            page(store, *ty, params).await,
            page(&native, *ty, params).await,
            "{ty} {params:?}"
        );
    }
}

/// A patient whose name and address are full of SQL.
pub(super) const SQL_PATIENT: &str = "INSERT INTO patient_info (PatientID, FirstName, LastName, Gender, DOB, Address) \
     VALUES (1004, 'Robert''); DROP TABLE patient_info;--', '%_*', 'unknown', '1999-09-09', '\" OR \"\"=\"');";

/// Run on a database with [`SQL_PATIENT`].
pub(super) async fn sql_metacharacters_in_values_are_data(store: &dyn RecordReader) {
    let p = read(store, ResourceType::Patient, "1004").await;
    assert_eq!(p.json["name"][0]["given"][0], "Robert'); DROP TABLE patient_info;--");
    assert_eq!(p.json["name"][0]["family"], "%_*");
    assert_eq!(p.json["address"][0]["text"], "\" OR \"\"=\"");
    let q = read(store, ResourceType::Patient, "1002").await;
    assert_eq!(q.json["address"][0]["text"], "Flat 2; 3 Quote's Lane -- Sampletown");

    let obs = ResourceType::Observation;
    for code in [
        "2498-4' OR '1'='1",
        "%",
        "_",
        "2498-4\" OR \"1\"=\"1",
        "x'); DROP TABLE result_info; --",
        "*",
    ] {
        assert!(found(store, obs, &[("code", code)]).await.is_empty(), "{code}");
        let token = format!("http://loinc.org' OR 1=1 --|{code}");
        assert!(found(store, obs, &[("code", &token)]).await.is_empty(), "{token}");
    }
    assert!(found(store, obs, &[("category", "laboratory' OR 'x'='x")]).await.is_empty());
    // Ids and patients that are not FHIR ids never reach the store.
    assert!(SearchQuery::parse(obs, [("patient", "1001' OR '1'='1")]).is_err());
    assert!(SearchQuery::parse(obs, [("_id", "9011;DROP")]).is_err());
    assert_eq!(found(store, ResourceType::Patient, &[]).await.len(), 4);
    assert_eq!(found(store, obs, &[]).await.len(), 6);
}

/// `again` is another store on the same database.
pub(super) async fn resources_parse_and_hash_the_same_on_every_read(
    store: &dyn RecordReader,
    again: &dyn RecordReader,
) {
    let mut everything = Vec::new();
    for ty in config().resource_types() {
        let page = store.search(&SearchQuery::all(ty)).await.unwrap();
        assert!(page.total > 0, "{ty}");
        for stored in page.entries {
            let parsed = Resource::parse(stored.json.clone()).unwrap();
            assert_eq!((parsed.resource_type, parsed.id.as_ref()), (ty, Some(&stored.id)));
            // Every resource sits in its patient's compartment and has its date.
            assert!(parsed.index.patient.is_some(), "{ty}/{}", stored.id);
            assert!(parsed.index.date.is_some(), "{ty}/{}", stored.id);
            if ty != ResourceType::Patient {
                assert!(
                    parsed.index.tokens.iter().any(|t| t.param == "code"),
                    "{ty}/{}",
                    stored.id
                );
            }
            everything.push(stored.json);
        }
    }
    assert_eq!(everything.len(), 3 + 3 + 3 + 3 + 6);
    let first = data_hash(&everything).unwrap();
    // A second store on the same database, read in another order, hashes the same.
    let mut second: Vec<Value> = Vec::new();
    for ty in config().resource_types().collect::<Vec<_>>().into_iter().rev() {
        let query = SearchQuery::parse(ty, [("_sort", "-_id")]).unwrap();
        second.extend(again.search(&query).await.unwrap().entries.into_iter().map(|s| s.json));
    }
    assert_eq!(data_hash(&second).unwrap(), first);
    let one = read(store, ResourceType::Observation, "9011").await.json;
    let two = read(again, ResourceType::Observation, "9011").await.json;
    assert_eq!(data_hash(&[one]).unwrap(), data_hash(&[two]).unwrap());
}
