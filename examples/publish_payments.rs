//! The payment service's side of the contract (DOMAIN.md): publishes `payment.succeeded`
//! events to the topic exchange `payments` on RabbitMQ, where delivery-svc's payment
//! consumer takes them. A plain AMQP client: nothing here comes from delivery-svc.
//!
//! ```sh
//! AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
//!   cargo run -p delivery-examples --example publish_payments -- 3
//! ```
//!
//! Each message is persistent and `mandatory`: if no queue is bound yet (delivery-svc has
//! never run with this `AMQP_URL`), the broker returns it and this program says so.
//! `AMQP_NAMESPACE` prefixes the exchange name, as it does delivery-svc's.

use std::error::Error;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use serde_json::json;

#[path = "amqp.rs"]
mod amqp;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let exchange = amqp::named("payments");
    let count: usize = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => 1,
    };
    let (connection, channel) = amqp::open(&exchange).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    for _ in 0..count {
        let event_id = uuid::Uuid::new_v4();
        let ordering_id = format!("ord-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let payment = json!({
            "event_id": event_id,
            "type": "payment.succeeded",
            "occurred_at": chrono::Utc::now(),
            "payment_id": format!("pay-{ordering_id}"),
            "ordering_id": ordering_id,
            "customer_id": "cust-1",
            "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square",
                                 "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
            "lines": [
                {"product_id": "isbn-9780141439518", "title": "Pride and Prejudice",
                 "format": "PHYSICAL", "quantity": 1},
                {"product_id": "isbn-9780141439600", "title": "Persuasion",
                 "format": "EBOOK", "quantity": 1}
            ]
        });
        let properties = BasicProperties::default()
            .with_message_id(event_id.to_string().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let confirmation = channel
            .basic_publish(
                &exchange,
                "payment.succeeded",
                options,
                payment.to_string().as_bytes(),
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) => {
                println!("published payment.succeeded {event_id} for ordering {ordering_id}");
            }
            Confirmation::Ack(Some(_)) => {
                return Err(format!(
                    "no queue is bound to {exchange}: start delivery-svc with this AMQP_URL first"
                )
                .into());
            }
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                return Err("the broker did not take the message".into());
            }
        }
    }
    connection.close(200, "done").await?;
    Ok(())
}
