//! SeaORM entities, one module per table of the `migrations` crate.
//!
//! Values are stored in the database's plain types (text, uuid, timestamp, json). Reading
//! them back parses them into delivery-core's validated types; a value that does not parse
//! is a corrupt record (a 500-class error), never a panic.

pub mod booking;
pub mod delivery_event;
pub mod delivery_history;
pub mod delivery_order;
pub mod delivery_view;
pub mod idempotency_key;
pub mod inbox;
pub mod ordering;
pub mod outbox;

use std::fmt::Display;
use std::str::FromStr;

use delivery_core::{
    DeliveryDetails, DeliveryId, FailureReason, InvalidValue, OperatorId, PartnerOrderNumber,
    PhysicalLines, Resolution, ShippingAddress, StateFields, Text,
};
use sea_orm::DbErr;
use sea_orm::prelude::{DateTimeUtc, Uuid};

/// A stored value that does not mean what the schema says: an error of the service's own
/// data (500-class), not of the request.
pub(crate) fn corrupt(what: impl Display) -> DbErr {
    DbErr::Custom(format!("corrupt record: {what}"))
}

/// Parses a stored text column into its domain type.
pub(crate) fn parse<T>(column: &str, raw: &str) -> Result<T, DbErr>
where
    T: FromStr<Err = InvalidValue>,
{
    raw.parse()
        .map_err(|err| corrupt(format!("{column}: {err}")))
}

/// Parses an optional stored text column into its domain type.
pub(crate) fn parse_opt<T>(column: &str, raw: Option<&str>) -> Result<Option<T>, DbErr>
where
    T: FromStr<Err = InvalidValue>,
{
    raw.map(|raw| parse(column, raw)).transpose()
}

/// Deserialises a stored JSON column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    column: &str,
    value: serde_json::Value,
) -> Result<T, DbErr> {
    serde_json::from_value(value).map_err(|err| corrupt(format!("{column}: {err}")))
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, DbErr> {
    serde_json::to_value(value)
        .map_err(|err| DbErr::Custom(format!("cannot serialise to JSON: {err}")))
}

/// A version or `seq` as the database stores it (`bigint`).
pub(crate) fn to_db_seq(seq: u64) -> Result<i64, DbErr> {
    i64::try_from(seq).map_err(|_| DbErr::Custom(format!("seq {seq} does not fit a bigint")))
}

/// A stored version or `seq`: never negative.
pub(crate) fn from_db_seq(column: &str, seq: i64) -> Result<u64, DbErr> {
    u64::try_from(seq).map_err(|_| corrupt(format!("{column}: negative {seq}")))
}

/// The state-data columns `delivery_order` and `delivery_view` share: every state's data,
/// set where the state has it (delivery-core's [`StateFields`], flattened to columns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StateColumns {
    pub partner_order_number: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub failure_reason: Option<String>,
    pub failure_detail: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    pub note: Option<String>,
}

impl From<&StateFields> for StateColumns {
    fn from(fields: &StateFields) -> Self {
        let text = |value: &Option<Text>| value.as_ref().map(ToString::to_string);
        StateColumns {
            partner_order_number: fields
                .partner_order_number
                .as_ref()
                .map(ToString::to_string),
            delivered_at: fields.delivered_at,
            failure_reason: fields.reason.map(|reason| reason.name().to_owned()),
            failure_detail: text(&fields.detail),
            assignee: fields.assignee.as_ref().map(ToString::to_string),
            resolution: fields
                .resolution
                .map(|resolution| resolution.name().to_owned()),
            note: text(&fields.note),
        }
    }
}

impl StateColumns {
    /// The columns back as validated state data.
    pub fn to_fields(&self) -> Result<StateFields, DbErr> {
        Ok(StateFields {
            partner_order_number: parse_opt::<PartnerOrderNumber>(
                "partner_order_number",
                self.partner_order_number.as_deref(),
            )?,
            delivered_at: self.delivered_at,
            reason: parse_opt::<FailureReason>("failure_reason", self.failure_reason.as_deref())?,
            detail: parse_opt::<Text>("failure_detail", self.failure_detail.as_deref())?,
            assignee: parse_opt::<OperatorId>("assignee", self.assignee.as_deref())?,
            resolution: parse_opt::<Resolution>("resolution", self.resolution.as_deref())?,
            note: parse_opt::<Text>("note", self.note.as_deref())?,
        })
    }
}

/// What a delivery order is about, from the columns `delivery_order` and `delivery_view`
/// both keep.
pub(crate) fn delivery_details(
    ordering_id: &str,
    customer_id: &str,
    payment_id: &str,
    shipping_address: ShippingAddress,
    lines: PhysicalLines,
    replaces: Option<Uuid>,
) -> Result<DeliveryDetails, DbErr> {
    Ok(DeliveryDetails {
        ordering_id: parse("ordering_id", ordering_id)?,
        customer_id: parse("customer_id", customer_id)?,
        payment_id: parse("payment_id", payment_id)?,
        shipping_address,
        lines,
        replaces: replaces.map(DeliveryId),
    })
}
