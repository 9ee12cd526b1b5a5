// generated from graph.yaml by cargo codegen, do not edit

//! `dispute` is not a transition out of DELIVERY_CONFIRMED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<DeliveryConfirmed>, payload: Dispute, meta: EventMeta) {
    let _ = order.dispute(payload, meta);
}
fn main() {}
