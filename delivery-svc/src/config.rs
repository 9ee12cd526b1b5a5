//! The service's configuration: every setting is a command-line flag with an environment
//! variable behind it (both shown in `--help`), and every setting has a default that makes
//! `cargo run -p delivery-svc` work on a developer's machine with no configuration at all.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use crate::partner::{PartnerEndpoint, PartnerSecret};

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

    #[command(flatten)]
    pub pools: PoolConfig,

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
    pub partners: PartnersConfig,

    #[command(flatten)]
    pub watchdog: WatchdogConfig,

    #[command(flatten)]
    pub booking: BookingConfig,

    #[command(flatten)]
    pub log: LogConfig,

    #[command(flatten)]
    pub messaging: MessagingConfig,

    #[command(flatten)]
    pub live: LiveConfig,

    /// Redis (`redis://HOST:PORT`): caches single-delivery reads and shares the rate
    /// limits between instances. Optional; while it is down the service reads from the
    /// database and limits in-process.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
}

/// The database connection pools: one for the HTTP API's requests, one for the background
/// work (outbox relay, payment consumer, booker, watchdogs), so that a peak of requests
/// cannot starve the background work of connections, nor it the requests.
#[derive(Debug, Clone, clap::Args)]
pub struct PoolConfig {
    /// Database connections for the HTTP API's requests; on PostgreSQL their commands and
    /// their queries each have as many again of their own.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value = "10", global = true)]
    pub database_pool_size: NonZeroU32,

    /// Database connections for the background work: the outbox relay, the payment
    /// consumer, the booker and the watchdogs; on PostgreSQL their commands and their
    /// queries each have as many again of their own.
    #[arg(long, env = "WORKER_POOL_SIZE", default_value = "4", global = true)]
    pub worker_pool_size: NonZeroU32,
}

impl Default for PoolConfig {
    /// The command-line defaults.
    fn default() -> Self {
        command_line_defaults()
    }
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

impl JwtConfig {
    /// Neither a secret nor a public key: the service runs in development mode.
    pub fn is_development(&self) -> bool {
        self.jwt_secret.is_none() && self.jwt_public_key_file.is_none()
    }
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

    /// How long the relay, woken by a commit, waits for more before it publishes
    /// (milliseconds; 0 publishes at once). Under load this gathers the commits of the
    /// moment into one round instead of a round for each, for at most this much latency.
    #[arg(long, env = "RELAY_LINGER_MS", default_value = "5", global = true)]
    pub relay_linger_ms: u64,
}

impl Default for MessagingConfig {
    /// The command-line defaults.
    fn default() -> Self {
        command_line_defaults()
    }
}

/// The live updates' WebSockets (`GET /v1/live`).
#[derive(Debug, Clone, clap::Args)]
pub struct LiveConfig {
    /// How often the service pings each live-updates WebSocket, in milliseconds.
    #[arg(long, env = "LIVE_PING_MS", default_value = "20000", global = true)]
    pub live_ping_ms: NonZeroU64,

    /// How long a live-updates client may take to answer a ping (or to take a message), in
    /// milliseconds, before its connection is closed.
    #[arg(
        long,
        env = "LIVE_PONG_TIMEOUT_MS",
        default_value = "10000",
        global = true
    )]
    pub live_pong_timeout_ms: NonZeroU64,

    /// Events a live-updates connection may fall behind by; a client further behind is
    /// disconnected (close code 1013) rather than slowing the others.
    #[arg(long, env = "LIVE_BUFFER", default_value = "256", global = true)]
    pub live_buffer: NonZeroUsize,
}

impl Default for LiveConfig {
    /// The command-line defaults.
    fn default() -> Self {
        command_line_defaults()
    }
}

