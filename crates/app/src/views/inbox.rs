//! The Inbox: what happened on chain to the patient's relationships, in sentences, and
//! the relationships waiting for an answer with what each answer does.

use super::{Names, date, short_id, status_words};
use alloy::primitives::{Address, B256};
use medrec_chain::inbox::{Dated, Notice, Summary};
use medrec_client::patient::access_log::AccessEntry;
use medrec_primitives::{RelationshipId, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// What kind of news an inbox item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A provider opened a relationship.
    NewRelationship,
    /// A provider published new data behind a pointer (update pending).
    UpdatePending,
    /// A relationship's status changed, or a pointer was added.
    Relationship,
    /// A viewer was given access.
    GrantGiven,
    /// A viewer's access was withdrawn.
    GrantRevoked,
    /// A viewer's access ends soon.
    GrantEnding,
    /// Research consent changed.
    Research,
    /// Someone read (or was refused) the patient's records.
    Access,
}

impl Kind {
    /// Its name in class names (`new-relationship`, …).
    pub const fn slug(self) -> &'static str {
        match self {
            Self::NewRelationship => "new-relationship",
            Self::UpdatePending => "update-pending",
            Self::Relationship => "relationship",
            Self::GrantGiven => "grant-given",
            Self::GrantRevoked => "grant-revoked",
            Self::GrantEnding => "grant-ending",
            Self::Research => "research",
            Self::Access => "access",
        }
    }

    /// The heading of its items.
    pub const fn heading(self) -> &'static str {
        match self {
            Self::NewRelationship => "New relationship",
            Self::UpdatePending => "Update pending",
            Self::Relationship => "Relationship",
            Self::GrantGiven => "Grant given",
            Self::GrantRevoked => "Grant revoked",
            Self::GrantEnding => "Grant ending",
            Self::Research => "Research",
            Self::Access => "Access",
        }
    }
}

/// One item of the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The block it happened in (0 when it is not a chain event).
    pub block: u64,
    /// What kind of news.
    pub kind: Kind,
    /// Its heading.
    pub title: String,
    /// What happened, in a sentence.
    pub sentence: String,
    /// Who acted, when it was not the account's own key (`by your spouse's key`).
    pub by: Option<String>,
}

/// A notice in a sentence, with who acted when it was not the account's own key.
pub fn describe(d: &Dated, summaries: &BTreeMap<RelationshipId, Summary>, names: &Names) -> Item {
    let summary = summaries.get(&d.relationship);
    let provider = summary
        .and_then(|s| s.provider)
        .map_or_else(|| "A provider".to_owned(), |p| names.provider(p));
    let id = short_id(d.relationship.0);
    let (kind, sentence) = match &d.notice {
        Notice::Created { .. } => (
            Kind::NewRelationship,
            format!(
                "Relationship {id} with {provider} was created from its offer, accepted: its records join your Records."
            ),
        ),
        Notice::Status(Status::UpdatePending) => (
            Kind::UpdatePending,
            format!("{provider} has new data in relationship {id}; it waits for your answer."),
        ),
        Notice::Status(s) => {
            (Kind::Relationship, format!("Relationship {id} with {provider} is now {s}."))
        }
        Notice::PointerAdded { pointer, .. } => (
            Kind::Relationship,
            format!("{provider} added pointer {pointer} to relationship {id}."),
        ),
        Notice::PointerUpdated { pointer, .. } => (
            Kind::UpdatePending,
            format!("{provider} published new data behind pointer {pointer} of relationship {id}."),
        ),
        Notice::Granted { viewer, pointers, not_before, expires_at, .. } => (
            Kind::GrantGiven,
            format!(
                "{} may see {} of relationship {id} with {provider}{} until {}.",
                capitalized(&names.viewer(*viewer)),
                medrec_client::plural(pointers.ids().count(), "pointer"),
                if *not_before == 0 {
                    String::new()
                } else {
                    format!(" from {}", date(*not_before))
                },
                date(*expires_at)
            ),
        ),
        Notice::Revoked { viewer } => (
            Kind::GrantRevoked,
            format!(
                "{} may no longer see anything of relationship {id} with {provider}.",
                capitalized(&names.viewer(*viewer))
            ),
        ),
        Notice::ResearchConsent(true) => (
            Kind::Research,
            format!("Relationship {id} with {provider} now feeds research bounties."),
        ),
        Notice::ResearchConsent(false) => (
            Kind::Research,
            format!("Relationship {id} with {provider} no longer feeds research bounties."),
        ),
    };
    let account = summary.and_then(|s| s.patient).unwrap_or_default();
    let by = names.actor(d.actor, account, summary.and_then(|s| s.delegate));
    let sentence = match &by {
        Some(by) => format!("{}, {by}.", sentence.trim_end_matches('.')),
        None => sentence,
    };
    Item { block: d.block, kind, title: kind.heading().to_owned(), sentence, by }
}

