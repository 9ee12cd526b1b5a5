//! The read models (the CQRS query side): `delivery_view`, one row per delivery order as
//! the API shows it, and `delivery_history`, one row per event. Both are built only from
//! `delivery_event` and can be dropped and rebuilt from it, so they have no foreign keys.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum DeliveryView {
    Table,
    Id,
    OrderingId,
    CustomerId,
    PaymentId,
    State,
    /// The `seq` of the last event projected.
    Version,
    PartnerId,
    PartnerOrderNumber,
    FailureReason,
    FailureDetail,
    Assignee,
    Resolution,
    Note,
    DeliveredAt,
    ReplacesDeliveryId,
    ReplacedByDeliveryId,
    ShippingAddress,
    Lines,
    GraphVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeliveryHistory {
    Table,
    DeliveryId,
    Seq,
    Transition,
    FromState,
    ToState,
    ActorRole,
    ActorId,
    RequestId,
    GraphVersion,
    OccurredAt,
    Data,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryView::Table)
                    .col(uuid(DeliveryView::Id).primary_key())
                    .col(string(DeliveryView::OrderingId))
                    .col(string(DeliveryView::CustomerId))
                    .col(string(DeliveryView::PaymentId))
                    .col(string(DeliveryView::State))
                    .col(big_integer(DeliveryView::Version))
                    .col(string_null(DeliveryView::PartnerId))
                    .col(string_null(DeliveryView::PartnerOrderNumber))
                    .col(string_null(DeliveryView::FailureReason))
                    .col(text_null(DeliveryView::FailureDetail))
                    .col(string_null(DeliveryView::Assignee))
                    .col(string_null(DeliveryView::Resolution))
                    .col(text_null(DeliveryView::Note))
                    .col(timestamp_with_time_zone_null(DeliveryView::DeliveredAt))
                    .col(uuid_null(DeliveryView::ReplacesDeliveryId))
                    .col(uuid_null(DeliveryView::ReplacedByDeliveryId))
                    .col(json_binary(DeliveryView::ShippingAddress))
                    .col(json_binary(DeliveryView::Lines))
                    .col(string(DeliveryView::GraphVersion))
                    .col(timestamp_with_time_zone(DeliveryView::CreatedAt))
                    .col(timestamp_with_time_zone(DeliveryView::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The list is ordered by (created_at, id); each filter leads its own index. The
        // operator queue is by state, oldest change first.
        let view_indexes: [(&str, &[DeliveryView]); 6] = [
            (
                "ix_delivery_view_created",
                &[DeliveryView::CreatedAt, DeliveryView::Id],
            ),
            (
                "ix_delivery_view_customer",
                &[
                    DeliveryView::CustomerId,
                    DeliveryView::CreatedAt,
                    DeliveryView::Id,
                ],
            ),
            (
                "ix_delivery_view_partner",
                &[
                    DeliveryView::PartnerId,
                    DeliveryView::CreatedAt,
                    DeliveryView::Id,
                ],
            ),
            (
                "ix_delivery_view_ordering",
                &[
                    DeliveryView::OrderingId,
                    DeliveryView::CreatedAt,
                    DeliveryView::Id,
                ],
            ),
            (
                "ix_delivery_view_state",
                &[
                    DeliveryView::State,
                    DeliveryView::CreatedAt,
                    DeliveryView::Id,
                ],
            ),
            (
                "ix_delivery_view_queue",
                &[
                    DeliveryView::State,
                    DeliveryView::UpdatedAt,
                    DeliveryView::Id,
                ],
            ),
        ];
        for (name, columns) in view_indexes {
            let mut index = Index::create()
                .name(name)
                .table(DeliveryView::Table)
                .to_owned();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index).await?;
        }
        // A replacement's creation looks up which view row it replaces, and back.
        manager
            .create_index(
                Index::create()
                    .name("ix_delivery_view_replaces")
                    .table(DeliveryView::Table)
                    .col(DeliveryView::ReplacesDeliveryId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeliveryHistory::Table)
                    .col(uuid(DeliveryHistory::DeliveryId))
                    .col(big_integer(DeliveryHistory::Seq))
                    .col(string(DeliveryHistory::Transition))
                    .col(string_null(DeliveryHistory::FromState))
                    .col(string(DeliveryHistory::ToState))
                    .col(string(DeliveryHistory::ActorRole))
                    .col(string(DeliveryHistory::ActorId))
                    .col(string_null(DeliveryHistory::RequestId))
                    .col(string(DeliveryHistory::GraphVersion))
                    .col(timestamp_with_time_zone(DeliveryHistory::OccurredAt))
                    .col(json_binary(DeliveryHistory::Data))
                    .primary_key(
                        Index::create()
                            .col(DeliveryHistory::DeliveryId)
                            .col(DeliveryHistory::Seq),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryHistory::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeliveryView::Table).to_owned())
            .await
    }
}
