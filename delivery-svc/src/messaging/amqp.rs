//! The event bus on RabbitMQ (lapin).
//!
//! One connection per process, opened on first use and opened again after it is lost
//! (lapin 2 does not recover connections itself; the workers retry with a backoff and
//! come back through here). Publishing uses one channel in confirm mode: every message is
//! persistent and `mandatory`, and counts as published only on the broker's ack without a
//! return. Each consumer has its own channel with a prefetch limit. Queues are durable
//! quorum queues; a consumer's queue dead-letters into `<queue>.dlx` → `<queue>.dlq`. A
//! transient queue is classic, exclusive and auto-delete: it dies with its consumer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::bus::{
    BusError, EventBus, Outgoing, PublishError, QueueSpec, REASON_HEADER, Received, Subscription,
};

/// How long the broker may take to confirm a publish before the publisher gives up on it
/// (and, not knowing, publishes it again later: consumers dedupe by message id).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take (a broker starting up may accept the socket and
/// not answer yet).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// AMQP delivery mode 2: written to disk by the broker.
const PERSISTENT: u8 = 2;

/// RabbitMQ, reached at one URL. Cheap to clone: clones share the connection.
#[derive(Debug, Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    /// What the broker's management tools show for our connection.
    connection_name: String,
    connection: Mutex<Option<Arc<Connection>>>,
    publisher: Mutex<Option<Publisher>>,
}

/// The confirm-mode channel and the exchanges declared on it.
#[derive(Debug)]
struct Publisher {
    channel: Channel,
    declared: HashSet<String>,
}

impl AmqpBus {
    /// A bus on `url`; nothing is connected until it is used.
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>) -> Self {
        AmqpBus {
            inner: Arc::new(Inner {
                url: url.into(),
                connection_name: connection_name.into(),
                connection: Mutex::new(None),
                publisher: Mutex::new(None),
            }),
        }
    }

    /// The open connection, opening one when there is none or it was lost.
    async fn connection(&self) -> Result<Arc<Connection>, BusError> {
        let mut connection = self.inner.connection.lock().await;
        if let Some(open) = connection.as_ref()
            && open.status().connected()
        {
            return Ok(open.clone());
        }
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(self.inner.connection_name.clone()));
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.inner.url, properties),
        )
        .await
        .map_err(|_| BusError::ConnectTimeout(CONNECT_TIMEOUT))??;
        let opened = Arc::new(opened);
        tracing::info!(name = %self.inner.connection_name, "connected to RabbitMQ");
        *connection = Some(opened.clone());
        Ok(opened)
    }

    /// The publishing channel, with `exchange` declared on it.
    async fn publisher(&self, exchange: &str) -> Result<Channel, BusError> {
        let mut publisher = self.inner.publisher.lock().await;
        // Taken out while in use: if anything below fails, the next publish starts afresh.
        let mut open = match publisher.take() {
            Some(open) if open.channel.status().connected() => open,
            _ => {
                let channel = self.connection().await?.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Publisher {
                    channel,
                    declared: HashSet::new(),
                }
            }
        };
        if !open.declared.contains(exchange) {
            declare_topic_exchange(&open.channel, exchange).await?;
            open.declared.insert(exchange.to_owned());
        }
        let channel = open.channel.clone();
        *publisher = Some(open);
        Ok(channel)
    }

    /// Publishes and waits for the broker's verdict.
    async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.publisher(exchange).await?;
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let confirm = channel
            .basic_publish(exchange, routing_key, options, body, properties)
            .await
            .map_err(BusError::from)?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| BusError::ConfirmTimeout(CONFIRM_TIMEOUT))?
            .map_err(BusError::from)?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            }),
            // NotRequested cannot happen on a confirm-mode channel; not knowing, retry.
            Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

async fn declare_topic_exchange(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name, ExchangeKind::Topic, options, FieldTable::default())
        .await
}

/// Declares a durable quorum queue, dead-lettering into `dead_letter_exchange` if given.
async fn declare_quorum_queue(
    channel: &Channel,
    name: &str,
    dead_letter_exchange: Option<&str>,
) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if let Some(exchange) = dead_letter_exchange {
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(exchange.into()),
        );
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name, options, arguments).await?;
    Ok(())
}

