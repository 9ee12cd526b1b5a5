// generated from graph.yaml by cargo codegen, do not edit

//! `fail` is not a transition out of DELIVERY_CONFIRMED.
use delivery_core::*;
fn illegal(order: DeliveryOrder<DeliveryConfirmed>, payload: Fail, meta: EventMeta) {
    let _ = order.fail(payload, meta);
}
fn main() {}
