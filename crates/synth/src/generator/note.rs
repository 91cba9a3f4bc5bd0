//! The short plain-text visit note of an encounter, as a DocumentReference.

use super::{Gen, Visit, concept, reference};
use crate::{catalogue::LOINC, date::instant};
use serde_json::json;

impl Gen<'_> {
    pub(super) fn note(
        &mut self,
        encounter: &str,
        day: i64,
        minute: i64,
        visit: Visit,
        what: &str,
    ) {
        let (code, display) = match visit {
            Visit::CheckUp | Visit::Problem => ("11506-3", "Progress note"),
            Visit::Emergency => ("34111-5", "Emergency department note"),
            Visit::Inpatient => ("18842-5", "Discharge summary"),
        };
        let active: Vec<&str> = self
            .person
            .conditions
            .iter()
            .filter(|&&(_, onset)| onset <= day)
            .map(|(c, _)| c.snomed().1)
            .collect();
        let problems = if active.is_empty() {
            "No chronic problems.".to_owned()
        } else {
            format!("Known problems: {}.", active.join(", ").to_lowercase())
        };
        let plan = *self.rng.pick(&[
            "Plan: continue current care and return in one year.",
            "Plan: review results by phone and follow up as needed.",
            "Plan: lifestyle advice given; recheck at the next visit.",
        ]);
        let text = format!(
            "Synthetic note, not a real person. {what} of a {}-year-old {} patient. {problems} {plan}",
            self.person.age_at(day),
            if self.person.male { "male" } else { "female" },
        );
        let id = self.id("doc");
        self.out.push(json!({
            "resourceType": "DocumentReference",
            "id": id,
            "status": "current",
            "type": concept(LOINC, code, display),
            "category": [concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note", "Clinical Note")],
            "subject": self.subject(),
            "date": instant(day, minute),
            "content": [{"attachment": {
                "contentType": "text/plain",
                "data": base64(text.as_bytes()),
                "title": display,
            }}],
            "context": {"encounter": [reference("Encounter", encounter)]},
        }));
    }
}

/// Standard base64 with padding (RFC 4648), as FHIR `base64Binary` wants.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
