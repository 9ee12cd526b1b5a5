//! Even inside delivery-core, an edge written by hand that goes against the topological
//! order does not compile: the mechanism module (included here as it is) requires every
//! edge's source to rank below its target, so no cycle can be added around the generator.
#[path = "../../src/typestate.rs"]
#[allow(dead_code)]
mod typestate;

use typestate::{CanTransitionTo, State, Succ, Zero, sealed::Sealed};

#[derive(Debug, Clone, Copy, Default)]
struct Created;
#[derive(Debug, Clone, Copy, Default)]
struct PendingByOperator;

impl Sealed for Created {}
impl Sealed for PendingByOperator {}

impl State for Created {
    const NAME: &'static str = "CREATED";
    type Rank = Zero;
    const IS_FINAL: bool = false;
    type Data = ();
}

impl State for PendingByOperator {
    const NAME: &'static str = "PENDING_BY_OPERATOR";
    type Rank = Succ<Succ<Succ<Succ<Succ<Zero>>>>>;
    const IS_FINAL: bool = false;
    type Data = ();
}

/// The backwards edge: PENDING_BY_OPERATOR → CREATED.
impl CanTransitionTo<Created> for PendingByOperator {
    const TRANSITION: &'static str = "reopen";
    type Payload = ();
    fn enter(_: (), _: &()) {}
}

fn main() {}
