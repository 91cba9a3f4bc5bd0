//! `Relationships`: setResearchConsent.

use super::*;

#[test]
fn research_consent_defaults_out_and_toggles() {
    let mut c = cast_in(Status::Accepted);
    let (patient, rel_id) = (c.patient, c.rel_id());
    let before = c.stored();
    assert!(!before.researchOptIn);

    for opt_in in [true, true, false] {
        let r = consent(&mut c, patient, opt_in);
        assert_eq!(r.event_names(), ["ResearchConsentChanged"]);
        assert_eq!(
            r.event::<R::ResearchConsentChanged>(),
            R::ResearchConsentChanged { relId: rel_id, optedIn: opt_in, actor: patient }
        );
        assert_eq!(c.stored(), R::Relationship { researchOptIn: opt_in, ..before }, "{opt_in}");
    }
}

#[test]
fn only_the_patient_sets_research_consent() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let before = c.stored();
    let senders = [
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
    ];
    for (who, sender) in senders {
        let call = R::setResearchConsentCall { delegate, optIn: true };
        assert_eq!(
            c.w.fail(sender, rel, call),
            ContractError::UnknownRelationship { rel_id: RelationshipId::derive(sender, delegate) },
            "{who}"
        );
    }
    let unknown = addr(12);
    assert_eq!(
        c.w.fail(patient, rel, R::setResearchConsentCall { delegate: unknown, optIn: true }),
        ContractError::UnknownRelationship { rel_id: RelationshipId::derive(patient, unknown) }
    );
    assert_eq!(c.stored(), before);
}

#[test]
fn research_consent_is_open_while_pending_or_accepted() {
    for open in [Status::UpdatePending, Status::Accepted] {
        let mut c = cast_in(open);
        let (patient, rel_id) = (c.patient, c.rel_id());
        let before = c.stored();
        for opt_in in [true, false] {
            let r = consent(&mut c, patient, opt_in);
            assert_eq!(
                r.event::<R::ResearchConsentChanged>(),
                R::ResearchConsentChanged { relId: rel_id, optedIn: opt_in, actor: patient },
                "{open:?} {opt_in}"
            );
            assert_eq!(
                c.stored(),
                R::Relationship { researchOptIn: opt_in, ..before },
                "{open:?} {opt_in}: only the flag changes"
            );
        }
    }
}

#[test]
fn research_consent_is_refused_once_the_relationship_is_closed() {
    type Setup = fn() -> Cast;
    // (label, setup, closed status, whether the patient had opted in before closing)
    let cases: [(&str, Setup, Status, bool); 5] = [
        ("rejected", || cast_in(Status::Rejected), Status::Rejected, false),
        (
            "rejected while update pending, opted in",
            || {
                let mut c = cast_in(Status::UpdatePending);
                let patient = c.patient;
                consent(&mut c, patient, true);
                decide(&mut c, patient, Decision::Reject);
                c
            },
            Status::Rejected,
            true,
        ),
        ("deleted", || cast_in(Status::Deleted), Status::Deleted, false),
        (
            "deleted while accepted, opted in",
            || {
                let mut c = cast_in(Status::Accepted);
                let patient = c.patient;
                consent(&mut c, patient, true);
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
            true,
        ),
        (
            "deleted after rejection",
            || {
                let mut c = cast_in(Status::Rejected);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
            false,
        ),
    ];
    for (label, setup, closed, opted_in) in cases {
        let mut c = setup();
        let (rel, patient, delegate, rel_id) = (c.w.rel(), c.patient, c.delegate, c.rel_id());
        let before = c.stored();
        let slot = c.w.evm.storage(rel, relationship_slot(rel_id));
        assert_eq!((before.status, before.researchOptIn), (closed.as_u8(), opted_in), "{label}");
        for opt_in in [true, false] {
            let block = c.w.evm.block_number();
            let call = R::setResearchConsentCall { delegate, optIn: opt_in };
            assert_eq!(
                c.w.fail(patient, rel, call),
                ContractError::RelationshipClosed { rel_id: id(&c), status: closed },
                "{label}: opt {}",
                if opt_in { "in" } else { "out" }
            );
            assert_eq!(c.w.evm.block_number(), block + 1, "{label}: the transaction was mined");
            assert_eq!(c.stored(), before, "{label}: {opt_in} changed the relationship");
            assert_eq!(c.w.evm.storage(rel, relationship_slot(rel_id)), slot, "{label}");
        }
    }
}

#[test]
fn research_consent_on_an_unknown_relationship_is_refused() {
    let mut c = Cast::new();
    let (rel, patient, delegate, rel_id) = (c.w.rel(), c.patient, c.delegate, c.rel_id());
    for opt_in in [true, false] {
        let call = R::setResearchConsentCall { delegate, optIn: opt_in };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::UnknownRelationship { rel_id: id(&c) },
            "{opt_in}"
        );
    }
    assert_eq!(c.w.evm.storage(rel, relationship_slot(rel_id)), U256::ZERO, "nothing stored");
    assert!(!c.stored().researchOptIn);

    // Once the relationship exists, the same call goes through.
    c.create();
    consent(&mut c, patient, true);
    assert!(c.stored().researchOptIn);
}
