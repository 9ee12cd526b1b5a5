//! The event-driven flow through the real RabbitMQ (`TEST_AMQP_URL`), on SQLite and on
//! PostgreSQL when `TEST_POSTGRES_URL` is set. The payment service and order management are
//! played by a plain lapin client; each test has exchanges and queues of its own
//! (`AMQP_NAMESPACE`), so tests run side by side on one broker.

mod common;
#[path = "common/messaging.rs"]
mod messaging;

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::Ordering;

use common::{new_id, payment_event};
use delivery_core::DeliveryState;
use delivery_svc::entity::delivery_order;
use delivery_svc::messaging::bus::REASON_HEADER;
use messaging::{Broker, check_confirmation, eventually, with_rabbitmq};
use sea_orm::{EntityTrait, PaginatorTrait};

#[tokio::test]
async fn a_published_payment_leads_to_delivery_confirmed_for_order_management_once() {
    with_rabbitmq(async |database_url, broker| {
        let mut service = broker.service(database_url).await;
        service.start_workers();

        let (ordering, id) = service
            .pay_and_confirm(async |body| broker.publish_payment(body).await)
            .await;
        let published = service.all_published().await;
        let received = broker.receive_all(&published).await;
        check_confirmation(&received, &published, &ordering, &id);
        assert_eq!(
            broker.client().await.depth(&broker.order_management).await,
            0,
            "nothing more: no event twice"
        );
        service.stop().await;
    })
    .await;
}

#[tokio::test]
async fn duplicates_ebooks_and_malformed_messages() {
    with_rabbitmq(async |database_url, broker| {
        let mut service = broker.service(database_url).await;
        service.start_workers();

        service
            .check_mixed_payments(b"not JSON at all", async |body| {
                broker.publish_payment(body).await;
            })
            .await;
        let dead = broker.topology.payments_queue.dead_letters();
        let letters = broker
            .client()
            .await
            .receive_until(&dead.name, |letters| !letters.is_empty())
            .await;
        let reason = letters[0].header(REASON_HEADER).expect("a reason");
        assert!(
            reason.starts_with("not a valid payment.succeeded"),
            "{reason}"
        );
        let queue = &broker.topology.payments_queue.name;
        assert_eq!(
            broker.client().await.depth(queue).await,
            0,
            "nothing left behind"
        );
        service.stop().await;
    })
    .await;
}

/// `delivery-svc worker` in a child process, on `database_url` and `broker`.
fn worker_process(database_url: &str, broker: &Broker) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_delivery-svc"))
        .arg("worker")
        .env("DATABASE_URL", database_url)
        .env("AMQP_URL", &broker.url)
        .env("AMQP_NAMESPACE", &broker.namespace)
        .env("RELAY_POLL_MS", "100")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("a worker process")
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_settles_its_messages_and_loses_none() {
    with_rabbitmq(async |database_url, broker| {
        let mut service = broker.service(database_url.clone()).await;
        let mut worker = worker_process(&database_url, broker);
        let orderings: Vec<String> = (0..60).map(|_| new_id("ord")).collect();
        for ordering in &orderings {
            let payment = payment_event(ordering, &["PHYSICAL"]).to_string();
            broker.publish_payment(payment.as_bytes()).await;
        }
        // Stopped while it is handling them.
        eventually("the worker to handle payments", async || {
            let handled = delivery_order::Entity::find()
                .count(service.app.deliveries().db())
                .await
                .expect("a count");
            (handled > 0).then_some(())
        })
        .await;
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(terminated.success());
        let exit = worker.wait().expect("reaped");
        assert!(exit.success(), "a graceful stop exits 0, not {exit}");

        // What it had not finished went back to the queue: another worker handles it, and
        // each payment has made exactly one delivery order.
        service.start_workers();
        for ordering in &orderings {
            service.delivery_of(ordering).await;
        }
        let client = broker.client().await;
        let queue = &broker.topology.payments_queue.name;
        assert_eq!(client.depth(queue).await, 0, "nothing left behind");
        assert_eq!(
            client.depth(&format!("{queue}.dlq")).await,
            0,
            "nothing dead-lettered"
        );
        service.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_killed_worker_process_loses_no_committed_change() {
    with_rabbitmq(async |database_url, broker| {
        // The API in this process, the workers in a child process.
        let service = broker.service(database_url.clone()).await;
        let mut worker = worker_process(&database_url, broker);
        service.http.delivery_in(DeliveryState::PickedUp).await;
        service.all_published().await;

        // Killed without warning; changes committed from now on have nobody to publish them.
        worker.kill().expect("killed");
        worker.wait().expect("reaped");
        service.http.delivery_in(DeliveryState::Delivered).await;
        let (_, pending) = service.outbox().await;
        assert!(pending >= 3, "{pending} unpublished");

        let mut service = service;
        service.start_workers();
        let published = service.all_published().await;
        assert_eq!(published.len(), 5);
        let received = broker.receive_all(&published).await;
        let ids: HashSet<String> = received
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        assert_eq!(ids, published);
        service.stop().await;
    })
    .await;
}

#[tokio::test]
async fn relays_side_by_side_on_postgresql_publish_each_event_once_in_order() {
    with_rabbitmq(async |database_url, broker| {
        if !database_url.starts_with("postgres") {
            println!("one relay per SQLite database: nothing to share");
            return;
        }
        let mut first = broker.service(database_url.clone()).await;
        for state in [
            DeliveryState::DeliveryConfirmed,
            DeliveryState::Resolved,
            DeliveryState::Delivered,
        ] {
            for _ in 0..10 {
                first.http.delivery_in(state).await;
            }
        }
        let mut second = broker.service(database_url).await;
        first.start_workers();
        second.start_workers();
        let published = first.all_published().await;
        let received = broker.receive_all(&published).await;
        assert_eq!(received.len(), published.len(), "each event once");
        let mut seqs: std::collections::HashMap<String, Vec<u64>> = Default::default();
        for message in &received {
            let delivery = message.body["delivery_id"].as_str().expect("a delivery");
            let seq = message.body["seq"].as_u64().expect("a seq");
            seqs.entry(delivery.to_owned()).or_default().push(seq);
        }
        for (delivery, seqs) in &seqs {
            assert!(seqs.is_sorted(), "{delivery}: out of order {seqs:?}");
        }
        let shared = [first.workers(), second.workers()]
            .map(|workers| workers.stats().published.load(Ordering::Relaxed));
        println!("published by each relay: {shared:?}");
        first.stop().await;
        second.stop().await;
    })
    .await;
}
