// generated from graph.yaml by cargo codegen, do not edit

//! Going back from DELIVERED to PICKED_UP would close a cycle: the graph has no such edge.
use delivery_core::*;
fn back<P>(order: DeliveryOrder<Delivered>, payload: P, meta: EventMeta) {
    let _ = order.transition_to::<PickedUp>(payload, meta);
}
fn main() {}
