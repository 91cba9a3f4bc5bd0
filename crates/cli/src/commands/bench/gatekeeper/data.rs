//! The load's data: synthetic laboratory Observations of realistic size, RFC 3339 times
//! and the generator that picks which resource to read next.

use serde_json::{Value, json};

/// `secs` since the epoch as RFC 3339 in UTC, e.g. `2026-11-24T11:38:34Z`.
pub(super) fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Observation `r` of patient `p`: a laboratory result (one in five a vital sign) of
/// 1–3 KiB, as a lab system sends them (codes, value, reference range, interpretation,
/// performer, specimen and a free-text note of varying length).
pub(super) fn observation(pid: &str, p: usize, r: usize) -> Value {
    const LABS: [(&str, &str, &str, f64, f64); 4] = [
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 99.0),
        ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2),
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.0),
        ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135.0, 145.0),
    ];
    let (code, display, unit, low, high) = LABS[r % LABS.len()];
    let category = if r % 5 == 4 { "vital-signs" } else { "laboratory" };
    let value = low + (high - low) * ((p * 31 + r * 17) % 100) as f64 / 80.0;
    let day = 1 + r % 28;
    let month = 1 + (r / 28) % 12;
    let note = "Specimen received in good condition; analysed on the routine chemistry \
                line with calibration verified the same morning. "
        .repeat(1 + (p + r) % 12);
    json!({
        "resourceType": "Observation",
        "id": format!("o-{p}-{r}"),
        "status": "final",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5.99999.1", "value": format!("LAB-{p:04}-{r:06}")}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category, "display": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": format!("Patient/{pid}")},
        "effectiveDateTime": format!("2025-{month:02}-{day:02}T08:30:00Z"),
        "issued": format!("2025-{month:02}-{day:02}T14:05:00Z"),
        "performer": [{"reference": "Organization/lab-1", "display": "Central Hospital Laboratory"}],
        "valueQuantity": {"value": (value * 10.0).round() / 10.0, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": if value > high { "H" } else { "N" }}]}],
        "referenceRange": [{"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}, "text": format!("{low}–{high} {unit}")}],
        "specimen": {"display": "Serum specimen"},
        "method": {"text": "Automated analyser"},
        "note": [{"text": note}],
    })
}

/// A small, fast pseudo-random generator (xorshift64*): which resource to read next.
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_952_314), "2026-11-29T11:38:34Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn observations_are_between_one_and_four_kib() {
        for (p, r) in [(0, 0), (3, 11), (15, 499), (7, 250)] {
            let len = observation("p1", p, r).to_string().len();
            assert!((1024..4096).contains(&len), "{len}");
        }
    }
}
