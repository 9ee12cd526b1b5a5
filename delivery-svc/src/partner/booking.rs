//! Outbound bookings: every new delivery order is booked with its partner by a worker,
//! never on the request path (ADR 0006).
//!
//! The command that creates a delivery order writes its `booking` row (PENDING) in the same
//! batch of writes, so a booking is never lost. The [`Booker`] claims due rows (a lease, so
//! that several workers share them and one that dies hands its rows on), calls
//! `POST {partner}/v1/shipments` with our delivery id as the external id and as
//! `Idempotency-Key`, and records the outcome:
//!
//! - the partner's booking id → BOOKED;
//! - no answer, a 5xx, 408 or 429 → retried at once a few times with backoff (backon), then
//!   again later, waiting longer each time; the partner dedupes by `Idempotency-Key`, so
//!   however often we ask, it books once;
//! - another 4xx: the partner will not take it → REFUSED, and the delivery fails with
//!   CANCELLED_BY_PARTNER (actor: system), which sends it to the operators;
//! - the delivery left CREATED before it was booked → MOOT, no call.
//!
//! Each partner has a circuit breaker (failsafe): after consecutive failures it opens and
//! bookings for that partner wait, untouched, until it lets a trial call through.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use delivery_core::{Command, DeliveryId, DeliveryState, Fail, FailureReason, Text};
use failsafe::futures::CircuitBreaker as _;
use failsafe::{StateMachine, backoff, failure_policy};
use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::prelude::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, UpdateMany,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::commands::Deliveries;
use crate::config::BookingConfig;
use crate::db::{Batch, Claim, OneBatch, RequestConnections, skip_locked};
use crate::entity::{booking, delivery_order};
use crate::messaging::workers::Shutdown;
use crate::watchdog::system_context;

/// The actor id of the events a refused booking causes.
pub const BOOKING_ACTOR: &str = "booking";

/// How long a worker holds the bookings it claimed. Longer than any round of calls takes;
/// a worker that died holding a claim delays those bookings by this much.
const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// The longest wait between two rounds of calls for a booking that keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Where a booking stands (the `booking.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    /// Not booked yet: the worker will call the partner.
    Pending,
    /// The partner took it and answered with its booking id.
    Booked,
    /// The partner will not take it (a 4xx other than 408 and 429); the delivery failed.
    Refused,
    /// The delivery left CREATED before it was booked: there was nothing left to book.
    Moot,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "PENDING",
            BookingStatus::Booked => "BOOKED",
            BookingStatus::Refused => "REFUSED",
            BookingStatus::Moot => "MOOT",
        }
    }
}

