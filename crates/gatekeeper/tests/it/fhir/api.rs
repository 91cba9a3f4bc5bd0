//! The FHIR API ordinary clients expect (issue 14, part 2): lenient and strict search
//! parameters, formats, `_summary`, `_total`, `_elements`, `_include` /
//! `_revinclude` and `$everything` inside the requester's scope, the common search
//! parameters of each type, trailing slashes and the CapabilityStatement.

use super::{condition, records};
use crate::{
    client::{Answer, As, ids},
    fixture::{Fixture, obs, resource},
};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};

/// [`records`], with `p1` named and identified, an encounter `e1` of `p1` that the
/// laboratory result `a1` points to, and a male patient `p3`.
async fn fixture() -> Fixture {
    let mut all = records();
    all.retain(|r| r.id.as_ref().is_none_or(|id| id.as_str() != "p1" && id.as_str() != "a1"));
    all.push(resource(json!({
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-17",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-1"}],
        "name": [{"family": "Łukasiewicz", "given": ["Zoë"]}],
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Zoë</div>"}
    })));
    let mut a1 = obs("a1", "p1", "laboratory", "2025-01-02").json;
    a1["encounter"] = json!({"reference": "Encounter/e1"});
    all.push(resource(a1));
    all.push(resource(json!({
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"}
    })));
    all.push(resource(json!({"resourceType": "Patient", "id": "p3", "gender": "male",
        "name": [{"family": "Smith"}]})));
    all.push(condition("c3", "p3"));
    Fixture::new(all).await
}

fn with(
    f: &Fixture,
    path: &str,
    who: usize,
    headers: &[(&str, &str)],
) -> impl Future<Output = Answer> {
    let (client, key) = (f.client.clone(), f.key(who));
    let (path, headers): (String, Vec<(String, String)>) = (
        path.to_owned(),
        headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
    );
    async move {
        let headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        client.send_with("GET", &path, Vec::new(), &key, &headers).await
    }
}

/// Request headers besides the signature's.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn self_link(bundle: &Value) -> String {
    let links = bundle["link"].as_array().expect("links");
    let link = links.iter().find(|l| l["relation"] == "self").expect("a self link");
    link["url"].as_str().unwrap().to_owned()
}

