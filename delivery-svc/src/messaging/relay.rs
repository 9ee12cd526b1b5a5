//! The outbox relay: publishes the rows commands wrote to `outbox` on the `delivery.events`
//! exchange and stamps `published_at` once the broker has confirmed them.
//!
//! Per delivery, events go out in `seq` order. A round takes the oldest unpublished rows
//! (a delivery's rows are written in `seq` order, so they are also in `id` order: a
//! delivery with a row in the round has all its earlier unpublished rows in it too) and
//! publishes each delivery's rows one after another, deliveries side by side; a row the
//! broker refused holds back only its own delivery's later rows, and that delivery sits
//! out the next rounds for a moment ([`REFUSED_HOLD`]) so that its rows do not fill every
//! batch. A round costs what its batch holds, however long the backlog.
//!
//! On PostgreSQL the round runs in a transaction that locks its rows `FOR UPDATE SKIP
//! LOCKED` until they are stamped, so several relays share the work without publishing a
//! row twice. Of a delivery, a round publishes only the rows that follow on from its first
//! unpublished one without a gap: a row another relay holds (locked rows are skipped, not
//! waited for) stops it there, so none goes out of order. SQLite has no row locks:
//! one relay per database, and no transaction is held while the broker is asked (that
//! would block every writer).
//!
//! A row the broker did not confirm (unroutable, nacked, no answer, connection lost) stays
//! unpublished and is tried again with a backoff; one confirmed but not stamped (the
//! process died in between) is published again. Consumers dedupe by `event_id`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use sea_orm::prelude::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tokio::sync::Notify;

use super::bus::{EventBus, Outgoing};
use super::workers::{Backoff, Shutdown, WorkerStats};
use crate::db::{begin_write, is_postgres, skip_locked};
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

/// How long a delivery whose row the broker refused sits out the relay's rounds.
const REFUSED_HOLD: Duration = Duration::from_secs(1);

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    /// Rows the round took, those it left to another relay included.
    selected: u64,
    published: u64,
}

/// What publishing a round's rows did.
#[derive(Debug, Default)]
struct Published {
    /// The rows the broker confirmed.
    ids: Vec<i64>,
    /// The deliveries of the rows it did not.
    refused: Vec<uuid::Uuid>,
}

/// The deliveries sitting out the rounds after a refusal, each until its time.
#[derive(Debug, Default)]
struct Refused(HashMap<uuid::Uuid, Instant>);

impl Refused {
    /// Those still sitting out at `now`.
    fn current(&mut self, now: Instant) -> Vec<uuid::Uuid> {
        self.0.retain(|_, until| *until > now);
        self.0.keys().copied().collect()
    }

    fn hold(&mut self, deliveries: &[uuid::Uuid], now: Instant) {
        self.0
            .extend(deliveries.iter().map(|id| (*id, now + REFUSED_HOLD)));
    }
}

