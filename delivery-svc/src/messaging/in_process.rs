//! The event bus inside the process, for the embedded default (no `AMQP_URL`): topic
//! exchanges with RabbitMQ's pattern rules, queues that outlive their consumers (or, if
//! transient, die with them), bounded prefetch, requeue, and dead-lettering with the
//! reason, so that the workers behave as they do on RabbitMQ. Nothing survives the process, which is fine: the outbox, not the
//! bus, is what makes a state change durable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::bus::{
    BusError, EventBus, Outgoing, PublishError, QueueSpec, REASON_HEADER, Received, Subscription,
};

/// The in-process broker. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct InProcessBus {
    broker: Arc<Mutex<Broker>>,
}

#[derive(Debug, Default)]
struct Broker {
    /// Per exchange: (pattern, queue) pairs.
    bindings: HashMap<String, Vec<(String, String)>>,
    queues: HashMap<String, Arc<Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    messages: Mutex<VecDeque<Message>>,
    ready: Notify,
    /// The exchange a rejected message goes to.
    dead_letter_exchange: Option<String>,
}

#[derive(Debug, Clone)]
struct Message {
    routing_key: String,
    message_id: Option<String>,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A mutex held only for a few non-blocking steps: a panic while holding it leaves the
/// data consistent, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Broker {
    fn queue(&mut self, name: &str, dead_letter_exchange: Option<String>) -> Arc<Queue> {
        self.queues
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Queue {
                    dead_letter_exchange,
                    ..Queue::default()
                })
            })
            .clone()
    }

    /// Deletes queue `name` and its bindings, as RabbitMQ deletes an auto-delete queue.
    fn delete(&mut self, name: &str) {
        self.queues.remove(name);
        for bindings in self.bindings.values_mut() {
            bindings.retain(|(_, queue)| queue != name);
        }
    }

    fn bind(&mut self, exchange: &str, pattern: &str, queue: &str) {
        let bindings = self.bindings.entry(exchange.to_owned()).or_default();
        let binding = (pattern.to_owned(), queue.to_owned());
        if !bindings.contains(&binding) {
            bindings.push(binding);
        }
    }

    /// Puts `message` on every queue bound to `exchange` for its key (once per queue);
    /// false when there is none.
    fn route(&self, exchange: &str, message: &Message) -> bool {
        let mut targets: Vec<&str> = self
            .bindings
            .get(exchange)
            .into_iter()
            .flatten()
            .filter(|(pattern, _)| topic_matches(pattern, &message.routing_key))
            .map(|(_, queue)| queue.as_str())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        for name in &targets {
            if let Some(queue) = self.queues.get(*name) {
                queue.push_back(message.clone());
            }
        }
        !targets.is_empty()
    }
}

impl Queue {
    fn push_back(&self, message: Message) {
        lock(&self.messages).push_back(message);
        self.ready.notify_one();
    }

    /// Back at the head: it was taken first.
    fn push_front(&self, message: Message) {
        lock(&self.messages).push_front(message);
        self.ready.notify_one();
    }

    async fn pop(&self) -> Message {
        loop {
            let ready = self.ready.notified();
            if let Some(message) = lock(&self.messages).pop_front() {
                return message;
            }
            ready.await;
        }
    }
}

/// RabbitMQ's topic rule: words separated by `.`; `*` matches one word, `#` zero or more.
fn topic_matches(pattern: &str, key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && matches(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && matches(rest, &key[1..]),
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    matches(&pattern, &key)
}

impl EventBus for InProcessBus {
    type Subscription = InProcessSubscription;

    async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let routed = lock(&self.broker).route(
            &message.exchange,
            &Message {
                routing_key: message.routing_key.clone(),
                message_id: Some(message.message_id.clone()),
                body: message.body.clone(),
                headers: Vec::new(),
            },
        );
        if routed {
            Ok(())
        } else {
            Err(PublishError::Unroutable {
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
            })
        }
    }

    async fn subscribe(&self, spec: &QueueSpec) -> Result<InProcessSubscription, BusError> {
        let mut broker = lock(&self.broker);
        if spec.dead_letter {
            let dead = spec.dead_letters();
            broker.queue(&dead.name, None);
            for pattern in &dead.bindings {
                broker.bind(&dead.exchange, pattern, &dead.name);
            }
        }
        let dead_letter_exchange = spec.dead_letter.then(|| spec.dead_letter_exchange());
        let queue = broker.queue(&spec.name, dead_letter_exchange);
        for pattern in &spec.bindings {
            broker.bind(&spec.exchange, pattern, &spec.name);
        }
        Ok(InProcessSubscription {
            queue,
            broker: self.broker.clone(),
            prefetch: Arc::new(Semaphore::new(usize::from(spec.prefetch.max(1)))),
            transient: spec.transient.then(|| spec.name.clone()),
        })
    }
}

