// generated from graph.yaml by cargo codegen, do not edit

//! `pick_up` is not a transition out of RESOLVED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<Resolved>, payload: PickUp, meta: EventMeta) {
    let _ = order.pick_up(payload, meta);
}
fn main() {}
