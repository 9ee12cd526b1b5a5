//! What the messaging tests share: a service with its workers on a bus (in-process, or
//! RabbitMQ under a namespace of the test's own), a plain lapin client playing the payment
//! service and order management, and polling with a deadline.
//!
//! RabbitMQ tests read `TEST_AMQP_URL` and skip with a printed reason when it is unset;
//! with `REQUIRE_SERVICES` set (CI), that fails the test instead.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use delivery_core::DeliveryState;
use delivery_svc::app::App;
use delivery_svc::config::Config;
use delivery_svc::domain::PrincipalRole;
use delivery_svc::entity::outbox;
use delivery_svc::messaging::{Topology, Workers};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::common::{
    TestApp, config, generous_limits, maker, new_id, on_every_database, path_to, payment_event,
    principal,
};

/// How long anything asynchronous may take before a test fails. Generous: the broker
/// restart test waits for RabbitMQ to come back.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// `TEST_AMQP_URL`, or `None` after printing why the test skips.
pub fn amqp_url() -> Option<String> {
    match std::env::var("TEST_AMQP_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("REQUIRE_SERVICES").is_none(),
                "REQUIRE_SERVICES is set but TEST_AMQP_URL is not"
            );
            println!("skipping RabbitMQ: TEST_AMQP_URL not set");
            None
        }
    }
}

/// Polls `probe` until it yields a value, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A service configuration on `database_url` and, if given, RabbitMQ under `namespace`.
pub fn messaging_config(database_url: String, amqp_url: Option<&str>, namespace: &str) -> Config {
    let mut config = config(database_url, generous_limits());
    config.messaging.amqp_url = amqp_url.map(str::to_owned);
    config.messaging.amqp_namespace = namespace.to_owned();
    config.messaging.relay_poll_ms = NonZeroU64::new(200).expect("not zero");
    config
}

/// The routing keys of a delivery's life from payment to confirmation, in order.
pub const CONFIRMATION_KEYS: [&str; 4] = [
    "delivery.created",
    "delivery.picked_up",
    "delivery.delivered",
    "delivery.delivery_confirmed",
];

/// A namespace no other test uses.
pub fn new_namespace() -> String {
    format!("test-{}.", uuid::Uuid::new_v4().simple())
}

/// The service, its HTTP surface and (once started) its workers.
pub struct Service {
    pub app: App,
    pub http: TestApp,
    pub workers: Option<Workers>,
}

impl Service {
    pub async fn start(config: Config) -> Service {
        let jwt = config.jwt.clone();
        let app = App::new(config).await.expect("the service starts");
        let http = TestApp::of(&app, &jwt);
        Service {
            app,
            http,
            workers: None,
        }
    }

    pub fn start_workers(&mut self) {
        self.workers = Some(self.app.start_workers());
    }

    pub fn workers(&self) -> &Workers {
        self.workers.as_ref().expect("workers started")
    }

    pub async fn stop(self) {
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
        self.http.close().await;
    }

    /// The delivery orders of `ordering_id`, as the read side shows them.
    pub async fn deliveries_of(&self, ordering_id: &str) -> Vec<Value> {
        let reply = self
            .http
            .get(
                &format!("/v1/deliveries?ordering_id={ordering_id}"),
                &principal(PrincipalRole::Admin),
            )
            .await;
        reply.assert_status(poem::http::StatusCode::OK);
        reply.json["items"].as_array().expect("items").clone()
    }

    /// Waits for the one delivery order of `ordering_id`; returns its id.
    pub async fn delivery_of(&self, ordering_id: &str) -> String {
        let items = eventually("a delivery order", async || {
            Some(self.deliveries_of(ordering_id).await).filter(|items| !items.is_empty())
        })
        .await;
        assert_eq!(items.len(), 1, "{items:?}");
        items[0]["id"].as_str().expect("an id").to_owned()
    }

    /// A payment for a new ordering (a physical book and an e-book) sent through
    /// `publish`; its delivery order moved to DELIVERY_CONFIRMED over HTTP. Returns the
    /// ordering and the delivery.
    pub async fn pay_and_confirm(&self, publish: impl AsyncFn(&[u8])) -> (String, String) {
        let ordering = new_id("ord");
        let payment = payment_event(&ordering, &["PHYSICAL", "EBOOK"]);
        publish(payment.to_string().as_bytes()).await;
        let id = self.delivery_of(&ordering).await;
        for transition in path_to(DeliveryState::DeliveryConfirmed) {
            self.http
                .transition(&id, transition, &principal(maker(transition)))
                .await
                .assert_status(poem::http::StatusCode::OK);
        }
        (ordering, id)
    }

