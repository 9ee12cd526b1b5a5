//! The seam between the workers and a message broker: publish with a confirm, consume a
//! queue with manual settlement. [`super::amqp`] implements it on RabbitMQ,
//! [`super::in_process`] inside the process; the workers are written against the traits.

use std::future::Future;

/// A message to publish on a topic exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    /// The id consumers deduplicate by (`message_id` in AMQP terms).
    pub message_id: String,
    /// JSON.
    pub body: Vec<u8>,
}

/// A queue bound to a topic exchange, as a consumer declares it: durable, or transient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub exchange: String,
    /// Topic patterns (`payment.succeeded`, `delivery.#`).
    pub bindings: Vec<String>,
    /// Messages held unsettled at a time.
    pub prefetch: u16,
    /// Whether the queue has a dead-letter queue ([`QueueSpec::dead_letters`]).
    pub dead_letter: bool,
    /// A queue of one consumer's own that goes away with it (RabbitMQ: exclusive,
    /// auto-delete, not durable), for per-instance state such as live updates; what it
    /// held is lost then. Otherwise the queue is durable and outlives its consumers.
    pub transient: bool,
}

impl QueueSpec {
    /// Where a message rejected from this queue goes: `<name>.dlx` is the exchange,
    /// `<name>.dlq` the queue bound to it.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.name)
    }

    /// The dead-letter queue, to read what was rejected.
    pub fn dead_letters(&self) -> QueueSpec {
        QueueSpec {
            name: format!("{}.dlq", self.name),
            exchange: self.dead_letter_exchange(),
            bindings: vec!["#".into()],
            prefetch: self.prefetch,
            dead_letter: false,
            transient: false,
        }
    }
}

/// The header a dead-lettered message carries: why it was rejected.
pub const REASON_HEADER: &str = "x-rejection-reason";

/// Why a message was not published. The caller keeps it and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No queue is bound for the routing key (the broker returned a `mandatory` message).
    #[error("unroutable: no queue is bound to {exchange} for {routing_key}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker refused to take responsibility for it.
    #[error("the broker nacked the message")]
    Nacked,
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The broker is unreachable or broke the connection: reconnect and retry.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("no connection to the broker within {0:?}")]
    ConnectTimeout(std::time::Duration),
    #[error("no confirm from the broker within {0:?}")]
    ConfirmTimeout(std::time::Duration),
}

/// A message broker.
pub trait EventBus: Send + Sync + 'static {
    type Subscription: Subscription;

    /// Publishes `message` persistently and resolves when the broker has taken
    /// responsibility for it (a publisher confirm, routed to at least one queue).
    fn publish(&self, message: &Outgoing) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Declares `queue` (with its exchange, bindings and dead-letter queue) and starts
    /// consuming it.
    fn subscribe(
        &self,
        queue: &QueueSpec,
    ) -> impl Future<Output = Result<Self::Subscription, BusError>> + Send;
}

/// A queue being consumed.
pub trait Subscription: Send + 'static {
    type Message: Received;

    /// The next message; `None` when the subscription has ended (the connection was lost):
    /// subscribe again. Unsettled messages of an ended subscription go back to the queue.
    fn next(&mut self) -> impl Future<Output = Option<Self::Message>> + Send;

    /// Stops consuming; messages delivered but not yet taken go back to the queue.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A message taken from a queue, to be settled exactly once. Dropped unsettled, it goes
/// back to the queue.
pub trait Received: Send + 'static {
    fn body(&self) -> &[u8];

    fn message_id(&self) -> Option<&str>;

    fn routing_key(&self) -> &str;

    /// Done with it: removes it from the queue.
    fn ack(self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Not now: puts it back to be delivered again.
    fn requeue(self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Never: moves it to the dead-letter queue with `reason` in [`REASON_HEADER`].
    fn dead_letter(self, reason: &str) -> impl Future<Output = Result<(), BusError>> + Send;
}
