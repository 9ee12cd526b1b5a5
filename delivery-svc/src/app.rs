//! Wiring: from a [`Config`] to a running service.
//!
//! [`App::new`] sets up the token keys, connects, migrates, builds the domain layer
//! ([`open_deliveries`]) and picks the event bus;
//! [`App::endpoint`] is the whole HTTP surface, for a server or, in tests, for
//! `poem::test::TestClient`; [`App::start_workers`] starts the messaging workers and
//! [`App::booker`] makes the partner bookings' worker;
//! [`App::run`] runs the API, the workers or both ([`Processes`]) until Ctrl-C or SIGTERM,
//! then lets requests and messages in flight finish. In development mode it also starts the
//! built-in partner ([`partner_simulator`]), so that deliveries move on their own.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use poem::listener::TcpListener;
use poem::{Endpoint, Response, Server};
use sea_orm::DbErr;
use tracing_subscriber::EnvFilter;

use crate::auth::{DEVELOPMENT_TOKEN_TTL, KeyMode, KeySetupError, TokenAuthority, role_name};
use crate::cache::{DeliveryCache, RedisLink};
use crate::commands::Deliveries;
use crate::config::{Config, LogConfig, LogFormat};
use crate::http::live::LiveEndpoint;
use crate::live::{LiveFeed, LiveHub};
use crate::messaging::workers::shutdown_pair;
use crate::messaging::{Bus, Workers};
use crate::partner::booking::Booker;
use crate::partner::{Partner, PartnerConfigError, Partners, SIMULATOR_BASE_URL};
use crate::{db, http, watchdog};

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Keys(#[from] KeySetupError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(
        "development mode (no JWT_SECRET or JWT_PUBLIC_KEY_FILE) listens on a loopback address only, not {0}: \
         configure a key to listen elsewhere"
    )]
    DevelopmentModeNotLoopback(std::net::SocketAddr),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    #[error("logging: {0}")]
    Logging(String),
    #[error("partners: {0}")]
    Partners(#[from] PartnerConfigError),
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the partners' HTTP client: {0}")]
    PartnerClient(#[from] reqwest::Error),
}

/// What a process runs: API nodes and worker nodes scale apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    ApiAndWorkers,
    ApiOnly,
    WorkersOnly,
}

/// The service, ready to serve.
#[derive(Debug)]
pub struct App {
    config: Config,
    deliveries: Deliveries,
    /// The same deliveries through the background work's own connection pool.
    background: Deliveries,
    authority: Arc<TokenAuthority>,
    bus: Bus,
    /// The cache and the shared rate limits, when `REDIS_URL` is set.
    redis: Option<RedisLink>,
    /// The live updates' fan-out to this instance's WebSockets.
    live: LiveHub,
}

impl App {
    pub async fn new(config: Config) -> Result<App, AppError> {
        let authority = Arc::new(TokenAuthority::from_config(&config.jwt)?);
        let redis = config
            .redis_url
            .as_deref()
            .map(RedisLink::new)
            .transpose()?;
        let mut deliveries = open_deliveries(&config).await?;
        if let Some(redis) = &redis {
            deliveries = deliveries.with_cache(DeliveryCache::new(redis.clone()));
        }
        // Opened as the workers first use it: an API-only process never does.
        let background_pool =
            db::connect_on_first_use(&config.database_url, config.pools.worker_pool_size).await?;
        Ok(App {
            background: deliveries.clone().with_db(background_pool),
            deliveries,
            authority,
            redis,
            bus: Bus::from_config(&config.messaging),
            live: LiveHub::new(config.live.live_buffer),
            config,
        })
    }

    /// The event bus: RabbitMQ or, without `AMQP_URL`, this process's own.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Starts the outbox relay and the consumers; [`Workers::stop`] stops them.
    pub fn start_workers(&self) -> Workers {
        self.bus
            .spawn_workers(&self.background, &self.config.messaging)
    }

    /// The worker that books new delivery orders with their partners.
    pub fn booker(&self) -> Result<Booker, AppError> {
        Ok(Booker::new(
            self.background.clone(),
            self.config.booking.clone(),
        )?)
    }

