//! `delivery_order`: the write model, a delivery order in its current state.

use delivery_core::{DeliveryId, DeliverySnapshot, PhysicalLines, ShippingAddress};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::{StateColumns, delivery_details, from_db_seq, from_json, parse};

/// The `details` column: what is to be delivered where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub shipping_address: ShippingAddress,
    pub lines: PhysicalLines,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_order")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ordering_id: String,
    pub customer_id: String,
    pub payment_id: String,
    pub state: String,
    /// The `seq` of the last event (optimistic concurrency).
    pub version: i64,
    pub partner_id: Option<String>,
    pub partner_order_number: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub failure_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_detail: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub replaces_delivery_id: Option<Uuid>,
    /// The shipping address and the physical lines.
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    pub graph_version: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The row as delivery-core's flat record, checked value by value (not yet against the
    /// state: `AnyDeliveryOrder::from_snapshot` does that).
    pub fn snapshot(&self) -> Result<DeliverySnapshot, DbErr> {
        let shipment: Shipment = from_json("details", self.details.clone())?;
        Ok(DeliverySnapshot {
            id: DeliveryId(self.id),
            details: delivery_details(
                &self.ordering_id,
                &self.customer_id,
                &self.payment_id,
                shipment.shipping_address,
                shipment.lines,
                self.replaces_delivery_id,
            )?,
            version: from_db_seq("version", self.version)?,
            state: parse("state", &self.state)?,
            fields: self.state_columns().to_fields()?,
        })
    }

    pub(crate) fn state_columns(&self) -> StateColumns {
        StateColumns {
            partner_order_number: self.partner_order_number.clone(),
            delivered_at: self.delivered_at,
            failure_reason: self.failure_reason.clone(),
            failure_detail: self.failure_detail.clone(),
            assignee: self.assignee.clone(),
            resolution: self.resolution.clone(),
            note: self.note.clone(),
        }
    }
}

impl ActiveModel {
    pub(crate) fn set_state_columns(&mut self, columns: StateColumns) {
        self.partner_order_number = Set(columns.partner_order_number);
        self.delivered_at = Set(columns.delivered_at);
        self.failure_reason = Set(columns.failure_reason);
        self.failure_detail = Set(columns.failure_detail);
        self.assignee = Set(columns.assignee);
        self.resolution = Set(columns.resolution);
        self.note = Set(columns.note);
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
