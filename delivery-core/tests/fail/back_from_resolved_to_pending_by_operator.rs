// generated from graph.yaml by cargo codegen, do not edit

//! Going back from RESOLVED to PENDING_BY_OPERATOR would close a cycle: the graph has no such edge.
use delivery_core::*;
fn back<P>(order: DeliveryOrder<Resolved>, payload: P, meta: EventMeta) {
    let _ = order.transition_to::<PendingByOperator>(payload, meta);
}
fn main() {}