    /// Feeds the live updates from the bus; [`LiveFeed::stop`] stops it.
    pub fn start_live_feed(&self) -> LiveFeed {
        self.live.start_feed(&self.bus, &self.config.messaging)
    }

    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    pub fn authority(&self) -> &TokenAuthority {
        &self.authority
    }

    /// The whole HTTP surface.
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        http::endpoint(
            self.deliveries.clone(),
            self.authority.clone(),
            &self.config.limits,
            self.redis.clone(),
            LiveEndpoint {
                hub: self.live.clone(),
                heartbeat: (&self.config.live).into(),
            },
        )
    }

    /// Runs `processes` until Ctrl-C or SIGTERM: stops taking requests and messages, lets
    /// those in flight finish, then returns.
    pub async fn run(self, processes: Processes) -> Result<(), AppError> {
        let with_workers = processes != Processes::ApiOnly;
        let workers = with_workers.then(|| self.start_workers());
        // The watchdogs and the booker run where the workers do, until `stop_background`.
        let (stop_background, background) = shutdown_pair();
        let mut background_tasks = Vec::new();
        if with_workers {
            let mut watchdogs_shutdown = background.clone();
            let watchdogs = watchdog::run(
                self.background.clone(),
                self.config.watchdog.clone(),
                Utc::now,
                async move { watchdogs_shutdown.wait().await },
            );
            background_tasks.push(("the watchdogs", tokio::spawn(watchdogs)));
            let booker = self.booker()?.run(background);
            background_tasks.push(("the booker", tokio::spawn(booker)));
        }
        let simulator = match processes {
            Processes::ApiAndWorkers => self.start_simulator().await,
            _ => None,
        };
        let served = if processes == Processes::WorkersOnly {
            tracing::info!("workers running (no HTTP API)");
            shutdown_signal().await;
            Ok(())
        } else {
            let live = self.start_live_feed();
            let served = self.listen().await;
            live.stop().await;
            served
        };
        stop_background.stop();
        for (what, task) in background_tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "{what} failed");
            }
        }
        if let Some(simulator) = simulator {
            simulator.stop().await;
        }
        if let Some(workers) = workers {
            workers.stop().await;
        }
        tracing::info!("stopped");
        served
    }

    /// The API and the workers, as `delivery-svc serve` runs them.
    pub async fn serve(self) -> Result<(), AppError> {
        self.run(Processes::ApiAndWorkers).await
    }

    /// Listens on the configured address until Ctrl-C or SIGTERM.
    async fn listen(&self) -> Result<(), AppError> {
        let bind = self.config.bind;
        if self.authority.mode() == KeyMode::Development && !bind.ip().is_loopback() {
            return Err(AppError::DevelopmentModeNotLoopback(bind));
        }
        let endpoint = self.endpoint();
        let listener = TcpListener::bind(bind);
        self.announce();
        Server::new(listener)
            .run_with_graceful_shutdown(endpoint, shutdown_signal(), Some(SHUTDOWN_GRACE))
            .await?;
        Ok(())
    }

    /// In development mode, with the default partner built in: the partner simulator at
    /// its address, reporting to this service. Not fatal if it cannot start (the port is
    /// taken): bookings then wait, and the partner's webhooks can be sent by hand.
    async fn start_simulator(&self) -> Option<partner_simulator::Running> {
        if self.config.partners.no_partner_simulator {
            return None;
        }
        let partner = self.built_in_partner()?;
        let secret = partner.webhook_secrets.first()?.to_string();
        let webhooks = format!("http://{}/v1/partner/webhooks", self.config.bind);
        let config = partner_simulator::SimulatorConfig::new(&partner.name, &webhooks, &secret);
        let bind = SIMULATOR_BASE_URL
            .trim_start_matches("http://")
            .parse()
            .ok()?;
        let started = match partner_simulator::Simulator::new(config) {
            Ok(simulator) => simulator.start(bind).await,
            Err(err) => Err(err),
        };
        match started {
            Ok(running) => {
                tracing::info!(partner = %partner.name, url = %running.base_url(), "partner simulator started");
                Some(running)
            }
            Err(err) => {
                tracing::warn!(error = %err, "the partner simulator cannot start; bookings will wait for it");
                None
            }
        }
    }

    /// Tells the person at the terminal where to look and, in development mode, how to get in.
    fn announce(&self) {
        let bind = self.config.bind;
        tracing::info!(%bind, "listening");
        println!("Delivery service on http://{bind}: Swagger UI at http://{bind}/docs");
        if self.authority.mode() != KeyMode::Development {
            return;
        }
        tracing::warn!(
            "development mode: no JWT key configured, tokens are signed with an ephemeral secret"
        );
        println!();
        println!(
            "WARNING: DEVELOPMENT MODE. No JWT_SECRET or JWT_PUBLIC_KEY_FILE is set: tokens are signed"
        );
        println!("with a random secret that dies with this process. Do not expose this service.");
        println!(
            "Tokens (valid {} hours), use as `Authorization: Bearer <token>`:",
            DEVELOPMENT_TOKEN_TTL.num_hours()
        );
        for (role, token) in self
            .authority
            .development_tokens(&self.config.default_partner, Utc::now())
        {
            println!("  {:<8} {token}", role_name(role));
        }
        if let Some(partner) = self.built_in_partner()
            && let Some(secret) = partner.webhook_secrets.first()
        {
            if self.config.partners.no_partner_simulator {
                println!(
                    "Partner `{}` is not simulated (--no-partner-simulator).",
                    partner.name
                );
            } else {
                println!(
                    "Partner `{}` is simulated at {SIMULATOR_BASE_URL}: it picks up and delivers what is \
                     booked with it.",
                    partner.name
                );
            }
            println!(
                "Partner `{}` signs its webhooks with this random secret: {secret}",
                partner.name
            );
        }
        println!();
    }

    /// The default partner when development mode made it up (not configured): the one the
    /// simulator plays.
    fn built_in_partner(&self) -> Option<&Partner> {
        let name = &self.config.default_partner;
        let declared = self.config.partners.partner.iter().any(|p| &p.name == name);
        (self.authority.mode() == KeyMode::Development && !declared)
            .then(|| self.deliveries.partners().get(name))
            .flatten()
    }
}

