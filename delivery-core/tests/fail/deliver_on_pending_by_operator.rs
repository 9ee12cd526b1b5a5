// generated from graph.yaml by cargo codegen, do not edit

//! `deliver` is not a transition out of PENDING_BY_OPERATOR.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PendingByOperator>, payload: Deliver, meta: EventMeta) {
    let _ = order.deliver(payload, meta);
}
fn main() {}