/// The delivery partners (see `crate::partner`): each declared by name with the base URL of
/// its API, and the secrets its signed webhooks (`POST /v1/partner/webhooks`) are checked
/// with. In development mode the default partner needs neither: it gets a built-in entry.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PartnersConfig {
    /// A partner, as `NAME=URL` (e.g. `dhl=https://api.dhl.example`). Repeat the flag, or
    /// separate entries with commas in the variable.
    #[arg(
        long = "partner",
        env = "PARTNERS",
        value_name = "NAME=URL",
        value_delimiter = ',',
        global = true
    )]
    pub partner: Vec<PartnerEndpoint>,

    /// A secret a partner signs its webhooks with, as `NAME=whsec_<base64>`. Give a partner
    /// two while it rotates: either verifies.
    #[arg(
        long = "partner-webhook-secret",
        env = "PARTNER_WEBHOOK_SECRETS",
        value_name = "NAME=whsec_…",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub partner_webhook_secret: Vec<PartnerSecret>,

    /// How far (seconds) a webhook's `webhook-timestamp` may be from now, either way: older
    /// ones are refused as replays.
    #[arg(
        long,
        env = "WEBHOOK_TOLERANCE_SECS",
        default_value = "300",
        global = true
    )]
    pub webhook_tolerance_secs: u64,

    /// In development mode, do not start the built-in partner simulator: deliveries then
    /// move only by hand (REST transitions, signed webhooks), and their bookings wait.
    #[arg(long, env = "NO_PARTNER_SIMULATOR", global = true)]
    pub no_partner_simulator: bool,
}

/// The watchdogs (see `crate::watchdog`): deadlines after which the system moves a
/// delivery on by itself. Durations are a whole number with a unit: `90s`, `30m`, `48h`,
/// `7d`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchdogConfig {
    /// How often the watchdogs look for deliveries that are due. A failed delivery is
    /// escalated to the operators within this time.
    #[arg(
        long,
        env = "WATCHDOG_INTERVAL",
        default_value = "5s",
        value_parser = parse_interval,
        global = true
    )]
    pub watchdog_interval: Duration,

    /// How long a delivery may stay CREATED (not picked up) before it fails with
    /// SLA_EXCEEDED.
    #[arg(
        long,
        env = "PICKUP_LIMIT",
        default_value = "48h",
        value_parser = parse_duration,
        global = true
    )]
    pub pickup_limit: Duration,

    /// How long a delivery may stay PICKED_UP (not delivered) before it fails with
    /// SLA_EXCEEDED.
    #[arg(
        long,
        env = "DELIVERY_LIMIT",
        default_value = "72h",
        value_parser = parse_duration,
        global = true
    )]
    pub delivery_limit: Duration,

    /// How long a customer has to confirm or dispute a DELIVERED delivery before the system
    /// confirms it.
    #[arg(
        long,
        env = "CONFIRMATION_WINDOW",
        default_value = "7d",
        value_parser = parse_duration,
        global = true
    )]
    pub confirmation_window: Duration,

    /// At most this many deliveries per rule and round; a full batch starts the next round
    /// at once.
    #[arg(long, env = "WATCHDOG_BATCH", default_value = "100", global = true)]
    pub watchdog_batch: NonZeroU64,
}

impl Default for WatchdogConfig {
    /// The command-line defaults.
    fn default() -> Self {
        command_line_defaults()
    }
}

