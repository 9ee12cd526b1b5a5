// generated from graph.yaml by cargo codegen, do not edit

//! Path coverage: pick_up → deliver → confirm_receipt.
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
    let (order, event) = order.deliver(
        Deliver {
            delivered_at: support::at(),
        },
        meta(Role::Partner),
    );
    assert_eq!(
        (event.seq, event.from, event.to),
        (3, Some(DeliveryState::PickedUp), DeliveryState::Delivered)
    );
    let (order, event) = order.confirm_receipt(ConfirmReceipt {}, meta(Role::Customer));
    assert_eq!(
        (event.seq, event.from, event.to),
        (
            4,
            Some(DeliveryState::Delivered),
            DeliveryState::DeliveryConfirmed
        )
    );
    assert!(order.state().is_final());
    assert_eq!(order.version(), 4);
}
