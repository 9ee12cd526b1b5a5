//! `ordering`: the reference row of an ordering the payment service told us about.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ordering")]
pub struct Model {
    /// The ordering domain's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub customer_id: String,
    pub payment_id: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub shipping_address: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
