//! `delivery_order`: the write model, one row per delivery order in its current state.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_ordering::Ordering;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum DeliveryOrder {
    Table,
    Id,
    OrderingId,
    CustomerId,
    PaymentId,
    State,
    /// The `seq` of the last event: `UPDATE … WHERE version = <loaded>` detects a
    /// concurrent change (optimistic concurrency).
    Version,
    PartnerId,
    PartnerOrderNumber,
    DeliveredAt,
    FailureReason,
    FailureDetail,
    Assignee,
    Resolution,
    Note,
    ReplacesDeliveryId,
    /// The shipping address and the physical lines, fixed for the order's life.
    Details,
    GraphVersion,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryOrder::Table)
                    .col(uuid(DeliveryOrder::Id).primary_key())
                    .col(string(DeliveryOrder::OrderingId))
                    .col(string(DeliveryOrder::CustomerId))
                    .col(string(DeliveryOrder::PaymentId))
                    .col(string(DeliveryOrder::State))
                    .col(big_integer(DeliveryOrder::Version))
                    .col(string_null(DeliveryOrder::PartnerId))
                    .col(string_null(DeliveryOrder::PartnerOrderNumber))
                    .col(timestamp_with_time_zone_null(DeliveryOrder::DeliveredAt))
                    .col(string_null(DeliveryOrder::FailureReason))
                    .col(text_null(DeliveryOrder::FailureDetail))
                    .col(string_null(DeliveryOrder::Assignee))
                    .col(string_null(DeliveryOrder::Resolution))
                    .col(text_null(DeliveryOrder::Note))
                    .col(uuid_null(DeliveryOrder::ReplacesDeliveryId))
                    .col(json_binary(DeliveryOrder::Details))
                    .col(string(DeliveryOrder::GraphVersion))
                    .col(timestamp_with_time_zone(DeliveryOrder::CreatedAt))
                    .col(timestamp_with_time_zone(DeliveryOrder::UpdatedAt))
                    // graph.yaml: DELIVERY_FAILED always carries its reason.
                    .check(
                        Expr::col(DeliveryOrder::State)
                            .ne("DELIVERY_FAILED")
                            .or(Expr::col(DeliveryOrder::FailureReason).is_not_null()),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_delivery_order_ordering")
                            .from(DeliveryOrder::Table, DeliveryOrder::OrderingId)
                            .to(Ordering::Table, Ordering::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_delivery_order_replaces")
                            .from(DeliveryOrder::Table, DeliveryOrder::ReplacesDeliveryId)
                            .to(DeliveryOrder::Table, DeliveryOrder::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A partner's own order number names one delivery of that partner.
        manager
            .create_index(
                Index::create()
                    .name("ux_delivery_order_partner_order_number")
                    .table(DeliveryOrder::Table)
                    .col(DeliveryOrder::PartnerId)
                    .col(DeliveryOrder::PartnerOrderNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Foreign keys are not indexed by themselves.
        manager
            .create_index(
                Index::create()
                    .name("ix_delivery_order_ordering")
                    .table(DeliveryOrder::Table)
                    .col(DeliveryOrder::OrderingId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_delivery_order_replaces")
                    .table(DeliveryOrder::Table)
                    .col(DeliveryOrder::ReplacesDeliveryId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryOrder::Table).to_owned())
            .await
    }
}
