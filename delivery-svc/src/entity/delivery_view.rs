//! `delivery_view`: the read model of a delivery order (`domain::DeliveryView`).

use delivery_core::{DeliveryDetails, DeliveryId, DeliverySnapshot};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::{StateColumns, delivery_details, from_db_seq, from_json, parse};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_view")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ordering_id: String,
    pub customer_id: String,
    pub payment_id: String,
    pub state: String,
    /// The `seq` of the last event projected.
    pub version: i64,
    pub partner_id: Option<String>,
    pub partner_order_number: Option<String>,
    pub failure_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_detail: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub replaces_delivery_id: Option<Uuid>,
    pub replaced_by_delivery_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub shipping_address: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub lines: Json,
    pub graph_version: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The order this row shows, as delivery-core's flat record.
    pub fn snapshot(&self) -> Result<DeliverySnapshot, DbErr> {
        Ok(DeliverySnapshot {
            id: DeliveryId(self.id),
            details: self.details()?,
            version: from_db_seq("version", self.version)?,
            state: parse("state", &self.state)?,
            fields: self.state_columns().to_fields()?,
        })
    }

    pub fn details(&self) -> Result<DeliveryDetails, DbErr> {
        delivery_details(
            &self.ordering_id,
            &self.customer_id,
            &self.payment_id,
            from_json("shipping_address", self.shipping_address.clone())?,
            from_json("lines", self.lines.clone())?,
            self.replaces_delivery_id,
        )
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
