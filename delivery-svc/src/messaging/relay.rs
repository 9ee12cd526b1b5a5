//! The outbox relay: publishes the rows commands wrote to `outbox` on the `delivery.events`
//! exchange and stamps `published_at` once the broker has confirmed them.
//!
//! Per delivery, events go out in `seq` order: a row is eligible only when no earlier row
//! of its delivery is unpublished, so each round publishes at most one row per delivery
//! and a row the broker refused holds back only its own delivery's later rows.
//!
//! On PostgreSQL the round runs in a transaction that locks its rows `FOR UPDATE SKIP
//! LOCKED` until they are stamped, so several relays share the work without publishing a
//! row twice or out of order (another relay does not see a delivery's next row as eligible
//! until the earlier one is stamped and committed). SQLite has no row locks: one relay per
//! database, and no transaction is held while the broker is asked (that would block every
//! writer).
//!
//! A row the broker did not confirm (unroutable, nacked, no answer, connection lost) stays
//! unpublished and is tried again with a backoff; one confirmed but not stamped (the
//! process died in between) is published again. Consumers dedupe by `event_id`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{Alias, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tokio::sync::Notify;

use super::bus::{EventBus, Outgoing};
use super::workers::{Backoff, Shutdown, WorkerStats};
use crate::db::{begin_write, is_postgres};
use crate::entity::outbox;

/// Publishes the outbox.
#[derive(Debug)]
pub struct Relay<B> {
    pub bus: Arc<B>,
    pub db: sea_orm::DatabaseConnection,
    /// `delivery.events`, with the namespace.
    pub exchange: String,
    /// Rows per round.
    pub batch: u64,
    /// How often to look without being woken: rows written by other processes, rows left
    /// by a crash.
    pub poll: Duration,
    /// Notified when this process commits a change (and so an outbox row).
    pub wake: Arc<Notify>,
    pub stats: Arc<WorkerStats>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    selected: u64,
    published: u64,
}

impl Round {
    fn of(selected: &[outbox::Model], published: &[i64]) -> Round {
        Round {
            selected: selected.len() as u64,
            published: published.len() as u64,
        }
    }
}

impl<B: EventBus> Relay<B> {
    /// Publishes until `shutdown`; a round in progress is finished first.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        while !shutdown.requested() {
            match self.round().await {
                // Nothing left, or a round without refusals short of a full batch: wait for
                // a commit of this process, the poll interval, or shutdown.
                Ok(round) if round.published == round.selected && round.selected < self.batch => {
                    backoff.reset();
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.poll) => {}
                        () = shutdown.wait() => {}
                    }
                }
                // Progress: more may be waiting, go on (refused rows are retried in passing).
                Ok(round) if round.published > 0 => {}
                // Everything refused: the broker or its bindings need time.
                Ok(_) => shutdown.sleep(backoff.next_delay()).await,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay: database");
                    shutdown.sleep(backoff.next_delay()).await;
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn round(&self) -> Result<Round, DbErr> {
        if is_postgres(&self.db) {
            let txn = self.db.begin().await?;
            let rows = eligible(&txn, self.batch, true).await?;
            let published = self.publish(&rows).await;
            stamp(&txn, &published).await?;
            txn.commit().await?;
            Ok(Round::of(&rows, &published))
        } else {
            let rows = eligible(&self.db, self.batch, false).await?;
            let published = self.publish(&rows).await;
            if !published.is_empty() {
                let txn = begin_write(&self.db).await?;
                stamp(&txn, &published).await?;
                txn.commit().await?;
            }
            Ok(Round::of(&rows, &published))
        }
    }

    /// Publishes `rows` side by side (they are of different deliveries); the ids of those
    /// the broker confirmed.
    async fn publish(&self, rows: &[outbox::Model]) -> Vec<i64> {
        let attempts = rows.iter().map(async |row| {
            let message = Outgoing {
                exchange: self.exchange.clone(),
                routing_key: row.routing_key.clone(),
                message_id: row.event_id.to_string(),
                body: row.payload.to_string().into_bytes(),
            };
            match self.bus.publish(&message).await {
                Ok(()) => {
                    tracing::debug!(
                        routing_key = %row.routing_key, event_id = %row.event_id,
                        delivery_id = %row.delivery_id, seq = row.seq, "published"
                    );
                    Some(row.id)
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err, event_id = %row.event_id, delivery_id = %row.delivery_id,
                        seq = row.seq, "not published; will retry"
                    );
                    None
                }
            }
        });
        let published: Vec<i64> = join_all(attempts).await.into_iter().flatten().collect();
        let failed = rows.len() - published.len();
        self.stats
            .published
            .fetch_add(published.len() as u64, Ordering::Relaxed);
        self.stats
            .publish_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
        published
    }
}

/// The unpublished rows that are next in their delivery's order, oldest first; locked
/// (skipping rows another relay holds) when `lock`.
async fn eligible(
    db: &impl ConnectionTrait,
    limit: u64,
    lock: bool,
) -> Result<Vec<outbox::Model>, DbErr> {
    let earlier = Alias::new("earlier");
    let unpublished_earlier = Query::select()
        .expr(Expr::val(1))
        .from_as(outbox::Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), outbox::Column::DeliveryId))
                .equals((outbox::Entity, outbox::Column::DeliveryId)),
        )
        .and_where(Expr::col((earlier.clone(), outbox::Column::PublishedAt)).is_null())
        .and_where(
            Expr::col((earlier, outbox::Column::Seq))
                .lt(Expr::col((outbox::Entity, outbox::Column::Seq))),
        )
        .to_owned();
    let mut select = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(Expr::exists(unpublished_earlier).not())
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    if lock {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    select.all(db).await
}

/// Marks rows published.
async fn stamp(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::PublishedAt, Expr::value(Utc::now()))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}