    /// Sends through `publish` the same payment twice, `malformed`, an e-book-only payment
    /// and a good one; checks that they made one delivery order, none, a dead letter, and
    /// one, and that nothing was retried.
    pub async fn check_mixed_payments(&self, malformed: &[u8], publish: impl AsyncFn(&[u8])) {
        let twice = new_id("ord");
        let payment = payment_event(&twice, &["PHYSICAL"]).to_string();
        publish(payment.as_bytes()).await;
        publish(payment.as_bytes()).await;
        publish(malformed).await;
        let ebooks = new_id("ord");
        publish(payment_event(&ebooks, &["EBOOK"]).to_string().as_bytes()).await;
        let after = new_id("ord");
        publish(payment_event(&after, &["PHYSICAL"]).to_string().as_bytes()).await;

        self.delivery_of(&after).await;
        let stats = self.workers().stats();
        eventually("every good message handled", async || {
            (stats.payments_handled.load(Ordering::Relaxed) == 4).then_some(())
        })
        .await;
        assert_eq!(self.deliveries_of(&twice).await.len(), 1);
        assert!(self.deliveries_of(&ebooks).await.is_empty());
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
        assert_eq!(stats.requeued.load(Ordering::Relaxed), 0);
    }

    /// The event ids of every outbox row, and how many are not published yet.
    pub async fn outbox(&self) -> (HashSet<String>, u64) {
        let db = self.app.deliveries().db();
        let all = outbox::Entity::find().all(db).await.expect("outbox rows");
        let pending = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .count(db)
            .await
            .expect("a count");
        let ids = all.iter().map(|row| row.event_id.to_string()).collect();
        (ids, pending)
    }

    /// Waits until every outbox row is published.
    pub async fn all_published(&self) -> HashSet<String> {
        eventually("the outbox to drain", async || {
            let (ids, pending) = self.outbox().await;
            (pending == 0).then_some(ids)
        })
        .await
    }
}

/// A plain AMQP client, as the payment service or order management would use.
pub struct Client {
    pub connection: Connection,
    pub channel: Channel,
}

impl Client {
    /// Connects, retrying until the broker answers (it may be restarting).
    pub async fn connect(url: &str) -> Client {
        eventually("RabbitMQ to accept a connection", async || {
            let connection = Connection::connect(url, ConnectionProperties::default())
                .await
                .ok()?;
            let channel = connection.create_channel().await.ok()?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .ok()?;
            Some(Client {
                connection,
                channel,
            })
        })
        .await
    }