/// Connects to the configured database, migrates it, and builds the domain layer on it.
pub async fn open_deliveries(config: &Config) -> Result<Deliveries, AppError> {
    let connection = db::connect(&config.database_url, config.pools.database_pool_size).await?;
    db::migrate(&connection).await?;
    let partners = Partners::from_config(
        &config.partners,
        &config.default_partner,
        config.jwt.is_development(),
    )?;
    Ok(Deliveries::new(connection, config.default_partner.clone()).with_partners(partners))
}

/// Runs `processes` of the service with `config`.
pub async fn run(config: Config, processes: Processes) -> Result<(), AppError> {
    App::new(config).await?.run(processes).await
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests and messages in flight");
}

/// Installs the global log subscriber: to stderr (stdout is for what a command prints), as
/// text or JSON, filtered by `RUST_LOG`.
///
/// The lines are written by a thread of their own, so that a request never waits for the
/// disk or a slow reader of stderr (a write to a file can wait for the file system's journal,
/// which the database's flushes keep busy). None is dropped while the process runs: with
/// its buffer full, logging waits instead. The thread takes every line waiting at once and
/// writes them together (stderr itself is unbuffered: a write call per line), flushing
/// before it waits again. Keep the returned guard until the process ends: dropping it
/// writes out what is left (tracing-appender gives that a second).
pub fn init_tracing(log: &LogConfig) -> Result<LogWriter, AppError> {
    let filter =
        EnvFilter::try_new(&log.log_filter).map_err(|err| AppError::Logging(err.to_string()))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colours for a person at a terminal, not escape codes in a log file or collector.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|err| AppError::Logging(err.to_string()))?;
    Ok(LogWriter {
        _writes_the_rest_when_dropped: guard,
    })
}

/// The thread that writes the log ([`init_tracing`]); dropped, it writes what is left.
#[derive(Debug)]
#[must_use = "dropping it stops the log"]
pub struct LogWriter {
    _writes_the_rest_when_dropped: tracing_appender::non_blocking::WorkerGuard,
}
