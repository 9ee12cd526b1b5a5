// generated from graph.yaml by cargo codegen, do not edit

//! `resolve` is not a transition out of DELIVERY_FAILED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<DeliveryFailed>, payload: Resolve, meta: EventMeta) {
    let _ = order.resolve(payload, meta);
}
fn main() {}
