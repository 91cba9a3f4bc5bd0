//! Care beyond one viewer, in words: groups named instead of their addresses, the
//! patient's break-glass setting and the openings of their emergency set (the Inbox),
//! and what an emergency clinician reads after breaking the glass, grouped by provider
//! and type. Pure functions over what the chain and the gatekeepers said.

use super::{Names, date};
use alloy::primitives::Address;
use medrec_client::{
    care::{EmergencyReason, EmergencySet, GroupInfo, Opening, OpeningState},
    timeline::{span, timeline},
};
use std::collections::BTreeMap;

/// What break-glass means, for the patient's setting.
pub const MEANING: &str = "In an emergency, a clinician of a certified emergency department may open your allergies, medications and conditions for 4 hours without asking you first. You are told at once in your Inbox, and every read is in your Access log.";

/// What a clinician confirms before breaking the glass.
pub const CONFIRMATION: &str = "This is an emergency. Breaking the glass is recorded on the chain with my address and the reason, and the patient is shown it at once.";

/// Each group's name by the address a patient grants it under.
pub fn group_names(groups: &[GroupInfo]) -> BTreeMap<Address, String> {
    groups.iter().map(|g| (g.address, g.name.clone())).collect()
}

/// Group `id` by its name (`group 7` when the chain does not name it).
pub fn group_name(groups: &[GroupInfo], id: u64) -> String {
    groups.iter().find(|g| g.id == id).map_or_else(|| format!("group {id}"), |g| g.name.clone())
}

/// A group a patient may share with, for the Share form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChoice {
    /// Its id (the form's value).
    pub id: u64,
    /// Its name, with what kind of group it is.
    pub label: String,
}

/// The groups to choose from, by name (an emergency group says so).
pub fn choices(groups: &[GroupInfo]) -> Vec<GroupChoice> {
    let mut out: Vec<GroupChoice> = groups
        .iter()
        .map(|g| GroupChoice {
            id: g.id,
            label: if g.emergency {
                format!("{} (emergency clinicians)", g.name)
            } else {
                g.name.clone()
            },
        })
        .collect();
    out.sort_by(|a, b| a.label.to_lowercase().cmp(&b.label.to_lowercase()).then(a.id.cmp(&b.id)));
    out
}

/// The group a Share form names (empty: none), checked against the chain's groups.
pub fn chosen_group(text: &str, groups: &[GroupInfo]) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>().ok().filter(|id| groups.iter().any(|g| g.id == *id)).map(Some).ok_or_else(
        || "That group does not exist on the chain; choose one from the list.".to_owned(),
    )
}

/// The patient's break-glass setting as the Share page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Whether break-glass is allowed now.
    pub allowed: bool,
    /// Where it stands, in a sentence.
    pub state: &'static str,
    /// The value the form posts to change it (`true`: allow).
    pub value: &'static str,
    /// The button's label.
    pub label: &'static str,
    /// What the button does, in a sentence.
    pub effect: &'static str,
    /// What the page says while the transaction waits for its block.
    pub busy: &'static str,
}

/// The setting, and the one change it can take.
pub const fn setting(allowed: bool) -> Setting {
    if allowed {
        Setting {
            allowed,
            state: "Allowed: an emergency clinician may open your emergency records without asking.",
            value: "false",
            label: "Refuse break-glass",
            effect: "Refuse: nobody may break the glass for you, and any opening in force ends at once. In an emergency, clinicians then see only what you shared.",
            busy: "Refusing break-glass on the chain and waiting for its block…",
        }
    } else {
        Setting {
            allowed,
            state: "Refused: nobody may open your emergency records without your grant.",
            value: "true",
            label: "Allow break-glass",
            effect: "Allow: in an emergency, a clinician of a certified emergency department may open your allergies, medications and conditions for 4 hours.",
            busy: "Allowing break-glass on the chain and waiting for its block…",
        }
    }
}

