//! `delivery_history`: the read model of a delivery's audit trail (`domain::HistoryEntry`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub transition: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor_role: String,
    pub actor_id: String,
    pub request_id: Option<String>,
    pub graph_version: String,
    pub occurred_at: DateTimeUtc,
    /// The transition's payload as recorded.
    #[sea_orm(column_type = "JsonBinary")]
    pub data: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
