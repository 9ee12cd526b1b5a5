//! The event-driven flow on the embedded default (no RabbitMQ): the in-process bus, on
//! SQLite and on PostgreSQL when `TEST_POSTGRES_URL` is set.

mod common;
#[path = "common/messaging.rs"]
mod messaging;

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use common::{maker, on_every_database, path_to, payment_event, principal};
use delivery_core::DeliveryState;
use delivery_svc::messaging::bus::{
    EventBus, Outgoing, QueueSpec, REASON_HEADER, Received, Subscription,
};
use delivery_svc::messaging::in_process::{InProcessBus, InProcessSubscription};
use delivery_svc::messaging::{Bus, Topology};
use messaging::{Service, eventually, messaging_config};
use poem::http::StatusCode;
use serde_json::Value;

/// A service with the in-process bus on `url`.
async fn service(url: String) -> (Service, std::sync::Arc<InProcessBus>, Topology) {
    let config = messaging_config(url, None, "");
    let topology = Topology::new(&config.messaging);
    let service = Service::start(config).await;
    let Bus::InProcess(bus) = service.app.bus().clone() else {
        panic!("no AMQP_URL, so the in-process bus");
    };
    (service, bus, topology)
}

/// Publishes `body` as the payment service would, once the consumer's queue is bound.
async fn publish_payment(bus: &InProcessBus, topology: &Topology, body: &[u8]) {
    let message = Outgoing {
        exchange: topology.payments_exchange.clone(),
        routing_key: "payment.succeeded".into(),
        message_id: uuid::Uuid::new_v4().to_string(),
        body: body.to_vec(),
    };
    eventually("the payment queue to be bound", async || {
        bus.publish(&message).await.ok()
    })
    .await;
}

/// Order management's queue on the in-process bus: every delivery event.
async fn order_management(bus: &InProcessBus, topology: &Topology) -> InProcessSubscription {
    let queue = QueueSpec {
        name: "order-management".into(),
        exchange: topology.delivery_events_exchange.clone(),
        bindings: vec!["delivery.#".into()],
        prefetch: 10,
        dead_letter: false,
    };
    bus.subscribe(&queue).await.expect("subscribed")
}

/// The next `count` messages of `subscription`: (routing key, message id, body).
async fn take(
    subscription: &mut InProcessSubscription,
    count: usize,
) -> Vec<(String, String, Value)> {
    let mut taken = Vec::new();
    while taken.len() < count {
        let message = tokio::time::timeout(messaging::DEADLINE, subscription.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; received {taken:?}"))
            .expect("the in-process subscription never ends");
        let body = serde_json::from_slice(message.body()).expect("JSON");
        let entry = (
            message.routing_key().to_owned(),
            message.message_id().expect("a message id").to_owned(),
            body,
        );
        message.ack().await.expect("acked");
        taken.push(entry);
    }
    taken
}

#[tokio::test]
async fn a_payment_message_leads_to_delivery_confirmed_once_per_event() {
    on_every_database(async |url| {
        let (mut service, bus, topology) = service(url).await;
        let mut events = order_management(&bus, &topology).await;
        service.start_workers();

        let ordering = common::new_id("ord");
        let payment = payment_event(&ordering, &["PHYSICAL", "EBOOK"]);
        publish_payment(&bus, &topology, payment.to_string().as_bytes()).await;
        let id = service.delivery_of(&ordering).await;
        for transition in path_to(DeliveryState::DeliveryConfirmed) {
            service
                .http
                .transition(&id, transition, &principal(maker(transition)))
                .await
                .assert_status(StatusCode::OK);
        }

        let published = service.all_published().await;
        let received = take(&mut events, published.len()).await;
        let keys: Vec<&str> = received.iter().map(|(key, _, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "delivery.created",
                "delivery.picked_up",
                "delivery.delivered",
                "delivery.delivery_confirmed"
            ]
        );
        let ids: HashSet<String> = received.iter().map(|(_, id, _)| id.clone()).collect();
        assert_eq!(ids, published, "each event exactly once");
        let (_, _, confirmed) = &received[3];
        assert_eq!(confirmed["delivery_id"], id.as_str());
        assert_eq!(confirmed["ordering_id"], ordering.as_str());
        assert_eq!(confirmed["to"], "DELIVERY_CONFIRMED");
        assert_eq!(confirmed["event_id"], received[3].1.as_str());
        service.stop().await;
    })
    .await;
}

#[tokio::test]
async fn duplicates_ebooks_and_malformed_messages() {
    on_every_database(async |url| {
        let (mut service, bus, topology) = service(url).await;
        let mut dead = bus
            .subscribe(&topology.payments_queue.dead_letters())
            .await
            .expect("subscribed");
        service.start_workers();

        // The same message twice: one delivery order.
        let twice = common::new_id("ord");
        let payment = payment_event(&twice, &["PHYSICAL"]).to_string();
        publish_payment(&bus, &topology, payment.as_bytes()).await;
        publish_payment(&bus, &topology, payment.as_bytes()).await;
        // Malformed, then e-books only, then a good one: each handled in turn.
        publish_payment(&bus, &topology, b"{\"type\": \"payment.succeeded\"").await;
        let ebooks = common::new_id("ord");
        let ebook_payment = payment_event(&ebooks, &["EBOOK"]).to_string();
        publish_payment(&bus, &topology, ebook_payment.as_bytes()).await;
        let after = common::new_id("ord");
        let good = payment_event(&after, &["PHYSICAL"]).to_string();
        publish_payment(&bus, &topology, good.as_bytes()).await;

        service.delivery_of(&after).await;
        let stats = service.workers().stats();
        eventually("every good message handled", async || {
            (stats.payments_handled.load(Ordering::Relaxed) == 4).then_some(())
        })
        .await;
        assert_eq!(service.deliveries_of(&twice).await.len(), 1);
        assert!(service.deliveries_of(&ebooks).await.is_empty());
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
        assert_eq!(stats.requeued.load(Ordering::Relaxed), 0);

        let letter = tokio::time::timeout(messaging::DEADLINE, dead.next())
            .await
            .expect("a dead letter")
            .expect("the in-process subscription never ends");
        assert_eq!(letter.body(), b"{\"type\": \"payment.succeeded\"");
        let reason = letter.header(REASON_HEADER).expect("a reason");
        assert!(
            reason.starts_with("not a valid payment.succeeded"),
            "{reason}"
        );
        letter.ack().await.expect("acked");
        service.stop().await;
    })
    .await;
}

#[tokio::test]
async fn changes_committed_while_no_relay_ran_are_published_when_one_starts() {
    on_every_database(async |url| {
        let (mut service, bus, topology) = service(url).await;
        let mut events = order_management(&bus, &topology).await;
        // Committed with no worker running: the state a crash after commit leaves.
        let first = service.http.delivery_in(DeliveryState::PickedUp).await;
        let second = service.http.create_delivery().await;
        let (written, pending) = service.outbox().await;
        assert_eq!(pending, 3);

        service.start_workers();
        let published = service.all_published().await;
        assert_eq!(published, written);
        let received = take(&mut events, 3).await;
        let of = |id: &str| -> Vec<u64> {
            received
                .iter()
                .filter(|(_, _, body)| body["delivery_id"] == id)
                .map(|(_, _, body)| body["seq"].as_u64().expect("a seq"))
                .collect()
        };
        assert_eq!(of(&first), [1, 2], "in seq order");
        assert_eq!(of(&second), [1]);
        service.stop().await;
    })
    .await;
}