/// The sentence after the patient changed the setting (`changed`: a transaction was sent).
pub fn setting_changed(allowed: bool, changed: bool) -> String {
    match (allowed, changed) {
        (true, false) => "Break-glass already was allowed; nothing changed.".to_owned(),
        (false, false) => "Break-glass already was refused; nothing changed.".to_owned(),
        (true, true) => "Break-glass is now allowed: in an emergency, a clinician of a certified emergency department may open your allergies, medications and conditions for 4 hours, and you are told at once.".to_owned(),
        (false, true) => "Break-glass is now refused: nobody may open your emergency records without your grant, and any opening in force has ended.".to_owned(),
    }
}

/// A break-glass opening of the patient's emergency set, for the Inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningRow {
    /// The clinician.
    pub clinician: Address,
    /// The emergency group they acted for, named.
    pub group: String,
    /// Why, in words.
    pub reason: String,
    /// Until when (a date).
    pub until: String,
    /// Whether it may still be used now.
    pub in_force: bool,
    /// What happened, in a sentence.
    pub sentence: String,
    /// Where it stands now, in a sentence.
    pub standing: String,
    /// The block it was recorded in.
    pub block: u64,
}

/// The heading of an opening, in the Inbox and in the live notices.
pub const OPENING_TITLE: &str = "Emergency access";

/// What to do when an opening was not expected.
pub const UNEXPECTED: &str = "If you did not expect this, see exactly what was read in your Access log (every entry is proven on the chain), and refuse break-glass on the Share page: that ends the opening at once. The clinician's address and the reason are recorded on the chain for good.";

/// An opening in a sentence: who, for which group, why, until when.
pub fn opening_sentence(o: &Opening, group: &str) -> String {
    format!(
        "Emergency access: {} of \"{group}\" broke the glass and may read your allergies, medications and conditions until {}, because {}.",
        o.clinician,
        date(o.expires_at),
        o.reason
    )
}

/// Every opening, newest first; those in force at `now` say how long they still run,
/// those the patient's refusal of break-glass ended say so.
pub fn openings(list: &[Opening], groups: &[GroupInfo], now: u64) -> Vec<OpeningRow> {
    list.iter()
        .rev()
        .map(|o| {
            let group = group_name(groups, o.group);
            let state = o.state(now);
            let in_force = state == OpeningState::Open;
            let standing = match state {
                OpeningState::Open => {
                    format!("In force: it ends in {}.", span(o.expires_at - now))
                }
                OpeningState::Ended => "Ended: you refused break-glass.".to_owned(),
                OpeningState::Expired => format!("Ended at {}.", date(o.expires_at)),
            };
            OpeningRow {
                clinician: o.clinician,
                sentence: opening_sentence(o, &group),
                group,
                reason: o.reason.to_string(),
                until: date(o.expires_at),
                in_force,
                standing,
                block: o.block,
            }
        })
        .collect()
}

/// A reason a clinician may give, for the Emergency form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonChoice {
    /// The form value (`unconscious`, …).
    pub value: &'static str,
    /// The reason in words, as the clinician states it.
    pub label: &'static str,
}

/// The three reasons the contract knows, in its order.
pub fn reasons() -> Vec<ReasonChoice> {
    EmergencyReason::ALL
        .into_iter()
        .map(|r| ReasonChoice {
            value: r.as_str(),
            label: match r {
                EmergencyReason::Unconscious => "The patient is unconscious or cannot communicate",
                EmergencyReason::LifeThreatening => {
                    "A life-threatening condition needs treatment at once"
                }
                EmergencyReason::CannotConsent => {
                    "The patient cannot give consent for another reason"
                }
            },
        })
        .collect()
}

/// The reason an Emergency form chose.
pub fn reason(text: &str) -> Result<EmergencyReason, String> {
    text.trim().parse().map_err(|_| "Choose the reason for breaking the glass.".to_owned())
}

/// The patient an Emergency form names: their address.
pub fn patient(text: &str) -> Result<Address, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Type the patient's address (0x followed by 40 hex digits).".to_owned());
    }
    text.parse::<Address>().map_err(|_| {
        format!("'{text}' is not an address: a patient's address is 0x followed by 40 hex digits.")
    })
}

