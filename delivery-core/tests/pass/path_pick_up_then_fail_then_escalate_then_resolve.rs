// generated from graph.yaml by cargo codegen, do not edit

//! Path coverage: pick_up → fail → escalate → resolve.
#[path = "../support/mod.rs"]
mod support;
use delivery_core::*;
use support::{details, meta};
fn main() {
    let (order, event) = DeliveryOrder::create(support::id(), details(), meta(Role::System));
    assert_eq!((event.seq, event.to), (1, DeliveryState::Created));
    let (order, event) = order.pick_up(
        PickUp {
            partner_order_number: "PN-0001".parse().unwrap(),
        },
        meta(Role::Partner),
    );
    assert_eq!(
        (event.seq, event.from, event.to),
        (2, Some(DeliveryState::Created), DeliveryState::PickedUp)
    );
    let (order, event) = order.fail(
        Fail {
            reason: FailureReason::AddressInvalid,
            detail: Some("a note".parse().unwrap()),
        },
        meta(Role::Partner),
    );
    assert_eq!(
        (event.seq, event.from, event.to),
        (
            3,
            Some(DeliveryState::PickedUp),
            DeliveryState::DeliveryFailed
        )
    );
    let (order, event) = order.escalate(
        Escalate {
            assignee: Some("operator-1".parse().unwrap()),
        },
        meta(Role::System),
    );
    assert_eq!(
        (event.seq, event.from, event.to),
        (
            4,
            Some(DeliveryState::DeliveryFailed),
            DeliveryState::PendingByOperator
        )
    );
    let (order, event) = order.resolve(
        Resolve {
            resolution: Resolution::Redeliver,
            note: Some("a note".parse().unwrap()),
        },
        meta(Role::Operator),
    );
    assert_eq!(
        (event.seq, event.from, event.to),
        (
            5,
            Some(DeliveryState::PendingByOperator),
            DeliveryState::Resolved
        )
    );
    assert!(order.state().is_final());
    assert_eq!(order.version(), 5);
}
