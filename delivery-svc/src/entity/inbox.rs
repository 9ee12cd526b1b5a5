//! `inbox`: the messages each consumer has handled, and what handling them did.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: String,
    pub handled_at: DateTimeUtc,
    /// What the handling did, written with the row. (Nullable since the rows were claimed
    /// first and completed later in the same transaction, before ADR 0009.)
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub result: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
