//! A delivery partner on its own: takes bookings on `POST /v1/shipments` and reports each
//! delivery back to delivery-svc as signed Standard Webhooks (picked up, then delivered or,
//! with `--failure-probability`, failed). `cargo run -p delivery-svc` in development mode
//! starts the same simulator in-process; run this one to play a partner configured by hand:
//!
//! ```sh
//! SECRET=whsec_$(head -c 32 /dev/urandom | base64)
//! cargo run -p delivery-examples --example partner_simulator -- --secret "$SECRET" &
//! JWT_SECRET=… cargo run -p delivery-svc -- --default-partner acme \
//!   --partner acme=http://127.0.0.1:8081 --partner-webhook-secret "acme=$SECRET"
//! ```
//!
//! Misbehaving on request: `--duplicates` sends every report twice, `--reorder` sends the
//! last report before the pick-up, and
//! `curl -X PUT localhost:8081/simulator/outage -H 'content-type: application/json' -d '{"down":true}'`
//! refuses every booking with 503 until switched back.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use partner_simulator::{Misbehaviour, Simulator, SimulatorConfig};

/// Play a delivery partner for delivery-svc.
#[derive(Debug, Parser)]
#[command(name = "partner_simulator")]
struct Args {
    /// Where the partner API listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    bind: SocketAddr,
    /// The partner's name as delivery-svc knows it.
    #[arg(long, default_value = "acme")]
    partner: String,
    /// delivery-svc's webhook endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1/partner/webhooks")]
    webhook_url: String,
    /// The secret the webhooks are signed with, `whsec_<base64>`.
    #[arg(long, env = "PARTNER_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// From booking to the pick-up report, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pickup_delay_ms: u64,
    /// From the pick-up to the delivered (or failed) report, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    delivery_delay_ms: u64,
    /// The chance that a delivery fails after its pick-up.
    #[arg(long, default_value_t = partner_simulator::DEFAULT_FAILURE_PROBABILITY)]
    failure_probability: f64,
    /// Repeatable fates: the same seed fails the same bookings.
    #[arg(long)]
    seed: Option<u64>,
    /// Send every report twice under one webhook-id.
    #[arg(long)]
    duplicates: bool,
    /// Send the last report before the pick-up.
    #[arg(long)]
    reorder: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let config = SimulatorConfig {
        pickup_delay: Duration::from_millis(args.pickup_delay_ms),
        delivery_delay: Duration::from_millis(args.delivery_delay_ms),
        failure_probability: args.failure_probability,
        seed: args.seed,
        misbehaviour: Misbehaviour {
            duplicates: args.duplicates,
            reorder: args.reorder,
        },
        ..SimulatorConfig::new(&args.partner, &args.webhook_url, &args.secret)
    };
    let running = Simulator::new(config)?.start(args.bind).await?;
    println!(
        "partner {} on {}: reporting to {} (Ctrl-C stops)",
        args.partner,
        running.base_url(),
        args.webhook_url
    );
    tokio::signal::ctrl_c().await?;
    let ledger = running.simulator().ledger();
    let shipments = ledger.shipments();
    println!(
        "{} bookings, {} failed, {} requests refused during outages",
        shipments.len(),
        shipments
            .iter()
            .filter(|shipment| shipment.fate != partner_simulator::shipments::Fate::Delivered)
            .count(),
        ledger.refused()
    );
    running.stop().await;
    Ok(())
}