/// Declares a queue of this connection's own, deleted when its consumer goes: classic,
/// since a quorum queue cannot be exclusive.
async fn declare_transient_queue(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let options = QueueDeclareOptions {
        durable: false,
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name, options, FieldTable::default())
        .await?;
    Ok(())
}

/// Declares `spec.exchange`, the queue and its bindings.
async fn declare_bound_queue(
    channel: &Channel,
    spec: &QueueSpec,
    dead_letter_exchange: Option<&str>,
) -> Result<(), lapin::Error> {
    declare_topic_exchange(channel, &spec.exchange).await?;
    if spec.transient {
        declare_transient_queue(channel, &spec.name).await?;
    } else {
        declare_quorum_queue(channel, &spec.name, dead_letter_exchange).await?;
    }
    for pattern in &spec.bindings {
        channel
            .queue_bind(
                &spec.name,
                &spec.exchange,
                pattern,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

impl EventBus for AmqpBus {
    type Subscription = AmqpSubscription;

    async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(message.message_id.clone()))
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT);
        self.publish_with(
            &message.exchange,
            &message.routing_key,
            &message.body,
            properties,
        )
        .await
    }

    async fn subscribe(&self, spec: &QueueSpec) -> Result<AmqpSubscription, BusError> {
        let channel = self.connection().await?.create_channel().await?;
        channel
            .basic_qos(spec.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letter_exchange = spec.dead_letter.then(|| spec.dead_letter_exchange());
        if spec.dead_letter {
            declare_bound_queue(&channel, &spec.dead_letters(), None).await?;
        }
        declare_bound_queue(&channel, spec, dead_letter_exchange.as_deref()).await?;
        let consumer = channel
            .basic_consume(
                &spec.name,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(AmqpSubscription {
            channel,
            consumer,
            bus: self.clone(),
            dead_letter_exchange,
        })
    }
}

/// A consumer on its own channel.
#[derive(Debug)]
pub struct AmqpSubscription {
    channel: Channel,
    consumer: lapin::Consumer,
    bus: AmqpBus,
    dead_letter_exchange: Option<String>,
}

impl Subscription for AmqpSubscription {
    type Message = AmqpMessage;

    async fn next(&mut self) -> Option<AmqpMessage> {
        match self.consumer.next().await? {
            Ok(delivery) => Some(AmqpMessage {
                delivery,
                bus: self.bus.clone(),
                dead_letter_exchange: self.dead_letter_exchange.clone(),
            }),
            Err(err) => {
                tracing::warn!(error = %err, "consumer stopped");
                None
            }
        }
    }

    async fn close(self) {
        // Closing the channel returns what was delivered but not taken to the queue.
        if let Err(err) = self.channel.close(200, "consumer stopping").await {
            tracing::debug!(error = %err, "closing a consumer channel");
        }
    }
}

/// A delivery from RabbitMQ.
#[derive(Debug)]
pub struct AmqpMessage {
    delivery: lapin::message::Delivery,
    bus: AmqpBus,
    dead_letter_exchange: Option<String>,
}

impl Received for AmqpMessage {
    fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    fn message_id(&self) -> Option<&str> {
        self.delivery
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str)
    }

    fn routing_key(&self) -> &str {
        self.delivery.routing_key.as_str()
    }

    async fn ack(self) -> Result<(), BusError> {
        Ok(self.delivery.acker.ack(BasicAckOptions::default()).await?)
    }

    async fn requeue(self) -> Result<(), BusError> {
        let options = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        Ok(self.delivery.acker.nack(options).await?)
    }

    /// Publishes a copy with the reason to the dead-letter exchange, then acks. If that
    /// publish fails, rejects instead: the queue's own dead-lettering moves it (with the
    /// broker's `x-death` header, without our reason), so it is neither lost nor retried.
    async fn dead_letter(self, reason: &str) -> Result<(), BusError> {
        if let Some(exchange) = &self.dead_letter_exchange {
            let mut headers = self
                .delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default();
            headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
            let properties = self.delivery.properties.clone().with_headers(headers);
            let routing_key = self.delivery.routing_key.as_str();
            match self
                .bus
                .publish_with(exchange, routing_key, &self.delivery.data, properties)
                .await
            {
                Ok(()) => return self.ack().await,
                Err(err) => tracing::warn!(error = %err, "cannot publish a dead letter; rejecting"),
            }
        }
        let options = BasicRejectOptions { requeue: false };
        Ok(self.delivery.acker.reject(options).await?)
    }
}
