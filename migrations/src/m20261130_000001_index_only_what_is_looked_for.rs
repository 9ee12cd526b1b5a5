//! Indexes that hold only the rows their queries look for.
//!
//! Every transition rewrites its `delivery_order` and `delivery_view` rows with a new
//! state, so PostgreSQL adds an entry to each of their full indexes, whether the index
//! has anything to do with the change or not. Index upkeep is a measured share of the
//! load generator's database time (docs/benchmarks.md). A partial index gets an entry only
//! for a row version that matches its predicate:
//!
//! - the operators' queue holds the deliveries in its two states, not every delivery;
//! - `replaces_delivery_id` is set only on a replacement;
//! - `partner_order_number` is unique per partner once a partner has picked up (NULLs
//!   never collide, so the key means what it meant);
//! - `idempotency_key.created_at` grows with the table, which is what a BRIN index is
//!   for on PostgreSQL: one summary per range of pages instead of an entry per row.
//!   SQLite has no BRIN; it keeps its B-tree.
//!
//! A query uses a partial index only where its own condition implies the index's: the
//! queue's is written as the same literal list (`queries::QUEUE_STATES`), an equality on
//! a column implies that it is not NULL. SQLite and PostgreSQL both have partial indexes;
//! sea-query cannot write one, hence the SQL.
//!
//! On PostgreSQL the migration runs in a transaction and rebuilds the indexes without
//! `CONCURRENTLY`, holding back writes to these tables while it builds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An index rebuilt partial: its definitions after `ON`, before and after.
struct Reshaped {
    name: &'static str,
    unique: bool,
    full: &'static str,
    partial: &'static str,
}

const RESHAPED: [Reshaped; 4] = [
    Reshaped {
        name: "ix_delivery_view_queue",
        unique: false,
        full: "delivery_view (state, updated_at, id)",
        partial: "delivery_view (state, updated_at, id) \
                  WHERE state IN ('DELIVERY_FAILED', 'PENDING_BY_OPERATOR')",
    },
    Reshaped {
        name: "ix_delivery_view_replaces",
        unique: false,
        full: "delivery_view (replaces_delivery_id)",
        partial: "delivery_view (replaces_delivery_id) WHERE replaces_delivery_id IS NOT NULL",
    },
    Reshaped {
        name: "ix_delivery_order_replaces",
        unique: false,
        full: "delivery_order (replaces_delivery_id)",
        partial: "delivery_order (replaces_delivery_id) WHERE replaces_delivery_id IS NOT NULL",
    },
    Reshaped {
        name: "ux_delivery_order_partner_order_number",
        unique: true,
        full: "delivery_order (partner_id, partner_order_number)",
        partial: "delivery_order (partner_id, partner_order_number) \
                  WHERE partner_order_number IS NOT NULL",
    },
];

const KEY_AGE: &str = "ix_idempotency_key_created_at";

async fn rebuild(
    manager: &SchemaManager<'_>,
    name: &str,
    unique: bool,
    definition: &str,
) -> Result<(), DbErr> {
    let unique = if unique { "UNIQUE " } else { "" };
    // One call, so one connection: on SQLite, where the migration runs on the pool, another
    // connection would still see the dropped index as it prepared the CREATE. And no
    // transaction there: a run cut off between the two is run again.
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "DROP INDEX IF EXISTS {name}; CREATE {unique}INDEX {name} ON {definition}"
        ))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in RESHAPED {
            rebuild(manager, index.name, index.unique, index.partial).await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            rebuild(
                manager,
                KEY_AGE,
                false,
                "idempotency_key USING brin (created_at)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in RESHAPED {
            rebuild(manager, index.name, index.unique, index.full).await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            rebuild(manager, KEY_AGE, false, "idempotency_key (created_at)").await?;
        }
        Ok(())
    }
}
