//! Events: what each transition records, and who made it when.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::generated::{Command, DeliveryState, Role};
use crate::order::DeliveryDetails;
use crate::values::{ActorId, DeliveryId, GraphVersion};

/// Who makes a change: a role of graph.yaml and the authenticated subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub role: Role,
    pub id: ActorId,
}

/// Who makes a change and when. The time is given, never read from a clock here: the
/// library does no I/O, and a replay or a test decides what "now" is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
}

/// What an event did: created the order, or took a transition with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transition", rename_all = "snake_case")]
pub enum Change {
    Create(Arc<DeliveryDetails>),
    #[serde(untagged)]
    Transition(Command),
}

impl Change {
    /// `create`, or the transition's name in graph.yaml.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Create(_) => "create",
            Change::Transition(command) => command.transition().name(),
        }
    }
}

/// One entry of a delivery order's history. A sequence of them, from `seq` 1 on, rebuilds
/// the order ([`crate::AnyDeliveryOrder::from_events`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryEvent {
    pub delivery_id: DeliveryId,
    /// 1 for the creation, then one more per transition.
    pub seq: u64,
    /// `None` for the creation.
    pub from: Option<DeliveryState>,
    pub to: DeliveryState,
    pub change: Change,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    pub graph_version: GraphVersion,
}