/// `(type/id, search mode)` of each entry.
fn entries(bundle: &Value) -> Vec<(String, String)> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    let r = &e["resource"];
                    (
                        format!(
                            "{}/{}",
                            r["resourceType"].as_str().unwrap(),
                            r["id"].as_str().unwrap()
                        ),
                        e["search"]["mode"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_are_ignored_unless_the_client_asks_for_strict_handling() {
    let f = fixture().await;
    let path = "/fhir/Observation?category=laboratory&foo=bar&code:text=iron&_pretty=true";
    let a = f.get(path, PROVIDER).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.ids(), ["a1", "a3", "b1"], "the known parameter applied");
    let link = self_link(&a.body);
    assert!(link.contains("category=laboratory"), "{link}");
    for ignored in ["foo", "code%3Atext", "code:text", "_pretty"] {
        assert!(!link.contains(ignored), "the self link shows only what was applied: {link}");
    }
    let strict = with(&f, path, PROVIDER, &[("Prefer", "handling=strict")]).await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(strict.issue_code(), "invalid");
    assert!(strict.diagnostics().contains("foo"), "{}", strict.diagnostics());
    let lenient = with(&f, path, PROVIDER, &[("Prefer", "handling=lenient")]).await;
    assert_eq!(lenient.status, 200);
    // Ignoring a parameter never widens a scope.
    assert_eq!(f.ids("/fhir/Observation?foo=bar", VIEWER).await, ["a1", "a3"]);
    // A bad value of a supported parameter is refused either way.
    assert_eq!(f.get("/fhir/Observation?date=soon", PROVIDER).await.status, 400);
    // An unsupported _include is an unknown parameter too.
    let include = "/fhir/Observation?_include=Observation:performer";
    assert_eq!(f.get(include, PROVIDER).await.status, 200);
    let refused = with(&f, include, PROVIDER, &[("Prefer", "handling=strict")]).await;
    assert_eq!(refused.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_served_as_the_client_asks_and_other_formats_are_refused() {
    let f = fixture().await;
    let cases: &[(&str, Headers<'_>, u16, &str)] = &[
        ("/fhir/Observation/a1", &[], 200, "application/fhir+json"),
        ("/fhir/Observation/a1", &[("Accept", "application/json")], 200, "application/json"),
        (
            "/fhir/Observation/a1",
            &[("Accept", "application/fhir+json")],
            200,
            "application/fhir+json",
        ),
        ("/fhir/Observation/a1", &[("Accept", "*/*")], 200, "application/fhir+json"),
        (
            "/fhir/Observation/a1",
            &[("Accept", "application/fhir+xml, application/json;q=0.5")],
            200,
            "application/json",
        ),
        (
            "/fhir/Observation?_format=json",
            &[("Accept", "text/html")],
            200,
            "application/fhir+json",
        ),
        ("/fhir/Observation?_format=application/json", &[], 200, "application/json"),
        ("/fhir/Observation?_format=application/fhir%2Bjson", &[], 200, "application/fhir+json"),
        ("/fhir/Observation?_format=xml", &[], 406, "application/fhir+json"),
        (
            "/fhir/Observation/a1",
            &[("Accept", "application/fhir+xml")],
            406,
            "application/fhir+json",
        ),
        (
            "/fhir/Observation/a1",
            &[("Accept", "application/json;q=0")],
            406,
            "application/fhir+json",
        ),
        ("/fhir/Observation/zz", &[("Accept", "application/json")], 404, "application/json"),
    ];
    for (path, headers, status, media) in cases {
        let a = with(&f, path, PATIENT, headers).await;
        assert_eq!(a.status, *status, "{path} {headers:?}: {}", a.body);
        assert_eq!(a.header("content-type"), Some(*media), "{path} {headers:?}");
        if *status == 406 {
            assert_eq!(a.issue_code(), "not-supported");
        }
    }
    let metadata = f
        .client
        .send_with(
            "GET",
            "/fhir/metadata",
            Vec::new(),
            &As::Nobody,
            &[("Accept", "application/json")],
        )
        .await;
    assert_eq!((metadata.status, metadata.header("content-type")), (200, Some("application/json")));
    let refused =
        f.client.send_with("GET", "/fhir/metadata?_format=xml", Vec::new(), &As::Nobody, &[]).await;
    assert_eq!(refused.status, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_total_and_elements_subset_what_is_sent() {
    let f = fixture().await;
    let count = f.get("/fhir/Observation?_summary=count", PATIENT).await;
    assert_eq!(count.status, 200, "{}", count.body);
    assert_eq!(count.body["total"], 3);
    assert!(count.body.get("entry").is_none_or(|e| e.as_array().unwrap().is_empty()));
    assert!(self_link(&count.body).contains("_summary=count"));

    let no_total = f.get("/fhir/Observation?_total=none", PATIENT).await;
    assert!(no_total.body.get("total").is_none(), "{}", no_total.body);
    assert_eq!(no_total.ids(), ["a1", "a2", "a3"]);
    assert_eq!(f.get("/fhir/Observation?_total=accurate", PATIENT).await.body["total"], 3);
    assert_eq!(f.get("/fhir/Observation?_total=some", PATIENT).await.status, 400);

    let elements = f.get("/fhir/Observation?_elements=subject&_id=a1", PATIENT).await;
    let r = &elements.body["entry"][0]["resource"];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["resourceType", "id", "status", "subject", "code", "meta"], "{r}");
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    assert!(self_link(&elements.body).contains("_elements=subject"));

    let summary = f.get("/fhir/Patient?_summary=true", PATIENT).await;
    let p1 = &summary.body["entry"][0]["resource"];
    assert_eq!(p1["name"][0]["family"], "Łukasiewicz");
    assert!(p1.get("text").is_none(), "the narrative is not a summary element: {p1}");
    assert_eq!(p1["meta"]["tag"][0]["code"], "SUBSETTED");
    let data = f.get("/fhir/Patient?_summary=data", PATIENT).await;
    assert!(data.body["entry"][0]["resource"].get("text").is_none());
    assert!(data.body["entry"][0]["resource"].get("identifier").is_some());
    let text = f.get("/fhir/Patient/p1?_summary=text", PATIENT).await;
    assert_eq!(text.status, 200, "{}", text.body);
    assert!(text.body.get("text").is_some() && text.body.get("name").is_none(), "{}", text.body);
    assert_eq!(text.header("etag"), Some("W/\"1\""));
    let read = f.get("/fhir/Observation/a1?_elements=effective", VIEWER).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["effectiveDateTime"], "2025-01-02");
    assert!(read.body.get("category").is_none());
    assert_eq!(f.get("/fhir/Observation/a2?_elements=effective", VIEWER).await.status, 404);
    let both = f.get("/fhir/Patient?_summary=true&_elements=name", PATIENT).await;
    assert_eq!(both.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn includes_never_reach_beyond_what_consent_allows() {
    let f = fixture().await;
    let path = "/fhir/Observation?_include=Observation:patient&_include=Observation:encounter";
    // The patient sees their compartment: the results, their Patient, the encounter.
    let mine = f.get(path, PATIENT).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        entries(&mine.body),
        pairs(&[
            ("Observation/a1", "match"),
            ("Observation/a2", "match"),
            ("Observation/a3", "match"),
            ("Patient/p1", "include"),
            ("Encounter/e1", "include"),
        ])
    );
    assert_eq!(mine.body["total"], 3, "the total counts matches only");
    // The viewer holds laboratory results only: no Patient, no Encounter comes along.
    let viewer = f.get(path, VIEWER).await;
    assert_eq!(
        entries(&viewer.body),
        pairs(&[("Observation/a1", "match"), ("Observation/a3", "match")]),
        "{}",
        viewer.body
    );
    assert!(!viewer.text.contains("ukasiewicz"), "nothing of the Patient: {}", viewer.text);
    // The provider's include reaches every patient's.
    let all = f
        .get("/fhir/Observation?category=laboratory&_include=Observation:subject:Patient", PROVIDER)
        .await;
    let included: Vec<_> = entries(&all.body).into_iter().filter(|(_, m)| m == "include").collect();
    assert_eq!(included, pairs(&[("Patient/p1", "include"), ("Patient/p2", "include")]));

    let rev = "/fhir/Patient?_revinclude=Observation:subject&_revinclude=Condition:patient";
    let mine = f.get(rev, PATIENT).await;
    assert_eq!(
        entries(&mine.body),
        pairs(&[
            ("Patient/p1", "match"),
            ("Observation/a1", "include"),
            ("Observation/a2", "include"),
            ("Observation/a3", "include"),
            ("Condition/c1", "include"),
        ])
    );
    let provider = f.get(&format!("{rev}&gender=male"), PROVIDER).await;
    assert_eq!(
        entries(&provider.body),
        pairs(&[("Patient/p3", "match"), ("Condition/c3", "include")])
    );
    // A viewer sees no Patient, so nothing is reverse-included either.
    let viewer = f.get(rev, VIEWER).await;
    assert_eq!(viewer.status, 200);
    assert!(entries(&viewer.body).is_empty(), "{}", viewer.body);
    assert_eq!(f.get(rev, STRANGER).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_is_the_compartment_within_the_scope() {
    let f = fixture().await;
    let mine = f.get("/fhir/Patient/p1/$everything", PATIENT).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let got: Vec<String> = entries(&mine.body).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        got,
        [
            "Patient/p1",
            "Observation/a1",
            "Observation/a2",
            "Observation/a3",
            "Condition/c1",
            "Encounter/e1"
        ]
    );
    assert_eq!(mine.body["type"], "searchset");
    assert_eq!(mine.body["total"], 6);
    let viewer = f.get("/fhir/Patient/p1/$everything", VIEWER).await;
    assert_eq!(viewer.ids(), ["a1", "a3"], "only the granted pointer");
    let other = f.get("/fhir/Patient/p2/$everything", PATIENT).await;
    assert_eq!((other.status, other.body["total"].as_u64()), (200, Some(0)), "not theirs");
    let typed = f.get("/fhir/Patient/p1/$everything?_type=Condition,Patient", PROVIDER).await;
    assert_eq!(typed.ids(), ["p1", "c1"]);
    assert_eq!(f.get("/fhir/Patient/p1/$everything", STRANGER).await.status, 403);
    let strict = with(
        &f,
        "/fhir/Patient/p1/$everything?start=2020",
        PATIENT,
        &[("Prefer", "handling=strict")],
    )
    .await;
    assert_eq!(strict.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_is_searched_by_its_common_parameters() {
    let f = fixture().await;
    let cases: &[(&str, &[&str])] = &[
        ("/fhir/Patient?name=zoe", &["p1"]),
        ("/fhir/Patient?name=%C5%81UK", &["p1"]),
        ("/fhir/Patient?name=smi,zo", &["p1", "p3"]),
        ("/fhir/Patient?name=ukasiewicz", &[]),
        ("/fhir/Patient?identifier=urn:oid:1.2.3|MRN-1", &["p1"]),
        ("/fhir/Patient?identifier=MRN-1", &["p1"]),
        ("/fhir/Patient?identifier=urn:oid:9|MRN-1", &[]),
        ("/fhir/Patient?gender=male", &["p3"]),
        ("/fhir/Patient?birthdate=1980-05", &["p1"]),
        ("/fhir/Patient?birthdate=lt1980", &[]),
        ("/fhir/Observation?status=final&category=laboratory", &["a1", "a3", "b1"]),
        ("/fhir/Observation?status=preliminary", &[]),
        ("/fhir/Encounter?status=finished", &["e1"]),
    ];
    for (path, expected) in cases {
        assert_eq!(f.ids(path, PROVIDER).await, *expected, "{path}");
    }
    // Within a scope the user's conditions still apply.
    assert_eq!(f.ids("/fhir/Observation?status=final", VIEWER).await, ["a1", "a3"]);
    assert!(f.ids("/fhir/Observation?status=preliminary", VIEWER).await.is_empty());
    assert!(f.ids("/fhir/Patient?gender=male", PATIENT).await.is_empty(), "p3 is not theirs");
    assert_eq!(f.ids("/fhir/Patient?name=zo", PATIENT).await, ["p1"]);
    // A parameter of another type is not one of this type's.
    let strict =
        with(&f, "/fhir/Observation?gender=male", PROVIDER, &[("Prefer", "handling=strict")]).await;
    assert_eq!(strict.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_is_the_same_route() {
    let f = fixture().await;
    assert_eq!(f.ids("/fhir/Observation/", PATIENT).await, ["a1", "a2", "a3"]);
    assert_eq!(f.ids("/fhir/Observation/?category=laboratory", PATIENT).await, ["a1", "a3"]);
    let read = f.get("/fhir/Patient/p1/", PATIENT).await;
    assert_eq!((read.status, read.body["id"].as_str()), (200, Some("p1")), "{}", read.body);
    assert_eq!(f.get("/fhir/Observation/a1/_history/1/", PROVIDER).await.status, 200);
    let history = f.get("/fhir/Observation/a1/_history/", PATIENT).await;
    assert_eq!((history.status, &history.body["type"]), (200, &json!("history")));
    assert_eq!(f.get("/fhir/Patient/p1/$everything/", PATIENT).await.status, 200);
    let metadata = f.client.get("/fhir/metadata/", &As::Nobody).await;
    assert_eq!(metadata.body["resourceType"], "CapabilityStatement");
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p9"}, "request": {"method": "PUT", "url": "Patient/p9"}}
    ]});
    let a = f.send("POST", "/fhir/", &transaction, PROVIDER).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let created =
        f.send("POST", "/fhir/Patient/", &json!({"resourceType": "Patient"}), PROVIDER).await;
    assert_eq!(created.status, 201);
    let updated = f
        .send("PUT", "/fhir/Patient/p9/", &json!({"resourceType": "Patient", "id": "p9"}), PROVIDER)
        .await;
    assert_eq!(updated.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_says_exactly_what_each_type_supports() {
    let f = fixture().await;
    let c = f.client.get("/fhir/metadata", &As::Nobody).await.body;
    // The R4 invariants a validator checks on it.
    assert_eq!(c["kind"], "instance");
    assert!(
        c["implementation"]["description"].is_string(),
        "cpb-14: an instance names its implementation"
    );
    assert!(
        c["rest"].as_array().unwrap().len() == 1 && c["rest"][0]["mode"] == "server",
        "cpb-1, cpb-9"
    );
    assert!(c["software"].is_object() && c["date"].is_string() && c["status"] == "active", "cpb-2");
    assert_eq!(c["fhirVersion"], "4.0.1");
    let formats: Vec<&str> =
        c["format"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(formats.contains(&"json") && formats.contains(&"application/fhir+json"));
    let name = c["name"].as_str().unwrap();
    assert!(
        name.chars().next().unwrap().is_ascii_uppercase()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    );
    let resources = c["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 13, "ten record types and MedRec's three derived views");
    for r in resources {
        let ty = r["type"].as_str().unwrap();
        let params = r["searchParam"].as_array().unwrap();
        let mut names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "cpb-12: unique search parameter names on {ty}");
        // Every parameter it declares is one the server applies, even under strict handling.
        for p in params {
            let value = match p["type"].as_str().unwrap() {
                "date" => "ge2000",
                "reference" => "Patient/p1",
                _ => "x",
            };
            let path = format!("/fhir/{ty}?{}={value}", p["name"].as_str().unwrap());
            let a = with(&f, &path, PROVIDER, &[("Prefer", "handling=strict")]).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
        }
        for include in r["searchInclude"].as_array().into_iter().flatten() {
            let path = format!("/fhir/{ty}?_include={}", include.as_str().unwrap());
            let a = with(&f, &path, PROVIDER, &[("Prefer", "handling=strict")]).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
        }
        for include in r["searchRevInclude"].as_array().into_iter().flatten() {
            let path = format!("/fhir/{ty}?_revinclude={}", include.as_str().unwrap());
            let a = with(&f, &path, PROVIDER, &[("Prefer", "handling=strict")]).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
        }
        let codes: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        if ["Consent", "AuditEvent", "Provenance"].contains(&ty) {
            assert_eq!(codes, ["read", "search-type"], "{ty} is read-only");
        } else {
            assert_eq!(
                codes,
                ["read", "vread", "update", "create", "history-instance", "search-type"]
            );
        }
    }
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let names: Vec<&str> = patient["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for expected in ["name", "identifier", "birthdate", "gender", "_id"] {
        assert!(names.contains(&expected), "{expected} on Patient");
    }
    assert!(!names.contains(&"status") && !names.contains(&"_count"));
    assert_eq!(patient["operation"][0]["name"], "everything");
    assert!(
        patient["searchRevInclude"].as_array().unwrap().iter().any(|i| i == "Observation:subject")
    );
    let observation = resources.iter().find(|r| r["type"] == "Observation").unwrap();
    let names: Vec<&str> = observation["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"status") && !names.contains(&"gender"));
    // An undeclared parameter is refused under strict handling.
    let a =
        with(&f, "/fhir/Observation?performer=x", PROVIDER, &[("Prefer", "handling=strict")]).await;
    assert_eq!(a.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn included_reads_are_in_the_access_log() {
    let f = fixture().await;
    let before = f.log_size().await;
    let path = "/fhir/Observation?_id=a1&_include=Observation:encounter";
    let a = f.get(path, PATIENT).await;
    assert_eq!(entries(&a.body).len(), 2, "{}", a.body);
    assert!(f.log_size().await > before, "the patient's read is logged");
    let _ = ids(&a.body);
}
