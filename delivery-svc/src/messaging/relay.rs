//! The outbox relay: publishes the rows commands wrote to `outbox` on the `delivery.events`
//! exchange and stamps `published_at` once the broker has confirmed them.
//!
//! Per delivery, events go out in `seq` order. A round takes the oldest unpublished rows
//! (a delivery's rows are written in `seq` order, so they are also in `id` order: a
//! delivery with a row in the round has all its earlier unpublished rows in it too) and
//! publishes each delivery's rows one after another, deliveries side by side; a row the
//! broker refused holds back only its own delivery's later rows. A round costs what its
//! batch holds, however long the backlog.
//!
//! On PostgreSQL the round runs in a transaction that locks its rows `FOR UPDATE SKIP
//! LOCKED` until they are stamped, so several relays share the work without publishing a
//! row twice; a delivery whose earlier row another relay holds is left to that relay (its
//! later rows wait for the next round), so none goes out of order. SQLite has no row locks:
//! one relay per database, and no transaction is held while the broker is asked (that
//! would block every writer).
//!
//! A row the broker did not confirm (unroutable, nacked, no answer, connection lost) stays
//! unpublished and is tried again with a backoff; one confirmed but not stamped (the
//! process died in between) is published again. Consumers dedupe by `event_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{LockBehavior, LockType};
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
    /// How long to wait for more commits once woken by one, so that a round takes them all.
    pub linger: Duration,
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
                        () = self.wake.notified() => shutdown.sleep(self.linger).await,
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
            let rows = oldest_unpublished(&txn, self.batch, true).await?;
            let rows = without_held_back(&txn, rows).await?;
            let published = self.publish(&rows).await;
            stamp(&txn, &published).await?;
            txn.commit().await?;
            Ok(Round::of(&rows, &published))
        } else {
            let rows = oldest_unpublished(&self.db, self.batch, false).await?;
            let published = self.publish(&rows).await;
            if !published.is_empty() {
                let txn = begin_write(&self.db).await?;
                stamp(&txn, &published).await?;
                txn.commit().await?;
            }
            Ok(Round::of(&rows, &published))
        }
    }

    /// Publishes `rows` (in `id` order): each delivery's one after another, up to the first
    /// the broker does not confirm, deliveries side by side. The ids of those it confirmed.
    async fn publish(&self, rows: &[outbox::Model]) -> Vec<i64> {
        let mut by_delivery: BTreeMap<uuid::Uuid, Vec<&outbox::Model>> = BTreeMap::new();
        for row in rows {
            by_delivery.entry(row.delivery_id).or_default().push(row);
        }
        let deliveries = by_delivery.into_values().map(async |rows| {
            let mut published = Vec::with_capacity(rows.len());
            for row in rows {
                if !self.publish_one(row).await {
                    break;
                }
                published.push(row.id);
            }
            published
        });
        let published: Vec<i64> = join_all(deliveries).await.into_iter().flatten().collect();
        let failed = rows.len() - published.len();
        self.stats
            .published
            .fetch_add(published.len() as u64, Ordering::Relaxed);
        self.stats
            .publish_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
        published
    }

    /// Publishes `row`; whether the broker confirmed it.
    async fn publish_one(&self, row: &outbox::Model) -> bool {
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
                true
            }
            Err(err) => {
                tracing::warn!(
                    error = %err, event_id = %row.event_id, delivery_id = %row.delivery_id,
                    seq = row.seq, "not published; will retry"
                );
                false
            }
        }
    }
}

/// The oldest `limit` unpublished rows, in `id` order; locked (skipping rows another
/// relay holds) when `lock`.
async fn oldest_unpublished(
    db: &impl ConnectionTrait,
    limit: u64,
    lock: bool,
) -> Result<Vec<outbox::Model>, DbErr> {
    let mut select = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    if lock {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    select.all(db).await
}

/// `rows` without the deliveries that have an earlier unpublished row outside them: one
/// another relay holds (locked rows are skipped, not waited for).
async fn without_held_back(
    db: &impl ConnectionTrait,
    rows: Vec<outbox::Model>,
) -> Result<Vec<outbox::Model>, DbErr> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let mut first_taken: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    for row in &rows {
        first_taken.entry(row.delivery_id).or_insert(row.seq);
    }
    let first_unpublished: Vec<(uuid::Uuid, Option<i64>)> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::DeliveryId)
        .column_as(outbox::Column::Seq.min(), "first")
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::DeliveryId.is_in(first_taken.keys().copied()))
        .group_by(outbox::Column::DeliveryId)
        .into_tuple()
        .all(db)
        .await?;
    let held_back: BTreeSet<uuid::Uuid> = first_unpublished
        .into_iter()
        .filter(|(delivery_id, first)| *first != first_taken.get(delivery_id).copied())
        .map(|(delivery_id, _)| delivery_id)
        .collect();
    Ok(rows
        .into_iter()
        .filter(|row| !held_back.contains(&row.delivery_id))
        .collect())
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