/// `text` with its first letter in upper case (`The group "…"`).
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Every notice as an item, newest first, with the grants that end within `soon`
/// seconds of `now` on top.
pub fn items(
    notices: &[Dated],
    summaries: &BTreeMap<RelationshipId, Summary>,
    names: &Names,
    now: u64,
    soon: u64,
) -> Vec<Item> {
    let mut out = ending(summaries, names, now, soon);
    out.extend(notices.iter().rev().map(|d| describe(d, summaries, names)));
    out
}

/// The grants in force that end within `soon` seconds of `now`.
pub fn ending(
    summaries: &BTreeMap<RelationshipId, Summary>,
    names: &Names,
    now: u64,
    soon: u64,
) -> Vec<Item> {
    let mut out = Vec::new();
    for (id, s) in summaries {
        for (viewer, (_, _, expires_at)) in &s.grants {
            if *expires_at > now && *expires_at <= now.saturating_add(soon) {
                let provider =
                    s.provider.map_or_else(|| "a provider".to_owned(), |p| names.provider(p));
                out.push(Item {
                    block: 0,
                    kind: Kind::GrantEnding,
                    title: Kind::GrantEnding.heading().to_owned(),
                    sentence: format!(
                        "{viewer}'s access to relationship {} with {provider} ends {}.",
                        short_id(id.0),
                        date(*expires_at)
                    ),
                    by: None,
                });
            }
        }
    }
    out
}

/// The accesses to the patient's records by others than the patient and the provider
/// that keeps them (viewers, researchers, strangers refused), newest first.
pub fn accesses(entries: &[AccessEntry], me: Address, names: &Names) -> Vec<Item> {
    entries
        .iter()
        .rev()
        .filter(|e| {
            let who = e.entry["requester"].as_str().and_then(|r| r.parse::<Address>().ok());
            who != Some(me) && who != Some(e.provider)
        })
        .map(|e| {
            let row = super::access::row(e, me, names, &BTreeMap::new());
            Item {
                block: 0,
                kind: Kind::Access,
                title: Kind::Access.heading().to_owned(),
                sentence: format!(
                    "{} {} {} at {} ({}).",
                    row.who,
                    if row.allowed { "read" } else { "was refused access to" },
                    row.what,
                    row.provider,
                    row.when
                ),
                by: None,
            }
        })
        .collect()
}

/// An answer the patient can give, with what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The form value (`accept`, `reject`, `delete`).
    pub value: &'static str,
    /// The button's label.
    pub label: &'static str,
    /// What it does, in a sentence.
    pub sentence: &'static str,
}

const ACCEPT_NEW: Action = Action {
    value: "accept",
    label: "Accept",
    sentence: "Accept: this provider's records join your Records, checked against the chain, and you can share them.",
};
const ACCEPT_UPDATE: Action = Action {
    value: "accept",
    label: "Accept",
    sentence: "Accept: you take the provider's new data; it is fetched and checked against the chain.",
};
const REJECT: Action = Action {
    value: "reject",
    label: "Reject",
    sentence: "Reject: you decline; the relationship closes and nothing more is fetched from it.",
};
const DELETE: Action = Action {
    value: "delete",
    label: "Delete",
    sentence: "Delete: you remove the relationship from your summary; it closes for good and nobody can be given access to it.",
};

/// The heading of a waiting offer.
pub const OFFER_TITLE: &str = "New offer";

/// What an offer is, in a sentence (the offer signs a salted commitment to its
/// pointer's search, so what it holds shows once the records are fetched).
pub fn offer_sentence(provider: &str) -> String {
    format!("{provider} offers to share your records with you. Accept it in your Inbox.")
}

const ACCEPT_OFFER: Action = Action {
    value: "take",
    label: "Accept",
    sentence: "Accept: your key creates the relationship on the chain, the provider's name encrypted so that only you can read it; its records join your Records, checked against the chain.",
};
const NOT_NOW: Action = Action {
    value: "later",
    label: "Not now",
    sentence: "Not now: nothing is sent; the offer stays at the provider and waits below, under Offers set aside.",
};

/// An offer waiting at a provider's gatekeeper for the patient's answer.
#[derive(Debug, Clone)]
pub struct OfferRow {
    /// The relationship it creates (for forms).
    pub id: B256,
    /// Its id, shortened.
    pub short: String,
    /// Its first 12 hex digits, for element ids.
    pub key: String,
    /// The provider, named.
    pub provider: String,
    /// What it offers, in a sentence.
    pub sentence: String,
    /// The answers (Accept, and Not now unless set aside already).
    pub actions: Vec<Action>,
}

