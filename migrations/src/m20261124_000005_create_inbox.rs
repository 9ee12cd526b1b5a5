//! `inbox`: every message a consumer has handled, so that a redelivered message is a
//! no-op that answers what the first delivery did.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Inbox {
    Table,
    /// Who handled it, e.g. `payment.succeeded`.
    Consumer,
    MessageId,
    HandledAt,
    /// What handling it did; NULL only inside the handling transaction.
    Result,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .col(string(Inbox::Consumer))
                    .col(string(Inbox::MessageId))
                    .col(timestamp_with_time_zone(Inbox::HandledAt))
                    .col(json_binary_null(Inbox::Result))
                    .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::MessageId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Inbox::Table).to_owned())
            .await
    }
}
