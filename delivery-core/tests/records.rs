//! Stored data back into orders: what is valid comes back, what is corrupt is an error
//! that says what is wrong, never a panic.

mod support;

use delivery_core::*;

/// A delivered order and its history.
fn delivered() -> (AnyDeliveryOrder, Vec<DeliveryEvent>) {
    let (order, created) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    let (order, picked_up) = order.pick_up(
        PickUp {
            partner_order_number: "PN-7".parse().unwrap(),
        },
        support::meta(Role::Partner),
    );
    let (order, delivered) = order.deliver(
        Deliver {
            delivered_at: support::at(),
        },
        support::meta(Role::Partner),
    );
    (order.into(), vec![created, picked_up, delivered])
}

#[test]
fn history_rebuilds_the_order() {
    let (order, events) = delivered();
    assert_eq!(AnyDeliveryOrder::from_events(events).unwrap(), order);
}

/// Whether an error is the one a case expects.
type IsExpected = fn(&CorruptRecord) -> bool;

#[test]
fn corrupt_histories_are_refused_with_the_reason() {
    let (_, events) = delivered();
    let cases: Vec<(&str, Vec<DeliveryEvent>, IsExpected)> = vec![
        ("empty", vec![], |e| matches!(e, CorruptRecord::NoEvents)),
        ("no creation", events[1..].to_vec(), |e| {
            matches!(e, CorruptRecord::NotACreation { seq: 2 })
        }),
        ("gap", vec![events[0].clone(), events[2].clone()], |e| {
            matches!(
                e,
                CorruptRecord::OutOfSequence {
                    expected: 2,
                    found: 3
                }
            )
        }),
        (
            "repeat",
            vec![events[0].clone(), events[1].clone(), events[1].clone()],
            |e| {
                matches!(
                    e,
                    CorruptRecord::OutOfSequence {
                        expected: 3,
                        found: 2
                    }
                )
            },
        ),
        (
            "creation again",
            vec![events[0].clone(), renumbered(&events[0], 2)],
            |e| matches!(e, CorruptRecord::CreationAfterStart { seq: 2 }),
        ),
        (
            "other delivery",
            vec![events[0].clone(), other_delivery(&events[1])],
            |e| matches!(e, CorruptRecord::WrongDelivery { seq: 2, .. }),
        ),
        (
            "illegal step",
            vec![events[0].clone(), renumbered(&events[2], 2)],
            |e| matches!(e, CorruptRecord::IllegalTransition { seq: 2, .. }),
        ),
        (
            "recorded states disagree",
            vec![events[0].clone(), wrong_target(&events[1])],
            |e| matches!(e, CorruptRecord::StateMismatch { seq: 2, .. }),
        ),
        (
            "another major graph version",
            vec![next_major(&events[0])],
            |e| matches!(e, CorruptRecord::IncompatibleGraph { seq: 1, .. }),
        ),
    ];
    for (name, events, expected) in cases {
        let error = AnyDeliveryOrder::from_events(events).expect_err(name);
        assert!(expected(&error), "{name}: unexpected {error:?}");
        assert!(!error.to_string().is_empty());
    }
}

fn renumbered(event: &DeliveryEvent, seq: u64) -> DeliveryEvent {
    DeliveryEvent {
        seq,
        ..event.clone()
    }
}

fn other_delivery(event: &DeliveryEvent) -> DeliveryEvent {
    DeliveryEvent {
        delivery_id: DeliveryId(uuid::Uuid::from_u128(42)),
        ..event.clone()
    }
}

fn wrong_target(event: &DeliveryEvent) -> DeliveryEvent {
    DeliveryEvent {
        to: DeliveryState::Delivered,
        ..event.clone()
    }
}

fn next_major(event: &DeliveryEvent) -> DeliveryEvent {
    DeliveryEvent {
        graph_version: GraphVersion {
            major: GRAPH_VERSION.major + 1,
            ..GRAPH_VERSION
        },
        ..event.clone()
    }
}

