//! What a requester may see through the FHIR API, as the chain says.
//!
//! - The provider itself (the gatekeeper's own address) sees and writes everything.
//! - A patient sees every resource of their own compartment, for each relationship
//!   with this provider that is not deleted.
//! - A viewer sees exactly the union of the pointers granted to it that are valid now
//!   (its own grants and those of the groups it belongs to).
//! - An emergency clinician who broke the glass for a patient sees that patient's
//!   emergency set ([`EMERGENCY_SET`]) while the opening lasts, for each relationship
//!   with this provider that is not closed.
//! - Anyone else sees nothing.
//!
//! A requester's [`Scope`] is a set of searches; a read or search of theirs runs only
//! as the intersection of their own search with each of them, so a resource outside
//! the scope is never read from the store, and a read of something outside looks the
//! same as a read of something that does not exist. (One shortcut: a patient reading
//! their own compartment by id reads the row by its key and keeps it only when its
//! compartment is theirs — the same condition the search would put on the same indexed
//! column — and answers exactly as for a missing id otherwise.)
//!
//! Finding a requester's candidate relationships walks the gatekeeper's enrollments,
//! so it is cached per requester until the consent index moves to another block or
//! the enrollments change; every request still re-decides each candidate against the
//! live index, so a revocation or an expiry takes effect at once.

use crate::{pointer::PointerQuery, smart::Grant};
use alloy::primitives::Address;
use medrec_chain::consent::{ConsentIndex, Decision};
use medrec_primitives::{PointerSet, RelationshipId, Status};
use medrec_store::{
    audit::Decision as LogDecision,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
};
use std::{collections::HashMap, sync::Arc};

use crate::server::{Enrolled, Enrollment};

/// Requesters whose candidates are cached at once; the cache is emptied when full.
const CACHE_CAPACITY: usize = 100_000;

/// What break-glass opens: what an emergency team needs first (allergies, medications,
/// conditions), nothing else of the patient's records.
pub const EMERGENCY_SET: [ResourceType; 3] =
    [ResourceType::AllergyIntolerance, ResourceType::MedicationRequest, ResourceType::Condition];

/// Something a requester may be allowed to see.
#[derive(Debug, Clone)]
pub(crate) enum Candidate {
    /// The requester is the relationship's patient: their whole compartment.
    Compartment { relationship: RelationshipId, patient: ResourceId },
    /// The requester holds a grant naming this pointer.
    Pointer { relationship: RelationshipId, pointer: u8, patient: ResourceId, query: PointerQuery },
    /// The requester broke the glass for the relationship's patient: the emergency set.
    Emergency { relationship: RelationshipId, patient: ResourceId },
}

impl Candidate {
    /// The relationship it comes from.
    pub(crate) const fn relationship(&self) -> RelationshipId {
        match self {
            Self::Compartment { relationship, .. }
            | Self::Pointer { relationship, .. }
            | Self::Emergency { relationship, .. } => *relationship,
        }
    }

    /// How the access log records a read through it.
    pub(crate) const fn decision(&self) -> LogDecision {
        match self {
            Self::Compartment { .. } => LogDecision::AllowPatient,
            Self::Pointer { .. } => LogDecision::AllowViewer,
            Self::Emergency { .. } => LogDecision::AllowBreakGlass,
        }
    }

    /// The pointer, for a viewer's candidate.
    pub(crate) const fn pointer(&self) -> Option<u8> {
        match self {
            Self::Compartment { .. } | Self::Emergency { .. } => None,
            Self::Pointer { pointer, .. } => Some(*pointer),
        }
    }

    /// The patient whose records it reaches.
    pub(crate) const fn patient(&self) -> &ResourceId {
        match self {
            Self::Compartment { patient, .. }
            | Self::Pointer { patient, .. }
            | Self::Emergency { patient, .. } => patient,
        }
    }

    /// Whether it allows anything of `resource_type`.
    pub(crate) fn applies_to(&self, resource_type: ResourceType) -> bool {
        match self {
            Self::Compartment { .. } => true,
            Self::Pointer { query, .. } => query.resource_type() == resource_type,
            Self::Emergency { .. } => EMERGENCY_SET.contains(&resource_type),
        }
    }

    /// Whether the live index allows it at `now`.
    fn allowed(&self, index: &ConsentIndex, requester: Address, now: u64) -> bool {
        match self {
            Self::Compartment { relationship, .. } => {
                index.decide(requester, relationship, 0, now) == Decision::AllowPatient
            }
            Self::Pointer { relationship, pointer, .. } => {
                index.decide(requester, relationship, *pointer, now) == Decision::AllowViewer
            }
            Self::Emergency { relationship, .. } => index
                .relationship(relationship)
                .is_some_and(|r| open_for_emergency(r.status))
                .then(|| index.relationship(relationship).map(|r| r.patient))
                .flatten()
                .is_some_and(|patient| index.opening(patient, requester, now).is_some()),
        }
    }

