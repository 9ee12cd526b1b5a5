//! What the AMQP examples share: where the broker is, the names under `AMQP_NAMESPACE`, and
//! a channel with a durable topic exchange declared (whoever comes first declares it).

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// `AMQP_URL`, or the local broker.
pub fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `name` behind `AMQP_NAMESPACE`, as delivery-svc names it.
pub fn named(name: &str) -> String {
    format!(
        "{}{name}",
        std::env::var("AMQP_NAMESPACE").unwrap_or_default()
    )
}

/// A connection and a channel on which `exchange` exists as a durable topic exchange.
pub async fn open(exchange: &str) -> Result<(Connection, Channel), lapin::Error> {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel))
}
