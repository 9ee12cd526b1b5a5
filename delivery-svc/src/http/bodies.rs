//! The API's request and response bodies, and their conversions to and from the domain's
//! types. Requests arrive parsed ([`Wire`] fields go through the domain's parsers), so the
//! conversions into the domain cannot fail, except where a number carries a domain rule.

use chrono::{DateTime, TimeZone, Utc};
use delivery_core::{
    Command, ConfirmReceipt, CountryCode, CustomerId, Deliver, DeliveryId, DeliveryState, Dispute,
    DisputeReason, Escalate, Fail, FailureReason, Format, Line, OperatorId, OrderLine, OrderingId,
    PartnerOrderNumber, PaymentId, PickUp, ProductId, Quantity, Resolution, Resolve,
    ShippingAddress, Text, Transition,
};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, Union};
use uuid::Uuid;

use super::wire::{JsonBody, Wire, WireValue, not_null};
use crate::domain::{
    DeliveryView, HistoryEntry, Page, PaymentOutcome, PaymentSucceeded, TransitionOutcome,
};
use crate::error::ApiError;

/// A value for an example in the spec; the examples are literals, checked by the spec's
/// snapshot test.
fn example<T: WireValue>(raw: &str) -> Wire<T> {
    Wire(T::parse(raw).unwrap_or_else(|err| panic!("example {raw:?}: {err}")))
}

fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The payment service's `payment.succeeded` event.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct PaymentEvent {
    /// The event's id: the same event twice creates one delivery order.
    pub event_id: Uuid,
    #[oai(rename = "type")]
    pub kind: PaymentEventType,
    pub occurred_at: DateTime<Utc>,
    pub payment_id: Wire<PaymentId>,
    pub ordering_id: Wire<OrderingId>,
    pub customer_id: Wire<CustomerId>,
    pub shipping_address: ShippingAddressBody,
    /// The ordering's lines; only PHYSICAL ones are delivered.
    pub lines: Vec<OrderLineBody>,
}

