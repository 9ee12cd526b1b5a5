//! The service's configuration: every setting is a command-line flag with an environment
//! variable behind it (both shown in `--help`), and every setting has a default that makes
//! `cargo run -p delivery-svc` work on a developer's machine with no configuration at all.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::PathBuf;

/// Everything the service reads at start.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Where the data lives: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://delivery.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

    /// The address to listen on. Without a JWT key (development mode) only a loopback
    /// address is accepted.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub jwt: JwtConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    /// The delivery partner a new delivery order is assigned to.
    #[arg(
        long,
        env = "DEFAULT_PARTNER",
        default_value = "simulated",
        global = true
    )]
    pub default_partner: String,

    #[command(flatten)]
    pub log: LogConfig,

    #[command(flatten)]
    pub messaging: MessagingConfig,

    /// Redis (`redis://HOST:PORT`): caches single-delivery reads and shares the rate
    /// limits between instances. Optional; while it is down the service reads from the
    /// database and limits in-process.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
}

/// How bearer tokens are verified. With neither a secret nor a public key the service runs
/// in development mode: an ephemeral secret, printed tokens, loopback only.
#[derive(Clone, clap::Args)]
pub struct JwtConfig {
    /// HS256 shared secret (at least 32 bytes). Also what `token` signs with.
    #[arg(
        long,
        env = "JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key_file",
        global = true
    )]
    pub jwt_secret: Option<String>,

    /// RS256 public key (PEM) of the identity provider that issues the tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,

    /// The `iss` every token must carry.
    #[arg(
        long,
        env = "JWT_ISSUER",
        default_value = "delivery-svc",
        global = true
    )]
    pub jwt_issuer: String,

    /// The `aud` every token must carry.
    #[arg(
        long,
        env = "JWT_AUDIENCE",
        default_value = "delivery-api",
        global = true
    )]
    pub jwt_audience: String,
}

impl fmt::Debug for JwtConfig {
    // The secret stays out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .finish()
    }
}

/// What one client may ask of the service.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// Requests per second each principal (or, unauthenticated, each peer address) may make
    /// on average.
    #[arg(
        long,
        env = "RATE_LIMIT_PER_SECOND",
        default_value = "20",
        global = true
    )]
    pub rate_limit_per_second: NonZeroU32,

    /// How many requests a principal may make at once above the average.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value = "40", global = true)]
    pub rate_limit_burst: NonZeroU32,

    /// The largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value = "65536", global = true)]
    pub max_body_bytes: usize,
}

/// How the service logs.
#[derive(Debug, Clone, clap::Args)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Which log lines to keep, as a tracing `EnvFilter` (e.g. `info,audit=info,sqlx=warn`).
    #[arg(
        long,
        env = "RUST_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Payment events in, delivery events out (see `crate::messaging`).
#[derive(Debug, Clone, clap::Args)]
pub struct MessagingConfig {
    /// RabbitMQ (`amqp://USER:PASSWORD@HOST:PORT/VHOST`). Without it the service runs an
    /// in-process event bus: the same flow, inside this one process.
    #[arg(long, env = "AMQP_URL", global = true)]
    pub amqp_url: Option<String>,

    /// A prefix for every exchange and queue name (e.g. `staging.`), so that several
    /// installations or test runs can share one broker. Empty in production.
    #[arg(long, env = "AMQP_NAMESPACE", default_value = "", global = true)]
    pub amqp_namespace: String,

    /// How many payment messages one consumer holds unacknowledged at a time.
    #[arg(long, env = "AMQP_PREFETCH", default_value = "32", global = true)]
    pub amqp_prefetch: NonZeroU16,

    /// How many outbox messages the relay publishes per round.
    #[arg(long, env = "RELAY_BATCH", default_value = "100", global = true)]
    pub relay_batch: NonZeroU64,

    /// How often the relay looks for messages written by another process (milliseconds);
    /// this process's own commits wake it at once.
    #[arg(long, env = "RELAY_POLL_MS", default_value = "1000", global = true)]
    pub relay_poll_ms: NonZeroU64,
}

impl Default for MessagingConfig {
    /// The in-process bus with the command-line defaults.
    fn default() -> Self {
        MessagingConfig {
            amqp_url: None,
            amqp_namespace: String::new(),
            amqp_prefetch: NonZeroU16::new(32).expect("not zero"),
            relay_batch: NonZeroU64::new(100).expect("not zero"),
            relay_poll_ms: NonZeroU64::new(1000).expect("not zero"),
        }
    }
}
