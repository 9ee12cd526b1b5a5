// generated from graph.yaml by cargo codegen, do not edit

//! `pick_up` is not a transition out of PENDING_BY_OPERATOR.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PendingByOperator>, payload: PickUp, meta: EventMeta) {
    let _ = order.pick_up(payload, meta);
}
fn main() {}
