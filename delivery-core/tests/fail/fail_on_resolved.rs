// generated from graph.yaml by cargo codegen, do not edit

//! `fail` is not a transition out of RESOLVED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<Resolved>, payload: Fail, meta: EventMeta) {
    let _ = order.fail(payload, meta);
}
fn main() {}