    /// The search this candidate allows on `resource_type` (none when its pointer
    /// searches another type).
    fn search(&self, resource_type: ResourceType) -> Option<SearchQuery> {
        match self {
            Self::Compartment { patient, .. } => Some(compartment(resource_type, patient)),
            Self::Emergency { patient, .. } => {
                EMERGENCY_SET.contains(&resource_type).then(|| compartment(resource_type, patient))
            }
            Self::Pointer { patient, query, .. } => {
                (query.resource_type() == resource_type).then(|| query.scoped(patient))
            }
        }
    }
}

/// Every resource of `resource_type` in `patient`'s compartment.
fn compartment(resource_type: ResourceType, patient: &ResourceId) -> SearchQuery {
    let mut q = SearchQuery::all(resource_type);
    q.patient = Some(patient.clone());
    q
}

/// Whether break-glass reaches a relationship in `status`: not one the patient closed.
const fn open_for_emergency(status: Status) -> bool {
    !matches!(status, Status::Rejected | Status::Deleted)
}

/// Whom the chain lets a requester read for.
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    /// The provider: everything, and writes.
    Provider,
    /// The union of these candidates (empty: nothing at all).
    Limited(Vec<Candidate>),
}

/// What a requester may see now: what the chain allows ([`Reach`]), narrowed by the
/// scopes of a SMART token when the request carries one (never widened).
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    reach: Reach,
    grant: Option<Arc<Grant>>,
}

impl Scope {
    /// The provider's scope: everything.
    pub(crate) const fn provider() -> Self {
        Self { reach: Reach::Provider, grant: None }
    }

    /// The union of `candidates`.
    pub(crate) const fn limited(candidates: Vec<Candidate>) -> Self {
        Self { reach: Reach::Limited(candidates), grant: None }
    }

    /// The same, narrowed by a SMART token's grant.
    #[must_use]
    pub(crate) fn narrowed(self, grant: Option<Arc<Grant>>) -> Self {
        Self { grant, ..self }
    }

    /// What the chain allows, before any SMART narrowing.
    pub(crate) const fn reach(&self) -> &Reach {
        &self.reach
    }

    /// Whether the SMART grant (if any) lets `ty` be read in `patient`'s records.
    pub(crate) fn reads(&self, ty: ResourceType, patient: Option<&ResourceId>) -> bool {
        self.grant.as_ref().is_none_or(|g| g.reads(ty, patient))
    }

    /// The candidates that allow something of `ty` (of any type when `None`), within the
    /// SMART grant.
    pub(crate) fn candidates(&self, ty: Option<ResourceType>) -> Vec<&Candidate> {
        let Reach::Limited(candidates) = &self.reach else { return Vec::new() };
        candidates
            .iter()
            .filter(|c| ty.is_none_or(|t| c.applies_to(t) && self.reads(t, Some(c.patient()))))
            .filter(|c| {
                ty.is_some() || ResourceType::ALL.iter().any(|t| self.reads(*t, Some(c.patient())))
            })
            .collect()
    }

    /// The searches a request on `resource_type` runs as: `user`'s search intersected
    /// with each allowed search, duplicates and empty intersections dropped; `None` to
    /// run `user`'s search as it is (the provider, within its grant).
    pub(crate) fn searches(&self, user: &SearchQuery) -> Option<Vec<SearchQuery>> {
        let Reach::Limited(_) = &self.reach else {
            return if self.reads(user.resource_type, None) { None } else { Some(Vec::new()) };
        };
        let mut out: Vec<SearchQuery> = Vec::new();
        for c in self.candidates(Some(user.resource_type)) {
            if let Some(allowed) = c.search(user.resource_type)
                && let Some(q) = intersect(&allowed, user)
                && !out.contains(&q)
            {
                out.push(q);
            }
        }
        Some(out)
    }
}

/// `allowed ∧ user`, paged and sorted as `user`; `None` when nothing can match both.
fn intersect(allowed: &SearchQuery, user: &SearchQuery) -> Option<SearchQuery> {
    let mut q = allowed.clone();
    match (&allowed.patient, &user.patient) {
        (Some(a), Some(u)) if a != u => return None,
        (None, Some(u)) => q.patient = Some(u.clone()),
        _ => {}
    }
    q.ids = match (allowed.ids.is_empty(), user.ids.is_empty()) {
        (_, true) => allowed.ids.clone(),
        (true, false) => user.ids.clone(),
        (false, false) => {
            let both: Vec<ResourceId> =
                user.ids.iter().filter(|id| allowed.ids.contains(id)).cloned().collect();
            if both.is_empty() {
                return None;
            }
            both
        }
    };
    q.category.extend(user.category.iter().cloned());
    q.code.extend(user.code.iter().cloned());
    q.tokens.extend(user.tokens.iter().cloned());
    q.name.extend(user.name.iter().cloned());
    q.date.extend(user.date.iter().copied());
    q.last_updated.extend(user.last_updated.iter().copied());
    q.count = user.count;
    q.offset = user.offset;
    q.sort.clone_from(&user.sort);
    Some(q)
}

