//! `Relationships`: accept / reject / remove.

use super::*;

#[test]
fn patient_decisions_follow_the_status_table() {
    use Decision::{Accept, Reject, Remove};
    use Status::{Accepted, Deleted, Rejected, UpdatePending};
    // Accept and reject apply to a pending update only: a relationship starts accepted.
    let table = [
        (UpdatePending, Accept, true),
        (UpdatePending, Reject, true),
        (UpdatePending, Remove, true),
        (Accepted, Accept, false),
        (Accepted, Reject, false),
        (Accepted, Remove, true),
        (Rejected, Accept, false),
        (Rejected, Reject, false),
        (Rejected, Remove, true),
        (Deleted, Accept, false),
        (Deleted, Reject, false),
        (Deleted, Remove, false),
    ];
    for (from, decision, allowed) in table {
        let mut c = cast_in(from);
        let (patient, rel_id) = (c.patient, c.rel_id());
        let before = c.stored();
        let to = decision.target();
        if allowed {
            let r = decide(&mut c, patient, decision);
            assert_eq!(r.event_names(), ["StatusChanged"], "{from:?} {decision:?}");
            assert_eq!(
                r.event::<R::StatusChanged>(),
                R::StatusChanged { relId: rel_id, status: to.as_u8(), actor: patient },
                "{from:?} {decision:?}"
            );
            // Accepting accepts every pointer so far; nothing else but the status changes
            // (updatedAt tracks pointers).
            let accepted_count = match decision {
                Accept => before.pointerCount,
                Reject | Remove => before.acceptedCount,
            };
            assert_eq!(
                c.stored(),
                R::Relationship { status: to.as_u8(), acceptedCount: accepted_count, ..before },
                "{from:?} {decision:?}: only the status and the accepted count change"
            );
        } else {
            assert_eq!(
                decide_fails(&mut c, patient, decision),
                ContractError::InvalidTransition { rel_id: id(&c), from, to },
                "{from:?} {decision:?}"
            );
            assert_eq!(c.stored(), before, "{from:?} {decision:?}");
        }
    }
}

#[test]
fn only_the_patient_decides() {
    let mut c = cast_in(Status::UpdatePending);
    let delegate = c.delegate;
    let senders = [
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
        ("institution", c.institution),
    ];
    for (who, sender) in senders {
        for d in [Decision::Accept, Decision::Reject, Decision::Remove] {
            assert_eq!(
                decide_fails(&mut c, sender, d),
                ContractError::UnknownRelationship {
                    rel_id: RelationshipId::derive(sender, delegate)
                },
                "{who} {d:?}"
            );
        }
    }
    // The delegate naming the patient as "its delegate" gets the swapped, unknown id.
    let (rel, patient) = (c.w.rel(), c.patient);
    assert_eq!(
        c.w.fail(delegate, rel, R::acceptCall { delegate: patient }),
        ContractError::UnknownRelationship { rel_id: RelationshipId::derive(delegate, patient) }
    );
    assert_eq!(status(&mut c), UPDATE_PENDING);
}

#[test]
fn decisions_on_an_unknown_relationship_are_refused() {
    let mut c = Cast::new();
    let patient = c.patient;
    for d in [Decision::Accept, Decision::Reject, Decision::Remove] {
        assert_eq!(
            decide_fails(&mut c, patient, d),
            ContractError::UnknownRelationship { rel_id: id(&c) },
            "{d:?}"
        );
    }
    assert_eq!(status(&mut c), NONE);
}

#[test]
fn a_full_lifecycle_emits_each_status_in_order() {
    let mut c = Cast::new();
    let patient = c.patient;
    let mut receipts = vec![c.create()];
    receipts.push(add(&mut c, 1));
    receipts.push(decide(&mut c, patient, Decision::Accept));
    receipts.push(update(&mut c, 1, 2));
    receipts.push(update(&mut c, 0, 3));
    receipts.push(decide(&mut c, patient, Decision::Reject));
    receipts.push(decide(&mut c, patient, Decision::Remove));

    let statuses: Vec<u8> =
        receipts.iter().flat_map(|r| r.events::<R::StatusChanged>()).map(|e| e.status).collect();
    assert_eq!(statuses, [UPDATE_PENDING, ACCEPTED, UPDATE_PENDING, REJECTED, DELETED]);
    let stored = c.stored();
    assert_eq!((stored.status, stored.pointerCount, stored.updates), (DELETED, 2, u24(3)));
    assert_eq!(stored.acceptedCount, 2);
}

#[test]
fn accepting_accepts_every_pointer_so_far_and_nothing_else_moves_the_count() {
    let mut c = Cast::new();
    let patient = c.patient;
    c.create();
    assert_eq!(counts(&mut c), (ACCEPTED, 1, 1), "created: pointer 0 accepted at once");

    add(&mut c, 1);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 2, 1), "added after creation");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 2, 2), "first acceptance");

    // Pointers added afterwards wait; updates of accepted pointers change no count.
    add(&mut c, 2);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 3, 2), "added after acceptance");
    update(&mut c, 0, 3);
    add(&mut c, 4);
    update(&mut c, 3, 5);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 4, 2), "more changes while pending");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 4, 4), "second acceptance");

    // An update alone leaves the count where it is, through its acceptance.
    update(&mut c, 1, 6);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 4, 4), "update of an accepted pointer");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 4, 4));

    // Rejecting or deleting accepts nothing.
    add(&mut c, 7);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 5, 4));
    decide(&mut c, patient, Decision::Reject);
    assert_eq!(counts(&mut c), (REJECTED, 5, 4), "rejected");
    decide(&mut c, patient, Decision::Remove);
    assert_eq!(counts(&mut c), (DELETED, 5, 4), "deleted");

    // Deleting a pending update directly accepts nothing either.
    let mut c = cast_in(Status::UpdatePending);
    let patient = c.patient;
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 2, 1));
    decide(&mut c, patient, Decision::Remove);
    assert_eq!(counts(&mut c), (DELETED, 2, 1));
}
