//! Messaging: payment events in, delivery events out (docs/adr/0002-messaging.md).
//!
//! - [`bus`]: the seam, [`EventBus`](bus::EventBus) — publish with a confirm, consume with
//!   manual settlement — and its two backends: [`amqp`] (RabbitMQ, when `AMQP_URL` is set)
//!   and [`in_process`] (the embedded default).
//! - [`relay`]: the outbox relay, `outbox` rows → exchange `delivery.events`.
//! - [`payments`]: the payment consumer, exchange `payments` → `Deliveries::ingest_payment`.
//! - [`workers`]: running them — the consume loop that resubscribes, backoff, shutdown.
//!
//! [`Bus`] picks the backend from the configuration and [`Bus::spawn_workers`] starts the
//! workers of a process; [`Topology`] names every exchange and queue.

pub mod amqp;
pub mod bus;
pub mod in_process;
pub mod payments;
pub mod relay;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use self::amqp::AmqpBus;
use self::bus::{EventBus, QueueSpec, Received};
use self::in_process::InProcessBus;
use self::relay::Relay;
use self::workers::{Shutdown, StopSignal, WorkerStats, consume, shutdown_pair};
use crate::commands::Deliveries;
use crate::config::MessagingConfig;

/// The names of the exchanges and queues, each behind the configured namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Topic exchange the payment service publishes to.
    pub payments_exchange: String,
    /// Topic exchange of our events, routing key `delivery.<state>`.
    pub delivery_events_exchange: String,
    /// Our queue of `payment.succeeded`, with its dead-letter queue.
    pub payments_queue: QueueSpec,
}

impl Topology {
    pub fn new(config: &MessagingConfig) -> Topology {
        let ns = &config.amqp_namespace;
        let payments_exchange = format!("{ns}payments");
        Topology {
            payments_queue: QueueSpec {
                name: format!("{ns}delivery-svc.payment-succeeded"),
                exchange: payments_exchange.clone(),
                bindings: vec!["payment.succeeded".into()],
                prefetch: config.amqp_prefetch.get(),
                dead_letter: true,
                transient: false,
            },
            payments_exchange,
            delivery_events_exchange: format!("{ns}delivery.events"),
        }
    }

    /// The in-process stand-in for order management: every delivery event, logged one at
    /// a time (a prefetch of one), so that the log shows a delivery's events in the order
    /// they were published, as order management's consumer receives them.
    fn event_log_queue(&self) -> QueueSpec {
        QueueSpec {
            name: format!("{}.event-log", self.delivery_events_exchange),
            exchange: self.delivery_events_exchange.clone(),
            bindings: vec!["delivery.#".into()],
            prefetch: 1,
            dead_letter: false,
            transient: false,
        }
    }

    /// The queue of one API instance's live updates (`instance` makes it its own): every
    /// delivery event, gone when the instance stops.
    pub fn live_queue(&self, instance: &str) -> QueueSpec {
        QueueSpec {
            name: format!("{}.live.{instance}", self.delivery_events_exchange),
            exchange: self.delivery_events_exchange.clone(),
            bindings: vec!["delivery.#".into()],
            prefetch: self.payments_queue.prefetch,
            dead_letter: false,
            transient: true,
        }
    }
}

/// The event bus a process uses.
#[derive(Debug, Clone)]
pub enum Bus {
    RabbitMq(AmqpBus),
    InProcess(Arc<InProcessBus>),
}

impl Bus {
    /// RabbitMQ when `AMQP_URL` is set, else a bus of this process's own. Connects lazily.
    pub fn from_config(config: &MessagingConfig) -> Bus {
        match &config.amqp_url {
            Some(url) => Bus::RabbitMq(AmqpBus::new(url.clone(), connection_name(config))),
            None => Bus::InProcess(Arc::default()),
        }
    }

    /// Starts the relay and the payment consumer; on the in-process bus also a consumer
    /// that logs every delivery event (target `delivery_events`), which stands in for
    /// order management: without a queue bound, events would be unroutable.
    pub fn spawn_workers(&self, deliveries: &Deliveries, config: &MessagingConfig) -> Workers {
        let topology = Topology::new(config);
        let mut workers = Workers::new();
        match self {
            Bus::RabbitMq(bus) => workers.spawn(Arc::new(bus.clone()), deliveries, config),
            Bus::InProcess(bus) => {
                workers.spawn(bus.clone(), deliveries, config);
                let shutdown = workers.shutdown.clone();
                workers.tasks.spawn(consume(
                    bus.clone(),
                    topology.event_log_queue(),
                    shutdown,
                    log_delivery_event,
                ));
            }
        }
        workers
    }
}