#[derive(Debug)]
struct Cached {
    height: u64,
    generation: u64,
    candidates: Arc<Vec<Candidate>>,
}

/// Per-requester candidates, valid for one index height and enrollment generation.
#[derive(Debug, Default)]
pub(crate) struct ScopeCache {
    entries: std::sync::RwLock<HashMap<Address, Cached>>,
}

impl ScopeCache {
    /// `requester`'s scope at `now`, deciding each candidate against `index`.
    pub(crate) fn scope(
        &self,
        index: &ConsentIndex,
        enrolled: &std::sync::RwLock<Enrolled>,
        generation: u64,
        requester: Address,
        now: u64,
    ) -> Scope {
        let height = index.height();
        let cached = {
            let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            entries
                .get(&requester)
                .filter(|c| c.height == height && c.generation == generation)
                .map(|c| Arc::clone(&c.candidates))
        };
        let candidates = cached.unwrap_or_else(|| {
            let all = enrolled.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = Arc::new(candidates(index, &all.by_relationship, requester));
            drop(all);
            let mut entries =
                self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries
                .insert(requester, Cached { height, generation, candidates: Arc::clone(&found) });
            found
        });
        Scope::limited(
            candidates.iter().filter(|c| c.allowed(index, requester, now)).cloned().collect(),
        )
    }
}

/// Everything `requester` could be allowed, before time windows are checked.
fn candidates(
    index: &ConsentIndex,
    enrollments: &HashMap<RelationshipId, Enrollment>,
    requester: Address,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    // The account the requester's key acts for (its rights and dates are checked by
    // every request's decision).
    let account = index.account_of(requester);
    for (id, e) in enrollments {
        let Some(rel) = index.relationship(id) else { continue };
        if account == Some(rel.patient) {
            out.push(Candidate::Compartment { relationship: *id, patient: e.patient.clone() });
            continue;
        }
        let granted =
            index.grants_reaching(id, requester).iter().fold(PointerSet::from_bits(0), |all, g| {
                PointerSet::from_bits(all.bits() | g.pointers.bits())
            });
        for (n, query) in e.pointers.iter().enumerate() {
            let Ok(n) = u8::try_from(n) else { break };
            if granted.contains(n) {
                out.push(Candidate::Pointer {
                    relationship: *id,
                    pointer: n,
                    patient: e.patient.clone(),
                    query: query.clone(),
                });
            }
        }
        // An opening, whatever its time: each request checks that it is still in force.
        if open_for_emergency(rel.status) && index.opening(rel.patient, requester, 0).is_some() {
            out.push(Candidate::Emergency { relationship: *id, patient: e.patient.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_store::search::SearchQuery;

    fn q(params: &[(&str, &str)]) -> SearchQuery {
        SearchQuery::parse(ResourceType::Observation, params.iter().copied()).unwrap()
    }

    #[test]
    fn intersection_keeps_both_conditions() {
        let allowed = q(&[("patient", "p1"), ("category", "laboratory")]);
        let user = q(&[("code", "http://loinc.org|2498-4"), ("_count", "5")]);
        let both = intersect(&allowed, &user).unwrap();
        assert_eq!(both.patient.unwrap().as_str(), "p1");
        assert_eq!((both.category.len(), both.code.len(), both.count), (1, 1, 5));
    }

    #[test]
    fn another_patient_or_disjoint_ids_match_nothing() {
        let allowed = q(&[("patient", "p1"), ("_id", "a,b")]);
        assert!(intersect(&allowed, &q(&[("patient", "p2")])).is_none());
        assert!(intersect(&allowed, &q(&[("_id", "c")])).is_none());
        assert_eq!(intersect(&allowed, &q(&[("_id", "b,c")])).unwrap().ids.len(), 1);
    }

    #[test]
    fn a_pointer_of_another_type_allows_nothing_of_this_one() {
        let c = Candidate::Pointer {
            relationship: RelationshipId(alloy::primitives::B256::ZERO),
            pointer: 0,
            patient: "p1".parse().unwrap(),
            query: PointerQuery::parse("Condition").unwrap(),
        };
        let scope = Scope::limited(vec![c]);
        assert!(scope.searches(&q(&[])).unwrap().is_empty());
        assert!(Scope::provider().searches(&q(&[])).is_none());
    }
}
