//! `delivery_event`: the append-only event store and audit log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub delivery_id: Uuid,
    pub seq: i64,
    pub transition: String,
    /// `None` for the creation.
    pub from_state: Option<String>,
    pub to_state: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub actor_role: String,
    pub actor_id: String,
    pub request_id: Option<String>,
    pub graph_version: String,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