/// How new delivery orders are booked with their partner (`partner::booking`).
#[derive(Debug, Clone, clap::Args)]
pub struct BookingConfig {
    /// How long one booking call to a partner may take, in milliseconds.
    #[arg(
        long,
        env = "PARTNER_TIMEOUT_MS",
        default_value = "5000",
        global = true
    )]
    pub partner_timeout_ms: NonZeroU64,

    /// Retries of a failed booking call made at once (with backoff from
    /// BOOKING_RETRY_MIN_MS), before the booking waits for a later round.
    #[arg(long, env = "BOOKING_RETRIES", default_value = "3", global = true)]
    pub booking_retries: usize,

    /// The first pause between retries of a booking call, in milliseconds; it doubles.
    #[arg(
        long,
        env = "BOOKING_RETRY_MIN_MS",
        default_value = "200",
        global = true
    )]
    pub booking_retry_min_ms: NonZeroU64,

    /// How often the booker looks for bookings due without being woken (bookings made
    /// by other processes, retries that came due), in milliseconds.
    #[arg(long, env = "BOOKING_POLL_MS", default_value = "1000", global = true)]
    pub booking_poll_ms: NonZeroU64,

    /// How long the booker, woken by a new delivery order, waits for more before it
    /// claims them (milliseconds; 0 claims at once). Under load one round then books the
    /// orders of the moment together, in a few statements, instead of a round each.
    #[arg(long, env = "BOOKING_LINGER_MS", default_value = "50", global = true)]
    pub booking_linger_ms: u64,

    /// Bookings claimed and made side by side per round.
    #[arg(long, env = "BOOKING_BATCH", default_value = "32", global = true)]
    pub booking_batch: NonZeroU64,

    /// Consecutive failed calls to a partner that open its circuit.
    #[arg(long, env = "CIRCUIT_FAILURES", default_value = "5", global = true)]
    pub circuit_failures: NonZeroU32,

    /// How long an open circuit stays open before it lets a trial call through, in
    /// milliseconds.
    #[arg(long, env = "CIRCUIT_OPEN_MS", default_value = "5000", global = true)]
    pub circuit_open_ms: NonZeroU64,
}

impl Default for BookingConfig {
    /// The command-line defaults.
    fn default() -> Self {
        command_line_defaults()
    }
}

/// A group of settings as the command line has them when nothing is given, whatever the
/// environment says: the defaults are written once, in the `#[arg]`s.
fn command_line_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("the command-line defaults parse");
    T::from_arg_matches(&matches).expect("the command-line defaults are complete")
}

/// The longest duration a setting takes: longer ones overflow the clock's arithmetic (a
/// deadline before the year -262144) and mean nothing for a delivery.
const LONGEST_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `90s`, `30m`, `48h`, `7d`: a whole number and one unit, at most 100 years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let Some(unit) = text.chars().last() else {
        return Err("a duration, e.g. 48h".into());
    };
    let number = &text[..text.len() - unit.len_utf8()];
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        _ => {
            return Err(format!(
                "{text:?}: end with a unit, s, m, h or d (e.g. 48h)"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a whole number, then the unit (e.g. 48h)"))?;
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .filter(|duration| *duration <= LONGEST_DURATION)
        .ok_or_else(|| format!("{text:?} is longer than 100 years"))
}

/// The time between two rounds of work: a duration ([`parse_duration`]) that is not zero.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?}: an interval must be longer than zero")),
        interval => Ok(interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group's `Default` is its `#[arg]` defaults, parsed as the command line parses
    /// them (a duration through its value parser, an absent option as `None`).
    #[test]
    fn defaults_are_the_command_lines() {
        let watchdog = WatchdogConfig::default();
        assert_eq!(watchdog.pickup_limit, Duration::from_secs(48 * 3600));
        assert_eq!(watchdog.watchdog_interval, Duration::from_secs(5));
        let messaging = MessagingConfig::default();
        assert_eq!(messaging.amqp_url, None);
        assert_eq!(messaging.relay_linger_ms, 5);
        assert_eq!(BookingConfig::default().booking_batch.get(), 32);
        assert_eq!(LiveConfig::default().live_buffer.get(), 256);
        assert_eq!(PoolConfig::default().worker_pool_size.get(), 4);
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("36500d"), Ok(LONGEST_DURATION));
        for wrong in [
            "",
            "48",
            "h",
            "1.5h",
            "-1h",
            "2w",
            "1é",
            "36501d",
            "99999999999d",
        ] {
            assert!(parse_duration(wrong).is_err(), "{wrong}");
        }
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        for wrong in ["0s", "0d", "5"] {
            assert!(parse_interval(wrong).is_err(), "{wrong}");
        }
    }
}
