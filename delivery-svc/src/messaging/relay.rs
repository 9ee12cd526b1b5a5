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
//! On PostgreSQL the round runs in a transaction ([`Claim`]) that locks its rows `FOR
//! UPDATE SKIP LOCKED` until they are stamped, so several relays share the work without
//! publishing a row twice. Of a delivery, a round publishes only the rows that follow on
//! from its first unpublished one without a gap: the query counts, for each row, the
//! unpublished rows of its delivery before it, and a row with more than the round holds
//! (another relay holds them: locked rows are skipped, not waited for) stops its delivery
//! there, so none goes out of order. So a round is four round trips: `BEGIN`, the query,
//! the stamp, `COMMIT`. SQLite has no row locks: one relay per database, and no
//! transaction is held while the broker is asked (that would block every writer).
//!
//! A row the broker did not confirm (unroutable, nacked, no answer, connection lost) stays
//! unpublished and is tried again with a backoff; one confirmed but not stamped (the
//! process died in between) is published again. Consumers dedupe by `event_id`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{Alias, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QueryResult, QuerySelect,
};
use tokio::sync::Notify;

use super::bus::{EventBus, Outgoing};
use super::workers::{Backoff, Shutdown, WorkerStats};
use crate::db::{Claim, RequestConnections, begin_write, is_postgres, skip_locked};
use crate::entity::outbox;

/// Publishes the outbox.
#[derive(Debug)]
pub struct Relay<B> {
    pub bus: Arc<B>,
    pub db: sea_orm::DatabaseConnection,
    /// What a round's transaction runs on, on PostgreSQL.
    pub(crate) connections: RequestConnections,
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
            let claim = Claim::begin(&self.db, &self.connections).await?;
            let (selected, rows) = oldest_unpublished(&claim, self.batch, &sitting_out).await?;
            let published = self.publish(&rows).await;
            stamp(&claim, &published.ids).await?;
            claim.commit().await?;
            (selected, published)
        } else {
            let (selected, rows) = oldest_unpublished(&self.db, self.batch, &sitting_out).await?;
            let published = self.publish(&rows).await;
            if !published.ids.is_empty() {
                let txn = begin_write(&self.db).await?;
                stamp(&txn, &published.ids).await?;
                txn.commit().await?;
            }
            (selected, published)
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

/// A row the relay took, with how many of its delivery's rows before it are unpublished.
#[derive(Debug)]
struct Taken {
    row: outbox::Model,
    unpublished_before: i64,
}

impl FromQueryResult for Taken {
    fn from_query_result(result: &QueryResult, prefix: &str) -> Result<Self, DbErr> {
        Ok(Taken {
            row: outbox::Model::from_query_result(result, prefix)?,
            unpublished_before: result.try_get(prefix, "unpublished_before")?,
        })
    }
}

/// Of the oldest `limit` unpublished rows (in `id` order, but for those of the deliveries
/// `sitting_out`; on PostgreSQL locked, skipping rows another relay holds), how many were
/// taken, and those that may go out now ([`follow_on`]).
async fn oldest_unpublished(
    db: &impl ConnectionTrait,
    limit: u64,
    sitting_out: &[uuid::Uuid],
) -> Result<(usize, Vec<outbox::Model>), DbErr> {
    let select = outbox::Entity::find()
        .expr_as(unpublished_before(), "unpublished_before")
        .filter(outbox::Column::PublishedAt.is_null())
        .filter(outbox::Column::DeliveryId.is_not_in(sitting_out.iter().copied()))
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    let taken = skip_locked(select, db)
        .into_model::<Taken>()
        .all(db)
        .await?;
    Ok((taken.len(), follow_on(taken)))
}

/// The number of unpublished rows of the row's delivery before it. Counted with a
/// `CASE` rather than filtered on `published_at`, so that the only index that serves it is
/// the one on `(delivery_id, seq)`: a delivery has a handful of rows, the pending index
/// every unpublished one.
fn unpublished_before() -> SimpleExpr {
    let earlier = Alias::new("earlier");
    let count = Query::select()
        .expr(
            Expr::expr(Expr::case(
                Expr::col((earlier.clone(), outbox::Column::PublishedAt)).is_null(),
                1,
            ))
            .count(),
        )
        .from_as(outbox::Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), outbox::Column::DeliveryId))
                .equals((outbox::Entity, outbox::Column::DeliveryId)),
        )
        .and_where(
            Expr::col((earlier, outbox::Column::Seq))
                .lt(Expr::col((outbox::Entity, outbox::Column::Seq))),
        )
        .to_owned();
    SimpleExpr::SubQuery(None, Box::new(count.into_sub_query_statement()))
}

/// Of each delivery in `taken` (in `id` order), the rows that follow on from its first
/// unpublished row without a gap: a row with more unpublished rows before it than
/// `taken` holds of its delivery (another relay holds them) cuts its delivery there.
fn follow_on(taken: Vec<Taken>) -> Vec<outbox::Model> {
    let mut held: HashMap<uuid::Uuid, i64> = HashMap::new();
    let mut cut = HashSet::new();
    taken
        .into_iter()
        .filter(|taken| {
            let delivery = taken.row.delivery_id;
            let before = held.entry(delivery).or_default();
            if cut.contains(&delivery) || *before != taken.unpublished_before {
                cut.insert(delivery);
                return false;
            }
            *before += 1;
            true
        })
        .map(|taken| taken.row)
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

    fn taken(id: i64, delivery: u128, seq: i64, unpublished_before: i64) -> Taken {
        Taken {
            row: outbox::Model {
                id,
                event_id: uuid::Uuid::from_u128(id as u128),
                delivery_id: uuid::Uuid::from_u128(delivery),
                seq,
                routing_key: "delivery.picked_up".into(),
                payload: serde_json::json!({}),
                created_at: Utc::now(),
                published_at: None,
            },
            unpublished_before,
        }
    }

    /// A case: its name, the rows taken as (id, delivery, seq, unpublished rows of the
    /// delivery before it), and the ids kept.
    type Case = (
        &'static str,
        &'static [(i64, u128, i64, i64)],
        &'static [i64],
    );

    #[test]
    fn a_delivery_goes_out_only_from_its_first_unpublished_row_without_a_gap() {
        let cases: [Case; 5] = [
            (
                "all there",
                &[(1, 1, 1, 0), (2, 1, 2, 1), (3, 2, 1, 0)],
                &[1, 2, 3],
            ),
            (
                "first held by another relay",
                &[(2, 1, 2, 1), (3, 2, 1, 0)],
                &[3],
            ),
            (
                "one between held by another relay",
                &[(1, 1, 1, 0), (3, 1, 3, 2), (4, 1, 4, 3)],
                &[1],
            ),
            (
                "earlier ones published meanwhile",
                &[(3, 1, 3, 0), (4, 1, 4, 1)],
                &[3, 4],
            ),
            (
                "a cut delivery stays cut",
                &[(2, 1, 2, 1), (3, 1, 3, 1), (4, 2, 5, 0)],
                &[4],
            ),
        ];
        for (name, rows, kept) in cases {
            let rows = rows
                .iter()
                .map(|&(id, delivery, seq, before)| taken(id, delivery, seq, before))
                .collect();
            let ids: Vec<i64> = follow_on(rows).iter().map(|row| row.id).collect();
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
