//! Broker faults with traffic flowing, against the real RabbitMQ (`TEST_AMQP_URL`): every
//! connection closed by force (`rabbitmqctl close_all_connections`), then RabbitMQ stopped
//! and started again (`rabbitmqctl stop_app` / `start_app`). Afterwards every accepted state
//! change has been published, in order per delivery, and the consumers took messages again
//! by themselves.
//!
//! These faults hit every client of the broker, so they live in a test binary of their
//! own, in one test that runs them one after the other.

mod common;
#[path = "common/messaging.rs"]
mod messaging;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use delivery_core::DeliveryState;
use messaging::{Broker, Client, Service, eventually, with_rabbitmq};
use tokio::process::Command;

#[derive(Debug, Clone, Copy)]
enum Fault {
    CloseConnections,
    Restart,
}

async fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .await
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?}: {status}");
}

/// Waits until `done` has grown by `more` over `from`.
async fn traffic_past(done: &AtomicU64, from: u64, more: u64) -> u64 {
    eventually("traffic to flow", async || {
        let now = done.load(Ordering::Relaxed);
        (now >= from + more).then_some(now)
    })
    .await
}

/// Injects `fault` while deliveries are created and picked up over HTTP; then checks that
/// a payment message is consumed again.
async fn with_traffic(service: &Service, broker: &Broker, fault: Fault) {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let traffic = async {
        while !stop.load(Ordering::Relaxed) {
            service.http.delivery_in(DeliveryState::PickedUp).await;
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    let scenario = async {
        let before = traffic_past(&done, 0, 3).await;
        println!("{fault:?} after {before} deliveries");
        match fault {
            Fault::CloseConnections => {
                rabbitmqctl(&["close_all_connections", "messaging_faults test"]).await;
            }
            Fault::Restart => {
                rabbitmqctl(&["stop_app"]).await;
                // Changes accepted while the broker is away.
                traffic_past(&done, before, 3).await;
                rabbitmqctl(&["start_app"]).await;
                rabbitmqctl(&["await_startup"]).await;
            }
        }
        traffic_past(&done, before, 6).await;
        // The payment consumer resumed by itself.
        let ordering = common::new_id("ord");
        let payment = common::payment_event(&ordering, &["PHYSICAL"]).to_string();
        broker.publish_payment(payment.as_bytes()).await;
        service.delivery_of(&ordering).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(traffic, scenario);
}

#[tokio::test]
async fn broker_faults_with_traffic_flowing_lose_nothing() {
    with_rabbitmq(async |database_url, broker| {
        let mut service = broker.service(database_url).await;
        service.start_workers();
        with_traffic(&service, broker, Fault::CloseConnections).await;
        with_traffic(&service, broker, Fault::Restart).await;

        let published = service.all_published().await;
        let received = broker.receive_all(&published).await;
        // At least once: a publish whose confirm was lost with its connection comes again.
        let mut first: HashSet<String> = HashSet::new();
        let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
        for message in &received {
            let id = message.message_id.clone().expect("a message id");
            if first.insert(id) {
                let delivery = message.body["delivery_id"].as_str().expect("a delivery");
                let seq = message.body["seq"].as_u64().expect("a seq");
                seqs.entry(delivery.to_owned()).or_default().push(seq);
            }
        }
        assert_eq!(first, published, "every accepted change published");
        for (delivery, seqs) in &seqs {
            assert!(seqs.is_sorted(), "{delivery}: out of order {seqs:?}");
        }
        println!(
            "{} events published, {} messages received",
            published.len(),
            received.len()
        );
        service.stop().await;
        // The broker's own view: nothing left for order management.
        assert_eq!(
            Client::connect(&broker.url)
                .await
                .depth(&broker.order_management)
                .await,
            0
        );
    })
    .await;
}
