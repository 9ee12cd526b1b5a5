// generated from graph.yaml by cargo codegen, do not edit

//! `fail` is not a transition out of PENDING_BY_OPERATOR.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PendingByOperator>, payload: Fail, meta: EventMeta) {
    let _ = order.fail(payload, meta);
}
fn main() {}
