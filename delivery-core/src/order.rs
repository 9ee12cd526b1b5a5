//! `DeliveryOrder<S>`: a delivery order known to be in state `S`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{Change, DeliveryEvent, EventMeta};
use crate::generated::{Command, Created, DeliveryState, GRAPH_VERSION, Resolution, Resolved};
use crate::typestate::{CanTransitionTo, State};
use crate::values::{
    CustomerId, DeliveryId, OrderingId, PaymentId, PhysicalLines, ShippingAddress,
};

/// What a delivery order is about; fixed for its whole life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDetails {
    pub ordering_id: OrderingId,
    pub customer_id: CustomerId,
    pub payment_id: PaymentId,
    pub shipping_address: ShippingAddress,
    pub lines: PhysicalLines,
    /// The failed delivery order this one was made to replace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<DeliveryId>,
}

/// A delivery order in state `S`. Only the transitions graph.yaml allows out of `S` exist
/// as methods, each consumes the order, and the data of `S` is there only while in `S`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOrder<S: State> {
    pub(crate) id: DeliveryId,
    /// Shared, so that a transition moves a pointer rather than the address and lines.
    pub(crate) details: Arc<DeliveryDetails>,
    /// The `seq` of the last event applied: one event, one version.
    pub(crate) version: u64,
    pub(crate) data: S::Data,
}

impl DeliveryOrder<Created> {
    /// A new delivery order, with the event that records its creation (seq 1).
    pub fn create(
        id: DeliveryId,
        details: DeliveryDetails,
        meta: EventMeta,
    ) -> (Self, DeliveryEvent) {
        let details = Arc::new(details);
        let event = DeliveryEvent {
            delivery_id: id,
            seq: 1,
            from: None,
            to: DeliveryState::Created,
            change: Change::Create(Arc::clone(&details)),
            actor: meta.actor,
            occurred_at: meta.occurred_at,
            graph_version: GRAPH_VERSION,
        };
        let order = DeliveryOrder {
            id,
            details,
            version: 1,
            data: (),
        };
        (order, event)
    }
}

impl DeliveryOrder<Resolved> {
    /// The replacement a REDELIVER resolution calls for: a new delivery order for the same
    /// ordering, linked to this one. `None` for any other resolution.
    pub fn redelivery(
        &self,
        id: DeliveryId,
        meta: EventMeta,
    ) -> Option<(DeliveryOrder<Created>, DeliveryEvent)> {
        (self.resolution() == Resolution::Redeliver).then(|| {
            let details = DeliveryDetails {
                replaces: Some(self.id),
                ..(*self.details).clone()
            };
            DeliveryOrder::create(id, details, meta)
        })
    }
}

impl<S: State> DeliveryOrder<S> {
    pub fn id(&self) -> DeliveryId {
        self.id
    }

    pub fn details(&self) -> &DeliveryDetails {
        &self.details
    }

    /// The `seq` of the last event applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The data of state `S`.
    pub fn data(&self) -> &S::Data {
        &self.data
    }

    pub fn state(&self) -> DeliveryState {
        DeliveryState::ALL[usize::from(S::RANK)]
    }

    /// Takes the transition to `To`, named by its target state; the named methods
    /// (`pick_up`, `deliver`, ...) are this with the target filled in.
    pub fn transition_to<To: State>(
        self,
        payload: <S as CanTransitionTo<To>>::Payload,
        meta: EventMeta,
    ) -> (DeliveryOrder<To>, DeliveryEvent)
    where
        S: CanTransitionTo<To>,
        <S as CanTransitionTo<To>>::Payload: Into<Command>,
    {
        let data = <S as CanTransitionTo<To>>::enter(self.data, &payload);
        let seq = self.version + 1;
        let event = DeliveryEvent {
            delivery_id: self.id,
            seq,
            from: Some(DeliveryState::ALL[usize::from(S::RANK)]),
            to: DeliveryState::ALL[usize::from(To::RANK)],
            change: Change::Transition(payload.into()),
            actor: meta.actor,
            occurred_at: meta.occurred_at,
            graph_version: GRAPH_VERSION,
        };
        let order = DeliveryOrder {
            id: self.id,
            details: self.details,
            version: seq,
            data,
        };
        (order, event)
    }
}
