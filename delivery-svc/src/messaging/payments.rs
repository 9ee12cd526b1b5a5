//! The payment consumer: `payment.succeeded` messages from the `payments` exchange, each
//! handled by [`Deliveries::ingest_payment`] — the same call as `POST
//! /v1/payment-events` — and settled after its writes have committed or failed.
//!
//! - handled (a delivery order created, nothing to deliver, or a duplicate that the inbox
//!   recognised): acknowledged;
//! - malformed or invalid: dead-lettered with the reason, logged and counted; the queue
//!   moves on;
//! - a transient failure (the database unreachable, a conflict): put back after a pause, to
//!   be handled again — by then the inbox makes a handling that did commit a no-op.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;

use super::bus::Received;
use super::workers::WorkerStats;
use crate::commands::Deliveries;
use crate::domain::{PaymentSucceeded, Principal, PrincipalRole, RequestContext, ServiceError};

/// The principal payment messages act as: the payment service, as a service token would.
pub const PAYMENT_SERVICE: &str = "payment-service";

/// How long a message that failed for a transient reason is held before it goes back to
/// the queue, so that a database outage does not become a redelivery loop.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What to do with a message.
#[derive(Debug)]
enum Verdict {
    Ack,
    DeadLetter(String),
    Retry(ServiceError),
}

/// Handles one payment message and settles it.
pub async fn handle<M: Received>(message: M, deliveries: Deliveries, stats: Arc<WorkerStats>) {
    let verdict = match serde_json::from_slice::<PaymentSucceeded>(message.body()) {
        Err(err) => Verdict::DeadLetter(format!("not a valid payment.succeeded: {err}")),
        Ok(payment) => ingest(&deliveries, payment).await,
    };
    let message_id = message.message_id().unwrap_or("-").to_owned();
    let settled = match verdict {
        Verdict::Ack => {
            stats.payments_handled.fetch_add(1, Ordering::Relaxed);
            message.ack().await
        }
        Verdict::DeadLetter(reason) => {
            let total = stats.dead_lettered.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(%message_id, %reason, dead_lettered_total = total, "payment message dead-lettered");
            message.dead_letter(&reason).await
        }
        Verdict::Retry(err) => {
            stats.requeued.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%message_id, error = %err, "payment message not handled; will retry");
            tokio::time::sleep(RETRY_PAUSE).await;
            message.requeue().await
        }
    };
    if let Err(err) = settled {
        // The broker redelivers an unsettled message; the inbox makes that safe.
        tracing::warn!(%message_id, error = %err, "cannot settle a payment message");
    }
}

async fn ingest(deliveries: &Deliveries, payment: PaymentSucceeded) -> Verdict {
    let ctx = RequestContext {
        principal: Principal {
            role: PrincipalRole::Service,
            subject: PAYMENT_SERVICE.to_owned(),
            customer_id: None,
            partner_id: None,
        },
        request_id: format!("message:{}", payment.event_id),
        idempotency: None,
        now: Utc::now(),
    };
    match deliveries.ingest_payment(payment, &ctx).await {
        Ok(_outcome) => Verdict::Ack,
        Err(err) => verdict_on(err),
    }
}

/// Whether trying again could help.
fn verdict_on(err: ServiceError) -> Verdict {
    match err {
        ServiceError::Conflict { .. } | ServiceError::Busy(_) => Verdict::Retry(err),
        // Our own fault (a corrupt record, a bug): parked with the reason for an operator
        // to replay once fixed, rather than retried forever.
        ServiceError::Database(_)
        | ServiceError::NotFound(_)
        | ServiceError::Forbidden(_)
        | ServiceError::Transition(_)
        | ServiceError::IdempotencyKeyReused(_)
        | ServiceError::Invalid(_) => Verdict::DeadLetter(err.to_string()),
    }
}