/// The connection name the broker shows: which process, which namespace.
fn connection_name(config: &MessagingConfig) -> String {
    format!(
        "delivery-svc pid {} {}",
        std::process::id(),
        config.amqp_namespace
    )
}

async fn log_delivery_event<M: Received>(message: M) {
    tracing::info!(
        target: "delivery_events",
        routing_key = message.routing_key(),
        message_id = message.message_id().unwrap_or("-"),
        body = %String::from_utf8_lossy(message.body()),
        "delivery event"
    );
    if let Err(err) = message.ack().await {
        tracing::debug!(error = %err, "event log ack");
    }
}

/// The running workers of a process.
#[derive(Debug)]
pub struct Workers {
    stop: StopSignal,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
    stats: Arc<WorkerStats>,
}

impl Workers {
    fn new() -> Workers {
        let (stop, shutdown) = shutdown_pair();
        Workers {
            stop,
            shutdown,
            tasks: JoinSet::new(),
            stats: Arc::default(),
        }
    }

    fn spawn<B: EventBus>(
        &mut self,
        bus: Arc<B>,
        deliveries: &Deliveries,
        config: &MessagingConfig,
    ) {
        let topology = Topology::new(config);
        let relay = Relay {
            bus: bus.clone(),
            db: deliveries.db().clone(),
            connections: deliveries.connections().clone(),
            exchange: topology.delivery_events_exchange.clone(),
            batch: config.relay_batch.get(),
            poll: Duration::from_millis(config.relay_poll_ms.get()),
            linger: Duration::from_millis(config.relay_linger_ms),
            wake: deliveries.outbox_written(),
            stats: self.stats.clone(),
        };
        self.tasks.spawn(relay.run(self.shutdown.clone()));
        let (deliveries, stats) = (deliveries.clone(), self.stats.clone());
        self.tasks.spawn(consume(
            bus,
            topology.payments_queue,
            self.shutdown.clone(),
            move |message| payments::handle(message, deliveries.clone(), stats.clone()),
        ));
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Stops taking messages, settles those in flight, finishes the relay's round.
    pub async fn stop(mut self) {
        self.stop.stop();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a worker failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::messaging::bus::{Outgoing, Subscription as _};

    /// Earlier messages take longer to handle than later ones, so that any two handled at
    /// once would finish out of order.
    #[tokio::test]
    async fn the_event_log_handles_events_in_the_order_they_were_published() {
        let topology = Topology::new(&MessagingConfig::default());
        let queue = topology.event_log_queue();
        let bus = Arc::new(InProcessBus::default());
        bus.subscribe(&queue).await.expect("declared").close().await;
        let count = 20_u64;
        for seq in 0..count {
            let event = Outgoing {
                exchange: queue.exchange.clone(),
                routing_key: "delivery.picked_up".into(),
                message_id: seq.to_string(),
                body: b"{}".to_vec(),
            };
            bus.publish(&event).await.expect("routed to the event log");
        }
        let handled = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = shutdown_pair();
        let consumer = tokio::spawn(consume(bus, queue, shutdown, {
            let handled = handled.clone();
            move |message| {
                let handled = handled.clone();
                async move {
                    let seq: u64 = message
                        .message_id()
                        .expect("an id")
                        .parse()
                        .expect("a number");
                    tokio::time::sleep(Duration::from_millis(count - seq)).await;
                    handled.lock().expect("not poisoned").push(seq);
                    message.ack().await.expect("acked");
                }
            }
        }));
        let all_handled = async {
            while handled.lock().expect("not poisoned").len() < count as usize {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all_handled)
            .await
            .expect("every event handled within 10 s");
        stop.stop();
        consumer.await.expect("the consumer stops");
        assert_eq!(
            *handled.lock().expect("not poisoned"),
            (0..count).collect::<Vec<_>>()
        );
    }
}
