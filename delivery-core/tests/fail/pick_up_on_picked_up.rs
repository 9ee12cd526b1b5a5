// generated from graph.yaml by cargo codegen, do not edit

//! `pick_up` is not a transition out of PICKED_UP.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PickedUp>, payload: PickUp, meta: EventMeta) {
    let _ = order.pick_up(payload, meta);
}
fn main() {}
