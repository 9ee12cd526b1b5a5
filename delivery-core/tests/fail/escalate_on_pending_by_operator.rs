// generated from graph.yaml by cargo codegen, do not edit

//! `escalate` is not a transition out of PENDING_BY_OPERATOR.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PendingByOperator>, payload: Escalate, meta: EventMeta) {
    let _ = order.escalate(payload, meta);
}
fn main() {}
