//! `batch_expect(changed, expected, guarded)`, PostgreSQL only: lets the statement that
//! runs a batch of writes fail as a whole when one of them changed another number of rows
//! than it must.
//!
//! The service sends a command's writes as one statement of data-modifying `WITH`
//! queries, outside any transaction where it can (ADR 0009): the statement is then atomic
//! by itself, and its writes are undone only if the statement fails. So a wrong count must
//! raise an error inside the statement, not be found afterwards. A guarded write that
//! changed nothing lost a race for its row and raises `serialization_failure` (40001),
//! which the service answers as a conflict; any other wrong count is a fault
//! (`raise_exception`, P0001). The function is `VOLATILE` (the default), so the planner
//! never evaluates it ahead of the counts.
//!
//! SQLite runs a batch inside a transaction, one write after another, and checks each
//! count as it goes: it needs no function.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                r#"CREATE OR REPLACE FUNCTION batch_expect(changed bigint, expected bigint, guarded boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF changed = expected THEN
        RETURN changed;
    ELSIF guarded AND changed = 0 THEN
        RAISE EXCEPTION 'a concurrent transaction changed the row first'
            USING ERRCODE = 'serialization_failure';
    ELSE
        RAISE EXCEPTION 'a write of a batch changed % rows, not %', changed, expected;
    END IF;
END
$$"#,
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS batch_expect(bigint, bigint, boolean)")
            .await
            .map(drop)
    }
}
