// generated from graph.yaml by cargo codegen, do not edit

//! `dispute` is not a transition out of RESOLVED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<Resolved>, payload: Dispute, meta: EventMeta) {
    let _ = order.dispute(payload, meta);
}
fn main() {}
