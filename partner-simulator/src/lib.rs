//! A delivery partner to develop and test against: it takes bookings and reports back what
//! happened to each delivery, as a real partner would (DOMAIN.md, docs/partner-webhooks.md).
//! `delivery-svc` starts it in-process in development mode; `examples/partner_simulator.rs`
//! runs it on its own.
//!
//! - [`shipments`]: `POST /v1/shipments`, idempotent by `Idempotency-Key`, and the
//!   [`Ledger`](shipments::Ledger) of every booking, its requests and its fate, which tests
//!   read.
//! - [`reports`]: each booked delivery's journey (picked up, then delivered or failed) sent
//!   as signed Standard Webhooks, retried until the service accepts them; none when
//!   [`SimulatorConfig::silent`].
//!
//! [`Simulator`] puts them together, configured by [`SimulatorConfig`], misbehaving as
//! [`Misbehaviour`] asks; [`Simulator::start`] serves it on an address.

pub mod reports;
pub mod shipments;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, Response, Route, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::reports::Reporter;
use self::shipments::{Ledger, book, outage};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The partner's name as the service knows it (`data.partner` of every webhook).
    pub partner: String,
    /// Where the reports go: the service's `POST /v1/partner/webhooks`.
    pub webhook_url: String,
    /// The secret the reports are signed with, `whsec_<base64>`.
    pub webhook_secret: String,
    /// From booking to the pick-up report.
    pub pickup_delay: Duration,
    /// From the pick-up to the delivered (or failed) report.
    pub delivery_delay: Duration,
    /// The chance that a delivery fails after its pick-up, 0 to 1.
    pub failure_probability: f64,
    /// Makes the fates repeatable: the same seed fails the same bookings (by booking
    /// order). Random without one.
    pub seed: Option<u64>,
    pub misbehaviour: Misbehaviour,
    /// Takes bookings and never reports: whoever runs it moves the deliveries itself (the
    /// load generator, which makes the partner's transitions over the REST API).
    pub silent: bool,
}

/// The seed design's failure rate: 1 %.
pub const DEFAULT_FAILURE_PROBABILITY: f64 = 0.01;

impl SimulatorConfig {
    /// A well-behaved partner: picked up after 2 s, delivered 3 s later, 1 % failed.
    pub fn new(partner: &str, webhook_url: &str, webhook_secret: &str) -> SimulatorConfig {
        SimulatorConfig {
            partner: partner.to_owned(),
            webhook_url: webhook_url.to_owned(),
            webhook_secret: webhook_secret.to_owned(),
            pickup_delay: Duration::from_secs(2),
            delivery_delay: Duration::from_secs(3),
            failure_probability: DEFAULT_FAILURE_PROBABILITY,
            seed: None,
            misbehaviour: Misbehaviour::default(),
            silent: false,
        }
    }
}

/// What real partners do now and then, on request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Misbehaviour {
    /// Every report is sent twice under one `webhook-id`, as a retry after a lost answer.
    pub duplicates: bool,
    /// The last report (delivered or failed) is sent before the pick-up.
    pub reorder: bool,
}

/// A configuration the simulator cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("webhook secret: {0}")]
    Secret(#[from] standardwebhooks::WebhookError),
    #[error("failure probability {0} is not between 0 and 1")]
    Probability(f64),
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The simulated partner: its ledger and its reporter.
#[derive(Debug, Clone)]
pub struct Simulator {
    ledger: Arc<Ledger>,
    reporter: Arc<Reporter>,
    silent: bool,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Result<Simulator, SimulatorError> {
        if !(0.0..=1.0).contains(&config.failure_probability) {
            return Err(SimulatorError::Probability(config.failure_probability));
        }
        let ledger = Arc::new(Ledger::new(config.failure_probability, config.seed));
        let reporter = Arc::new(Reporter::new(&config, ledger.clone())?);
        Ok(Simulator {
            ledger,
            reporter,
            silent: config.silent,
        })
    }

    /// What it has booked and how each delivery ends.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// While `down`, every booking is refused with 503, as by a partner in an outage.
    pub fn set_outage(&self, down: bool) {
        self.ledger.set_outage(down);
    }

    /// The partner API, `POST /v1/shipments`, and the switch a test or a person flips
    /// to take the partner down and up again: `PUT /simulator/outage` with
    /// `{"down": true}` or `{"down": false}`.
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        Route::new()
            .at("/v1/shipments", poem::post(book))
            .at("/simulator/outage", poem::put(outage))
            .data(self.clone())
            .map_to_response()
    }

    /// Serves the partner API on `bind` (port 0: a free one) until [`Running::stop`].
    pub async fn start(self, bind: SocketAddr) -> Result<Running, SimulatorError> {
        let acceptor = TcpListener::bind(bind).into_acceptor().await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .unwrap_or(bind);
        let (stop, stopped) = oneshot::channel::<()>();
        let endpoint = self.endpoint();
        let server = tokio::spawn(async move {
            let signal = async {
                let _closed = stopped.await;
            };
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(endpoint, signal, Some(Duration::from_secs(1)))
                .await
        });
        Ok(Running {
            addr,
            simulator: self,
            stop,
            server,
        })
    }
}

/// A simulator serving on an address.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    simulator: Simulator,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// What the service is configured with as the partner's URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// Stops serving; reports on their way are dropped with the runtime.
    pub async fn stop(self) {
        let _gone = self.stop.send(());
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "partner simulator stopped"),
            Err(err) => tracing::warn!(error = %err, "partner simulator failed"),
        }
    }
}
