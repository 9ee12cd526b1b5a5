//! A booked delivery's journey, reported to the service as signed Standard Webhooks
//! (`delivery.picked_up`, then `delivery.delivered` or `delivery.failed`), each sent until
//! the service answers 2xx, with backoff, as Standard Webhooks senders retry. The same
//! `webhook-id` is kept on every retry and re-signed with a fresh timestamp.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::Utc;
use serde_json::{Value, json};
use standardwebhooks::Webhook;

use crate::shipments::{Fate, Ledger, Shipment};
use crate::{Misbehaviour, SimulatorConfig, SimulatorError};

/// How long one webhook request may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a report the service refused: from 20 ms doubling to 2 s, for about a minute.
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(2);
const RETRIES: usize = 40;
/// In reorder mode, how long the pick-up report waits after the last one has gone out.
const REORDER_GAP: Duration = Duration::from_millis(5);

/// Sends the reports of every booked delivery.
pub struct Reporter {
    partner: String,
    webhook_url: String,
    signer: Webhook,
    client: reqwest::Client,
    pickup_delay: Duration,
    delivery_delay: Duration,
    misbehaviour: Misbehaviour,
    ledger: Arc<Ledger>,
}

/// A report could not be sent, or the service did not take it.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("signing: {0}")]
    Sign(#[from] standardwebhooks::WebhookError),
    #[error("sending: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the service answered {0}")]
    Refused(reqwest::StatusCode),
}

// By hand: the signer holds the secret and has no Debug.
impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("partner", &self.partner)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub(crate) fn new(
        config: &SimulatorConfig,
        ledger: Arc<Ledger>,
    ) -> Result<Reporter, SimulatorError> {
        Ok(Reporter {
            partner: config.partner.clone(),
            webhook_url: config.webhook_url.clone(),
            signer: Webhook::new(&config.webhook_secret)?,
            client: reqwest::Client::builder()
                .timeout(REPORT_TIMEOUT)
                .build()
                .map_err(|err| SimulatorError::Listen(std::io::Error::other(err)))?,
            pickup_delay: config.pickup_delay,
            delivery_delay: config.delivery_delay,
            misbehaviour: config.misbehaviour,
            ledger,
        })
    }

    /// Plays `shipment`'s journey in a task of its own.
    pub(crate) fn spawn_journey(self: &Arc<Self>, shipment: &Shipment) {
        let reporter = self.clone();
        let (delivery_id, fate) = (shipment.external_id.clone(), shipment.fate);
        tokio::spawn(async move { reporter.journey(&delivery_id, fate).await });
    }

    async fn journey(&self, delivery_id: &str, fate: Fate) {
        let number = format!(
            "SIM-{}",
            uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase()
        );
        let picked_up = self.report(
            "delivery.picked_up",
            delivery_id,
            json!({ "partner_order_number": number }),
        );
        tokio::time::sleep(self.pickup_delay).await;
        if !self.misbehaviour.reorder {
            self.send(delivery_id, &picked_up).await;
        }
        tokio::time::sleep(self.delivery_delay).await;
        let last = match fate {
            Fate::Delivered => self.report(
                "delivery.delivered",
                delivery_id,
                json!({ "delivered_at": Utc::now() }),
            ),
            Fate::Failed(reason) => self.report(
                "delivery.failed",
                delivery_id,
                json!({ "status": reason.to_string(), "message": "Simulated failure." }),
            ),
        };
        if self.misbehaviour.reorder {
            // The last report goes first; the service refuses it (409) until the pick-up,
            // sent just after, has arrived, and the retry then applies it.
            tokio::join!(self.send(delivery_id, &last), async {
                tokio::time::sleep(REORDER_GAP).await;
                self.send(delivery_id, &picked_up).await;
            });
        } else {
            self.send(delivery_id, &last).await;
        }
    }

    /// A report in the Standard Webhooks payload form, under a `webhook-id` of its own.
    fn report(&self, kind: &str, delivery_id: &str, mut data: Value) -> (String, String) {
        data["partner"] = json!(self.partner);
        data["delivery_id"] = json!(delivery_id);
        let body = json!({ "type": kind, "timestamp": Utc::now(), "data": data });
        (
            format!("msg_{}", uuid::Uuid::new_v4().simple()),
            body.to_string(),
        )
    }

    /// Sends a report until the service takes it (twice when duplicating), and records
    /// the result in the ledger.
    async fn send(&self, delivery_id: &str, (id, body): &(String, String)) {
        let times = if self.misbehaviour.duplicates { 2 } else { 1 };
        for _ in 0..times {
            let sent = (|| self.post(id, body))
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(RETRY_MIN)
                        .with_max_delay(RETRY_MAX)
                        .with_max_times(RETRIES)
                        .with_jitter(),
                )
                .await;
            if let Err(err) = &sent {
                tracing::warn!(webhook_id = %id, error = %err, "report abandoned");
            }
            self.ledger.report_done(delivery_id, sent.is_ok());
        }
    }

    async fn post(&self, id: &str, body: &str) -> Result<(), SendError> {
        let timestamp = Utc::now().timestamp();
        let signature = self.signer.sign(id, timestamp, body.as_bytes())?;
        let answer = self
            .client
            .post(&self.webhook_url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(SendError::Refused(answer.status()))
        }
    }
}