/// One record of the emergency set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyLine {
    /// What it is (`Penicillin allergy`, `Asthma`).
    pub text: String,
    /// Its value or status (`active`), if any.
    pub value: Option<String>,
    /// Its clinical date (day), if any.
    pub date: Option<String>,
    /// `Condition/c1`.
    pub reference: String,
}

/// One type of the emergency set at one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyType {
    /// `Allergies`, `Medications`, `Conditions`.
    pub label: &'static str,
    /// Its records, newest first.
    pub lines: Vec<EmergencyLine>,
}

/// What one provider served of the emergency set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyProvider {
    /// The provider, named.
    pub provider: String,
    /// Its gatekeeper.
    pub endpoint: String,
    /// Each type, always all three (empty ones say so).
    pub types: Vec<EmergencyType>,
    /// How many records it served.
    pub count: usize,
}

/// The resource types of the emergency set, as labelled on the page.
const TYPES: [(&str, &str); 3] = [
    ("AllergyIntolerance", "Allergies"),
    ("MedicationRequest", "Medications"),
    ("Condition", "Conditions"),
];

/// The emergency set from every provider, grouped by provider and type.
pub fn emergency(sets: &[EmergencySet], names: &Names) -> Vec<EmergencyProvider> {
    sets.iter()
        .map(|set| {
            let types = TYPES
                .iter()
                .map(|(ty, label)| {
                    let of_type = set
                        .resources
                        .iter()
                        .filter(|r| r["resourceType"] == *ty)
                        .map(|r| (set.provider, alloy::primitives::B256::ZERO, r));
                    let lines = timeline(of_type)
                        .into_iter()
                        .map(|l| EmergencyLine {
                            text: l.text,
                            value: l.value,
                            date: l.date.map(|d| d.get(..10).unwrap_or(&d).to_owned()),
                            reference: l.reference,
                        })
                        .collect();
                    EmergencyType { label, lines }
                })
                .collect::<Vec<_>>();
            EmergencyProvider {
                provider: names.provider(set.provider),
                endpoint: set.endpoint.clone(),
                count: types.iter().map(|t| t.lines.len()).sum(),
                types,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn groups() -> Vec<GroupInfo> {
        vec![
            GroupInfo {
                id: 1,
                address: Address::repeat_byte(0xe1),
                name: "Emergency departments".to_owned(),
                emergency: true,
                manager: Address::ZERO,
            },
            GroupInfo {
                id: 2,
                address: Address::repeat_byte(0xe2),
                name: "Pharmacists".to_owned(),
                emergency: false,
                manager: Address::ZERO,
            },
        ]
    }

    #[test]
    fn groups_are_named_and_chosen_by_id() {
        let g = groups();
        assert_eq!(group_names(&g)[&Address::repeat_byte(0xe2)], "Pharmacists");
        assert_eq!(group_name(&g, 1), "Emergency departments");
        assert_eq!(group_name(&g, 9), "group 9");
        let labels: Vec<String> = choices(&g).into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["Emergency departments (emergency clinicians)", "Pharmacists"]);
        assert_eq!(chosen_group("", &g), Ok(None));
        assert_eq!(chosen_group(" 2 ", &g), Ok(Some(2)));
        assert!(chosen_group("9", &g).unwrap_err().contains("does not exist"));
        assert!(chosen_group("x", &g).is_err());
    }

    #[test]
    fn the_setting_says_where_it_stands_and_offers_the_other_choice() {
        let on = setting(true);
        assert!(on.state.starts_with("Allowed"));
        assert_eq!((on.value, on.label), ("false", "Refuse break-glass"));
        let off = setting(false);
        assert!(off.state.starts_with("Refused"));
        assert_eq!((off.value, off.label), ("true", "Allow break-glass"));
        assert!(setting_changed(false, true).contains("any opening in force has ended"));
        assert!(setting_changed(true, false).contains("nothing changed"));
        assert!(MEANING.contains("4 hours") && MEANING.contains("Access log"));
    }

    #[test]
    fn openings_say_who_which_group_why_and_until_when_newest_first() {
        let clinician = Address::repeat_byte(0xc1);
        let opening = |block, reason, expires_at| Opening {
            patient: Address::repeat_byte(2),
            clinician,
            group: 1,
            reason,
            expires_at,
            block,
            refused_in: None,
        };
        let list = [
            opening(3, EmergencyReason::CannotConsent, 500),
            opening(7, EmergencyReason::Unconscious, 1_000 + 4 * 3_600),
        ];
        let rows = openings(&list, &groups(), 1_000);
        assert_eq!(rows.iter().map(|r| r.block).collect::<Vec<_>>(), [7, 3]);
        assert!(rows[0].in_force);
        assert_eq!(rows[0].standing, "In force: it ends in 4 h 0 min.");
        assert_eq!(
            rows[0].sentence,
            format!(
                "Emergency access: {clinician} of \"Emergency departments\" broke the glass and may read your allergies, medications and conditions until 1970-01-01 04:16 UTC, because the patient was unconscious or could not communicate."
            )
        );
        assert_eq!(rows[0].group, "Emergency departments");
        assert!(!rows[1].in_force);
        assert_eq!(rows[1].standing, "Ended at 1970-01-01 00:08 UTC.");
        assert_eq!(rows[1].reason, "the patient could not give consent");
        // Refusing break-glass (in block 9) ended the one in force.
        let mut ended = list;
        ended[1].refused_in = Some(9);
        let refused = openings(&ended, &groups(), 1_000);
        assert!(!refused[0].in_force);
        assert_eq!(refused[0].standing, "Ended: you refused break-glass.");
    }

    #[test]
    fn the_emergency_form_is_read_with_sentences() {
        let r = reasons();
        assert_eq!(
            r.iter().map(|c| c.value).collect::<Vec<_>>(),
            ["unconscious", "life-threatening", "cannot-consent"]
        );
        assert!(r.iter().all(|c| c.label.starts_with(char::is_uppercase)));
        assert_eq!(reason("life-threatening"), Ok(EmergencyReason::LifeThreatening));
        assert!(reason("").unwrap_err().contains("Choose the reason"));
        let a = Address::repeat_byte(0x42);
        assert_eq!(patient(&format!(" {a} ")), Ok(a));
        assert!(patient("").unwrap_err().contains("Type the patient's address"));
        assert!(patient("0x12").unwrap_err().contains("is not an address"));
    }

    #[test]
    fn the_emergency_set_is_grouped_by_provider_then_type() {
        let provider = Address::repeat_byte(0x11);
        let set = EmergencySet {
            provider,
            endpoint: "http://127.0.0.1:8080".to_owned(),
            resources: vec![
                json!({"resourceType": "Condition", "id": "c1", "code": {"text": "Asthma"},
                    "onsetDateTime": "2020-03-04T10:00:00Z",
                    "clinicalStatus": {"coding": [{"code": "active"}]}}),
                json!({"resourceType": "AllergyIntolerance", "id": "a1",
                    "code": {"coding": [{"display": "Penicillin"}]}}),
                json!({"resourceType": "Condition", "id": "c2", "code": {"text": "Hypertension"},
                    "onsetDateTime": "2022-01-01"}),
            ],
        };
        let view = emergency(&[set], &Names::default());
        assert_eq!(view.len(), 1);
        let p = &view[0];
        assert_eq!(p.provider, "Provider 0x1111…1111");
        assert_eq!(p.count, 3);
        let labels: Vec<&str> = p.types.iter().map(|t| t.label).collect();
        assert_eq!(labels, ["Allergies", "Medications", "Conditions"]);
        assert_eq!(p.types[0].lines[0].text, "Penicillin");
        assert!(p.types[1].lines.is_empty(), "no medication served: the type is still listed");
        let conditions: Vec<&str> = p.types[2].lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(conditions.len(), 2);
        assert!(conditions.contains(&"Asthma") && conditions.contains(&"Hypertension"));
        let asthma = p.types[2].lines.iter().find(|l| l.text == "Asthma").unwrap();
        assert_eq!(asthma.date.as_deref(), Some("2020-03-04"));
        assert_eq!(asthma.value.as_deref(), Some("active"));
        assert_eq!(asthma.reference, "Condition/c1");
    }
}
