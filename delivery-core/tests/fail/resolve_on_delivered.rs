// generated from graph.yaml by cargo codegen, do not edit

//! `resolve` is not a transition out of DELIVERED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<Delivered>, payload: Resolve, meta: EventMeta) {
    let _ = order.resolve(payload, meta);
}
fn main() {}