/// The offers, those set aside apart: (waiting, set aside).
pub fn offers(
    offers: &[medrec_client::patient::offers::Offer],
    set_aside: &std::collections::BTreeSet<RelationshipId>,
    names: &Names,
) -> (Vec<OfferRow>, Vec<OfferRow>) {
    offers
        .iter()
        .map(|o| {
            let provider = names.provider(o.view.provider);
            let aside = set_aside.contains(&o.view.relationship);
            OfferRow {
                id: o.view.relationship.0,
                short: short_id(o.view.relationship.0),
                key: key(o.view.relationship.0),
                sentence: format!(
                    "{provider} offers to share your records with you: one set of records, to be checked against the chain when fetched."
                ),
                provider,
                actions: if aside { vec![ACCEPT_OFFER] } else { vec![ACCEPT_OFFER, NOT_NOW] },
            }
        })
        .partition(|r| r.actions.len() == 2)
}

/// A relationship of the patient, with its status and the answers it can take.
#[derive(Debug, Clone)]
pub struct Relationship {
    /// Its full id (for forms).
    pub id: B256,
    /// Its id, shortened.
    pub short: String,
    /// Its first 12 hex digits, for element ids.
    pub key: String,
    /// The provider, named.
    pub provider: String,
    /// Its status (`None` when the chain did not say).
    pub status: Option<Status>,
    /// The status in words.
    pub status_words: String,
    /// Its number of data pointers.
    pub pointers: usize,
    /// Viewers with a grant.
    pub viewers: usize,
    /// Whether it feeds research bounties.
    pub research: bool,
    /// The block of its last change.
    pub updated: u64,
    /// The answers it can take.
    pub actions: Vec<Action>,
}

impl Relationship {
    /// Whether it waits for the patient's answer.
    pub fn waiting(&self) -> bool {
        matches!(self.status, Some(Status::New | Status::UpdatePending))
    }

    /// Its status in class names (`new`, `update-pending`, `accepted`, …).
    pub fn status_slug(&self) -> &'static str {
        match self.status {
            Some(Status::New) => "new",
            Some(Status::UpdatePending) => "update-pending",
            Some(Status::Accepted) => "accepted",
            Some(Status::Rejected) => "rejected",
            Some(Status::Deleted) => "deleted",
            None => "unknown",
        }
    }

    /// Whether its records can be seen and shared.
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(Status::is_accepted)
    }
}

/// The patient's relationships, those waiting for an answer first.
pub fn relationships(
    summaries: &BTreeMap<RelationshipId, Summary>,
    names: &Names,
) -> Vec<Relationship> {
    let mut out: Vec<Relationship> = summaries
        .iter()
        .map(|(id, s)| {
            let actions = match s.status {
                Some(Status::New) => vec![ACCEPT_NEW, REJECT, DELETE],
                Some(Status::UpdatePending) => vec![ACCEPT_UPDATE, REJECT, DELETE],
                Some(Status::Accepted) => vec![DELETE],
                _ => Vec::new(),
            };
            Relationship {
                id: id.0,
                short: short_id(id.0),
                key: key(id.0),
                provider: s
                    .provider
                    .map_or_else(|| "Unknown provider".to_owned(), |p| names.provider(p)),
                status: s.status,
                status_words: s.status.map_or("unknown", status_words).to_owned(),
                pointers: s.pointers.len(),
                viewers: s.grants.len(),
                research: s.research_opt_in,
                updated: s.updated,
                actions,
            }
        })
        .collect();
    out.sort_by_key(|r| {
        (!r.waiting(), r.status.is_some_and(Status::is_closed), std::cmp::Reverse(r.updated))
    });
    out
}

