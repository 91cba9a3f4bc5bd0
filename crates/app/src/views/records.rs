//! The Records page: one timeline across providers, by category, each record naming its
//! source and how it was checked against the chain; and each pointer named in words.

use super::{Names, date};
use alloy::primitives::{Address, B256};
use medrec_client::{
    patient::records::{Problem, ProblemKind, Records},
    timeline::{self, reference},
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A category of records, as patients know them (Apple Health's seven, plus visits and
/// documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Laboratory results.
    Labs,
    /// Vital signs.
    Vitals,
    /// Conditions and diagnoses.
    Conditions,
    /// Medications.
    Medications,
    /// Allergies and intolerances.
    Allergies,
    /// Immunizations.
    Immunizations,
    /// Procedures.
    Procedures,
    /// Visits (FHIR encounters).
    Encounters,
    /// Documents and reports.
    Documents,
    /// Everything else (e.g. the patient's own demographic record).
    Other,
}

impl Category {
    /// Every category, in the order the page shows them.
    pub const ALL: [Self; 10] = [
        Self::Labs,
        Self::Vitals,
        Self::Conditions,
        Self::Medications,
        Self::Allergies,
        Self::Immunizations,
        Self::Procedures,
        Self::Encounters,
        Self::Documents,
        Self::Other,
    ];

    /// Its name in URLs and forms (`labs`, `vitals`, …).
    pub const fn slug(self) -> &'static str {
        match self {
            Self::Labs => "labs",
            Self::Vitals => "vitals",
            Self::Conditions => "conditions",
            Self::Medications => "medications",
            Self::Allergies => "allergies",
            Self::Immunizations => "immunizations",
            Self::Procedures => "procedures",
            Self::Encounters => "encounters",
            Self::Documents => "documents",
            Self::Other => "other",
        }
    }

    /// Its name for a person.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Labs => "Lab results",
            Self::Vitals => "Vitals",
            Self::Conditions => "Conditions",
            Self::Medications => "Medications",
            Self::Allergies => "Allergies",
            Self::Immunizations => "Immunizations",
            Self::Procedures => "Procedures",
            Self::Encounters => "Visits",
            Self::Documents => "Documents",
            Self::Other => "Other",
        }
    }

    /// The category a slug names.
    pub fn parse(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.slug() == slug)
    }
}

/// The category of a FHIR resource.
pub fn category_of(r: &Value) -> Category {
    let codes = |field: &str| -> Vec<String> {
        let list = match &r[field] {
            Value::Array(list) => list.clone(),
            v @ Value::Object(_) => vec![v.clone()],
            _ => Vec::new(),
        };
        list.iter()
            .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["code"].as_str().map(str::to_ascii_lowercase))
            .collect()
    };
    match r["resourceType"].as_str().unwrap_or_default() {
        "Observation" => {
            let cats = codes("category");
            if cats.iter().any(|c| c == "vital-signs") {
                Category::Vitals
            } else if cats.iter().any(|c| c == "laboratory") {
                Category::Labs
            } else {
                Category::Other
            }
        }
        "DiagnosticReport" => {
            if codes("category").iter().any(|c| c == "lab") {
                Category::Labs
            } else {
                Category::Documents
            }
        }
        "Condition" => Category::Conditions,
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationAdministration"
        | "MedicationDispense"
        | "Medication" => Category::Medications,
        "AllergyIntolerance" => Category::Allergies,
        "Immunization" => Category::Immunizations,
        "Procedure" => Category::Procedures,
        "Encounter" => Category::Encounters,
        "DocumentReference" | "Composition" => Category::Documents,
        _ => Category::Other,
    }
}

/// How a record was checked against the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its data matched the hash on chain when fetched.
    Verified {
        /// When it was fetched and checked.
        at: String,
    },
    /// The newest data served did not match the chain; this is the copy verified earlier.
    Mismatch,
}

