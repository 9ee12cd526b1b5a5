// generated from graph.yaml by cargo codegen, do not edit

//! `confirm_receipt` is not a transition out of PICKED_UP.
use delivery_core::*;
fn illegal(order: DeliveryOrder<PickedUp>, payload: ConfirmReceipt, meta: EventMeta) {
    let _ = order.confirm_receipt(payload, meta);
}
fn main() {}