impl<B: EventBus> Relay<B> {
    /// Publishes until `shutdown`; a round in progress is finished first.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        let mut refused = Refused::default();
        while !shutdown.requested() {
            match self.round(&mut refused).await {
                // Nothing left, or a round without refusals short of a full batch: wait for
                // a commit of this process, the poll interval, or shutdown.
                Ok(round) if round.published == round.selected && round.selected < self.batch => {
                    backoff.reset();
                    shutdown.idle(&self.wake, self.poll, self.linger).await;
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

    async fn round(&self, refused: &mut Refused) -> Result<Round, DbErr> {
        let sitting_out = refused.current(Instant::now());
        let (selected, published) = if is_postgres(&self.db) {
            let txn = self.db.begin().await?;
            let rows = oldest_unpublished(&txn, self.batch, &sitting_out).await?;
            let selected = rows.len();
            let rows = in_order(&txn, rows).await?;
            let published = self.publish(&rows).await;
            stamp(&txn, &published.ids).await?;
            txn.commit().await?;
            (selected, published)
        } else {
            let rows = oldest_unpublished(&self.db, self.batch, &sitting_out).await?;
            let published = self.publish(&rows).await;
            if !published.ids.is_empty() {
                let txn = begin_write(&self.db).await?;
                stamp(&txn, &published.ids).await?;
                txn.commit().await?;
            }
            (rows.len(), published)
        };
        refused.hold(&published.refused, Instant::now());
        Ok(Round {
            selected: selected as u64,
            published: published.ids.len() as u64,
        })
    }

    /// Publishes `rows` (in `id` order): each delivery's one after another, up to the first
    /// the broker does not confirm, deliveries side by side.
    async fn publish(&self, rows: &[outbox::Model]) -> Published {
        let mut by_delivery: BTreeMap<uuid::Uuid, Vec<&outbox::Model>> = BTreeMap::new();
        for row in rows {
            by_delivery.entry(row.delivery_id).or_default().push(row);
        }
        let deliveries = by_delivery.into_iter().map(async |(delivery_id, rows)| {
            let mut published = Vec::with_capacity(rows.len());
            for row in rows {
                if !self.publish_one(row).await {
                    return (published, Some(delivery_id));
                }
                published.push(row.id);
            }
            (published, None)
        });
        let mut published = Published::default();
        for (ids, refused) in join_all(deliveries).await {
            published.ids.extend(ids);
            published.refused.extend(refused);
        }
        self.stats
            .published
            .fetch_add(published.ids.len() as u64, Ordering::Relaxed);
        self.stats
            .publish_failures
            .fetch_add(published.refused.len() as u64, Ordering::Relaxed);
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

/// The oldest `limit` unpublished rows, in `id` order, but for those of the deliveries
/// `sitting_out`; on PostgreSQL locked, skipping rows another relay holds.
async fn oldest_unpublished(
    db: &impl ConnectionTrait,
    limit: u64,
    sitting_out: &[uuid::Uuid],
) -> Result<Vec<outbox::Model>, DbErr> {
    let select = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::DeliveryId.is_not_in(sitting_out.iter().copied()))
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    skip_locked(select, db).all(db).await
}

/// Of each delivery in `rows` (in `id` order), the rows that follow on from its first
/// unpublished row without a gap; a row missing from `rows` (another relay holds it) cuts
/// its delivery there.
async fn in_order(
    db: &impl ConnectionTrait,
    rows: Vec<outbox::Model>,
) -> Result<Vec<outbox::Model>, DbErr> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let deliveries: BTreeSet<uuid::Uuid> = rows.iter().map(|row| row.delivery_id).collect();
    let unpublished: Vec<(uuid::Uuid, i64)> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::DeliveryId)
        .column(outbox::Column::Seq)
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::DeliveryId.is_in(deliveries))
        .order_by_asc(outbox::Column::DeliveryId)
        .order_by_asc(outbox::Column::Seq)
        .into_tuple()
        .all(db)
        .await?;
    Ok(follow_on(rows, unpublished))
}

/// Of each delivery in `rows` (in `id` order), the rows that match its `unpublished` seqs
/// (in order) one for one from the first: the first mismatch cuts the delivery there.
fn follow_on(
    rows: Vec<outbox::Model>,
    unpublished: impl IntoIterator<Item = (uuid::Uuid, i64)>,
) -> Vec<outbox::Model> {
    let mut next_due: BTreeMap<uuid::Uuid, VecDeque<i64>> = BTreeMap::new();
    for (delivery_id, seq) in unpublished {
        next_due.entry(delivery_id).or_default().push_back(seq);
    }
    let mut cut = BTreeSet::new();
    rows.into_iter()
        .filter(|row| {
            let due = next_due
                .get_mut(&row.delivery_id)
                .and_then(VecDeque::pop_front);
            if cut.contains(&row.delivery_id) || due != Some(row.seq) {
                cut.insert(row.delivery_id);
                return false;
            }
            true
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, delivery: u128, seq: i64) -> outbox::Model {
        outbox::Model {
            id,
            event_id: uuid::Uuid::from_u128(id as u128),
            delivery_id: uuid::Uuid::from_u128(delivery),
            seq,
            routing_key: "delivery.picked_up".into(),
            payload: serde_json::json!({}),
            created_at: Utc::now(),
            published_at: None,
        }
    }

    /// A case: its name, the rows taken as (id, delivery, seq), the unpublished rows as
    /// (delivery, seq), and the ids kept.
    type Case = (
        &'static str,
        &'static [(i64, u128, i64)],
        &'static [(u128, i64)],
        &'static [i64],
    );

    #[test]
    fn a_delivery_goes_out_only_from_its_first_unpublished_row_without_a_gap() {
        let cases: [Case; 5] = [
            (
                "all there",
                &[(1, 1, 1), (2, 1, 2), (3, 2, 1)],
                &[(1, 1), (1, 2), (2, 1)],
                &[1, 2, 3],
            ),
            (
                "first held by another relay",
                &[(2, 1, 2), (3, 2, 1)],
                &[(1, 1), (1, 2), (2, 1)],
                &[3],
            ),
            (
                "a gap after the first",
                &[(1, 1, 1), (3, 1, 3)],
                &[(1, 1), (1, 2), (1, 3)],
                &[1],
            ),
            (
                "later rows of a cut delivery",
                &[(2, 1, 2), (3, 1, 3), (4, 2, 5)],
                &[(1, 1), (1, 2), (1, 3), (2, 5)],
                &[4],
            ),
            ("nothing unpublished any more", &[(1, 1, 1)], &[], &[]),
        ];
        for (name, taken, unpublished, kept) in cases {
            let rows = taken
                .iter()
                .map(|&(id, delivery, seq)| row(id, delivery, seq))
                .collect();
            let unpublished = unpublished
                .iter()
                .map(|&(delivery, seq)| (uuid::Uuid::from_u128(delivery), seq));
            let ids: Vec<i64> = follow_on(rows, unpublished)
                .iter()
                .map(|row| row.id)
                .collect();
            assert_eq!(ids, kept, "{name}");
        }
    }

    #[test]
    fn a_refused_delivery_sits_out_until_its_time() {
        let mut refused = Refused::default();
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let now = Instant::now();
        refused.hold(&[a], now);
        refused.hold(&[b], now + REFUSED_HOLD / 2);
        assert_eq!(refused.current(now).len(), 2);
        assert_eq!(refused.current(now + REFUSED_HOLD), vec![b]);
        assert!(refused.current(now + REFUSED_HOLD * 2).is_empty());
    }
}
