//! `ordering`: the local reference row of each ordering the payment service told us about,
//! so that a delivery order's `ordering_id` is a real foreign key.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Ordering {
    Table,
    /// The ordering domain's id, as it sent it.
    Id,
    CustomerId,
    PaymentId,
    ShippingAddress,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Ordering::Table)
                    .col(string(Ordering::Id).primary_key())
                    .col(string(Ordering::CustomerId))
                    .col(string(Ordering::PaymentId))
                    .col(json_binary(Ordering::ShippingAddress))
                    .col(timestamp_with_time_zone(Ordering::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Ordering::Table).to_owned())
            .await
    }
}
