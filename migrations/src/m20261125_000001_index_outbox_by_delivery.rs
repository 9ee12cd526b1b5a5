//! `outbox` by delivery: the relay publishes a delivery's messages in `seq` order and
//! looks, for each unpublished row, for an earlier unpublished row of the same delivery.
//! Unique, as in `delivery_event`: one message per event.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    DeliveryId,
    Seq,
}

const INDEX: &str = "ux_outbox_delivery_seq";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Outbox::Table)
                    .col(Outbox::DeliveryId)
                    .col(Outbox::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Outbox::Table).to_owned())
            .await
    }
}