/// The booking row of a new delivery order, to write with it.
pub(crate) fn pending(
    delivery_id: DeliveryId,
    partner_id: &str,
    now: DateTime<Utc>,
) -> booking::ActiveModel {
    booking::ActiveModel {
        delivery_id: Set(delivery_id.0),
        partner_id: Set(partner_id.to_owned()),
        status: Set(BookingStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        partner_booking_id: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// What the bookers of this process have done since start, for logs and tests.
#[derive(Debug, Default)]
pub struct BookingStats {
    /// Bookings the partner confirmed.
    pub booked: AtomicU64,
    /// Calls that failed in a way worth retrying (each retry counted).
    pub failed_calls: AtomicU64,
    /// Calls the open circuit of their partner kept from being made.
    pub held_by_circuit: AtomicU64,
    /// Bookings the partner refused for good.
    pub refused: AtomicU64,
}

/// Why a call did not book.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("no answer: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the partner answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the partner's answer has no booking id: {0}")]
    Answer(String),
    #[error("partner {0} is not configured (--partner)")]
    UnknownPartner(String),
}

impl CallError {
    /// Worth asking again: the partner may be down or busy, not saying no.
    fn is_transient(&self) -> bool {
        match self {
            CallError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            CallError::Transport(_) | CallError::Answer(_) | CallError::UnknownPartner(_) => true,
        }
    }
}

/// What a partner answers a booking with (other fields are the partner's business).
#[derive(Debug, Deserialize)]
struct Booked {
    booking_id: String,
}

type Circuit = StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()>;

/// Books the delivery orders waiting for it.
#[derive(Debug)]
pub struct Booker {
    deliveries: Deliveries,
    client: reqwest::Client,
    config: BookingConfig,
    circuits: Mutex<BTreeMap<String, Circuit>>,
    wake: Arc<Notify>,
    stats: Arc<BookingStats>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookingRound {
    /// Bookings this round claimed (at most a batch).
    pub claimed: u64,
    pub booked: u64,
}

impl Booker {
    pub fn new(deliveries: Deliveries, config: BookingConfig) -> Result<Booker, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.partner_timeout_ms.get()))
            .build()?;
        Ok(Booker {
            wake: deliveries.bookings_due(),
            deliveries,
            client,
            config,
            circuits: Mutex::default(),
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> Arc<BookingStats> {
        self.stats.clone()
    }

    /// Books until `shutdown`; a round in progress is finished first.
    pub async fn run(self, mut shutdown: Shutdown) {
        let poll = Duration::from_millis(self.config.booking_poll_ms.get());
        let linger = Duration::from_millis(self.config.booking_linger_ms);
        while !shutdown.requested() {
            match self.round(Utc::now()).await {
                Ok(round) if round.claimed == self.config.booking_batch.get() => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "bookings: database"),
            }
            shutdown.idle(&self.wake, poll, linger).await;
        }
        tracing::info!("booker stopped");
    }

    /// Claims the bookings due at `now` (at most a batch, the longest waiting first) and
    /// makes them, side by side. Those whose delivery has left CREATED are settled MOOT
    /// together, without a call.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<BookingRound, DbErr> {
        let db = self.deliveries.db();
        let claimed = claim_due(
            db,
            self.deliveries.connections(),
            now,
            self.config.booking_batch.get(),
        )
        .await?;
        let mut orders: HashMap<uuid::Uuid, delivery_order::Model> = delivery_order::Entity::find()
            .filter(delivery_order::Column::Id.is_in(claimed.iter().map(|row| row.delivery_id)))
            .filter(delivery_order::Column::State.eq(DeliveryState::Created.name()))
            .all(db)
            .await?
            .into_iter()
            .map(|order| (order.id, order))
            .collect();
        let (mut to_book, mut moot) = (Vec::new(), Vec::new());
        for row in claimed {
            match orders.remove(&row.delivery_id) {
                Some(order) => to_book.push((row, order)),
                None => moot.push(row.delivery_id),
            }
        }
        let outcomes = join_all(
            to_book
                .into_iter()
                .map(async |(row, order)| self.book(&row, order, now).await),
        )
        .await;
        // After the calls, every outcome in one batch, all or nothing: if it fails, the
        // rows wait for their lease to lapse and are booked again, which the partner
        // answers with the same booking.
        let mut records = Batch::new(db);
        if !moot.is_empty() {
            records.push(&settle(&moot, BookingStatus::Moot, None, None));
        }
        for outcome in &outcomes {
            records.push(&outcome.record);
        }
        OneBatch::begin(db, self.deliveries.connections())
            .await?
            .commit(records)
            .await?;
        let mut round = BookingRound {
            claimed: (moot.len() + outcomes.len()) as u64,
            booked: 0,
        };
        for outcome in outcomes {
            if outcome.status == BookingStatus::Booked {
                self.stats.booked.fetch_add(1, Ordering::Relaxed);
                round.booked += 1;
            }
            if let Some((order, err)) = outcome.refusal {
                self.fail_refused(order, &err, now).await;
            }
        }
        Ok(round)
    }

    /// Makes one claimed booking of `order` (in CREATED): how it went, for the round to
    /// record.
    async fn book(
        &self,
        row: &booking::Model,
        order: delivery_order::Model,
        now: DateTime<Utc>,
    ) -> Outcome {
        let id = DeliveryId(row.delivery_id);
        // An open circuit answers Rejected without calling; that is not retried here.
        let circuit = self.circuit(&row.partner_id);
        let call = async || {
            circuit
                .call_with(CallError::is_transient, self.call(&row.partner_id, &order))
                .await
        };
        let answer = call
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(
                        self.config.booking_retry_min_ms.get(),
                    ))
                    .with_max_times(self.config.booking_retries)
                    .with_jitter(),
            )
            .when(|err| matches!(err, failsafe::Error::Inner(inner) if inner.is_transient()))
            .notify(|err, _| {
                self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(delivery_id = %id, error = %err, "booking call failed; retrying");
            })
            .await;
        match answer {
            Ok(booking_id) => Outcome::settled(
                settle(&[id.0], BookingStatus::Booked, Some(booking_id), None),
                BookingStatus::Booked,
            ),
            Err(failsafe::Error::Rejected) => {
                self.stats.held_by_circuit.fetch_add(1, Ordering::Relaxed);
                let later = now + chrono_duration(self.open_for());
                Outcome::settled(
                    retry_later(id, row.attempts, later, "the partner's circuit is open"),
                    BookingStatus::Pending,
                )
            }
            Err(failsafe::Error::Inner(err)) if err.is_transient() => {
                self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                let attempts = row.attempts.saturating_add(1);
                let later = now + chrono_duration(retry_delay(attempts));
                tracing::warn!(delivery_id = %id, attempts, error = %err, "booking failed; will retry");
                Outcome::settled(
                    retry_later(id, attempts, later, &err.to_string()),
                    BookingStatus::Pending,
                )
            }
            Err(failsafe::Error::Inner(err)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(delivery_id = %id, error = %err, "the partner refused a booking");
                Outcome {
                    record: settle(&[id.0], BookingStatus::Refused, None, Some(err.to_string())),
                    status: BookingStatus::Refused,
                    refusal: Some((order, err)),
                }
            }
        }
    }

    /// `POST {partner}/v1/shipments` for `order`: the partner's booking id.
    async fn call(
        &self,
        partner_id: &str,
        order: &delivery_order::Model,
    ) -> Result<String, CallError> {
        let partner = self
            .deliveries
            .partners()
            .get(partner_id)
            .ok_or_else(|| CallError::UnknownPartner(partner_id.to_owned()))?;
        let external_id = order.id.to_string();
        let body = json!({
            "external_id": external_id,
            "ordering_id": order.ordering_id,
            "shipping_address": order.details["shipping_address"],
            "lines": order.details["lines"],
        });
        let answer = self
            .client
            .post(format!("{}/v1/shipments", partner.base_url))
            .header("Idempotency-Key", &external_id)
            .json(&body)
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return Err(CallError::Status {
                status,
                body: text.chars().take(200).collect(),
            });
        }
        serde_json::from_str::<Booked>(&text)
            .map(|booked| booked.booking_id)
            .map_err(|err| CallError::Answer(err.to_string()))
    }

    /// A refused booking fails its delivery, as the system, so that operators see it.
    /// If that cannot be done now (someone moved the delivery first), the watchdogs still
    /// fail it once its pick-up limit passes.
    async fn fail_refused(
        &self,
        order: delivery_order::Model,
        err: &CallError,
        now: DateTime<Utc>,
    ) {
        let id = DeliveryId(order.id);
        let detail = format!("the partner refused the booking: {err}");
        let detail: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
        let command = match Text::parse(&detail.chars().take(2000).collect::<String>()) {
            Ok(detail) => Command::Fail(Fail {
                reason: FailureReason::CancelledByPartner,
                detail: Some(detail),
            }),
            Err(invalid) => {
                tracing::error!(delivery_id = %id, error = %invalid, "refusal detail");
                return;
            }
        };
        let ctx = system_context(BOOKING_ACTOR, now);
        if let Err(err) = self.deliveries.move_as_system(order, command, &ctx).await {
            tracing::warn!(delivery_id = %id, error = %err, "cannot fail a delivery whose booking was refused");
        }
    }

    /// The circuit breaker of `partner`, made on first use.
    fn circuit(&self, partner: &str) -> Circuit {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        circuits
            .entry(partner.to_owned())
            .or_insert_with(|| {
                failsafe::Config::new()
                    .failure_policy(failure_policy::consecutive_failures(
                        self.config.circuit_failures.get(),
                        backoff::constant(self.open_for()),
                    ))
                    .build()
            })
            .clone()
    }

    fn open_for(&self) -> Duration {
        Duration::from_millis(self.config.circuit_open_ms.get())
    }
}

