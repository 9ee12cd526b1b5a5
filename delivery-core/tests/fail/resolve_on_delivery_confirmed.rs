// generated from graph.yaml by cargo codegen, do not edit

//! `resolve` is not a transition out of DELIVERY_CONFIRMED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<DeliveryConfirmed>, payload: Resolve, meta: EventMeta) {
    let _ = order.resolve(payload, meta);
}
fn main() {}
