//! The relay's poll, `published_at IS NULL ORDER BY id LIMIT n`, read from an index of the
//! unpublished rows only, in place of `ix_outbox_unpublished` on (published_at, id).
//!
//! Publishing a row leaves its `(NULL, id)` entry in the full index until vacuum; under
//! load the poll walked thousands of such entries and their heap pages to find a few
//! dozen rows (3.5 ms a round, 12 % of PostgreSQL's time in the load generator). A
//! partial index gets no entry for a row's published version, an index scan marks the
//! entry of its pending version dead as it meets it, and a scan in `id` order stops after
//! the first `n` pending rows. SQLite and PostgreSQL both have partial indexes;
//! sea-query cannot write one, hence the SQL.
//!
//! On PostgreSQL the migration runs in a transaction, so the index is built without
//! `CONCURRENTLY` and holds back writes to `outbox` while it builds. On a large outbox,
//! build it beforehand with `CREATE INDEX CONCURRENTLY IF NOT EXISTS` and the same
//! definition; this migration then finds it and only drops the old index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    PublishedAt,
    Id,
}

const INDEX: &str = "ix_outbox_pending";
const REPLACED: &str = "ix_outbox_unpublished";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {INDEX} ON outbox (id) WHERE published_at IS NULL"
            ))
            .await?;
        manager
            .drop_index(Index::drop().name(REPLACED).table(Outbox::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(REPLACED)
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(INDEX).table(Outbox::Table).to_owned())
            .await
    }
}