/// Nobody holds the row, or the one who did let its lease lapse.
fn unclaimed(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(booking::Column::ClaimedUntil.is_null())
        .add(booking::Column::ClaimedUntil.lt(now))
}

/// Takes up to `limit` bookings due at `now` for [`CLAIM_LEASE`], the longest waiting
/// first, in one transaction ([`Claim`]): on PostgreSQL the rows are locked as they are
/// read (skipping those another worker is claiming), on SQLite the write lock is taken
/// first.
async fn claim_due(
    db: &DatabaseConnection,
    connections: &RequestConnections,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<booking::Model>, DbErr> {
    let txn = Claim::begin(db, connections).await?;
    let due = booking::Entity::find()
        .filter(booking::Column::Status.eq(BookingStatus::Pending.as_str()))
        .filter(booking::Column::NextAttemptAt.lte(now))
        .filter(unclaimed(now))
        .order_by_asc(booking::Column::NextAttemptAt)
        .limit(limit);
    let due = skip_locked(due, db).all(&txn).await?;
    if !due.is_empty() {
        booking::Entity::update_many()
            .col_expr(
                booking::Column::ClaimedUntil,
                Expr::value(now + chrono_duration(CLAIM_LEASE)),
            )
            .filter(booking::Column::DeliveryId.is_in(due.iter().map(|row| row.delivery_id)))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(due)
}

/// How a claimed booking went: its new status, the update that records it, and for a
/// refusal what failing its delivery needs.
struct Outcome {
    status: BookingStatus,
    record: UpdateMany<booking::Entity>,
    refusal: Option<(delivery_order::Model, CallError)>,
}

impl Outcome {
    fn settled(record: UpdateMany<booking::Entity>, status: BookingStatus) -> Outcome {
        Outcome {
            status,
            record,
            refusal: None,
        }
    }
}

/// The update that settles the bookings `ids`: BOOKED (with the partner's id), REFUSED or
/// MOOT.
fn settle(
    ids: &[uuid::Uuid],
    status: BookingStatus,
    partner_booking_id: Option<String>,
    error: Option<String>,
) -> UpdateMany<booking::Entity> {
    release(ids)
        .col_expr(booking::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            booking::Column::PartnerBookingId,
            Expr::value(partner_booking_id),
        )
        .col_expr(booking::Column::LastError, Expr::value(error))
}

/// The update that leaves the booking PENDING, released, due again at `next`.
fn retry_later(
    id: DeliveryId,
    attempts: i32,
    next: DateTime<Utc>,
    error: &str,
) -> UpdateMany<booking::Entity> {
    release(&[id.0])
        .col_expr(booking::Column::Attempts, Expr::value(attempts))
        .col_expr(booking::Column::NextAttemptAt, Expr::value(next))
        .col_expr(booking::Column::LastError, Expr::value(error))
}

/// The update of bookings `ids` that gives up their claim; the caller adds what changed.
fn release(ids: &[uuid::Uuid]) -> UpdateMany<booking::Entity> {
    booking::Entity::update_many()
        .col_expr(
            booking::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(booking::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(booking::Column::DeliveryId.is_in(ids.iter().copied()))
}

/// After the `attempts`th failed round: 1 s, 2 s, 4 s, … up to [`MAX_RETRY_DELAY`].
fn retry_delay(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    (Duration::from_secs(1) * 2u32.pow(doublings)).min(MAX_RETRY_DELAY)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rounds_wait_longer_up_to_a_minute() {
        let delays: Vec<u64> = [1, 2, 3, 6, 7, 100]
            .into_iter()
            .map(|attempts| retry_delay(attempts).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 32, 60, 60]);
    }

    #[test]
    fn only_a_partner_that_may_change_its_mind_is_asked_again() {
        let status = |code: u16| CallError::Status {
            status: StatusCode::from_u16(code).expect("a status"),
            body: String::new(),
        };
        for code in [500, 502, 503, 408, 429] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 401, 404, 409, 422] {
            assert!(!status(code).is_transient(), "{code}");
        }
    }
}
