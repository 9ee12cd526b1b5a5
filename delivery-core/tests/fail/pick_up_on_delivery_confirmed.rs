// generated from graph.yaml by cargo codegen, do not edit

//! `pick_up` is not a transition out of DELIVERY_CONFIRMED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<DeliveryConfirmed>, payload: PickUp, meta: EventMeta) {
    let _ = order.pick_up(payload, meta);
}
fn main() {}
