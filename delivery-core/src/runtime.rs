//! The runtime side, for orders whose state is known only from stored data: apply a
//! [`Command`] to an [`AnyDeliveryOrder`], rebuild one from its events or a snapshot.
//!
//! Every change still goes through the typed methods: [`AnyDeliveryOrder`]'s generated
//! dispatch matches the state and the command and calls them, so the graph's logic exists
//! once.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{Change, DeliveryEvent, EventMeta};
use crate::generated::{
    AnyDeliveryOrder, Command, DeliveryState, GRAPH_VERSION, Role, StateFields, Transition,
};
use crate::order::{DeliveryDetails, DeliveryOrder};
use crate::values::{DeliveryId, GraphVersion};

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The graph has no such transition out of the current state.
    #[error(
        "`{attempted}` is not allowed from {current}; allowed now: {}",
        names(allowed)
    )]
    NotAllowed {
        current: DeliveryState,
        attempted: Transition,
        allowed: &'static [Transition],
    },
    /// The actor's role may never make this transition.
    #[error(
        "role `{role}` may not `{transition}`; it is for: {}",
        names(allowed_roles)
    )]
    RoleNotAllowed {
        role: Role,
        transition: Transition,
        allowed_roles: &'static [Role],
    },
}

/// A refused command: why, and the order it was meant for, unchanged, so nothing is lost
/// (as `String::from_utf8` hands the bytes back in its error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    /// Boxed: the error path may allocate, the success path's `Result` stays small.
    pub order: Box<AnyDeliveryOrder>,
    pub error: TransitionError,
}

impl From<Rejected> for TransitionError {
    fn from(rejected: Rejected) -> Self {
        rejected.error
    }
}

/// Why stored data could not be turned back into an order. The data is left as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CorruptRecord {
    #[error("no events: an order's history starts with its creation")]
    NoEvents,
    #[error("event {seq}: the first event must be the creation (seq 1, to CREATED)")]
    NotACreation { seq: u64 },
    #[error("event {seq}: a creation after the first event")]
    CreationAfterStart { seq: u64 },
    #[error("event {seq}: belongs to delivery {found}, not {expected}")]
    WrongDelivery {
        seq: u64,
        expected: DeliveryId,
        found: DeliveryId,
    },
    #[error("event seq {found} where {expected} was due: the history has a gap or a repeat")]
    OutOfSequence { expected: u64, found: u64 },
    #[error(
        "event {seq}: recorded {recorded_from:?} -> {recorded_to}, but replay is at {actual_from} -> {actual_to}"
    )]
    StateMismatch {
        seq: u64,
        recorded_from: Option<DeliveryState>,
        recorded_to: DeliveryState,
        actual_from: DeliveryState,
        actual_to: DeliveryState,
    },
    #[error("event {seq}: {source}")]
    IllegalTransition { seq: u64, source: TransitionError },
    #[error(
        "event {seq}: made under graph {found}, which this build (graph {GRAPH_VERSION}) cannot replay"
    )]
    IncompatibleGraph { seq: u64, found: GraphVersion },
    #[error("state {state} requires `{field}`, which is missing")]
    MissingField {
        state: DeliveryState,
        field: &'static str,
    },
    #[error("state {state} has no `{field}`, yet it is set")]
    UnexpectedField {
        state: DeliveryState,
        field: &'static str,
    },
}

/// An order as a flat record, e.g. a database row: every state's fields, set where the
/// state has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySnapshot {
    pub id: DeliveryId,
    pub details: DeliveryDetails,
    pub version: u64,
    pub state: DeliveryState,
    #[serde(flatten)]
    pub fields: StateFields,
}

impl AnyDeliveryOrder {
    /// Applies `command` on behalf of `meta.actor`: the new order and the event it recorded,
    /// or why not together with the order, unchanged.
    pub fn apply(
        self,
        command: Command,
        meta: EventMeta,
    ) -> Result<(AnyDeliveryOrder, DeliveryEvent), Rejected> {
        let transition = command.transition();
        if !transition.roles().contains(&meta.actor.role) {
            let error = TransitionError::RoleNotAllowed {
                role: meta.actor.role,
                transition,
                allowed_roles: transition.roles(),
            };
            return Err(Rejected {
                order: Box::new(self),
                error,
            });
        }
        self.dispatch(command, meta)
    }

    /// Rebuilds an order from its history, checking every event against the graph.
    pub fn from_events(
        events: impl IntoIterator<Item = DeliveryEvent>,
    ) -> Result<Self, CorruptRecord> {
        let mut events = events.into_iter();
        let first = events.next().ok_or(CorruptRecord::NoEvents)?;
        check_graph_version(&first)?;
        let details = match first.change {
            Change::Create(details) if first.seq == 1 && first.to == DeliveryState::Created => {
                details
            }
            _ => return Err(CorruptRecord::NotACreation { seq: first.seq }),
        };
        let id = first.delivery_id;
        let mut order = AnyDeliveryOrder::Created(DeliveryOrder {
            id,
            details,
            version: 1,
            data: (),
        });
        for event in events {
            check_graph_version(&event)?;
            order = replay(order, event, id)?;
        }
        Ok(order)
    }

    /// The order as a flat record.
    pub fn snapshot(&self) -> DeliverySnapshot {
        DeliverySnapshot {
            id: self.id(),
            details: self.details().clone(),
            version: self.version(),
            state: self.state(),
            fields: self.state_fields(),
        }
    }

    /// Rebuilds an order from a flat record, refusing one whose fields do not fit its state.
    pub fn from_snapshot(snapshot: DeliverySnapshot) -> Result<Self, CorruptRecord> {
        Self::from_parts(
            snapshot.id,
            Arc::new(snapshot.details),
            snapshot.version,
            snapshot.state,
            snapshot.fields,
        )
    }
}

/// Applies one stored event to `order`, checking that it is the next one and that the graph
/// takes it where it says it went.
fn replay(
    order: AnyDeliveryOrder,
    event: DeliveryEvent,
    id: DeliveryId,
) -> Result<AnyDeliveryOrder, CorruptRecord> {
    let seq = event.seq;
    if event.delivery_id != id {
        return Err(CorruptRecord::WrongDelivery {
            seq,
            expected: id,
            found: event.delivery_id,
        });
    }
    if seq != order.version() + 1 {
        return Err(CorruptRecord::OutOfSequence {
            expected: order.version() + 1,
            found: seq,
        });
    }
    let Change::Transition(command) = event.change else {
        return Err(CorruptRecord::CreationAfterStart { seq });
    };
    let actual_from = order.state();
    // History was authorised when it was made; replay checks the graph, not the roles.
    let meta = EventMeta {
        actor: event.actor,
        occurred_at: event.occurred_at,
    };
    let (next, _) =
        order
            .dispatch(command, meta)
            .map_err(|rejected| CorruptRecord::IllegalTransition {
                seq,
                source: rejected.error,
            })?;
    if event.from != Some(actual_from) || event.to != next.state() {
        return Err(CorruptRecord::StateMismatch {
            seq,
            recorded_from: event.from,
            recorded_to: event.to,
            actual_from,
            actual_to: next.state(),
        });
    }
    Ok(next)
}

/// Events of another major graph version may use transitions this build does not know.
fn check_graph_version(event: &DeliveryEvent) -> Result<(), CorruptRecord> {
    if event.graph_version.major == GRAPH_VERSION.major {
        Ok(())
    } else {
        Err(CorruptRecord::IncompatibleGraph {
            seq: event.seq,
            found: event.graph_version,
        })
    }
}

/// `a, b, c`, or `none`.
fn names<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
