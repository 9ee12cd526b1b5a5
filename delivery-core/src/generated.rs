// generated from graph.yaml by cargo codegen, do not edit

//! Everything graph.yaml defines: DeliveryOrder v1.0.0.
//! Regenerate with `cargo codegen` after editing graph.yaml.
#![allow(clippy::all)] // Generated code is judged by its tests, not by lints.
use crate::event::{DeliveryEvent, EventMeta};
use crate::order::{DeliveryDetails, DeliveryOrder};
use crate::runtime::{CorruptRecord, Rejected, TransitionError};
use crate::typestate::{CanTransitionTo, State, Succ, Zero, sealed::Sealed};
use crate::values::{DeliveryId, GraphVersion, InvalidValue, OperatorId, PartnerOrderNumber, Text};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
/// The version of graph.yaml this build was generated from.
pub const GRAPH_VERSION: GraphVersion = GraphVersion {
    major: 1,
    minor: 0,
    patch: 0,
};
/// The graph as canonical JSON (what the CloudFormation parameter stores).
pub const GRAPH_JSON: &str = "{\"version\":\"1.0.0\",\"name\":\"DeliveryOrder\",\"description\":\"The life of one delivery order of physical books, from the moment the payment succeeds to the customer's confirmation or an operator's resolution.\",\"roles\":[\"customer\",\"partner\",\"operator\",\"system\"],\"enums\":[{\"name\":\"FailureReason\",\"values\":[\"ADDRESS_INVALID\",\"RECIPIENT_UNAVAILABLE\",\"RECIPIENT_REFUSED\",\"LOCATION_INACCESSIBLE\",\"PACKAGE_DAMAGED\",\"PACKAGE_LOST\",\"COURIER_UNAVAILABLE\",\"PICKUP_FAILED\",\"RETURNED_TO_SENDER\",\"CANCELLED_BY_PARTNER\",\"SLA_EXCEEDED\",\"NOT_RECEIVED\",\"OTHER\"],\"subset_of\":null},{\"name\":\"DisputeReason\",\"values\":[\"NOT_RECEIVED\",\"PACKAGE_DAMAGED\"],\"subset_of\":\"FailureReason\"},{\"name\":\"Resolution\",\"values\":[\"REDELIVER\",\"REFUND\",\"CANCEL\"],\"subset_of\":null}],\"states\":[{\"name\":\"CREATED\",\"rank\":0,\"initial\":true,\"final\":false,\"data\":[]},{\"name\":\"PICKED_UP\",\"rank\":1,\"initial\":false,\"final\":false,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":false}]},{\"name\":\"DELIVERED\",\"rank\":2,\"initial\":false,\"final\":false,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":false},{\"name\":\"delivered_at\",\"type\":\"Timestamp\",\"optional\":false}]},{\"name\":\"DELIVERY_CONFIRMED\",\"rank\":3,\"initial\":false,\"final\":true,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":false},{\"name\":\"delivered_at\",\"type\":\"Timestamp\",\"optional\":false}]},{\"name\":\"DELIVERY_FAILED\",\"rank\":4,\"initial\":false,\"final\":false,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":true},{\"name\":\"reason\",\"type\":\"FailureReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true}]},{\"name\":\"PENDING_BY_OPERATOR\",\"rank\":5,\"initial\":false,\"final\":false,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":true},{\"name\":\"reason\",\"type\":\"FailureReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true},{\"name\":\"assignee\",\"type\":\"OperatorId\",\"optional\":true}]},{\"name\":\"RESOLVED\",\"rank\":6,\"initial\":false,\"final\":true,\"data\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":true},{\"name\":\"reason\",\"type\":\"FailureReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true},{\"name\":\"assignee\",\"type\":\"OperatorId\",\"optional\":true},{\"name\":\"resolution\",\"type\":\"Resolution\",\"optional\":false},{\"name\":\"note\",\"type\":\"Text\",\"optional\":true}]}],\"transitions\":[{\"name\":\"pick_up\",\"from\":\"CREATED\",\"to\":\"PICKED_UP\",\"roles\":[\"partner\"],\"payload\":[{\"name\":\"partner_order_number\",\"type\":\"PartnerOrderNumber\",\"optional\":false}]},{\"name\":\"fail\",\"from\":\"CREATED\",\"to\":\"DELIVERY_FAILED\",\"roles\":[\"partner\",\"system\"],\"payload\":[{\"name\":\"reason\",\"type\":\"FailureReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true}]},{\"name\":\"deliver\",\"from\":\"PICKED_UP\",\"to\":\"DELIVERED\",\"roles\":[\"partner\"],\"payload\":[{\"name\":\"delivered_at\",\"type\":\"Timestamp\",\"optional\":false}]},{\"name\":\"fail\",\"from\":\"PICKED_UP\",\"to\":\"DELIVERY_FAILED\",\"roles\":[\"partner\",\"system\"],\"payload\":[{\"name\":\"reason\",\"type\":\"FailureReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true}]},{\"name\":\"confirm_receipt\",\"from\":\"DELIVERED\",\"to\":\"DELIVERY_CONFIRMED\",\"roles\":[\"customer\",\"system\"],\"payload\":[]},{\"name\":\"dispute\",\"from\":\"DELIVERED\",\"to\":\"DELIVERY_FAILED\",\"roles\":[\"customer\"],\"payload\":[{\"name\":\"reason\",\"type\":\"DisputeReason\",\"optional\":false},{\"name\":\"detail\",\"type\":\"Text\",\"optional\":true}]},{\"name\":\"escalate\",\"from\":\"DELIVERY_FAILED\",\"to\":\"PENDING_BY_OPERATOR\",\"roles\":[\"system\",\"operator\"],\"payload\":[{\"name\":\"assignee\",\"type\":\"OperatorId\",\"optional\":true}]},{\"name\":\"resolve\",\"from\":\"PENDING_BY_OPERATOR\",\"to\":\"RESOLVED\",\"roles\":[\"operator\"],\"payload\":[{\"name\":\"resolution\",\"type\":\"Resolution\",\"optional\":false},{\"name\":\"note\",\"type\":\"Text\",\"optional\":true}]}]}";
/// SHA-256 of [`GRAPH_JSON`], hex.
pub const GRAPH_SHA256: &str = "345297bbe67e189e3f12aec19415fc378f6ca96a2f0e5dbafa8ad4226c13c1b7";
/// The graph as a Mermaid state diagram.
pub const GRAPH_MERMAID: &str = "stateDiagram-v2\n    [*] --> CREATED\n    CREATED --> PICKED_UP: pick_up (partner)\n    CREATED --> DELIVERY_FAILED: fail (partner, system)\n    PICKED_UP --> DELIVERED: deliver (partner)\n    PICKED_UP --> DELIVERY_FAILED: fail (partner, system)\n    DELIVERED --> DELIVERY_CONFIRMED: confirm_receipt (customer, system)\n    DELIVERED --> DELIVERY_FAILED: dispute (customer)\n    DELIVERY_FAILED --> PENDING_BY_OPERATOR: escalate (system, operator)\n    PENDING_BY_OPERATOR --> RESOLVED: resolve (operator)\n    DELIVERY_CONFIRMED --> [*]\n    RESOLVED --> [*]\n";
/// A role that may make transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the deliveries of its orderings.
    Customer,
    /// The third-party delivery partner assigned to the delivery.
    Partner,
    /// Works the exception queue and resolves failed deliveries.
    Operator,
    /// The service itself (watchdogs, automatic escalation and confirmation).
    System,
}
impl Role {
    /// Every value, in graph.yaml's order.
    pub const ALL: [Role; 4] = [Role::Customer, Role::Partner, Role::Operator, Role::System];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Partner => "partner",
            Role::Operator => "operator",
            Role::System => "system",
        }
    }
}
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for Role {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|value| value.name() == raw)
            .ok_or_else(|| InvalidValue {
                what: "Role",
                why: format!("{raw:?} is not one of customer, partner, operator, system"),
            })
    }
}
/// Why a delivery failed, drawn from the delivery partners' own failure codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    AddressInvalid,
    RecipientUnavailable,
    RecipientRefused,
    LocationInaccessible,
    PackageDamaged,
    PackageLost,
    CourierUnavailable,
    PickupFailed,
    ReturnedToSender,
    CancelledByPartner,
    SlaExceeded,
    NotReceived,
    Other,
}
impl FailureReason {
    /// Every value, in graph.yaml's order.
    pub const ALL: [FailureReason; 13] = [
        FailureReason::AddressInvalid,
        FailureReason::RecipientUnavailable,
        FailureReason::RecipientRefused,
        FailureReason::LocationInaccessible,
        FailureReason::PackageDamaged,
        FailureReason::PackageLost,
        FailureReason::CourierUnavailable,
        FailureReason::PickupFailed,
        FailureReason::ReturnedToSender,
        FailureReason::CancelledByPartner,
        FailureReason::SlaExceeded,
        FailureReason::NotReceived,
        FailureReason::Other,
    ];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            FailureReason::AddressInvalid => "ADDRESS_INVALID",
            FailureReason::RecipientUnavailable => "RECIPIENT_UNAVAILABLE",
            FailureReason::RecipientRefused => "RECIPIENT_REFUSED",
            FailureReason::LocationInaccessible => "LOCATION_INACCESSIBLE",
            FailureReason::PackageDamaged => "PACKAGE_DAMAGED",
            FailureReason::PackageLost => "PACKAGE_LOST",
            FailureReason::CourierUnavailable => "COURIER_UNAVAILABLE",
            FailureReason::PickupFailed => "PICKUP_FAILED",
            FailureReason::ReturnedToSender => "RETURNED_TO_SENDER",
            FailureReason::CancelledByPartner => "CANCELLED_BY_PARTNER",
            FailureReason::SlaExceeded => "SLA_EXCEEDED",
            FailureReason::NotReceived => "NOT_RECEIVED",
            FailureReason::Other => "OTHER",
        }
    }
}
impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for FailureReason {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|value| value.name() == raw).ok_or_else(|| InvalidValue {
            what: "FailureReason",
            why: format!("{raw:?} is not one of ADDRESS_INVALID, RECIPIENT_UNAVAILABLE, RECIPIENT_REFUSED, LOCATION_INACCESSIBLE, PACKAGE_DAMAGED, PACKAGE_LOST, COURIER_UNAVAILABLE, PICKUP_FAILED, RETURNED_TO_SENDER, CANCELLED_BY_PARTNER, SLA_EXCEEDED, NOT_RECEIVED, OTHER"),
        })
    }
}
/// What a customer may dispute about a delivery the partner reported delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DisputeReason {
    NotReceived,
    PackageDamaged,
}
impl DisputeReason {
    /// Every value, in graph.yaml's order.
    pub const ALL: [DisputeReason; 2] = [DisputeReason::NotReceived, DisputeReason::PackageDamaged];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            DisputeReason::NotReceived => "NOT_RECEIVED",
            DisputeReason::PackageDamaged => "PACKAGE_DAMAGED",
        }
    }
}
impl fmt::Display for DisputeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for DisputeReason {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|value| value.name() == raw)
            .ok_or_else(|| InvalidValue {
                what: "DisputeReason",
                why: format!("{raw:?} is not one of NOT_RECEIVED, PACKAGE_DAMAGED"),
            })
    }
}
impl From<DisputeReason> for FailureReason {
    fn from(value: DisputeReason) -> FailureReason {
        match value {
            DisputeReason::NotReceived => FailureReason::NotReceived,
            DisputeReason::PackageDamaged => FailureReason::PackageDamaged,
        }
    }
}
/// How an operator closes a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    Redeliver,
    Refund,
    Cancel,
}
impl Resolution {
    /// Every value, in graph.yaml's order.
    pub const ALL: [Resolution; 3] = [
        Resolution::Redeliver,
        Resolution::Refund,
        Resolution::Cancel,
    ];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Resolution::Redeliver => "REDELIVER",
            Resolution::Refund => "REFUND",
            Resolution::Cancel => "CANCEL",
        }
    }
}
impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for Resolution {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|value| value.name() == raw)
            .ok_or_else(|| InvalidValue {
                what: "Resolution",
                why: format!("{raw:?} is not one of REDELIVER, REFUND, CANCEL"),
            })
    }
}
/// A state of the graph, known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryState {
    /// The delivery order exists and a partner is being asked to collect the parcel.
    Created,
    /// The partner has collected the parcel and given its own delivery order number.
    PickedUp,
    /// The partner reports the parcel delivered; the customer has yet to confirm.
    Delivered,
    /// The customer (or the system, after the confirmation window) confirmed receipt.
    DeliveryConfirmed,
    /// The delivery failed; it always carries the reason.
    DeliveryFailed,
    /// The failure is in the operators' queue, claimed by an operator or not yet.
    PendingByOperator,
    /// An operator closed the failed delivery with a resolution.
    Resolved,
}
impl DeliveryState {
    /// Every value, in graph.yaml's order.
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Created,
        DeliveryState::PickedUp,
        DeliveryState::Delivered,
        DeliveryState::DeliveryConfirmed,
        DeliveryState::DeliveryFailed,
        DeliveryState::PendingByOperator,
        DeliveryState::Resolved,
    ];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            DeliveryState::Created => "CREATED",
            DeliveryState::PickedUp => "PICKED_UP",
            DeliveryState::Delivered => "DELIVERED",
            DeliveryState::DeliveryConfirmed => "DELIVERY_CONFIRMED",
            DeliveryState::DeliveryFailed => "DELIVERY_FAILED",
            DeliveryState::PendingByOperator => "PENDING_BY_OPERATOR",
            DeliveryState::Resolved => "RESOLVED",
        }
    }
}
impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for DeliveryState {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|value| value.name() == raw).ok_or_else(|| InvalidValue {
            what: "DeliveryState",
            why: format!("{raw:?} is not one of CREATED, PICKED_UP, DELIVERED, DELIVERY_CONFIRMED, DELIVERY_FAILED, PENDING_BY_OPERATOR, RESOLVED"),
        })
    }
}
impl DeliveryState {
    /// Whether nothing leaves this state.
    pub const fn is_final(self) -> bool {
        match self {
            DeliveryState::Created => false,
            DeliveryState::PickedUp => false,
            DeliveryState::Delivered => false,
            DeliveryState::DeliveryConfirmed => true,
            DeliveryState::DeliveryFailed => false,
            DeliveryState::PendingByOperator => false,
            DeliveryState::Resolved => true,
        }
    }
    /// The transitions graph.yaml allows out of this state.
    pub const fn allowed_transitions(self) -> &'static [Transition] {
        match self {
            DeliveryState::Created => &[Transition::PickUp, Transition::Fail],
            DeliveryState::PickedUp => &[Transition::Deliver, Transition::Fail],
            DeliveryState::Delivered => &[Transition::ConfirmReceipt, Transition::Dispute],
            DeliveryState::DeliveryConfirmed => &[],
            DeliveryState::DeliveryFailed => &[Transition::Escalate],
            DeliveryState::PendingByOperator => &[Transition::Resolve],
            DeliveryState::Resolved => &[],
        }
    }
}
/// A transition of the graph, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The partner collected the parcel.
    PickUp,
    /// The parcel could not be collected, or the pick-up deadline passed.
    Fail,
    /// The partner handed the parcel over.
    Deliver,
    /// The customer confirms receipt; order management is told.
    ConfirmReceipt,
    /// The customer says the parcel never arrived or arrived damaged.
    Dispute,
    /// The failure enters the operators' queue (at once, by the system) or is claimed.
    Escalate,
    /// An operator closes the case; REDELIVER makes a new delivery order.
    Resolve,
}
impl Transition {
    /// Every value, in graph.yaml's order.
    pub const ALL: [Transition; 7] = [
        Transition::PickUp,
        Transition::Fail,
        Transition::Deliver,
        Transition::ConfirmReceipt,
        Transition::Dispute,
        Transition::Escalate,
        Transition::Resolve,
    ];
    /// The name as graph.yaml and the wire spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Transition::PickUp => "pick_up",
            Transition::Fail => "fail",
            Transition::Deliver => "deliver",
            Transition::ConfirmReceipt => "confirm_receipt",
            Transition::Dispute => "dispute",
            Transition::Escalate => "escalate",
            Transition::Resolve => "resolve",
        }
    }
}
impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl FromStr for Transition {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|value| value.name() == raw).ok_or_else(|| InvalidValue {
            what: "Transition",
            why: format!("{raw:?} is not one of pick_up, fail, deliver, confirm_receipt, dispute, escalate, resolve"),
        })
    }
}
impl Transition {
    /// The roles graph.yaml lets make this transition.
    pub const fn roles(self) -> &'static [Role] {
        match self {
            Transition::PickUp => &[Role::Partner],
            Transition::Fail => &[Role::Partner, Role::System],
            Transition::Deliver => &[Role::Partner],
            Transition::ConfirmReceipt => &[Role::Customer, Role::System],
            Transition::Dispute => &[Role::Customer],
            Transition::Escalate => &[Role::System, Role::Operator],
            Transition::Resolve => &[Role::Operator],
        }
    }
    /// The states this transition leaves from.
    pub const fn sources(self) -> &'static [DeliveryState] {
        match self {
            Transition::PickUp => &[DeliveryState::Created],
            Transition::Fail => &[DeliveryState::Created, DeliveryState::PickedUp],
            Transition::Deliver => &[DeliveryState::PickedUp],
            Transition::ConfirmReceipt => &[DeliveryState::Delivered],
            Transition::Dispute => &[DeliveryState::Delivered],
            Transition::Escalate => &[DeliveryState::DeliveryFailed],
            Transition::Resolve => &[DeliveryState::PendingByOperator],
        }
    }
    /// The state this transition leads to.
    pub const fn target(self) -> DeliveryState {
        match self {
            Transition::PickUp => DeliveryState::PickedUp,
            Transition::Fail => DeliveryState::DeliveryFailed,
            Transition::Deliver => DeliveryState::Delivered,
            Transition::ConfirmReceipt => DeliveryState::DeliveryConfirmed,
            Transition::Dispute => DeliveryState::DeliveryFailed,
            Transition::Escalate => DeliveryState::PendingByOperator,
            Transition::Resolve => DeliveryState::Resolved,
        }
    }
}
/// The payload of `pick_up`: The partner collected the parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickUp {
    pub partner_order_number: PartnerOrderNumber,
}
impl From<PickUp> for Command {
    fn from(payload: PickUp) -> Command {
        Command::PickUp(payload)
    }
}
/// The payload of `fail`: The parcel could not be collected, or the pick-up deadline passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    pub reason: FailureReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Text>,
}
impl From<Fail> for Command {
    fn from(payload: Fail) -> Command {
        Command::Fail(payload)
    }
}
/// The payload of `deliver`: The partner handed the parcel over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deliver {
    pub delivered_at: DateTime<Utc>,
}
impl From<Deliver> for Command {
    fn from(payload: Deliver) -> Command {
        Command::Deliver(payload)
    }
}
/// The payload of `confirm_receipt`: The customer confirms receipt; order management is told.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmReceipt {}
impl From<ConfirmReceipt> for Command {
    fn from(payload: ConfirmReceipt) -> Command {
        Command::ConfirmReceipt(payload)
    }
}
/// The payload of `dispute`: The customer says the parcel never arrived or arrived damaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    pub reason: DisputeReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Text>,
}
impl From<Dispute> for Command {
    fn from(payload: Dispute) -> Command {
        Command::Dispute(payload)
    }
}
/// The payload of `escalate`: The failure enters the operators' queue (at once, by the system) or is claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<OperatorId>,
}
impl From<Escalate> for Command {
    fn from(payload: Escalate) -> Command {
        Command::Escalate(payload)
    }
}
/// The payload of `resolve`: An operator closes the case; REDELIVER makes a new delivery order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    pub resolution: Resolution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Text>,
}
impl From<Resolve> for Command {
    fn from(payload: Resolve) -> Command {
        Command::Resolve(payload)
    }
}
/// A transition with its payload: what a caller asks for when the state is known only at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transition", rename_all = "snake_case")]
pub enum Command {
    PickUp(PickUp),
    Fail(Fail),
    Deliver(Deliver),
    ConfirmReceipt(ConfirmReceipt),
    Dispute(Dispute),
    Escalate(Escalate),
    Resolve(Resolve),
}
impl Command {
    pub const fn transition(&self) -> Transition {
        match self {
            Command::PickUp(_) => Transition::PickUp,
            Command::Fail(_) => Transition::Fail,
            Command::Deliver(_) => Transition::Deliver,
            Command::ConfirmReceipt(_) => Transition::ConfirmReceipt,
            Command::Dispute(_) => Transition::Dispute,
            Command::Escalate(_) => Transition::Escalate,
            Command::Resolve(_) => Transition::Resolve,
        }
    }
}
/// `CREATED`: The delivery order exists and a partner is being asked to collect the parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Created;
impl Sealed for Created {}
impl State for Created {
    const NAME: &'static str = "CREATED";
    const IS_FINAL: bool = false;
    type Rank = Zero;
    type Data = ();
}
/// `PICKED_UP`: The partner has collected the parcel and given its own delivery order number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PickedUp;
impl Sealed for PickedUp {}
impl State for PickedUp {
    const NAME: &'static str = "PICKED_UP";
    const IS_FINAL: bool = false;
    type Rank = Succ<Zero>;
    type Data = PickedUpData;
}
/// What an order carries in `PICKED_UP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedUpData {
    pub partner_order_number: PartnerOrderNumber,
}
impl DeliveryOrder<PickedUp> {
    pub fn partner_order_number(&self) -> &PartnerOrderNumber {
        &self.data.partner_order_number
    }
}
/// `DELIVERED`: The partner reports the parcel delivered; the customer has yet to confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered;
impl Sealed for Delivered {}
impl State for Delivered {
    const NAME: &'static str = "DELIVERED";
    const IS_FINAL: bool = false;
    type Rank = Succ<Succ<Zero>>;
    type Data = DeliveredData;
}
/// What an order carries in `DELIVERED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredData {
    pub partner_order_number: PartnerOrderNumber,
    pub delivered_at: DateTime<Utc>,
}
impl DeliveryOrder<Delivered> {
    pub fn partner_order_number(&self) -> &PartnerOrderNumber {
        &self.data.partner_order_number
    }
    pub fn delivered_at(&self) -> DateTime<Utc> {
        self.data.delivered_at
    }
}
/// `DELIVERY_CONFIRMED`: The customer (or the system, after the confirmation window) confirmed receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryConfirmed;
impl Sealed for DeliveryConfirmed {}
impl State for DeliveryConfirmed {
    const NAME: &'static str = "DELIVERY_CONFIRMED";
    const IS_FINAL: bool = true;
    type Rank = Succ<Succ<Succ<Zero>>>;
    type Data = DeliveryConfirmedData;
}
/// What an order carries in `DELIVERY_CONFIRMED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfirmedData {
    pub partner_order_number: PartnerOrderNumber,
    pub delivered_at: DateTime<Utc>,
}
impl DeliveryOrder<DeliveryConfirmed> {
    pub fn partner_order_number(&self) -> &PartnerOrderNumber {
        &self.data.partner_order_number
    }
    pub fn delivered_at(&self) -> DateTime<Utc> {
        self.data.delivered_at
    }
}
/// `DELIVERY_FAILED`: The delivery failed; it always carries the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryFailed;
impl Sealed for DeliveryFailed {}
impl State for DeliveryFailed {
    const NAME: &'static str = "DELIVERY_FAILED";
    const IS_FINAL: bool = false;
    type Rank = Succ<Succ<Succ<Succ<Zero>>>>;
    type Data = DeliveryFailedData;
}
/// What an order carries in `DELIVERY_FAILED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailedData {
    pub partner_order_number: Option<PartnerOrderNumber>,
    pub reason: FailureReason,
    pub detail: Option<Text>,
}
impl DeliveryOrder<DeliveryFailed> {
    pub fn partner_order_number(&self) -> Option<&PartnerOrderNumber> {
        self.data.partner_order_number.as_ref()
    }
    pub fn reason(&self) -> FailureReason {
        self.data.reason
    }
    pub fn detail(&self) -> Option<&Text> {
        self.data.detail.as_ref()
    }
}
/// `PENDING_BY_OPERATOR`: The failure is in the operators' queue, claimed by an operator or not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingByOperator;
impl Sealed for PendingByOperator {}
impl State for PendingByOperator {
    const NAME: &'static str = "PENDING_BY_OPERATOR";
    const IS_FINAL: bool = false;
    type Rank = Succ<Succ<Succ<Succ<Succ<Zero>>>>>;
    type Data = PendingByOperatorData;
}
/// What an order carries in `PENDING_BY_OPERATOR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingByOperatorData {
    pub partner_order_number: Option<PartnerOrderNumber>,
    pub reason: FailureReason,
    pub detail: Option<Text>,
    pub assignee: Option<OperatorId>,
}
impl DeliveryOrder<PendingByOperator> {
    pub fn partner_order_number(&self) -> Option<&PartnerOrderNumber> {
        self.data.partner_order_number.as_ref()
    }
    pub fn reason(&self) -> FailureReason {
        self.data.reason
    }
    pub fn detail(&self) -> Option<&Text> {
        self.data.detail.as_ref()
    }
    pub fn assignee(&self) -> Option<&OperatorId> {
        self.data.assignee.as_ref()
    }
}
/// `RESOLVED`: An operator closed the failed delivery with a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resolved;
impl Sealed for Resolved {}
impl State for Resolved {
    const NAME: &'static str = "RESOLVED";
    const IS_FINAL: bool = true;
    type Rank = Succ<Succ<Succ<Succ<Succ<Succ<Zero>>>>>>;
    type Data = ResolvedData;
}
/// What an order carries in `RESOLVED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedData {
    pub partner_order_number: Option<PartnerOrderNumber>,
    pub reason: FailureReason,
    pub detail: Option<Text>,
    pub assignee: Option<OperatorId>,
    pub resolution: Resolution,
    pub note: Option<Text>,
}
impl DeliveryOrder<Resolved> {
    pub fn partner_order_number(&self) -> Option<&PartnerOrderNumber> {
        self.data.partner_order_number.as_ref()
    }
    pub fn reason(&self) -> FailureReason {
        self.data.reason
    }
    pub fn detail(&self) -> Option<&Text> {
        self.data.detail.as_ref()
    }
    pub fn assignee(&self) -> Option<&OperatorId> {
        self.data.assignee.as_ref()
    }
    pub fn resolution(&self) -> Resolution {
        self.data.resolution
    }
    pub fn note(&self) -> Option<&Text> {
        self.data.note.as_ref()
    }
}
/// `pick_up`: CREATED → PICKED_UP.
impl CanTransitionTo<PickedUp> for Created {
    const TRANSITION: &'static str = "pick_up";
    type Payload = PickUp;
    fn enter(_from: (), payload: &PickUp) -> PickedUpData {
        PickedUpData {
            partner_order_number: payload.partner_order_number.clone(),
        }
    }
}
/// `fail`: CREATED → DELIVERY_FAILED.
impl CanTransitionTo<DeliveryFailed> for Created {
    const TRANSITION: &'static str = "fail";
    type Payload = Fail;
    fn enter(_from: (), payload: &Fail) -> DeliveryFailedData {
        DeliveryFailedData {
            partner_order_number: None,
            reason: payload.reason,
            detail: payload.detail.clone(),
        }
    }
}
/// `deliver`: PICKED_UP → DELIVERED.
impl CanTransitionTo<Delivered> for PickedUp {
    const TRANSITION: &'static str = "deliver";
    type Payload = Deliver;
    fn enter(from: PickedUpData, payload: &Deliver) -> DeliveredData {
        DeliveredData {
            partner_order_number: from.partner_order_number,
            delivered_at: payload.delivered_at,
        }
    }
}
/// `fail`: PICKED_UP → DELIVERY_FAILED.
impl CanTransitionTo<DeliveryFailed> for PickedUp {
    const TRANSITION: &'static str = "fail";
    type Payload = Fail;
    fn enter(from: PickedUpData, payload: &Fail) -> DeliveryFailedData {
        DeliveryFailedData {
            partner_order_number: Some(from.partner_order_number),
            reason: payload.reason,
            detail: payload.detail.clone(),
        }
    }
}
/// `confirm_receipt`: DELIVERED → DELIVERY_CONFIRMED.
impl CanTransitionTo<DeliveryConfirmed> for Delivered {
    const TRANSITION: &'static str = "confirm_receipt";
    type Payload = ConfirmReceipt;
    fn enter(from: DeliveredData, _payload: &ConfirmReceipt) -> DeliveryConfirmedData {
        DeliveryConfirmedData {
            partner_order_number: from.partner_order_number,
            delivered_at: from.delivered_at,
        }
    }
}
/// `dispute`: DELIVERED → DELIVERY_FAILED.
impl CanTransitionTo<DeliveryFailed> for Delivered {
    const TRANSITION: &'static str = "dispute";
    type Payload = Dispute;
    fn enter(from: DeliveredData, payload: &Dispute) -> DeliveryFailedData {
        DeliveryFailedData {
            partner_order_number: Some(from.partner_order_number),
            reason: payload.reason.into(),
            detail: payload.detail.clone(),
        }
    }
}
/// `escalate`: DELIVERY_FAILED → PENDING_BY_OPERATOR.
impl CanTransitionTo<PendingByOperator> for DeliveryFailed {
    const TRANSITION: &'static str = "escalate";
    type Payload = Escalate;
    fn enter(from: DeliveryFailedData, payload: &Escalate) -> PendingByOperatorData {
        PendingByOperatorData {
            partner_order_number: from.partner_order_number,
            reason: from.reason,
            detail: from.detail,
            assignee: payload.assignee.clone(),
        }
    }
}
/// `resolve`: PENDING_BY_OPERATOR → RESOLVED.
impl CanTransitionTo<Resolved> for PendingByOperator {
    const TRANSITION: &'static str = "resolve";
    type Payload = Resolve;
    fn enter(from: PendingByOperatorData, payload: &Resolve) -> ResolvedData {
        ResolvedData {
            partner_order_number: from.partner_order_number,
            reason: from.reason,
            detail: from.detail,
            assignee: from.assignee,
            resolution: payload.resolution,
            note: payload.note.clone(),
        }
    }
}
/// The states `pick_up` leaves from: CREATED.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to PickedUp",
    label = "`pick_up` is not a transition out of {Self}",
    note = "`pick_up` goes from CREATED to PICKED_UP"
)]
pub trait CanPickUp: CanTransitionTo<PickedUp, Payload = PickUp> {}
impl CanPickUp for Created {}
impl<S: State> DeliveryOrder<S> {
    /// `pick_up`: The partner collected the parcel.
    pub fn pick_up(
        self,
        payload: PickUp,
        meta: EventMeta,
    ) -> (DeliveryOrder<PickedUp>, DeliveryEvent)
    where
        S: CanPickUp,
    {
        self.transition_to::<PickedUp>(payload, meta)
    }
}
/// The states `fail` leaves from: CREATED, PICKED_UP.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to DeliveryFailed",
    label = "`fail` is not a transition out of {Self}",
    note = "`fail` goes from CREATED or PICKED_UP to DELIVERY_FAILED"
)]
pub trait CanFail: CanTransitionTo<DeliveryFailed, Payload = Fail> {}
impl CanFail for Created {}
impl CanFail for PickedUp {}
impl<S: State> DeliveryOrder<S> {
    /// `fail`: The parcel could not be collected, or the pick-up deadline passed.
    pub fn fail(
        self,
        payload: Fail,
        meta: EventMeta,
    ) -> (DeliveryOrder<DeliveryFailed>, DeliveryEvent)
    where
        S: CanFail,
    {
        self.transition_to::<DeliveryFailed>(payload, meta)
    }
}
/// The states `deliver` leaves from: PICKED_UP.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to Delivered",
    label = "`deliver` is not a transition out of {Self}",
    note = "`deliver` goes from PICKED_UP to DELIVERED"
)]
pub trait CanDeliver: CanTransitionTo<Delivered, Payload = Deliver> {}
impl CanDeliver for PickedUp {}
impl<S: State> DeliveryOrder<S> {
    /// `deliver`: The partner handed the parcel over.
    pub fn deliver(
        self,
        payload: Deliver,
        meta: EventMeta,
    ) -> (DeliveryOrder<Delivered>, DeliveryEvent)
    where
        S: CanDeliver,
    {
        self.transition_to::<Delivered>(payload, meta)
    }
}
/// The states `confirm_receipt` leaves from: DELIVERED.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to DeliveryConfirmed",
    label = "`confirm_receipt` is not a transition out of {Self}",
    note = "`confirm_receipt` goes from DELIVERED to DELIVERY_CONFIRMED"
)]
pub trait CanConfirmReceipt: CanTransitionTo<DeliveryConfirmed, Payload = ConfirmReceipt> {}
impl CanConfirmReceipt for Delivered {}
impl<S: State> DeliveryOrder<S> {
    /// `confirm_receipt`: The customer confirms receipt; order management is told.
    pub fn confirm_receipt(
        self,
        payload: ConfirmReceipt,
        meta: EventMeta,
    ) -> (DeliveryOrder<DeliveryConfirmed>, DeliveryEvent)
    where
        S: CanConfirmReceipt,
    {
        self.transition_to::<DeliveryConfirmed>(payload, meta)
    }
}
/// The states `dispute` leaves from: DELIVERED.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to DeliveryFailed",
    label = "`dispute` is not a transition out of {Self}",
    note = "`dispute` goes from DELIVERED to DELIVERY_FAILED"
)]
pub trait CanDispute: CanTransitionTo<DeliveryFailed, Payload = Dispute> {}
impl CanDispute for Delivered {}
impl<S: State> DeliveryOrder<S> {
    /// `dispute`: The customer says the parcel never arrived or arrived damaged.
    pub fn dispute(
        self,
        payload: Dispute,
        meta: EventMeta,
    ) -> (DeliveryOrder<DeliveryFailed>, DeliveryEvent)
    where
        S: CanDispute,
    {
        self.transition_to::<DeliveryFailed>(payload, meta)
    }
}
/// The states `escalate` leaves from: DELIVERY_FAILED.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to PendingByOperator",
    label = "`escalate` is not a transition out of {Self}",
    note = "`escalate` goes from DELIVERY_FAILED to PENDING_BY_OPERATOR"
)]
pub trait CanEscalate: CanTransitionTo<PendingByOperator, Payload = Escalate> {}
impl CanEscalate for DeliveryFailed {}
impl<S: State> DeliveryOrder<S> {
    /// `escalate`: The failure enters the operators' queue (at once, by the system) or is claimed.
    pub fn escalate(
        self,
        payload: Escalate,
        meta: EventMeta,
    ) -> (DeliveryOrder<PendingByOperator>, DeliveryEvent)
    where
        S: CanEscalate,
    {
        self.transition_to::<PendingByOperator>(payload, meta)
    }
}
/// The states `resolve` leaves from: PENDING_BY_OPERATOR.
#[diagnostic::on_unimplemented(
    message = "graph.yaml has no transition from {Self} to Resolved",
    label = "`resolve` is not a transition out of {Self}",
    note = "`resolve` goes from PENDING_BY_OPERATOR to RESOLVED"
)]
pub trait CanResolve: CanTransitionTo<Resolved, Payload = Resolve> {}
impl CanResolve for PendingByOperator {}
impl<S: State> DeliveryOrder<S> {
    /// `resolve`: An operator closes the case; REDELIVER makes a new delivery order.
    pub fn resolve(
        self,
        payload: Resolve,
        meta: EventMeta,
    ) -> (DeliveryOrder<Resolved>, DeliveryEvent)
    where
        S: CanResolve,
    {
        self.transition_to::<Resolved>(payload, meta)
    }
}
/// A delivery order in any state: what stored data turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyDeliveryOrder {
    Created(DeliveryOrder<Created>),
    PickedUp(DeliveryOrder<PickedUp>),
    Delivered(DeliveryOrder<Delivered>),
    DeliveryConfirmed(DeliveryOrder<DeliveryConfirmed>),
    DeliveryFailed(DeliveryOrder<DeliveryFailed>),
    PendingByOperator(DeliveryOrder<PendingByOperator>),
    Resolved(DeliveryOrder<Resolved>),
}
impl From<DeliveryOrder<Created>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<Created>) -> Self {
        AnyDeliveryOrder::Created(order)
    }
}
impl From<DeliveryOrder<PickedUp>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<PickedUp>) -> Self {
        AnyDeliveryOrder::PickedUp(order)
    }
}
impl From<DeliveryOrder<Delivered>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<Delivered>) -> Self {
        AnyDeliveryOrder::Delivered(order)
    }
}
impl From<DeliveryOrder<DeliveryConfirmed>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<DeliveryConfirmed>) -> Self {
        AnyDeliveryOrder::DeliveryConfirmed(order)
    }
}
impl From<DeliveryOrder<DeliveryFailed>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<DeliveryFailed>) -> Self {
        AnyDeliveryOrder::DeliveryFailed(order)
    }
}
impl From<DeliveryOrder<PendingByOperator>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<PendingByOperator>) -> Self {
        AnyDeliveryOrder::PendingByOperator(order)
    }
}
impl From<DeliveryOrder<Resolved>> for AnyDeliveryOrder {
    fn from(order: DeliveryOrder<Resolved>) -> Self {
        AnyDeliveryOrder::Resolved(order)
    }
}
impl AnyDeliveryOrder {
    pub fn state(&self) -> DeliveryState {
        match self {
            AnyDeliveryOrder::Created(order) => order.state(),
            AnyDeliveryOrder::PickedUp(order) => order.state(),
            AnyDeliveryOrder::Delivered(order) => order.state(),
            AnyDeliveryOrder::DeliveryConfirmed(order) => order.state(),
            AnyDeliveryOrder::DeliveryFailed(order) => order.state(),
            AnyDeliveryOrder::PendingByOperator(order) => order.state(),
            AnyDeliveryOrder::Resolved(order) => order.state(),
        }
    }
    pub fn id(&self) -> DeliveryId {
        match self {
            AnyDeliveryOrder::Created(order) => order.id(),
            AnyDeliveryOrder::PickedUp(order) => order.id(),
            AnyDeliveryOrder::Delivered(order) => order.id(),
            AnyDeliveryOrder::DeliveryConfirmed(order) => order.id(),
            AnyDeliveryOrder::DeliveryFailed(order) => order.id(),
            AnyDeliveryOrder::PendingByOperator(order) => order.id(),
            AnyDeliveryOrder::Resolved(order) => order.id(),
        }
    }
    /// The `seq` of the last event applied.
    pub fn version(&self) -> u64 {
        match self {
            AnyDeliveryOrder::Created(order) => order.version(),
            AnyDeliveryOrder::PickedUp(order) => order.version(),
            AnyDeliveryOrder::Delivered(order) => order.version(),
            AnyDeliveryOrder::DeliveryConfirmed(order) => order.version(),
            AnyDeliveryOrder::DeliveryFailed(order) => order.version(),
            AnyDeliveryOrder::PendingByOperator(order) => order.version(),
            AnyDeliveryOrder::Resolved(order) => order.version(),
        }
    }
    pub fn details(&self) -> &DeliveryDetails {
        match self {
            AnyDeliveryOrder::Created(order) => order.details(),
            AnyDeliveryOrder::PickedUp(order) => order.details(),
            AnyDeliveryOrder::Delivered(order) => order.details(),
            AnyDeliveryOrder::DeliveryConfirmed(order) => order.details(),
            AnyDeliveryOrder::DeliveryFailed(order) => order.details(),
            AnyDeliveryOrder::PendingByOperator(order) => order.details(),
            AnyDeliveryOrder::Resolved(order) => order.details(),
        }
    }
    /// Takes `command` through the typed method for the current state, or hands the order back with why not.
    pub(crate) fn dispatch(
        self,
        command: Command,
        meta: EventMeta,
    ) -> Result<(AnyDeliveryOrder, DeliveryEvent), Rejected> {
        match (self, command) {
            (AnyDeliveryOrder::Created(order), Command::PickUp(payload)) => {
                let (order, event) = order.pick_up(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::Created(order), Command::Fail(payload)) => {
                let (order, event) = order.fail(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::PickedUp(order), Command::Deliver(payload)) => {
                let (order, event) = order.deliver(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::PickedUp(order), Command::Fail(payload)) => {
                let (order, event) = order.fail(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::Delivered(order), Command::ConfirmReceipt(payload)) => {
                let (order, event) = order.confirm_receipt(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::Delivered(order), Command::Dispute(payload)) => {
                let (order, event) = order.dispute(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::DeliveryFailed(order), Command::Escalate(payload)) => {
                let (order, event) = order.escalate(payload, meta);
                Ok((order.into(), event))
            }
            (AnyDeliveryOrder::PendingByOperator(order), Command::Resolve(payload)) => {
                let (order, event) = order.resolve(payload, meta);
                Ok((order.into(), event))
            }
            (order, command) => {
                let error = TransitionError::NotAllowed {
                    current: order.state(),
                    attempted: command.transition(),
                    allowed: order.state().allowed_transitions(),
                };
                Err(Rejected {
                    order: Box::new(order),
                    error,
                })
            }
        }
    }
}
/// Every state's data as optional fields: the columns of a flat record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_order_number: Option<PartnerOrderNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<OperatorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Text>,
}
impl AnyDeliveryOrder {
    /// This order's state data as flat fields.
    pub fn state_fields(&self) -> StateFields {
        match self {
            AnyDeliveryOrder::Created(_) => StateFields {
                ..StateFields::default()
            },
            AnyDeliveryOrder::PickedUp(order) => StateFields {
                partner_order_number: Some(order.data.partner_order_number.clone()),
                ..StateFields::default()
            },
            AnyDeliveryOrder::Delivered(order) => StateFields {
                partner_order_number: Some(order.data.partner_order_number.clone()),
                delivered_at: Some(order.data.delivered_at),
                ..StateFields::default()
            },
            AnyDeliveryOrder::DeliveryConfirmed(order) => StateFields {
                partner_order_number: Some(order.data.partner_order_number.clone()),
                delivered_at: Some(order.data.delivered_at),
                ..StateFields::default()
            },
            AnyDeliveryOrder::DeliveryFailed(order) => StateFields {
                partner_order_number: order.data.partner_order_number.clone(),
                reason: Some(order.data.reason),
                detail: order.data.detail.clone(),
                ..StateFields::default()
            },
            AnyDeliveryOrder::PendingByOperator(order) => StateFields {
                partner_order_number: order.data.partner_order_number.clone(),
                reason: Some(order.data.reason),
                detail: order.data.detail.clone(),
                assignee: order.data.assignee.clone(),
                ..StateFields::default()
            },
            AnyDeliveryOrder::Resolved(order) => StateFields {
                partner_order_number: order.data.partner_order_number.clone(),
                reason: Some(order.data.reason),
                detail: order.data.detail.clone(),
                assignee: order.data.assignee.clone(),
                resolution: Some(order.data.resolution),
                note: order.data.note.clone(),
                ..StateFields::default()
            },
        }
    }
    /// An order from flat parts, refusing fields that do not fit the state.
    pub(crate) fn from_parts(
        id: DeliveryId,
        details: Arc<DeliveryDetails>,
        version: u64,
        state: DeliveryState,
        fields: StateFields,
    ) -> Result<Self, CorruptRecord> {
        match state {
            DeliveryState::Created => {
                if fields.partner_order_number.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "partner_order_number",
                    });
                }
                if fields.delivered_at.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "delivered_at",
                    });
                }
                if fields.reason.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "reason",
                    });
                }
                if fields.detail.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "detail",
                    });
                }
                if fields.assignee.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "assignee",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::Created(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: (),
                }))
            }
            DeliveryState::PickedUp => {
                if fields.delivered_at.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "delivered_at",
                    });
                }
                if fields.reason.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "reason",
                    });
                }
                if fields.detail.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "detail",
                    });
                }
                if fields.assignee.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "assignee",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::PickedUp(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: PickedUpData {
                        partner_order_number: fields.partner_order_number.ok_or(
                            CorruptRecord::MissingField {
                                state,
                                field: "partner_order_number",
                            },
                        )?,
                    },
                }))
            }
            DeliveryState::Delivered => {
                if fields.reason.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "reason",
                    });
                }
                if fields.detail.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "detail",
                    });
                }
                if fields.assignee.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "assignee",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::Delivered(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: DeliveredData {
                        partner_order_number: fields.partner_order_number.ok_or(
                            CorruptRecord::MissingField {
                                state,
                                field: "partner_order_number",
                            },
                        )?,
                        delivered_at: fields.delivered_at.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "delivered_at",
                        })?,
                    },
                }))
            }
            DeliveryState::DeliveryConfirmed => {
                if fields.reason.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "reason",
                    });
                }
                if fields.detail.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "detail",
                    });
                }
                if fields.assignee.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "assignee",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::DeliveryConfirmed(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: DeliveryConfirmedData {
                        partner_order_number: fields.partner_order_number.ok_or(
                            CorruptRecord::MissingField {
                                state,
                                field: "partner_order_number",
                            },
                        )?,
                        delivered_at: fields.delivered_at.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "delivered_at",
                        })?,
                    },
                }))
            }
            DeliveryState::DeliveryFailed => {
                if fields.delivered_at.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "delivered_at",
                    });
                }
                if fields.assignee.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "assignee",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::DeliveryFailed(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: DeliveryFailedData {
                        partner_order_number: fields.partner_order_number,
                        reason: fields.reason.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "reason",
                        })?,
                        detail: fields.detail,
                    },
                }))
            }
            DeliveryState::PendingByOperator => {
                if fields.delivered_at.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "delivered_at",
                    });
                }
                if fields.resolution.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "resolution",
                    });
                }
                if fields.note.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "note",
                    });
                }
                Ok(AnyDeliveryOrder::PendingByOperator(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: PendingByOperatorData {
                        partner_order_number: fields.partner_order_number,
                        reason: fields.reason.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "reason",
                        })?,
                        detail: fields.detail,
                        assignee: fields.assignee,
                    },
                }))
            }
            DeliveryState::Resolved => {
                if fields.delivered_at.is_some() {
                    return Err(CorruptRecord::UnexpectedField {
                        state,
                        field: "delivered_at",
                    });
                }
                Ok(AnyDeliveryOrder::Resolved(DeliveryOrder {
                    id,
                    details,
                    version,
                    data: ResolvedData {
                        partner_order_number: fields.partner_order_number,
                        reason: fields.reason.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "reason",
                        })?,
                        detail: fields.detail,
                        assignee: fields.assignee,
                        resolution: fields.resolution.ok_or(CorruptRecord::MissingField {
                            state,
                            field: "resolution",
                        })?,
                        note: fields.note,
                    },
                }))
            }
        }
    }
}