impl Example for PaymentEvent {
    fn example() -> Self {
        PaymentEvent {
            event_id: Uuid::nil(),
            kind: PaymentEventType::PaymentSucceeded,
            occurred_at: example_time(),
            payment_id: example("pay-7781"),
            ordering_id: example("ord-1042"),
            customer_id: example("cust-1"),
            shipping_address: ShippingAddressBody {
                name: example("Ada Lovelace"),
                line1: example("12 St James's Square"),
                line2: None,
                city: example("London"),
                postal_code: example("SW1Y 4JH"),
                country: example("GB"),
            },
            lines: vec![OrderLineBody {
                product_id: example("isbn-9780141439518"),
                title: example("Pride and Prejudice"),
                format: example("PHYSICAL"),
                quantity: 1,
            }],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum PaymentEventType {
    #[oai(rename = "payment.succeeded")]
    PaymentSucceeded,
}

impl TryFrom<PaymentEvent> for PaymentSucceeded {
    type Error = ApiError;

    fn try_from(event: PaymentEvent) -> Result<Self, ApiError> {
        let kind = match event.kind {
            PaymentEventType::PaymentSucceeded => "payment.succeeded",
        };
        Ok(PaymentSucceeded {
            event_id: event.event_id,
            kind: kind.to_owned(),
            occurred_at: event.occurred_at,
            payment_id: event.payment_id.0,
            ordering_id: event.ordering_id.0,
            customer_id: event.customer_id.0,
            shipping_address: event.shipping_address.into(),
            lines: event
                .lines
                .into_iter()
                .map(OrderLine::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Where the parcel goes.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ShippingAddress", skip_serializing_if_is_none)]
pub struct ShippingAddressBody {
    pub name: Wire<Line>,
    pub line1: Wire<Line>,
    #[oai(deserialize_with = "not_null")]
    pub line2: Option<Wire<Line>>,
    pub city: Wire<Line>,
    pub postal_code: Wire<Line>,
    pub country: Wire<CountryCode>,
}

impl From<ShippingAddressBody> for ShippingAddress {
    fn from(address: ShippingAddressBody) -> Self {
        ShippingAddress {
            name: address.name.0,
            line1: address.line1.0,
            line2: address.line2.map(|line| line.0),
            city: address.city.0,
            postal_code: address.postal_code.0,
            country: address.country.0,
        }
    }
}

impl From<ShippingAddress> for ShippingAddressBody {
    fn from(address: ShippingAddress) -> Self {
        ShippingAddressBody {
            name: Wire(address.name),
            line1: Wire(address.line1),
            line2: address.line2.map(Wire),
            city: Wire(address.city),
            postal_code: Wire(address.postal_code),
            country: Wire(address.country),
        }
    }
}

/// A line of an ordering.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderLine")]
pub struct OrderLineBody {
    pub product_id: Wire<ProductId>,
    pub title: Wire<Line>,
    pub format: Wire<Format>,
    // u32's maximum, stated: poem-openapi's schema of an unsigned integer omits it.
    #[oai(validator(minimum(value = "1"), maximum(value = "4294967295")))]
    pub quantity: u32,
}

impl TryFrom<OrderLineBody> for OrderLine {
    type Error = ApiError;

    fn try_from(line: OrderLineBody) -> Result<Self, ApiError> {
        Ok(OrderLine {
            product_id: line.product_id.0,
            title: line.title.0,
            format: line.format.0,
            quantity: Quantity::try_from(line.quantity)
                .map_err(|err| ApiError::Invalid(err.to_string()))?,
        })
    }
}

impl From<OrderLine> for OrderLineBody {
    fn from(line: OrderLine) -> Self {
        OrderLineBody {
            product_id: Wire(line.product_id),
            title: Wire(line.title),
            format: Wire(line.format),
            quantity: line.quantity.get(),
        }
    }
}

/// What handling a payment event did: the `outcome`, and the `delivery_id` of the delivery
/// order the event created (now or when it was first handled).
// (No doc comments on the `Wire` fields: see `Wire`'s schema.)
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PaymentEventResult {
    pub outcome: PaymentEventOutcome,
    pub delivery_id: Option<Wire<DeliveryId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PaymentEventOutcome {
    /// A delivery order was created.
    Created,
    /// The ordering has only e-books: no delivery order.
    NothingToDeliver,
    /// This `event_id` was handled before; nothing changed.
    AlreadyHandled,
}

#[derive(Debug, ApiResponse)]
pub enum PaymentEventResponse {
    /// A delivery order was created; `Location` is its address.
    #[oai(status = 201)]
    Created(
        JsonBody<PaymentEventResult>,
        #[oai(header = "Location")] String,
    ),
    /// Nothing was created: the ordering has only e-books (`nothing_to_deliver`), or the
    /// event was handled before (`already_handled`).
    #[oai(status = 200)]
    Handled(JsonBody<PaymentEventResult>),
}

impl From<PaymentOutcome> for PaymentEventResponse {
    fn from(outcome: PaymentOutcome) -> Self {
        let result = |outcome, delivery_id: Option<DeliveryId>| {
            JsonBody(PaymentEventResult {
                outcome,
                delivery_id: delivery_id.map(Wire),
            })
        };
        match outcome {
            PaymentOutcome::Created { delivery_id } => PaymentEventResponse::Created(
                result(PaymentEventOutcome::Created, Some(delivery_id)),
                format!("/v1/deliveries/{delivery_id}"),
            ),
            PaymentOutcome::NothingToDeliver => {
                PaymentEventResponse::Handled(result(PaymentEventOutcome::NothingToDeliver, None))
            }
            PaymentOutcome::AlreadyHandled { delivery_id } => PaymentEventResponse::Handled(
                result(PaymentEventOutcome::AlreadyHandled, delivery_id),
            ),
        }
    }
}

/// A transition to make, named by `transition`, with its payload.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "transition", one_of)]
pub enum TransitionRequest {
    #[oai(mapping = "pick_up")]
    PickUp(PickUpBody),
    #[oai(mapping = "fail")]
    Fail(FailBody),
    #[oai(mapping = "deliver")]
    Deliver(DeliverBody),
    #[oai(mapping = "confirm_receipt")]
    ConfirmReceipt(ConfirmReceiptBody),
    #[oai(mapping = "dispute")]
    Dispute(DisputeBody),
    #[oai(mapping = "escalate")]
    Escalate(EscalateBody),
    #[oai(mapping = "resolve")]
    Resolve(ResolveBody),
}

/// `pick_up` (CREATED → PICKED_UP, partner): the partner collected the parcel.
#[derive(Debug, Clone, Object)]
#[oai(rename = "PickUp", example)]
pub struct PickUpBody {
    pub partner_order_number: Wire<PartnerOrderNumber>,
}

impl Example for PickUpBody {
    fn example() -> Self {
        PickUpBody {
            partner_order_number: example("DX-1042"),
        }
    }
}

/// `fail` (CREATED or PICKED_UP → DELIVERY_FAILED, partner): the parcel could not be
/// collected or delivered.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Fail", example, skip_serializing_if_is_none)]
pub struct FailBody {
    pub reason: Wire<FailureReason>,
    #[oai(deserialize_with = "not_null")]
    pub detail: Option<Wire<Text>>,
}

impl Example for FailBody {
    fn example() -> Self {
        FailBody {
            reason: example("RECIPIENT_UNAVAILABLE"),
            detail: Some(example("Nobody answered; card left.")),
        }
    }
}

/// `deliver` (PICKED_UP → DELIVERED, partner): the partner handed the parcel over.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Deliver", example)]
pub struct DeliverBody {
    /// When the parcel was handed over: between the delivery order's creation and now,
    /// give or take five minutes of the partner's clock (422 otherwise).
    pub delivered_at: DateTime<Utc>,
}

impl Example for DeliverBody {
    fn example() -> Self {
        DeliverBody {
            delivered_at: example_time(),
        }
    }
}

/// `confirm_receipt` (DELIVERED → DELIVERY_CONFIRMED, customer): the customer confirms
/// receipt; order management is told.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ConfirmReceipt")]
pub struct ConfirmReceiptBody {}

/// `dispute` (DELIVERED → DELIVERY_FAILED, customer): the parcel never arrived or arrived
/// damaged.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Dispute", example, skip_serializing_if_is_none)]
pub struct DisputeBody {
    pub reason: Wire<DisputeReason>,
    #[oai(deserialize_with = "not_null")]
    pub detail: Option<Wire<Text>>,
}

impl Example for DisputeBody {
    fn example() -> Self {
        DisputeBody {
            reason: example("NOT_RECEIVED"),
            detail: None,
        }
    }
}

/// `escalate` (DELIVERY_FAILED → PENDING_BY_OPERATOR, operator): an operator claims the
/// failure.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Escalate", example, skip_serializing_if_is_none)]
pub struct EscalateBody {
    #[oai(deserialize_with = "not_null")]
    pub assignee: Option<Wire<OperatorId>>,
}

impl Example for EscalateBody {
    fn example() -> Self {
        EscalateBody {
            assignee: Some(example("op-ada")),
        }
    }
}

/// `resolve` (PENDING_BY_OPERATOR → RESOLVED, operator): REDELIVER makes a new delivery
/// order for the same ordering.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Resolve", example, skip_serializing_if_is_none)]
pub struct ResolveBody {
    pub resolution: Wire<Resolution>,
    #[oai(deserialize_with = "not_null")]
    pub note: Option<Wire<Text>>,
}

impl Example for ResolveBody {
    fn example() -> Self {
        ResolveBody {
            resolution: example("REDELIVER"),
            note: Some(example("Address confirmed by phone.")),
        }
    }
}

impl From<TransitionRequest> for Command {
    fn from(request: TransitionRequest) -> Command {
        match request {
            TransitionRequest::PickUp(body) => Command::PickUp(PickUp {
                partner_order_number: body.partner_order_number.0,
            }),
            TransitionRequest::Fail(body) => Command::Fail(Fail {
                reason: body.reason.0,
                detail: body.detail.map(|detail| detail.0),
            }),
            TransitionRequest::Deliver(body) => Command::Deliver(Deliver {
                delivered_at: body.delivered_at,
            }),
            TransitionRequest::ConfirmReceipt(ConfirmReceiptBody {}) => {
                Command::ConfirmReceipt(ConfirmReceipt {})
            }
            TransitionRequest::Dispute(body) => Command::Dispute(Dispute {
                reason: body.reason.0,
                detail: body.detail.map(|detail| detail.0),
            }),
            TransitionRequest::Escalate(body) => Command::Escalate(Escalate {
                assignee: body.assignee.map(|assignee| assignee.0),
            }),
            TransitionRequest::Resolve(body) => Command::Resolve(Resolve {
                resolution: body.resolution.0,
                note: body.note.map(|note| note.0),
            }),
        }
    }
}

/// Fails to compile when graph.yaml gains a transition (codegen adds a `Command` variant)
/// that [`TransitionRequest`] does not have yet: add the variant, its body and its arm in
/// `From<TransitionRequest> for Command`, then list it here.
const _: fn(&Command) = |command| match command {
    Command::PickUp(_)
    | Command::Fail(_)
    | Command::Deliver(_)
    | Command::ConfirmReceipt(_)
    | Command::Dispute(_)
    | Command::Escalate(_)
    | Command::Resolve(_) => {}
};

/// What a transition did; a REDELIVER resolution also names the new delivery order it
/// created (`replacement_delivery_id`).
// (No doc comments on the `Wire` fields: see `Wire`'s schema.)
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TransitionResult {
    pub delivery_id: Wire<DeliveryId>,
    pub from: Wire<DeliveryState>,
    pub to: Wire<DeliveryState>,
    /// The delivery's new version (the event's sequence number).
    pub version: u64,
    pub replacement_delivery_id: Option<Wire<DeliveryId>>,
}

impl From<TransitionOutcome> for TransitionResult {
    fn from(outcome: TransitionOutcome) -> Self {
        TransitionResult {
            delivery_id: Wire(outcome.delivery_id),
            from: Wire(outcome.from),
            to: Wire(outcome.to),
            version: outcome.version,
            replacement_delivery_id: outcome.replacement_delivery_id.map(Wire),
        }
    }
}

/// A delivery order. A redelivery names the delivery order it redelivers
/// (`replaces_delivery_id`), and that one names it (`replaced_by_delivery_id`).
// (No doc comments on the `Wire` fields: see `Wire`'s schema.)
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Delivery {
    pub id: Wire<DeliveryId>,
    pub ordering_id: Wire<OrderingId>,
    pub customer_id: Wire<CustomerId>,
    pub payment_id: Wire<PaymentId>,
    pub state: Wire<DeliveryState>,
    /// What the current state allows next (graph.yaml), whoever may make it.
    pub allowed_transitions: Vec<Wire<Transition>>,
    /// The sequence number of the last event: compare with a transition's `version` to
    /// read your own write.
    pub version: u64,
    pub partner_id: Option<String>,
    pub partner_order_number: Option<String>,
    pub failure_reason: Option<Wire<FailureReason>>,
    pub failure_detail: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<Wire<Resolution>>,
    pub note: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub replaces_delivery_id: Option<Wire<DeliveryId>>,
    pub replaced_by_delivery_id: Option<Wire<DeliveryId>>,
    pub shipping_address: ShippingAddressBody,
    pub lines: Vec<OrderLineBody>,
    /// The version of graph.yaml of the delivery's last event.
    pub graph_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryView> for Delivery {
    fn from(view: DeliveryView) -> Self {
        Delivery {
            id: Wire(view.id),
            ordering_id: Wire(view.ordering_id),
            customer_id: Wire(view.customer_id),
            payment_id: Wire(view.payment_id),
            allowed_transitions: view
                .state
                .allowed_transitions()
                .iter()
                .copied()
                .map(Wire)
                .collect(),
            state: Wire(view.state),
            version: view.version,
            partner_id: view.partner_id,
            partner_order_number: view.partner_order_number,
            failure_reason: view.failure_reason.map(Wire),
            failure_detail: view.failure_detail,
            assignee: view.assignee,
            resolution: view.resolution.map(Wire),
            note: view.note,
            delivered_at: view.delivered_at,
            replaces_delivery_id: view.replaces_delivery_id.map(Wire),
            replaced_by_delivery_id: view.replaced_by_delivery_id.map(Wire),
            shipping_address: view.shipping_address.into(),
            lines: view.lines.into_iter().map(OrderLineBody::from).collect(),
            graph_version: view.graph_version,
            created_at: view.created_at,
            updated_at: view.updated_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<DeliveryView>> for DeliveryPage {
    fn from(page: Page<DeliveryView>) -> Self {
        DeliveryPage {
            items: page.items.into_iter().map(Delivery::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// The delivery orders of one ordering, oldest first (a redelivery after the order it
/// replaces).
#[derive(Debug, Clone, Object)]
pub struct OrderingDeliveries {
    pub ordering_id: Wire<OrderingId>,
    pub items: Vec<Delivery>,
}

/// A delivery's audit trail, oldest first.
#[derive(Debug, Clone, Object)]
pub struct DeliveryHistory {
    pub delivery_id: Wire<DeliveryId>,
    pub items: Vec<HistoryItem>,
}

/// One event of a delivery's audit trail.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HistoryEntry", skip_serializing_if_is_none)]
pub struct HistoryItem {
    pub seq: u64,
    /// The transition, or `create` for the delivery's creation.
    pub transition: String,
    pub from: Option<Wire<DeliveryState>>,
    pub to: Wire<DeliveryState>,
    pub actor_role: String,
    pub actor_id: String,
    pub request_id: Option<String>,
    pub graph_version: String,
    pub occurred_at: DateTime<Utc>,
    /// The transition's payload as recorded.
    pub data: serde_json::Value,
}

impl From<HistoryEntry> for HistoryItem {
    fn from(entry: HistoryEntry) -> Self {
        HistoryItem {
            seq: entry.seq,
            transition: entry.transition,
            from: entry.from.map(Wire),
            to: Wire(entry.to),
            actor_role: entry.actor_role,
            actor_id: entry.actor_id,
            request_id: entry.request_id,
            graph_version: entry.graph_version,
            occurred_at: entry.occurred_at,
            data: entry.data,
        }
    }
}

/// The delivery graph this build runs (graph.yaml).
#[derive(Debug, Clone, Object)]
pub struct GraphDocument {
    /// graph.yaml's semantic version.
    pub version: String,
    /// SHA-256 of the canonical JSON, hex.
    pub sha256: String,
    /// The graph as canonical JSON: states, transitions, roles, enums.
    pub graph: serde_json::Value,
    /// The graph as a Mermaid state diagram.
    pub mermaid: String,
}

/// Whether the service is up (or ready).
#[derive(Debug, Clone, Object)]
pub struct Health {
    pub status: String,
}
