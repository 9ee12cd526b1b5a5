// generated from graph.yaml by cargo codegen, do not edit

//! Going back from PENDING_BY_OPERATOR to DELIVERY_FAILED would close a cycle: the graph has no such edge.
use delivery_core::*;
fn back<P>(order: DeliveryOrder<PendingByOperator>, payload: P, meta: EventMeta) {
    let _ = order.transition_to::<DeliveryFailed>(payload, meta);
}
fn main() {}
