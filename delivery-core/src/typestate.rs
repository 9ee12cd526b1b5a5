//! The typestate mechanism: a state is a type, an edge is a trait impl, and a rank on every
//! state forbids an edge that goes backwards.
//!
//! This module names nothing else of the crate, so that a compile-fail test can include it
//! as it is and show that a hand-written backwards edge is rejected.

use std::marker::PhantomData;

pub(crate) mod sealed {
    /// Only this crate (in practice, its generated module) can make states and edges.
    pub trait Sealed {}
}

/// A state of the graph, as a zero-sized type.
pub trait State: sealed::Sealed + Copy + Default + std::fmt::Debug + 'static {
    /// The state's name in graph.yaml, e.g. `PICKED_UP`.
    const NAME: &'static str;
    /// Whether nothing leaves this state.
    const IS_FINAL: bool;
    /// The state's position in graph.yaml's topological order, as a type: every edge goes
    /// up, and the trait solver checks it where an edge is declared.
    type Rank: Nat;
    /// [`State::Rank`] as a number.
    const RANK: u8 = <Self::Rank as Nat>::VALUE;
    /// What an order carries while in this state, and only then.
    type Data: Clone + std::fmt::Debug + PartialEq;
}

/// Names an edge of the graph by its target state: `S: CanTransitionTo<T>` holds exactly when
/// graph.yaml has a transition from `S` to `T`. An edge can only be declared from a state
/// that comes before its target ([`Precedes`]), so no impl, generated or not, closes a cycle.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to {To}",
    label = "no edge {Self} -> {To} in graph.yaml",
    note = "the graph is acyclic and only its edges compile: see docs/graph.md, or edit graph.yaml and run `cargo codegen`"
)]
pub trait CanTransitionTo<To: State>: State + Precedes<To> {
    /// The transition's name in graph.yaml, e.g. `pick_up`.
    const TRANSITION: &'static str;
    /// What the transition carries.
    type Payload;
    /// The target state's data, made from this state's data and the payload.
    fn enter(from: Self::Data, payload: &Self::Payload) -> To::Data;
}

/// `From` comes before `To` in the topological order: the only direction an edge may take.
#[diagnostic::on_unimplemented(
    message = "{Self} does not come before {To} in graph.yaml's topological order",
    label = "an edge {Self} -> {To} would close a cycle",
    note = "the graph is acyclic: nothing goes back; a failed delivery gets a new delivery order instead"
)]
pub trait Precedes<To: State> {}

impl<From: State, To: State> Precedes<To> for From where From::Rank: Below<To::Rank> {}

/// A natural number as a type (`Zero`, `Succ<Zero>`, ...), so that ranks can be compared by
/// the trait solver at compile time on stable Rust.
pub trait Nat {
    const VALUE: u8;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Zero;

#[derive(Debug, Clone, Copy, Default)]
pub struct Succ<N>(PhantomData<N>);

impl Nat for Zero {
    const VALUE: u8 = 0;
}

impl<N: Nat> Nat for Succ<N> {
    const VALUE: u8 = N::VALUE + 1;
}

/// `Self < Upper` for type-level naturals.
#[diagnostic::on_unimplemented(
    message = "an edge must go up graph.yaml's topological order: rank {Self} is not below rank {Upper}",
    label = "this edge goes backwards and would close a cycle"
)]
pub trait Below<Upper> {}

impl<N> Below<Succ<N>> for Zero {}

impl<N, M> Below<Succ<M>> for Succ<N> where N: Below<M> {}
