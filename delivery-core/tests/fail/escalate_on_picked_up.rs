// generated from graph.yaml by cargo codegen, do not edit

//! `escalate` is not a transition out of PICKED_UP.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PickedUp>, payload: Escalate, meta: EventMeta) {
    let _ = order.escalate(payload, meta);
}
fn main() {}
