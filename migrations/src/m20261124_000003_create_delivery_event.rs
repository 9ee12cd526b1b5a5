//! `delivery_event`: the append-only event store and audit log. Rows are never updated
//! or deleted; the read models are rebuilt from them.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000002_create_delivery_order::DeliveryOrder;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryEvent {
    Table,
    Id,
    DeliveryId,
    Seq,
    Transition,
    /// NULL for the creation.
    FromState,
    ToState,
    /// What the transition carried (for the creation: the details and the partner).
    Payload,
    ActorRole,
    ActorId,
    RequestId,
    GraphVersion,
    OccurredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryEvent::Table)
                    .col(
                        big_integer(DeliveryEvent::Id)
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid(DeliveryEvent::DeliveryId))
                    .col(big_integer(DeliveryEvent::Seq))
                    .col(string(DeliveryEvent::Transition))
                    .col(string_null(DeliveryEvent::FromState))
                    .col(string(DeliveryEvent::ToState))
                    .col(json_binary(DeliveryEvent::Payload))
                    .col(string(DeliveryEvent::ActorRole))
                    .col(string(DeliveryEvent::ActorId))
                    .col(string_null(DeliveryEvent::RequestId))
                    .col(string(DeliveryEvent::GraphVersion))
                    .col(timestamp_with_time_zone(DeliveryEvent::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_delivery_event_delivery")
                            .from(DeliveryEvent::Table, DeliveryEvent::DeliveryId)
                            .to(DeliveryOrder::Table, DeliveryOrder::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One event per version of a delivery: also the index of a delivery's history.
        manager
            .create_index(
                Index::create()
                    .name("ux_delivery_event_delivery_seq")
                    .table(DeliveryEvent::Table)
                    .col(DeliveryEvent::DeliveryId)
                    .col(DeliveryEvent::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryEvent::Table).to_owned())
            .await
    }
}
