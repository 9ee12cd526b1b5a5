// generated from graph.yaml by cargo codegen, do not edit

//! Going back from DELIVERY_CONFIRMED to DELIVERED would close a cycle: the graph has no such edge.
use delivery_core::*;
fn back<P>(order: DeliveryOrder<DeliveryConfirmed>, payload: P, meta: EventMeta) {
    let _ = order.transition_to::<Delivered>(payload, meta);
}
fn main() {}
