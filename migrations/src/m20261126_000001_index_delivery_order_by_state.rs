//! `delivery_order` by state and time of the last change: the watchdogs look for the
//! deliveries in one state since before a deadline (`state = ? AND updated_at <= ?`,
//! oldest first), which this index answers with one range scan per rule.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryOrder {
    Table,
    State,
    UpdatedAt,
}

const INDEX: &str = "ix_delivery_order_state_updated_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(DeliveryOrder::Table)
                    .col(DeliveryOrder::State)
                    .col(DeliveryOrder::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(DeliveryOrder::Table)
                    .to_owned(),
            )
            .await
    }
}
