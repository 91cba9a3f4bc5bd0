//! Who acts for the account in this app, and what the patient keeps off chain about the
//! account's keys: the names given to custodians and the guardians' list (the chain
//! holds only their commitment). Both files sit in the wallet's directory, beside the
//! keystore; neither holds a secret.

use alloy::primitives::Address;
use medrec_client::patient::keys::Guardians;
use medrec_contracts::Rights;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, path::Path};

const CUSTODIANS: &str = "custodians.json";
const GUARDIANS: &str = "guardians.json";

/// A key of this app acting for another account (a custodian: a parent, a spouse), as
/// the chain said when the app was unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acting {
    /// The account acted for.
    pub(crate) account: Address,
    /// The key of this app.
    pub(crate) key: Address,
    /// Its rights (0: retired or past its until-date).
    pub(crate) rights: u8,
    /// Until when (unix seconds; 0: until removed).
    pub(crate) until: u64,
}

impl Acting {
    /// Whether it holds `right` now.
    pub(crate) const fn may(&self, right: u8) -> bool {
        self.rights & right == right
    }

    /// The banner every page shows.
    pub(crate) fn banner(&self) -> String {
        if self.rights == 0 {
            return format!(
                "Your key no longer acts for {}: it was removed, or its powers ended{}. You can only read what was fetched before.",
                self.account,
                if self.until == 0 {
                    String::new()
                } else {
                    format!(" on {}", crate::views::date(self.until))
                }
            );
        }
        let until = if self.until == 0 {
            "until the patient removes your key".to_owned()
        } else {
            format!("until {}", crate::views::date(self.until))
        };
        format!(
            "You are acting for {} as a custodian {until}, with the rights: {}.",
            self.account,
            Rights(self.rights)
        )
    }

    /// Why this key may not do what needs `right` (`what`: `share`), in a sentence.
    pub(crate) fn refusal(&self, right: u8, what: &str) -> String {
        format!(
            "You cannot {what} for {}: your custodian key has the rights {}, not {}. Ask the patient to give your key that right.",
            self.account,
            Rights(self.rights),
            Rights(right)
        )
    }
}

/// The names the patient gave custodians' keys (`your spouse`).
pub(crate) fn custodian_names(dir: &Path) -> BTreeMap<Address, String> {
    std::fs::read(dir.join(CUSTODIANS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Names a custodian's key.
///
/// # Errors
/// When the file cannot be written.
pub(crate) fn name_custodian(dir: &Path, key: Address, name: &str) -> std::io::Result<()> {
    let mut all = custodian_names(dir);
    all.insert(key, name.to_owned());
    write(dir, CUSTODIANS, &all)
}

/// The guardians as the patient named them: the list, threshold and salt whose
/// commitment is on chain, and a name for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GuardianList {
    /// What the commitment commits to.
    pub(crate) guardians: Guardians,
    /// Each guardian's name.
    pub(crate) names: BTreeMap<Address, String>,
}

/// The guardians kept in `dir`, if any.
pub(crate) fn guardians(dir: &Path) -> Option<GuardianList> {
    std::fs::read(dir.join(GUARDIANS)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Keeps the guardians in `dir`.
///
/// # Errors
/// When the file cannot be written.
pub(crate) fn keep_guardians(dir: &Path, list: &GuardianList) -> std::io::Result<()> {
    write(dir, GUARDIANS, list)
}

fn write(dir: &Path, name: &str, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, dir.join(name))
}

/// Guardians typed one per line: an address, then optionally a name
/// (`0xabc… Alex`).
///
/// # Errors
/// A sentence naming the line that is not one.
pub(crate) fn parse_guardians(text: &str) -> Result<Vec<(Address, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (address, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let address: Address = address.trim_end_matches(',').parse().map_err(|_| {
                format!("'{line}' does not start with an address (0x and 40 hex digits).")
            })?;
            Ok((address, name.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardians_are_typed_one_per_line_with_a_name() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let list = parse_guardians(&format!("{a} Alex Smith\n\n  {b}\n")).unwrap();
        assert_eq!(list, [(a, "Alex Smith".to_owned()), (b, String::new())]);
        let e = parse_guardians("Alex").unwrap_err();
        assert!(e.contains("'Alex' does not start with an address"), "{e}");
    }

    #[test]
    fn the_custodian_banner_says_for_whom_until_when_and_with_what() {
        let acting = Acting {
            account: Address::repeat_byte(7),
            key: Address::repeat_byte(8),
            rights: Rights::SEE | Rights::DECIDE,
            until: 1_796_000_000,
        };
        assert_eq!(
            acting.banner(),
            format!(
                "You are acting for {} as a custodian until 2026-11-30 00:53 UTC, with the rights: see, decide.",
                Address::repeat_byte(7)
            )
        );
        assert!(acting.may(Rights::SEE) && !acting.may(Rights::SHARE));
        assert!(
            acting
                .refusal(Rights::SHARE, "share")
                .contains("has the rights see, decide, not share")
        );
        let ended = Acting { rights: 0, ..acting };
        assert!(ended.banner().starts_with("Your key no longer acts for"));
    }
}