#[test]
fn snapshot_round_trips_through_json() {
    let (order, _) = delivered();
    let json = serde_json::to_string(&order.snapshot()).unwrap();
    let snapshot: DeliverySnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(AnyDeliveryOrder::from_snapshot(snapshot).unwrap(), order);
}

#[test]
fn snapshots_whose_fields_do_not_fit_the_state_are_refused() {
    let (order, _) = delivered();
    let mut failed_without_reason = order.snapshot();
    failed_without_reason.state = DeliveryState::DeliveryFailed;
    failed_without_reason.fields.delivered_at = None;
    assert_eq!(
        AnyDeliveryOrder::from_snapshot(failed_without_reason),
        Err(CorruptRecord::MissingField {
            state: DeliveryState::DeliveryFailed,
            field: "reason"
        })
    );

    let mut created_with_a_reason = order.snapshot();
    created_with_a_reason.state = DeliveryState::Created;
    created_with_a_reason.fields = StateFields {
        reason: Some(FailureReason::Other),
        ..StateFields::default()
    };
    assert_eq!(
        AnyDeliveryOrder::from_snapshot(created_with_a_reason),
        Err(CorruptRecord::UnexpectedField {
            state: DeliveryState::Created,
            field: "reason"
        })
    );
}

#[test]
fn a_failed_delivery_keeps_its_reason_and_a_redelivery_replaces_it() {
    let (order, _) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    let (order, _) = order.fail(
        Fail {
            reason: FailureReason::AddressInvalid,
            detail: None,
        },
        support::meta(Role::Partner),
    );
    assert_eq!(order.reason(), FailureReason::AddressInvalid);
    let (order, _) = order.escalate(Escalate { assignee: None }, support::meta(Role::System));
    let (resolved, event) = order.resolve(
        Resolve {
            resolution: Resolution::Redeliver,
            note: Some("new address confirmed".parse().unwrap()),
        },
        support::meta(Role::Operator),
    );
    assert_eq!(event.to, DeliveryState::Resolved);
    assert_eq!(resolved.reason(), FailureReason::AddressInvalid);

    let new_id = DeliveryId(uuid::Uuid::from_u128(2));
    let (replacement, created) = resolved
        .redelivery(new_id, support::meta(Role::Operator))
        .unwrap();
    assert_eq!(replacement.details().replaces, Some(support::id()));
    assert_eq!(
        replacement.details().ordering_id,
        resolved.details().ordering_id
    );
    assert_eq!((created.delivery_id, created.seq), (new_id, 1));
}

#[test]
fn only_a_redeliver_resolution_makes_a_replacement() {
    let (order, _) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    let (order, _) = order.fail(
        Fail {
            reason: FailureReason::PackageLost,
            detail: None,
        },
        support::meta(Role::System),
    );
    let (order, _) = order.escalate(Escalate { assignee: None }, support::meta(Role::System));
    let (resolved, _) = order.resolve(
        Resolve {
            resolution: Resolution::Refund,
            note: None,
        },
        support::meta(Role::Operator),
    );
    assert!(
        resolved
            .redelivery(
                DeliveryId(uuid::Uuid::from_u128(3)),
                support::meta(Role::Operator)
            )
            .is_none()
    );
}

#[test]
fn a_dispute_narrows_to_a_failure_reason() {
    let (order, events) = delivered();
    let AnyDeliveryOrder::Delivered(order) = order else {
        panic!("delivered() is delivered")
    };
    let (failed, event) = order.dispute(
        Dispute {
            reason: DisputeReason::NotReceived,
            detail: None,
        },
        support::meta(Role::Customer),
    );
    assert_eq!(failed.reason(), FailureReason::NotReceived);
    assert_eq!(
        failed.partner_order_number().map(|n| n.as_str()),
        Some("PN-7")
    );
    assert_eq!(event.seq, events.len() as u64 + 1);
}