/// A consumer of an in-process queue.
#[derive(Debug)]
pub struct InProcessSubscription {
    queue: Arc<Queue>,
    broker: Arc<Mutex<Broker>>,
    /// One permit per message held unsettled.
    prefetch: Arc<Semaphore>,
    /// The name of a transient queue, deleted with this subscription.
    transient: Option<String>,
}

impl Drop for InProcessSubscription {
    fn drop(&mut self) {
        if let Some(name) = &self.transient {
            lock(&self.broker).delete(name);
        }
    }
}

impl Subscription for InProcessSubscription {
    type Message = InProcessMessage;

    async fn next(&mut self) -> Option<InProcessMessage> {
        let permit = self.prefetch.clone().acquire_owned().await.ok()?;
        let message = self.queue.pop().await;
        Some(InProcessMessage {
            message: Some(message),
            queue: self.queue.clone(),
            broker: self.broker.clone(),
            _permit: permit,
        })
    }

    async fn close(self) {}
}

/// A message taken from an in-process queue.
#[derive(Debug)]
pub struct InProcessMessage {
    /// `None` once settled.
    message: Option<Message>,
    queue: Arc<Queue>,
    broker: Arc<Mutex<Broker>>,
    _permit: OwnedSemaphorePermit,
}

impl InProcessMessage {
    fn message(&self) -> &Message {
        self.message
            .as_ref()
            .expect("a message is settled only by consuming it")
    }

    /// The message's headers, as a dead-letter queue's reader sees them.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message()
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Drop for InProcessMessage {
    /// Unsettled, it goes back to the queue, as an unacked message does when its channel
    /// closes.
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            self.queue.push_front(message);
        }
    }
}

impl Received for InProcessMessage {
    fn body(&self) -> &[u8] {
        &self.message().body
    }

    fn message_id(&self) -> Option<&str> {
        self.message().message_id.as_deref()
    }

    fn routing_key(&self) -> &str {
        &self.message().routing_key
    }

    async fn ack(mut self) -> Result<(), BusError> {
        self.message = None;
        Ok(())
    }

    async fn requeue(mut self) -> Result<(), BusError> {
        if let Some(message) = self.message.take() {
            self.queue.push_back(message);
        }
        Ok(())
    }

    async fn dead_letter(mut self, reason: &str) -> Result<(), BusError> {
        if let Some(mut message) = self.message.take()
            && let Some(exchange) = &self.queue.dead_letter_exchange
        {
            message
                .headers
                .push((REASON_HEADER.to_owned(), reason.to_owned()));
            // As on RabbitMQ, a dead letter nobody can take is dropped.
            lock(&self.broker).route(exchange, &message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transient_queue_goes_away_with_its_subscription() {
        let bus = InProcessBus::default();
        let queue = QueueSpec {
            name: "live".into(),
            exchange: "events".into(),
            bindings: vec!["delivery.#".into()],
            prefetch: 1,
            dead_letter: false,
            transient: true,
        };
        let message = Outgoing {
            exchange: "events".into(),
            routing_key: "delivery.created".into(),
            message_id: "m-1".into(),
            body: b"{}".to_vec(),
        };
        let mut subscription = bus.subscribe(&queue).await.expect("subscribed");
        bus.publish(&message)
            .await
            .expect("routed to the live queue");
        let received = subscription.next().await.expect("a message");
        assert_eq!(received.message_id(), Some("m-1"));
        received.ack().await.expect("acked");
        subscription.close().await;
        assert!(matches!(
            bus.publish(&message).await,
            Err(PublishError::Unroutable { .. })
        ));
    }

    #[test]
    fn topic_patterns_follow_rabbitmq() {
        let cases = [
            ("delivery.#", "delivery.delivery_confirmed", true),
            ("delivery.#", "delivery", true),
            ("delivery.*", "delivery.created", true),
            ("delivery.*", "delivery.a.b", false),
            ("#", "anything.at.all", true),
            ("payment.succeeded", "payment.succeeded", true),
            ("payment.succeeded", "payment.failed", false),
            ("*.succeeded", "payment.succeeded", true),
            ("delivery.delivery_confirmed", "delivery.created", false),
            ("#.confirmed", "a.b.confirmed", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }
}
