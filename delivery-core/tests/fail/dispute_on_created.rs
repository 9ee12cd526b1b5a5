// generated from graph.yaml by cargo codegen, do not edit

//! `dispute` is not a transition out of CREATED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<Created>, payload: Dispute, meta: EventMeta) {
    let _ = order.dispute(payload, meta);
}
fn main() {}
