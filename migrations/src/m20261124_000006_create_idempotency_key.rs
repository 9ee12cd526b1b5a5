//! `idempotency_key`: the outcome of each successful request made with an
//! `Idempotency-Key`, per caller, so that a retry gets the same answer.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    /// The principal's subject: keys are per caller.
    Subject,
    Key,
    /// Of the request (method, path, body): tells a retry from another request.
    Fingerprint,
    /// The outcome to replay; NULL only inside the request's transaction.
    Response,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKey::Table)
                    .col(string(IdempotencyKey::Subject))
                    .col(string(IdempotencyKey::Key))
                    .col(string(IdempotencyKey::Fingerprint))
                    .col(json_binary_null(IdempotencyKey::Response))
                    .col(timestamp_with_time_zone(IdempotencyKey::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKey::Subject)
                            .col(IdempotencyKey::Key),
                    )
                    .to_owned(),
            )
            .await?;
        // For expiring old keys.
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_key_created_at")
                    .table(IdempotencyKey::Table)
                    .col(IdempotencyKey::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKey::Table).to_owned())
            .await
    }
}