/// One record of the timeline.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its clinical date (`YYYY-MM-DD`), or `undated`.
    pub date: String,
    /// Its category.
    pub category: Category,
    /// `resourceType`.
    pub kind: String,
    /// What it is, in words.
    pub text: String,
    /// Its value, if any.
    pub value: Option<String>,
    /// The provider it came from.
    pub provider: String,
    /// How it was checked.
    pub check: Check,
    /// It came with a provider's update the patient has not answered yet.
    pub pending: bool,
}

impl Row {
    /// Whether it was verified against the chain with its newest data.
    pub fn verified(&self) -> bool {
        matches!(self.check, Check::Verified { .. })
    }

    /// The check, in a sentence.
    pub fn check_sentence(&self) -> String {
        match &self.check {
            Check::Verified { at } => format!("Verified against the chain ({at})"),
            Check::Mismatch => "Mismatch: the provider's newest data did not match the chain; this is the copy verified earlier".to_owned(),
        }
    }
}

/// One category's records, newest first.
#[derive(Debug, Clone)]
pub struct Group {
    /// The category.
    pub category: Category,
    /// Its records.
    pub rows: Vec<Row>,
}

/// What the Records page was asked to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this category.
    pub category: Option<Category>,
    /// Only records whose words contain this (case-insensitive).
    pub text: String,
}

/// The Records page's data.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Records held in all.
    pub total: usize,
    /// Records shown after filtering.
    pub shown: usize,
    /// Every category with how many records it holds (before filtering).
    pub counts: Vec<(Category, usize)>,
    /// The records shown, by category.
    pub groups: Vec<Group>,
    /// Sentences about data that did not match the chain (shown plainly, first).
    pub mismatches: Vec<String>,
    /// Sentences about providers that could not be reached or refused.
    pub notes: Vec<String>,
}

/// Builds the page from the records held, what went wrong at the last refresh, and
/// the filter.
pub fn build(records: &Records, problems: &[Problem], names: &Names, filter: &Filter) -> View {
    let mismatched: Vec<(B256, u8)> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::HashMismatch)
        .filter_map(|p| Some((p.relationship, p.pointer?)))
        .collect();
    // Where each (provider, reference) came from: the resource and its pointer.
    let mut source: HashMap<(Address, String), (&Value, Check, bool)> = HashMap::new();
    for r in &records.relationships {
        let pending = r.status == medrec_primitives::Status::UpdatePending;
        for p in &r.pointers {
            let check = if mismatched.contains(&(r.id, p.pointer)) {
                Check::Mismatch
            } else {
                Check::Verified { at: date(p.fetched_at) }
            };
            for x in &p.resources {
                source.entry((r.provider, reference(x))).or_insert((x, check.clone(), pending));
            }
        }
    }
    let mut by: BTreeMap<Category, Vec<Row>> = BTreeMap::new();
    let mut total = 0;
    let needle = filter.text.trim().to_lowercase();
    for line in records.timeline() {
        let Some((resource, check, pending)) = source.get(&(line.provider, line.reference.clone()))
        else {
            continue;
        };
        total += 1;
        let category = category_of(resource);
        let row = Row {
            date: line
                .date
                .as_deref()
                .map_or_else(|| "undated".to_owned(), |d| d.get(..10).unwrap_or(d).to_owned()),
            category,
            kind: line.kind,
            text: line.text,
            value: line.value,
            provider: names.provider(line.provider),
            check: check.clone(),
            pending: *pending,
        };
        by.entry(category).or_default().push(row);
    }
    let counts = Category::ALL
        .into_iter()
        .map(|c| (c, by.get(&c).map_or(0, Vec::len)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let groups: Vec<Group> = by
        .into_iter()
        .filter(|(c, _)| filter.category.is_none_or(|f| f == *c))
        .map(|(category, rows)| Group {
            category,
            rows: rows
                .into_iter()
                .filter(|r| {
                    needle.is_empty()
                        || [r.text.as_str(), r.kind.as_str(), r.value.as_deref().unwrap_or("")]
                            .iter()
                            .any(|t| t.to_lowercase().contains(&needle))
                })
                .collect(),
        })
        .filter(|g| !g.rows.is_empty())
        .collect();
    let shown = groups.iter().map(|g| g.rows.len()).sum();
    let mismatches = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::HashMismatch)
        .map(|p| format!("{}: {}", names.provider(p.provider), p.message))
        .collect();
    let notes = problems
        .iter()
        .filter(|p| p.kind != ProblemKind::HashMismatch)
        .map(|p| format!("{}: {}", names.provider(p.provider), p.message))
        .collect();
    View { total, shown, counts, groups, mismatches, notes }
}