    /// Declares a durable topic exchange, as its owner would.
    pub async fn declare_exchange(&self, exchange: &str) {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        self.channel
            .exchange_declare(
                exchange,
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await
            .expect("an exchange");
    }

    /// Publishes `body` as the payment service does, once a queue is bound to take it
    /// (`mandatory`, retried while the broker returns it).
    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8]) {
        self.declare_exchange(exchange).await;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        eventually("a queue bound to take the message", async || {
            let confirmation = self
                .channel
                .basic_publish(exchange, routing_key, options, body, properties.clone())
                .await
                .expect("published")
                .await
                .expect("confirmed");
            matches!(confirmation, Confirmation::Ack(None)).then_some(())
        })
        .await;
    }

    /// Declares order management's durable queue, bound to `exchange` for `pattern`.
    pub async fn bind_queue(&self, queue: &str, exchange: &str, pattern: &str) {
        self.declare_exchange(exchange).await;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(queue, options, arguments)
            .await
            .expect("a queue");
        self.channel
            .queue_bind(
                queue,
                exchange,
                pattern,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("a binding");
    }

    /// Takes messages from `queue` until `done` says the collection is complete.
    pub async fn receive_until(
        &self,
        queue: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let mut consumer = self
            .channel
            .basic_consume(
                queue,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("a consumer");
        let mut received = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !done(&received) {
            let delivery = tokio::time::timeout_at(deadline, consumer.next())
                .await
                .unwrap_or_else(|_| panic!("timed out; received {received:?}"))
                .expect("the consumer is open")
                .expect("a delivery");
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("acked");
            received.push(Received::of(&delivery));
        }
        received
    }

    /// How many messages `queue` holds.
    pub async fn depth(&self, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(queue, options, FieldTable::default())
            .await
            .expect("the queue exists")
            .message_count()
    }

    /// Deletes the test's queues and exchanges.
    pub async fn delete(&self, queues: &[&str], exchanges: &[&str]) {
        for queue in queues {
            self.channel
                .queue_delete(queue, QueueDeleteOptions::default())
                .await
                .expect("queue deleted");
        }
        for exchange in exchanges {
            self.channel
                .exchange_delete(exchange, ExchangeDeleteOptions::default())
                .await
                .expect("exchange deleted");
        }
    }
}

/// A test's corner of the broker: its names, and order management's queue bound to
/// `delivery.events` for `delivery.#`.
pub struct Broker {
    pub url: String,
    pub namespace: String,
    pub topology: Topology,
    pub order_management: String,
}

impl Broker {
    pub async fn open(url: String) -> Broker {
        let namespace = new_namespace();
        let config = messaging_config(String::new(), Some(&url), &namespace);
        let topology = Topology::new(&config.messaging);
        let order_management = format!("{namespace}order-management");
        Client::connect(&url)
            .await
            .bind_queue(
                &order_management,
                &topology.delivery_events_exchange,
                "delivery.#",
            )
            .await;
        Broker {
            url,
            namespace,
            topology,
            order_management,
        }
    }

    /// A client of its own: connections do not outlive a broker restart.
    pub async fn client(&self) -> Client {
        Client::connect(&self.url).await
    }

    /// A service on `database_url` using this corner of the broker.
    pub async fn service(&self, database_url: String) -> Service {
        Service::start(messaging_config(
            database_url,
            Some(&self.url),
            &self.namespace,
        ))
        .await
    }

    pub async fn publish_payment(&self, body: &[u8]) {
        self.client()
            .await
            .publish(&self.topology.payments_exchange, "payment.succeeded", body)
            .await;
    }

    /// Order management's messages until every id of `expected` has come.
    pub async fn receive_all(&self, expected: &HashSet<String>) -> Vec<Received> {
        self.client()
            .await
            .receive_until(&self.order_management, |received| {
                let seen: HashSet<&str> = received
                    .iter()
                    .filter_map(|message| message.message_id.as_deref())
                    .collect();
                expected.iter().all(|id| seen.contains(id.as_str()))
            })
            .await
    }

    pub async fn delete(self) {
        let payments = &self.topology.payments_queue;
        let dead = payments.dead_letters();
        self.client()
            .await
            .delete(
                &[&self.order_management, &payments.name, &dead.name],
                &[
                    &self.topology.payments_exchange,
                    &self.topology.delivery_events_exchange,
                    &dead.exchange,
                ],
            )
            .await;
    }
}

/// Runs `test` on every database with a corner of the broker, unless RabbitMQ is not
/// configured.
pub async fn with_rabbitmq(test: impl AsyncFn(String, &Broker)) {
    let Some(url) = amqp_url() else {
        return;
    };
    on_every_database(async |database_url| {
        let broker = Broker::open(url.clone()).await;
        test(database_url, &broker).await;
        broker.delete().await;
    })
    .await;
}

/// A message as a test looks at it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

/// Checks what order management received of [`Service::pay_and_confirm`]: the four
/// events in order, each published event once, the last one complete.
pub fn check_confirmation(
    received: &[Received],
    published: &HashSet<String>,
    ordering: &str,
    id: &str,
) {
    let keys: Vec<&str> = received.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(keys, CONFIRMATION_KEYS);
    let ids: HashSet<String> = received
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(&ids, published, "each event exactly once");
    let confirmed = &received[3].body;
    assert_eq!(confirmed["delivery_id"], id);
    assert_eq!(confirmed["ordering_id"], ordering);
    assert_eq!(confirmed["from"], "DELIVERED");
    assert_eq!(confirmed["to"], "DELIVERY_CONFIRMED");
    assert_eq!(confirmed["seq"], 4);
    assert_eq!(
        received[3].message_id.as_deref(),
        confirmed["event_id"].as_str()
    );
}

impl Received {
    fn of(delivery: &lapin::message::Delivery) -> Received {
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .filter_map(|(key, value)| match value {
                        AMQPValue::LongString(text) => Some((key.to_string(), text.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Received {
            routing_key: delivery.routing_key.to_string(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string),
            body: serde_json::from_slice(&delivery.data).unwrap_or(Value::Null),
            headers,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}
