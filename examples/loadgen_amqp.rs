//! The load generator's RabbitMQ side (`loadgen --amqp`): publishes the payment service's
//! `payment.succeeded` messages and listens on `delivery.events` the way order management
//! does, timing each event from the state change that made it to its arrival here.
//!
//! Every name lives under a namespace of the run's own (the server gets it as
//! `AMQP_NAMESPACE`), so runs do not share queues; [`Rabbit::clean_up`] deletes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use super::amqp;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The names delivery-svc uses under a namespace (delivery-svc's `messaging::Topology`).
#[derive(Debug, Clone)]
struct Names {
    payments_exchange: String,
    payments_queue: String,
    events_exchange: String,
}

impl Names {
    fn new(namespace: &str) -> Names {
        Names {
            payments_exchange: format!("{namespace}payments"),
            payments_queue: format!("{namespace}delivery-svc.payment-succeeded"),
            events_exchange: format!("{namespace}delivery.events"),
        }
    }
}

/// The broker as the run uses it: a confirm-mode channel for payments, a consumer of every
/// delivery event.
#[derive(Debug)]
pub struct Rabbit {
    names: Names,
    /// Publishing and consuming on separate connections, so neither waits on the other.
    publishing: Connection,
    publisher: Channel,
    consuming: Connection,
    feed: Arc<Feed>,
}

/// What the consumer found, shared with the clients.
#[derive(Debug, Default)]
struct Feed {
    state: Mutex<FeedState>,
    /// Woken at every event received.
    received: Notify,
}

#[derive(Debug, Default)]
struct FeedState {
    /// Clients waiting for their delivery's creation, by ordering id.
    creations: HashMap<String, oneshot::Sender<()>>,
    /// When the client had the server's answer to a transition, by (delivery id, state
    /// reached).
    answers: HashMap<(String, String), DateTime<Utc>>,
    events: Vec<Event>,
    malformed: usize,
}

/// A delivery event as it arrived.
#[derive(Debug)]
struct Event {
    delivery_id: String,
    to: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn receive(&self, body: &[u8], received_at: DateTime<Utc>) {
        let mut state = self.lock();
        match parse_event(body, received_at) {
            Some((event, ordering_id)) => {
                if event.to == "CREATED"
                    && let Some(waiter) = state.creations.remove(&ordering_id)
                {
                    // The client may have given up (timed out); nothing to tell then.
                    let _gone = waiter.send(());
                }
                state.events.push(event);
            }
            None => state.malformed += 1,
        }
        drop(state);
        self.received.notify_waiters();
    }
}

fn parse_event(body: &[u8], received_at: DateTime<Utc>) -> Option<(Event, String)> {
    let message: Value = serde_json::from_slice(body).ok()?;
    let text = |field: &str| message[field].as_str().map(str::to_owned);
    let event = Event {
        delivery_id: text("delivery_id")?,
        to: text("to")?,
        occurred_at: text("occurred_at")?.parse().ok()?,
        received_at,
    };
    Some((event, text("ordering_id")?))
}

impl EventLatencies {
    /// Events malformed or never received.
    pub fn failures(&self) -> usize {
        self.malformed + self.expected.saturating_sub(self.received)
    }
}