/// The first 12 hex digits of an id, for element ids in a page.
pub fn key(id: B256) -> String {
    id.to_string().chars().skip(2).take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_primitives::PointerSet;

    const SPOUSE: Address = Address::repeat_byte(5);

    fn summaries() -> (BTreeMap<RelationshipId, Summary>, Vec<Dated>) {
        let (a, b) =
            (RelationshipId(B256::repeat_byte(0xaa)), RelationshipId(B256::repeat_byte(0xbb)));
        let provider = Address::repeat_byte(1);
        let patient = Address::repeat_byte(2);
        let delegate = Address::repeat_byte(3);
        let created = || Notice::Created { patient, delegate, identity: vec![0; 36] };
        let dated =
            |block, relationship, notice, actor| Dated { block, relationship, notice, actor };
        let notices = vec![
            dated(3, a, created(), Some(patient)),
            dated(4, a, Notice::Status(Status::UpdatePending), Some(delegate)),
            dated(4, a, Notice::Status(Status::Accepted), Some(SPOUSE)),
            dated(
                5,
                a,
                Notice::Granted {
                    viewer: Address::repeat_byte(9),
                    pointers: PointerSet::from_ids([0]).unwrap(),
                    not_before: 0,
                    expires_at: 1_000 + 3_600,
                    sealed_key: Vec::new(),
                },
                Some(patient),
            ),
            dated(6, b, created(), Some(patient)),
            dated(7, b, Notice::Status(Status::UpdatePending), Some(delegate)),
        ];
        let mut s = medrec_chain::inbox::summarize(&notices);
        // The patient's client decrypts each provider.
        for summary in s.values_mut() {
            summary.provider = Some(provider);
        }
        (s, notices)
    }

    #[test]
    fn inbox_items_are_sentences_newest_first_with_grants_ending_on_top() {
        let (s, notices) = summaries();
        let list = items(&notices, &s, &Names::default(), 1_000, 86_400);
        let kinds: Vec<Kind> = list.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::GrantEnding,
                Kind::UpdatePending,
                Kind::NewRelationship,
                Kind::GrantGiven,
                Kind::Relationship,
                Kind::UpdatePending,
                Kind::NewRelationship
            ]
        );
        assert!(
            list[2].sentence.starts_with(
                "Relationship 0xbbbbbbbb… with Provider 0x0101…0101 was created from its offer"
            ),
            "{}",
            list[2].sentence
        );
        assert!(
            list[3].sentence.contains("may see 1 pointer of relationship 0xaaaaaaaa…"),
            "{}",
            list[3].sentence
        );
        // The patient's own key and the provider's delegate go unsaid; another key is named.
        assert!(list[3].by.is_none() && list[5].by.is_none());
        assert_eq!(
            list[4].sentence,
            "Relationship 0xaaaaaaaa… with Provider 0x0101…0101 is now accepted, by key 0x0505…0505."
        );
        let mut names = Names::default();
        names.groups.insert(Address::repeat_byte(9), "Pharmacists".to_owned());
        names.keys.insert(SPOUSE, "your spouse".to_owned());
        let named = items(&notices, &s, &names, 1_000, 86_400);
        assert!(
            named[3].sentence.starts_with("The group \"Pharmacists\" may see 1 pointer"),
            "{}",
            named[3].sentence
        );
        assert!(
            named[4].sentence.ends_with("is now accepted, by your spouse's key."),
            "{}",
            named[4].sentence
        );
        names.keys.insert(SPOUSE, Names::YOU.to_owned());
        assert_eq!(
            items(&notices, &s, &names, 1_000, 86_400)[4].by.as_deref(),
            Some("by your key")
        );
        assert!(list[0].sentence.contains("ends 1970-01-01 01:16 UTC"), "{}", list[0].sentence);
        // A grant ending later than `soon` is not news yet.
        assert_eq!(items(&notices, &s, &Names::default(), 1_000, 60)[0].kind, Kind::UpdatePending);
    }

    #[test]
    fn waiting_relationships_come_first_with_their_answers_explained() {
        let (s, _) = summaries();
        let list = relationships(&s, &Names::default());
        assert_eq!(list[0].status, Some(Status::UpdatePending));
        assert!(list[0].waiting());
        let labels: Vec<&str> = list[0].actions.iter().map(|a| a.label).collect();
        assert_eq!(labels, ["Accept", "Reject", "Delete"]);
        assert!(list[0].actions.iter().all(|a| a.sentence.starts_with(a.label)));
        assert_eq!(list[1].status_words, "accepted");
        assert!(list[1].accepted());
        assert_eq!(list[1].actions.iter().map(|a| a.value).collect::<Vec<_>>(), ["delete"]);
        assert_eq!(list[1].viewers, 1);
    }

    #[test]
    fn accesses_by_others_become_news() {
        use medrec_client::patient::access_log::ProofStatus;
        let (me, provider, viewer) =
            (Address::repeat_byte(2), Address::repeat_byte(1), Address::repeat_byte(9));
        let entry = |who: Address, decision: &str| AccessEntry {
            provider,
            entry: serde_json::json!({"time": 0, "requester": who, "action": "pointer-read",
                "relationship": B256::repeat_byte(7), "pointer": 0, "decision": decision}),
            proof: ProofStatus::Pending,
        };
        let log = [
            entry(me, "allow-patient"),
            entry(provider, "allow-provider"),
            entry(viewer, "allow-viewer"),
            entry(viewer, "deny:not-a-viewer"),
        ];
        let news = accesses(&log, me, &Names::default());
        assert_eq!(news.len(), 2, "the patient's and the provider's own reads are not news");
        assert!(news[0].sentence.starts_with(&format!("{viewer} was refused access to pointer 0")));
        assert!(news[1].sentence.starts_with(&format!("{viewer} read pointer 0")));
        assert!(news.iter().all(|i| i.kind == Kind::Access));
    }
}
