//! A delivery order's customer is its ordering's customer.
//!
//! The payment service may report a second payment for an ordering the service already
//! knows. Its delivery order must then name the ordering's customer. Otherwise a customer's
//! ordering would list a delivery of another customer, while the `ordering` row keeps the
//! first one. The check lives in the schema, so that two such payments racing for a new
//! ordering cannot both pass it:
//! - On PostgreSQL, a foreign key `(ordering_id, customer_id)` → `ordering (id,
//!   customer_id)`. It is `NOT VALID`: it checks every new delivery order, and leaves the
//!   rows already there to a `VALIDATE CONSTRAINT` the operator may run.
//! - On SQLite, which cannot add a foreign key to a table, a trigger runs before each
//!   insert. SQLite's single writer makes that check race-free too.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The name the service recognises a refusal by (PostgreSQL's constraint).
pub const CONSTRAINT: &str = "fk_delivery_order_ordering_customer";
/// The message SQLite's trigger aborts with, which the service recognises a refusal by.
pub const SQLITE_MESSAGE: &str = "delivery_order.customer_id is not its ordering's customer";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE ordering ADD CONSTRAINT ux_ordering_id_customer \
                     UNIQUE (id, customer_id)",
                )
                .await?;
                db.execute_unprepared(&format!(
                    "ALTER TABLE delivery_order ADD CONSTRAINT {CONSTRAINT} \
                     FOREIGN KEY (ordering_id, customer_id) \
                     REFERENCES ordering (id, customer_id) NOT VALID"
                ))
                .await?;
            }
            _ => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER tr_delivery_order_customer_is_ordering_customer \
                     BEFORE INSERT ON delivery_order \
                     WHEN NOT EXISTS (SELECT 1 FROM ordering \
                         WHERE id = NEW.ordering_id AND customer_id = NEW.customer_id) \
                     BEGIN SELECT RAISE(ABORT, '{}'); END",
                    SQLITE_MESSAGE.replace('\'', "''")
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "ALTER TABLE delivery_order DROP CONSTRAINT IF EXISTS {CONSTRAINT}"
                ))
                .await?;
                db.execute_unprepared(
                    "ALTER TABLE ordering DROP CONSTRAINT IF EXISTS ux_ordering_id_customer",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS tr_delivery_order_customer_is_ordering_customer",
                )
                .await?;
            }
        }
        Ok(())
    }
}
