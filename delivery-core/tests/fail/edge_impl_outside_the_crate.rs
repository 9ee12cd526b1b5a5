//! Edges are declared only by the generated module: another crate can neither add an edge
//! between the graph's states nor bring a state of its own.
use delivery_core::*;

impl CanTransitionTo<Created> for PendingByOperator {
    const TRANSITION: &'static str = "reopen";
    type Payload = ();
    fn enter(_: PendingByOperatorData, _: &()) {}
}

#[derive(Debug, Clone, Copy, Default)]
struct Reopened;

impl State for Reopened {
    const NAME: &'static str = "REOPENED";
    type Rank = delivery_core::typestate::Zero;
    const IS_FINAL: bool = false;
    type Data = ();
}

fn main() {}
