//! The schema of the delivery service: one code base for SQLite and PostgreSQL.
//!
//! Every change is one migration module, applied in the order [`Migrator`] lists them;
//! a migration is never edited once released, a new change is a new module.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_ordering;
mod m20261124_000002_create_delivery_order;
mod m20261124_000003_create_delivery_event;
mod m20261124_000004_create_outbox;
mod m20261124_000005_create_inbox;
mod m20261124_000006_create_idempotency_key;
mod m20261124_000007_create_read_models;
mod m20261125_000001_index_outbox_by_delivery;
mod m20261126_000001_index_delivery_order_by_state;
mod m20261127_000001_create_booking;
mod m20261128_000001_index_outbox_pending;
mod m20261129_000001_create_batch_expect;
mod m20261130_000001_index_only_what_is_looked_for;
mod m20261201_000001_delivery_customer_is_ordering_customer;

/// How the schema refuses a delivery order whose customer is not its ordering's: the
/// PostgreSQL constraint's name and SQLite's message.
pub use m20261201_000001_delivery_customer_is_ordering_customer::{
    CONSTRAINT as ORDERING_CUSTOMER_CONSTRAINT, SQLITE_MESSAGE as ORDERING_CUSTOMER_MESSAGE,
};

/// Applies the delivery service's migrations (`Migrator::up(&db, None)`).
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_ordering::Migration),
            Box::new(m20261124_000002_create_delivery_order::Migration),
            Box::new(m20261124_000003_create_delivery_event::Migration),
            Box::new(m20261124_000004_create_outbox::Migration),
            Box::new(m20261124_000005_create_inbox::Migration),
            Box::new(m20261124_000006_create_idempotency_key::Migration),
            Box::new(m20261124_000007_create_read_models::Migration),
            Box::new(m20261125_000001_index_outbox_by_delivery::Migration),
            Box::new(m20261126_000001_index_delivery_order_by_state::Migration),
            Box::new(m20261127_000001_create_booking::Migration),
            Box::new(m20261128_000001_index_outbox_pending::Migration),
            Box::new(m20261129_000001_create_batch_expect::Migration),
            Box::new(m20261130_000001_index_only_what_is_looked_for::Migration),
            Box::new(m20261201_000001_delivery_customer_is_ordering_customer::Migration),
        ]
    }
}
