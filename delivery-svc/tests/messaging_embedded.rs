//! The event-driven flow on the embedded default (no RabbitMQ): the in-process bus, on
//! SQLite and on PostgreSQL when `TEST_POSTGRES_URL` is set.

mod common;
#[path = "common/messaging.rs"]
mod messaging;

use common::on_every_database;
use delivery_core::DeliveryState;
use delivery_svc::messaging::bus::{
    EventBus, Outgoing, QueueSpec, REASON_HEADER, Received, Subscription,
};
use delivery_svc::messaging::in_process::{InProcessBus, InProcessSubscription};
use delivery_svc::messaging::{Bus, Topology};
use messaging::{Service, check_confirmation, eventually, messaging_config};

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
        transient: false,
    };
    bus.subscribe(&queue).await.expect("subscribed")
}

/// The next `count` messages of `subscription`.
async fn take(subscription: &mut InProcessSubscription, count: usize) -> Vec<messaging::Received> {
    let mut taken = Vec::new();
    while taken.len() < count {
        let message = tokio::time::timeout(messaging::DEADLINE, subscription.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; received {taken:?}"))
            .expect("the in-process subscription never ends");
        let entry = messaging::Received {
            routing_key: message.routing_key().to_owned(),
            message_id: message.message_id().map(str::to_owned),
            body: serde_json::from_slice(message.body()).expect("JSON"),
            headers: Vec::new(),
        };
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

        let (ordering, id) = service
            .pay_and_confirm(async |body| publish_payment(&bus, &topology, body).await)
            .await;
        let published = service.all_published().await;
        let received = take(&mut events, published.len()).await;
        check_confirmation(&received, &published, &ordering, &id);
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

        let malformed = b"{\"type\": \"payment.succeeded\"";
        service
            .check_mixed_payments(malformed, async |body| {
                publish_payment(&bus, &topology, body).await;
            })
            .await;
        let letter = tokio::time::timeout(messaging::DEADLINE, dead.next())
            .await
            .expect("a dead letter")
            .expect("the in-process subscription never ends");
        assert_eq!(letter.body(), malformed);
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
                .filter(|message| message.body["delivery_id"] == id)
                .map(|message| message.body["seq"].as_u64().expect("a seq"))
                .collect()
        };
        assert_eq!(of(&first), [1, 2], "in seq order");
        assert_eq!(of(&second), [1]);
        service.stop().await;
    })
    .await;
}

/// A transient failure (here SQLite's write lock held past the busy timeout by another
/// writer) puts the message back instead of dead-lettering it; once the database is free
/// the payment is handled, once.
#[tokio::test]
async fn a_payment_that_meets_a_busy_database_is_requeued_and_handled_once_it_is_free() {
    use std::sync::atomic::Ordering::Relaxed;

    use sea_orm::{ConnectionTrait, TransactionTrait};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
    let (mut service, bus, topology) = service(url.clone()).await;
    service.start_workers();
    let other_writer = delivery_svc::db::connect(
        &url,
        delivery_svc::config::PoolConfig::default().database_pool_size,
    )
    .await
    .expect("a second pool");
    let holding = other_writer.begin().await.expect("begin");
    holding
        .execute_unprepared("UPDATE delivery_order SET version = version WHERE 0 = 1")
        .await
        .expect("the write lock");

    let ordering = common::new_id("ord");
    let payment = common::payment_event(&ordering, &["PHYSICAL"]).to_string();
    publish_payment(&bus, &topology, payment.as_bytes()).await;
    let stats = service.workers().stats();
    eventually("the payment to be put back", async || {
        (stats.requeued.load(Relaxed) > 0).then_some(())
    })
    .await;
    holding.rollback().await.expect("release the lock");

    service.delivery_of(&ordering).await;
    assert_eq!(stats.dead_lettered.load(Relaxed), 0);
    service.stop().await;
}
