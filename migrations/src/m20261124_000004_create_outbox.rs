//! `outbox`: the messages to publish on `delivery.events`, written in the same
//! transaction as the state change they announce; a relay publishes and stamps them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    /// The message id consumers deduplicate by.
    EventId,
    DeliveryId,
    Seq,
    /// `delivery.<to_state in lower case>`.
    RoutingKey,
    /// The message body (DOMAIN.md, "Us → order management").
    Payload,
    CreatedAt,
    /// NULL until the relay has published the message.
    PublishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_integer(Outbox::Id).auto_increment().primary_key())
                    .col(uuid_uniq(Outbox::EventId))
                    .col(uuid(Outbox::DeliveryId))
                    .col(big_integer(Outbox::Seq))
                    .col(string(Outbox::RoutingKey))
                    .col(json_binary(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::PublishedAt))
                    .to_owned(),
            )
            .await?;
        // The relay's poll: the unpublished messages in the order they were written.
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_unpublished")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
