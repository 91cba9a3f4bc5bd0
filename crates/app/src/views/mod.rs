//! The data each page shows, built by pure functions from what the chain, the
//! providers and the cache said: no I/O here, so each is unit-tested.

pub mod access;
pub mod care;
pub mod chart;
pub mod inbox;
pub mod provider;
pub mod records;
pub mod researcher;
pub mod share;
pub mod viewer;

use alloy::primitives::{Address, B256};
use medrec_client::timeline::short_address;
use medrec_primitives::Status;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// How providers are named: by address, with where their gatekeeper is when known.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Each provider's gatekeeper base URL.
    pub endpoints: BTreeMap<Address, String>,
    /// Each group's name, by the address a patient grants it under.
    pub groups: BTreeMap<Address, String>,
    /// The keys that act for the account other than its own first key, named as the
    /// patient named them (`your spouse`), or [`Names::YOU`] for the key of this
    /// session when it is not the account's own.
    pub keys: BTreeMap<Address, String>,
}

impl Names {
    /// Someone granted access: `the group "Pharmacists"` for a group's address, else
    /// the address.
    pub fn viewer(&self, viewer: Address) -> String {
        self.groups
            .get(&viewer)
            .map_or_else(|| viewer.to_string(), |name| format!("the group \"{name}\""))
    }

    /// The name of this session's own key when it acts for another account.
    pub const YOU: &str = "you";

    /// Who did something, when it was not the account's own key nor the provider's
    /// delegate: `by your spouse's key`, `by your key`, `by key 0x12…34`.
    pub fn actor(
        &self,
        actor: Option<Address>,
        account: Address,
        delegate: Option<Address>,
    ) -> Option<String> {
        let actor = actor?;
        if actor == account || Some(actor) == delegate {
            return None;
        }
        Some(match self.keys.get(&actor) {
            Some(name) if name == Self::YOU => "by your key".to_owned(),
            Some(name) => format!("by {name}'s key"),
            None => format!("by key {}", short_address(actor)),
        })
    }

    /// `Provider 0x7099…79C8 (127.0.0.1:8080)`.
    pub fn provider(&self, provider: Address) -> String {
        let host = self.endpoints.get(&provider).map(|url| {
            let rest = url.split("://").nth(1).unwrap_or(url);
            rest.trim_end_matches('/').to_owned()
        });
        match host {
            Some(host) => format!("Provider {} ({host})", short_address(provider)),
            None => format!("Provider {}", short_address(provider)),
        }
    }
}

/// A date and time for a person, in UTC: `2026-12-02 19:57 UTC`.
pub fn date(unix: u64) -> String {
    if unix >= u64::from(u32::MAX) {
        return "never".to_owned();
    }
    let Some(t) =
        i64::try_from(unix).ok().and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
    else {
        return unix.to_string();
    };
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A relationship's status in words.
pub const fn status_words(status: Status) -> &'static str {
    match status {
        Status::New => "new: waiting for your answer",
        Status::UpdatePending => "update pending: new data waits for your answer",
        Status::Accepted => "accepted",
        Status::Rejected => "rejected",
        Status::Deleted => "deleted",
    }
}

/// A relationship id, shortened for reading (`0x1234abcd…`).
pub fn short_id(id: B256) -> String {
    medrec_client::timeline::short_hash(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_dates_read_as_words() {
        let p = Address::repeat_byte(0x11);
        let mut names = Names::default();
        assert_eq!(names.provider(p), "Provider 0x1111…1111");
        names.endpoints.insert(p, "http://127.0.0.1:8080/".to_owned());
        assert_eq!(names.provider(p), "Provider 0x1111…1111 (127.0.0.1:8080)");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_796_000_000), "2026-11-30 00:53 UTC");
        assert_eq!(date(u64::MAX), "never");
        let group = Address::repeat_byte(0xe2);
        assert_eq!(names.viewer(group), group.to_string());
        names.groups.insert(group, "Pharmacists".to_owned());
        assert_eq!(names.viewer(group), "the group \"Pharmacists\"");
    }
}
