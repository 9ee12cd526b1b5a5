//! The service's domain layer as the HTTP layer, the message consumers and the partners'
//! webhooks see it: who is asking ([`Principal`], [`RequestContext`]), what they ask for,
//! what comes back, and why it may not ([`ServiceError`]). The persistence behind it lives in
//! [`crate::commands`] (write side) and [`crate::queries`] (read side).

use chrono::{DateTime, Utc};
use delivery_core::{
    CustomerId, DeliveryId, DeliveryState, FailureReason, OrderLine, OrderingId, PaymentId,
    Resolution, Role, ShippingAddress, TransitionError,
};
use serde::{Deserialize, Serialize};

/// The roles a bearer token may carry. The graph's roles (customer, partner, operator,
/// system) make transitions; `service` principals are other services (payment, order
/// management); `admin` reads everything and may act as an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum PrincipalRole {
    Customer,
    Partner,
    Operator,
    Service,
    Admin,
}

impl PrincipalRole {
    /// The graph role this principal acts in when it makes a transition: admins act as
    /// operators, and service principals make none.
    pub const fn graph_role(self) -> Option<Role> {
        match self {
            PrincipalRole::Customer => Some(Role::Customer),
            PrincipalRole::Partner => Some(Role::Partner),
            PrincipalRole::Operator | PrincipalRole::Admin => Some(Role::Operator),
            PrincipalRole::Service => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: PrincipalRole,
    /// The token's `sub`.
    pub subject: String,
    /// For customers: whose deliveries they may see and act on.
    pub customer_id: Option<CustomerId>,
    /// For partners: which partner they speak for.
    pub partner_id: Option<String>,
}

/// Everything a domain operation needs to know about the request besides its input.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    /// Carried into every event and log line of the request.
    pub request_id: String,
    /// The request's `Idempotency-Key`, if any, with a fingerprint of the request (method,
    /// path and body), so that a replay is told from a different request under the same key.
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
}

/// The payment service's `payment.succeeded` event (DOMAIN.md), as it arrives over HTTP or
/// RabbitMQ. Validation happens in the domain types: an invalid field is a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub payment_id: PaymentId,
    pub ordering_id: OrderingId,
    pub customer_id: CustomerId,
    pub shipping_address: ShippingAddress,
    pub lines: Vec<OrderLine>,
}

/// What handling a payment event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// A delivery order was created.
    Created { delivery_id: DeliveryId },
    /// The ordering has only e-books: no delivery order.
    NothingToDeliver,
    /// This `event_id` was handled before; nothing changed.
    AlreadyHandled { delivery_id: Option<DeliveryId> },
}

/// A delivery order as the read side shows it (the `delivery_view` read model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub ordering_id: OrderingId,
    pub customer_id: CustomerId,
    pub payment_id: PaymentId,
    pub state: DeliveryState,
    /// The `seq` of the last event projected: compare with a write's `version` to read
    /// your own write.
    pub version: u64,
    pub partner_id: Option<String>,
    pub partner_order_number: Option<String>,
    pub failure_reason: Option<FailureReason>,
    pub failure_detail: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<Resolution>,
    pub note: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub replaces_delivery_id: Option<DeliveryId>,
    pub replaced_by_delivery_id: Option<DeliveryId>,
    pub shipping_address: ShippingAddress,
    pub lines: Vec<OrderLine>,
    pub graph_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a transition did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionOutcome {
    pub delivery_id: DeliveryId,
    pub from: DeliveryState,
    pub to: DeliveryState,
    /// The new version (the event's `seq`).
    pub version: u64,
    /// The new delivery order a REDELIVER resolution created.
    pub replacement_delivery_id: Option<DeliveryId>,
}

/// One entry of a delivery's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub transition: String,
    pub from: Option<DeliveryState>,
    pub to: DeliveryState,
    pub actor_role: String,
    pub actor_id: String,
    pub request_id: Option<String>,
    pub graph_version: String,
    pub occurred_at: DateTime<Utc>,
    /// The transition's payload as recorded.
    pub data: serde_json::Value,
}

/// Filters of `GET /v1/deliveries`; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub ordering_id: Option<OrderingId>,
    pub customer_id: Option<CustomerId>,
    pub partner_id: Option<String>,
}

/// A page of results and the opaque cursor of the next page, if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Why a domain operation did not happen. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("delivery {0} not found")]
    NotFound(DeliveryId),
    /// Authenticated, but not allowed to do this (role or ownership).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The graph does not allow it now (409), or the role never may (403).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Another change to the same delivery committed first (optimistic concurrency).
    #[error("delivery {id} changed concurrently (expected version {expected}); retry")]
    Conflict { id: DeliveryId, expected: u64 },
    /// The same `Idempotency-Key` was used before with a different request.
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    /// Well-formed but invalid input.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database cannot take the request now: a lock not granted within the busy
    /// timeout, no pooled connection free in time, the connection lost. The same request
    /// may be retried (503 with `Retry-After`): nothing was changed, unless the
    /// connection was lost after it had sent the batch, which may have committed; the
    /// retry then meets the change (with the request's idempotency key, its answer).
    #[error("the database is busy: {0}")]
    Busy(#[source] sea_orm::DbErr),
    /// Anything else the database refused, a corrupt record included: a fault of the
    /// service, not of the request.
    #[error("database error: {0}")]
    Database(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::db::is_partner_order_number_taken(&err) {
            // The one unique key a request's own data can break.
            ServiceError::Invalid(
                "the partner order number is already used for another delivery of this partner"
                    .into(),
            )
        } else if crate::db::is_ordering_of_another_customer(&err) {
            // A payment's own data, against the ordering the service already knows.
            ServiceError::Invalid(
                "the ordering is known with another customer: a payment for it must name the same customer"
                    .into(),
            )
        } else if crate::db::is_transient(&err) {
            ServiceError::Busy(err)
        } else {
            ServiceError::Database(err)
        }
    }
}