/// Each pointer named in words from what it held when last fetched: `Lab results (24
/// records)`, or `Lab results and vitals (30 records)`.
pub fn pointer_names(records: &Records) -> BTreeMap<(B256, u8), String> {
    let mut out = BTreeMap::new();
    for r in &records.relationships {
        for p in &r.pointers {
            let mut cats: Vec<Category> = p.resources.iter().map(category_of).collect();
            cats.sort();
            cats.dedup();
            let words: Vec<String> = cats
                .iter()
                .enumerate()
                .map(|(i, c)| if i == 0 { c.label().to_owned() } else { c.label().to_lowercase() })
                .collect();
            let what = match words.as_slice() {
                [] => "Nothing yet".to_owned(),
                [one] => one.clone(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
            };
            out.insert(
                (r.id, p.pointer),
                format!("{what} ({})", medrec_client::plural(p.resources.len(), "record")),
            );
        }
    }
    out
}

/// A pointer in words: its name from the cache, or its number when not fetched yet.
pub fn pointer_name(names: &BTreeMap<(B256, u8), String>, relationship: B256, n: u8) -> String {
    names
        .get(&(relationship, n))
        .cloned()
        .unwrap_or_else(|| format!("Records of pointer {n} (not fetched yet)"))
}

/// The newest clinical date among the records of each relationship (`None` when it has
/// none), for "last updated".
pub fn newest(records: &Records) -> BTreeMap<B256, String> {
    records
        .relationships
        .iter()
        .filter_map(|r| {
            let d = r
                .pointers
                .iter()
                .flat_map(|p| &p.resources)
                .filter_map(timeline::clinical_date)
                .max()?;
            Some((r.id, d.get(..10).unwrap_or(&d).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_client::patient::records::{CachedPointer, CachedRelationship};
    use medrec_primitives::Status;
    use serde_json::json;

    fn lab(id: &str, day: &str, name: &str) -> Value {
        json!({"resourceType": "Observation", "id": id, "effectiveDateTime": day,
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": {"text": name}, "valueQuantity": {"value": 13.5, "unit": "g/dL"}})
    }

    fn records() -> Records {
        let vital = json!({"resourceType": "Observation", "id": "v1", "effectiveDateTime": "2025-03-01",
            "category": [{"coding": [{"code": "vital-signs"}]}], "code": {"text": "Heart rate"}});
        let condition = json!({"resourceType": "Condition", "id": "c1", "onsetDateTime": "2024-01-01",
            "code": {"text": "Asthma"}});
        let rel = |byte: u8, pointers: Vec<CachedPointer>| CachedRelationship {
            id: B256::repeat_byte(byte),
            provider: Address::repeat_byte(byte),
            endpoint: format!("http://127.0.0.1:80{byte}"),
            status: Status::Accepted,
            pointers,
        };
        let ptr = |n: u8, resources: Vec<Value>| CachedPointer {
            pointer: n,
            data_hash: B256::ZERO,
            fetched_at: 0,
            resources,
        };
        Records {
            saved_at: 0,
            chain_id: 31337,
            relationships: vec![
                rel(1, vec![ptr(0, vec![lab("a", "2025-01-02", "Hemoglobin"), vital])]),
                rel(
                    2,
                    vec![ptr(0, vec![lab("b", "2025-02-02", "Ferritin")]), ptr(1, vec![condition])],
                ),
            ],
        }
    }

    #[test]
    fn records_are_grouped_by_category_newest_first_naming_their_provider() {
        let view = build(&records(), &[], &Names::default(), &Filter::default());
        assert_eq!(view.total, 4);
        let cats: Vec<Category> = view.groups.iter().map(|g| g.category).collect();
        assert_eq!(cats, [Category::Labs, Category::Vitals, Category::Conditions]);
        let labs = &view.groups[0].rows;
        assert_eq!(labs[0].text, "Ferritin", "newest first");
        assert_eq!(labs[0].provider, "Provider 0x0202…0202");
        assert_eq!(labs[1].provider, "Provider 0x0101…0101");
        assert!(labs.iter().all(Row::verified));
        assert!(labs.iter().all(|r| !r.pending));
        // A provider's update not answered yet: its records say so.
        let mut held = records();
        held.relationships[0].status = medrec_primitives::Status::UpdatePending;
        let view = build(&held, &[], &Names::default(), &Filter::default());
        let rows: Vec<&Row> = view.groups.iter().flat_map(|g| &g.rows).collect();
        let (first, other): (Vec<&Row>, Vec<&Row>) =
            rows.into_iter().partition(|r| r.provider == "Provider 0x0101…0101");
        assert!(!first.is_empty() && first.iter().all(|r| r.pending));
        assert!(!other.is_empty() && other.iter().all(|r| !r.pending));
        let view = build(&records(), &[], &Names::default(), &Filter::default());
        assert_eq!(
            view.counts,
            [(Category::Labs, 2), (Category::Vitals, 1), (Category::Conditions, 1)]
        );
    }

    #[test]
    fn filtering_by_category_and_words() {
        let only_labs = Filter { category: Some(Category::Labs), text: String::new() };
        let view = build(&records(), &[], &Names::default(), &only_labs);
        assert_eq!((view.shown, view.groups.len()), (2, 1));
        let words = Filter { category: None, text: "ferr".to_owned() };
        let view = build(&records(), &[], &Names::default(), &words);
        assert_eq!(view.shown, 1);
        assert_eq!(view.groups[0].rows[0].text, "Ferritin");
        assert_eq!(view.total, 4, "the total counts everything held");
        assert_eq!(Category::parse("vitals"), Some(Category::Vitals));
        assert_eq!(Category::parse("nonsense"), None);
    }

    #[test]
    fn a_mismatch_is_shown_plainly_and_the_rest_still_displays() {
        let problem = Problem {
            kind: ProblemKind::HashMismatch,
            relationship: B256::repeat_byte(2),
            provider: Address::repeat_byte(2),
            pointer: Some(0),
            message: "the data of pointer 0 does not match the hash on chain".to_owned(),
        };
        let view = build(&records(), &[problem], &Names::default(), &Filter::default());
        assert_eq!(view.mismatches.len(), 1);
        assert!(view.mismatches[0].starts_with("Provider 0x0202…0202: the data of pointer 0"));
        let labs = &view.groups[0].rows;
        assert_eq!(labs[0].check, Check::Mismatch);
        assert!(labs[0].check_sentence().starts_with("Mismatch"));
        assert!(labs[1].verified(), "the other provider's records are still verified");
        assert_eq!(view.total, 4);
    }

    #[test]
    fn pointers_are_named_by_what_they_hold() {
        let names = pointer_names(&records());
        assert_eq!(names[&(B256::repeat_byte(1), 0)], "Lab results and vitals (2 records)");
        assert_eq!(names[&(B256::repeat_byte(2), 1)], "Conditions (1 record)");
        assert_eq!(
            pointer_name(&names, B256::repeat_byte(9), 3),
            "Records of pointer 3 (not fetched yet)"
        );
        assert_eq!(newest(&records())[&B256::repeat_byte(2)], "2025-02-02");
    }
}