impl Rabbit {
    /// Connects to `AMQP_URL` (or the local broker), declares what the run publishes to and
    /// starts consuming `delivery.#` on a queue of its own.
    pub async fn connect(namespace: &str) -> Result<Rabbit, BoxError> {
        let names = Names::new(namespace);
        let (publishing, publisher) = amqp::open(&names.payments_exchange).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let (consuming, channel) = amqp::open(&names.events_exchange).await?;
        let own = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("", own, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.name().as_str(),
                &names.events_exchange,
                "delivery.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.name().as_str(),
                "loadgen",
                no_ack,
                FieldTable::default(),
            )
            .await?;
        let feed = Arc::new(Feed::default());
        let filled = Arc::clone(&feed);
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                // Stamped first: the time to parse and record is ours, not the service's.
                let received_at = Utc::now();
                match delivery {
                    Ok(delivery) => filled.receive(&delivery.data, received_at),
                    Err(err) => {
                        eprintln!("loadgen: the delivery.events consumer stopped: {err}");
                        return;
                    }
                }
            }
        });
        Ok(Rabbit {
            names,
            publishing,
            publisher,
            consuming,
            feed,
        })
    }

    /// Waits until the server consumes its payments queue: published before, a payment
    /// would be unroutable.
    pub async fn wait_for_server(&self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        loop {
            // A passive declare of a missing queue closes its channel: a new one each time.
            let channel = self.publishing.create_channel().await?;
            let declared = channel
                .queue_declare(&self.names.payments_queue, passive, FieldTable::default())
                .await;
            if declared.is_ok_and(|queue| queue.consumer_count() > 0) {
                // Best effort: the connection's close takes it anyway.
                let _closed = channel.close(200, "found").await;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nobody consumes {} after {timeout:?}",
                    self.names.payments_queue
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers the wait for the creation of ordering `ordering_id`'s delivery; call
    /// before publishing its payment.
    pub fn creation_of(&self, ordering_id: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.feed
            .lock()
            .creations
            .insert(ordering_id.to_owned(), sender);
        receiver
    }

    /// Publishes a payment as the payment service does (persistent, mandatory) and waits
    /// for the broker's confirm.
    pub async fn publish_payment(&self, payment: &Value) -> Result<(), String> {
        let message_id = payment["event_id"].as_str().unwrap_or_default();
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let mandatory = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let confirmation = self
            .publisher
            .basic_publish(
                &self.names.payments_exchange,
                "payment.succeeded",
                mandatory,
                payment.to_string().as_bytes(),
                properties,
            )
            .await
            .map_err(|err| err.to_string())?
            .await
            .map_err(|err| err.to_string())?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err("unroutable: no queue bound".into()),
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err("the broker did not take it".into())
            }
        }
    }

    /// Notes when the client had the answer to the transition of `delivery_id` to `to`.
    pub fn answered(&self, delivery_id: &str, to: &str, at: DateTime<Utc>) {
        self.feed
            .lock()
            .answers
            .insert((delivery_id.to_owned(), to.to_owned()), at);
    }

    /// Waits until `expected` events have arrived or `timeout` has passed without one.
    pub async fn wait_for_events(&self, expected: usize, timeout: Duration) {
        loop {
            let received = self.feed.received.notified();
            if self.feed.lock().events.len() >= expected {
                return;
            }
            if tokio::time::timeout(timeout, received).await.is_err() {
                return;
            }
        }
    }

    /// What the events tell, for a run that started at `started` and expected `expected`.
    pub fn latencies(
        &self,
        started: DateTime<Utc>,
        expected: usize,
    ) -> Result<EventLatencies, BoxError> {
        let state = self.feed.lock();
        let histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
        let mut latencies = EventLatencies {
            received: state.events.len(),
            expected,
            malformed: state.malformed,
            creations: 0,
            since_occurred: histogram()?,
            since_answer: histogram()?,
            before_answer: 0,
            last_creation_secs: 0.0,
            last_event_secs: 0.0,
        };
        let secs_since_start =
            |at: DateTime<Utc>| (at - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
        for event in &state.events {
            latencies
                .since_occurred
                .saturating_record(micros(event.received_at - event.occurred_at));
            let key = (event.delivery_id.clone(), event.to.clone());
            if let Some(answered) = state.answers.get(&key) {
                let lead = event.received_at - *answered;
                if lead < chrono::Duration::zero() {
                    latencies.before_answer += 1;
                }
                latencies.since_answer.saturating_record(micros(lead));
            }
            let at = secs_since_start(event.received_at);
            latencies.last_event_secs = latencies.last_event_secs.max(at);
            if event.to == "CREATED" {
                latencies.creations += 1;
                latencies.last_creation_secs = latencies.last_creation_secs.max(at);
            }
        }
        Ok(latencies)
    }

    /// Deletes the run's durable queues and exchanges (the server must be stopped).
    pub async fn clean_up(self) {
        let Names {
            payments_exchange,
            payments_queue,
            events_exchange,
        } = &self.names;
        let dead_letters = format!("{payments_queue}.dlq");
        let dead_letter_exchange = format!("{payments_queue}.dlx");
        for queue in [payments_queue, &dead_letters] {
            if let Err(err) = self
                .publisher
                .queue_delete(queue, QueueDeleteOptions::default())
                .await
            {
                eprintln!("loadgen: cannot delete queue {queue}: {err}");
            }
        }
        for exchange in [payments_exchange, &dead_letter_exchange, events_exchange] {
            if let Err(err) = self
                .publisher
                .exchange_delete(exchange, ExchangeDeleteOptions::default())
                .await
            {
                eprintln!("loadgen: cannot delete exchange {exchange}: {err}");
            }
        }
        for connection in [&self.publishing, &self.consuming] {
            // Closing is a courtesy; the process ends next.
            let _closed = connection.close(200, "done").await;
        }
    }
}

/// Microseconds, at least 1 (the histograms start there); negative counts as 1.
fn micros(elapsed: chrono::Duration) -> u64 {
    u64::try_from(elapsed.num_microseconds().unwrap_or(i64::MAX)).map_or(1, |m| m.max(1))
}

/// The delivery events' latencies and pace.
#[derive(Debug)]
pub struct EventLatencies {
    pub received: usize,
    /// One per state change the run made; fewer received is a failure.
    pub expected: usize,
    pub malformed: usize,
    /// `delivery.created` events among them.
    pub creations: usize,
    /// From the event's `occurred_at` (taken before the transaction begins) to arrival:
    /// an upper bound of commit → arrival.
    pub since_occurred: Histogram<u64>,
    /// From the client's answer to the transition (after the commit) to arrival: a lower
    /// bound; HTTP transitions only.
    pub since_answer: Histogram<u64>,
    /// Events that arrived before the HTTP answer (counted as 0 in `since_answer`).
    pub before_answer: u64,
    /// Seconds from the start of the run to the last creation, and to the last event.
    pub last_creation_secs: f64,
    pub last_event_secs: f64,
}
