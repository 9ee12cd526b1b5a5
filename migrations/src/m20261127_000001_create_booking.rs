//! `booking`: each delivery order's booking with its partner (`POST {partner}/v1/shipments`),
//! written in the same transaction as the delivery order, so that no delivery goes unbooked;
//! a worker makes the call and records its outcome. One row per delivery order.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Booking {
    Table,
    DeliveryId,
    PartnerId,
    /// PENDING, BOOKED, REFUSED (the partner said no for good) or MOOT (the delivery left
    /// CREATED before it was booked).
    Status,
    /// Calls made so far; the next one waits longer.
    Attempts,
    /// When the worker may try next.
    NextAttemptAt,
    /// A worker holds the row until then; another may take it over afterwards.
    ClaimedUntil,
    /// The partner's booking id, once booked.
    PartnerBookingId,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeliveryOrder {
    Table,
    Id,
}

const DUE_INDEX: &str = "ix_booking_status_next_attempt_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Booking::Table)
                    .col(uuid(Booking::DeliveryId).primary_key())
                    .col(string(Booking::PartnerId))
                    .col(string(Booking::Status))
                    .col(integer(Booking::Attempts).default(0))
                    .col(timestamp_with_time_zone(Booking::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Booking::ClaimedUntil))
                    .col(string_null(Booking::PartnerBookingId))
                    .col(text_null(Booking::LastError))
                    .col(timestamp_with_time_zone(Booking::CreatedAt))
                    .col(timestamp_with_time_zone(Booking::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_booking_delivery_order")
                            .from(Booking::Table, Booking::DeliveryId)
                            .to(DeliveryOrder::Table, DeliveryOrder::Id),
                    )
                    .check(
                        Expr::col(Booking::Status).is_in(["PENDING", "BOOKED", "REFUSED", "MOOT"]),
                    )
                    .check(
                        Expr::col(Booking::Status)
                            .ne("BOOKED")
                            .or(Expr::col(Booking::PartnerBookingId).is_not_null()),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's poll: the pending bookings that are due, the longest waiting first.
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(Booking::Table)
                    .col(Booking::Status)
                    .col(Booking::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Booking::Table).to_owned())
            .await
    }
}
