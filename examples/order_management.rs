//! Order management's side of the contract (DOMAIN.md): a durable queue of its own bound
//! to the topic exchange `delivery.events` for `delivery.#`, printing each delivery event.
//! A plain AMQP client: nothing here comes from delivery-svc.
//!
//! ```sh
//! AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
//!   cargo run -p delivery-examples --example order_management
//! ```
//!
//! Delivery is at least once: a message may come twice (after a lost connection, say), so
//! it deduplicates by `event_id`. It binds every state, not only
//! `delivery.delivery_confirmed`: delivery-svc publishes each delivery's events in order
//! and keeps an event nobody's queue would take until one does (docs/adr/0002).
//! `AMQP_NAMESPACE` prefixes the names, as it does delivery-svc's.

use std::collections::HashSet;
use std::error::Error;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;

#[path = "amqp.rs"]
mod amqp;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let exchange = amqp::named("delivery.events");
    let queue = amqp::named("order-management");
    let (_connection, channel) = amqp::open(&exchange).await?;
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(&queue, durable, arguments).await?;
    channel
        .queue_bind(
            &queue,
            &exchange,
            "delivery.#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            &queue,
            "order-management",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!("order management: queue {queue} bound to {exchange} for delivery.#; Ctrl-C to stop");

    // A real consumer keeps these in its own database, in the transaction of its change.
    let mut seen = HashSet::new();
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let event: Value = serde_json::from_slice(&delivery.data)?;
        let event_id = event["event_id"].as_str().unwrap_or("-").to_owned();
        if seen.insert(event_id.clone()) {
            println!(
                "{:<30} delivery {} seq {} {} -> {}{}",
                delivery.routing_key,
                event["delivery_id"].as_str().unwrap_or("-"),
                event["seq"],
                event["from"].as_str().unwrap_or("-"),
                event["to"].as_str().unwrap_or("-"),
                if event["to"] == "DELIVERY_CONFIRMED" {
                    "   <- order fulfilled"
                } else {
                    ""
                },
            );
        } else {
            println!(
                "{:<30} event {event_id} again: skipped",
                delivery.routing_key
            );
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}
