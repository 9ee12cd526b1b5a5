//! A load generator for delivery-svc: drives N deliveries through the happy path over HTTP
//! (payment event → pick_up → deliver → confirm_receipt, then the customer reads the
//! delivery) with C concurrent clients, each driving one delivery at a time, and reports
//! throughput, latency percentiles per endpoint and the server's peak memory.
//!
//! By default it starts the server itself (a release build, so build that first) on a fresh
//! SQLite file in a temporary directory, with a signing key it picks and a rate limit too
//! high to throttle the run:
//!
//! ```sh
//! cargo build --release -p delivery-svc --locked
//! cargo run --release -p delivery-examples --example loadgen -- --deliveries 1000 --concurrency 1000
//! cargo run --release -p delivery-examples --example loadgen -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/loadgen --deliveries 1000 --concurrency 1000
//! ```
//!
//! `--base-url` drives a server that is already running instead (its `JWT_SECRET` is then
//! needed to sign tokens, and its memory is not reported). Any failed request is reported
//! and makes the exit status non-zero. docs/benchmarks.md has the measured numbers.
//!
//! `--amqp` feeds the payments through RabbitMQ instead (`AMQP_URL`, default the local
//! broker): the started server gets `AMQP_URL`, each payment is published to the exchange
//! `payments` as the payment service does, and the client waits for its delivery on the
//! read side before it goes on over HTTP as above. The run also listens on
//! `delivery.events` and reports how long events take to get there.
//!
//! A started server books every new delivery with its partner (ADR 0006): the run plays that
//! partner in this process with the partner simulator, silent (it accepts each booking and
//! never reports, since the run makes the partner's transitions itself), and configures the
//! server with it (`--default-partner`, `--partner`, `--partner-webhook-secret`).
//!
//! The started server inherits the environment (`RUST_LOG`, `REDIS_URL`, …) except what
//! the run sets.

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use delivery_svc::auth::{IdentityClaims, KeyMode, TokenAuthority, TokenSigner};
use delivery_svc::config::JwtConfig;
use delivery_svc::domain::{Principal, PrincipalRole};
use delivery_svc::partner::signature::WebhookSecret;
use hdrhistogram::Histogram;
use partner_simulator::{Simulator, SimulatorConfig};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uuid::Uuid;

#[path = "amqp.rs"]
mod amqp;
#[path = "loadgen_amqp.rs"]
mod loadgen_amqp;

use loadgen_amqp::{EventLatencies, Rabbit};

type BoxError = Box<dyn Error + Send + Sync>;

/// Drive deliveries through delivery-svc's happy path and measure it.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// How many deliveries to drive from payment event to confirmed receipt.
    #[arg(long, short = 'n', default_value_t = 1000)]
    deliveries: usize,

    /// How many clients run at once; each drives one delivery at a time.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,

    /// Start this many deliveries per second (open loop) instead of each client starting
    /// its next one at once: latency then shows what clients see at that load rather than
    /// at saturation. The clients must be enough to keep up.
    #[arg(long)]
    rate: Option<f64>,

    /// Each client pauses between one step of its delivery and the next (and before its
    /// next delivery) for a random time between half and one and a half times this, as
    /// partners and customers act at their own pace; the clients' first steps are spread
    /// over a delivery's pauses. With C clients about C deliveries are then in progress at
    /// once, each client making a request about every pause plus its answer.
    #[arg(long, value_name = "MS", conflicts_with = "rate")]
    think_ms: Option<u64>,

    /// The delivery-svc binary to start. Default: the one next to this program's
    /// directory (cargo puts examples in `<target>/release/examples/`), so that
    /// `CARGO_TARGET_DIR` is followed.
    #[arg(long)]
    server_bin: Option<PathBuf>,

    /// The database the started server uses and migrates, e.g.
    /// `postgres://postgres@127.0.0.1:5432/loadgen` (use an empty one so runs compare).
    /// Default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,

    /// Drive the server already running here instead of starting one.
    #[arg(long, conflicts_with_all = ["server_bin", "database_url"])]
    base_url: Option<String>,

    /// The partner the server assigns new deliveries to (its DEFAULT_PARTNER): the
    /// partner token speaks for it.
    #[arg(long, default_value = "simulated")]
    partner: String,

    /// Feed the payments through RabbitMQ at `AMQP_URL` (default the local broker) instead
    /// of `POST /v1/payment-events`, and time the delivery events.
    #[arg(long, conflicts_with = "base_url")]
    amqp: bool,

    /// Stop each delivery once it exists: no transitions and no read, only the payment.
    #[arg(long)]
    payments_only: bool,

    /// Leave out the customer's closing `GET /v1/deliveries/{id}`: only the happy path
    /// itself, the payment event and the three transitions.
    #[arg(long, conflicts_with = "payments_only")]
    no_read: bool,

    /// Send POSTs without an `Idempotency-Key` (the server then keeps no idempotency
    /// record), to see what the records cost.
    #[arg(long)]
    no_idempotency_keys: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// The server's token settings. A started server gets a random secret unless
    /// JWT_SECRET is set; with --base-url the server's JWT_SECRET is required.
    #[command(flatten)]
    jwt: JwtConfig,
}

/// Far above what the run can send, so the limiter never answers 429 and costs only its
/// bookkeeping.
const UNTHROTTLED_RATE: &str = "1000000";

/// How long the started server may take to migrate and answer `/readyz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Longer than any run; a token that expires mid-run would turn into 401s.
const TOKEN_TTL: chrono::Duration = chrono::Duration::hours(6);

/// How many failure messages the report shows; the rest are only counted.
const FAILURE_SAMPLES: usize = 10;

/// How long a client waits for its payment message's delivery, and the run for the last
/// delivery events.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Linux reports process CPU time in these ticks per second (`USER_HZ`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(report) if report.failures() == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<Report, BoxError> {
    if args.deliveries == 0 || args.concurrency == 0 {
        return Err("--deliveries and --concurrency must be at least 1".into());
    }
    let start_interval = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Some(Duration::from_secs_f64(1.0 / rate)),
        Some(_) => return Err("--rate must be a positive number".into()),
        None => None,
    };
    if args.base_url.is_none() && args.jwt.jwt_secret.is_none() {
        args.jwt.jwt_secret = Some(format!(
            "{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        ));
    }
    let authority = TokenAuthority::from_config(&args.jwt)?;
    let signer = match (authority.mode(), authority.signer()) {
        (KeyMode::SharedSecret, Some(signer)) => signer,
        _ => {
            return Err(
                "tokens are signed with JWT_SECRET (--jwt-secret); set it to the server's".into(),
            );
        }
    };
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let tokens = Tokens::mint(signer, &args.partner, &tag, args.deliveries)?;

    // The run's own names on the broker: queues of earlier runs cannot interfere.
    let namespace = args.amqp.then(|| amqp::named(&format!("loadgen-{tag}.")));
    let rabbit = match &namespace {
        Some(namespace) => Some(Rabbit::connect(namespace).await?),
        None => None,
    };
    let mut server = match &args.base_url {
        Some(base_url) => Server::external(base_url),
        None => Server::start(&args, namespace.as_deref()).await?,
    };
    let client = Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    server.wait_ready(&client).await?;
    if let Some(rabbit) = &rabbit {
        rabbit.wait_for_server(STARTUP_TIMEOUT).await?;
    }

    let cpu_before = (server.cpu_secs(), own_cpu_secs());
    let load = Arc::new(Load {
        client,
        base_url: server.base_url.clone(),
        tokens,
        tag,
        idempotency_keys: !args.no_idempotency_keys,
        payments_only: args.payments_only,
        read: !args.no_read,
        rabbit,
        next: AtomicUsize::new(0),
        deliveries: args.deliveries,
        start_interval,
        think: args.think_ms.map(Duration::from_millis),
        started: Instant::now(),
        started_at: Utc::now(),
    });
    let clients: Vec<_> = (0..args.concurrency.min(args.deliveries))
        .map(|_| Ok(tokio::spawn(Arc::clone(&load).drive(Stats::new()?))))
        .collect::<Result<_, BoxError>>()?;
    let mut stats = Stats::new()?;
    for client in clients {
        stats.merge(client.await?)?;
    }
    let elapsed = load.started.elapsed();
    let events = match &load.rabbit {
        Some(rabbit) => {
            // An event per state change the clients saw succeed.
            let changes = [
                Measure::PaymentVisible,
                Measure::PickUp,
                Measure::Deliver,
                Measure::ConfirmReceipt,
            ];
            let expected = changes
                .iter()
                .map(|&measure| stats.latencies[measure as usize].len())
                .sum::<u64>() as usize;
            rabbit.wait_for_events(expected, EVENT_TIMEOUT).await;
            Some(rabbit.latencies(load.started_at, expected)?)
        }
        None => None,
    };
    let cpu_secs = |before: Option<f64>, after: Option<f64>| Some(after? - before?);

    let report = Report {
        deliveries: args.deliveries,
        clients: args.concurrency.min(args.deliveries),
        rate: args.rate,
        think_ms: args.think_ms,
        database: server.database(),
        feed: if args.amqp { "RabbitMQ" } else { "HTTP" },
        idempotency_keys: load.idempotency_keys,
        elapsed,
        server_peak_rss_kib: server.peak_rss_kib(),
        server_cpu_secs: cpu_secs(cpu_before.0, server.cpu_secs()),
        loadgen_cpu_secs: cpu_secs(cpu_before.1, own_cpu_secs()),
        partner_bookings: server.partner_bookings(),
        stats,
        events,
    };
    let kept_log = server.stop(report.failures() > 0).await;
    if let Some(rabbit) = Arc::into_inner(load).and_then(|load| load.rabbit) {
        rabbit.clean_up().await;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_table());
    }
    if let Some(log) = kept_log {
        eprintln!("the server's log is kept at {}", log.display());
    }
    Ok(report)
}

/// This process's CPU time so far (user and system), in seconds.
fn own_cpu_secs() -> Option<f64> {
    cpu_secs_of("self")
}

/// The CPU time of process `pid` (`self` for this one) from `/proc/<pid>/stat`.
fn cpu_secs_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces, start at field 3.
    let (_, fields) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / CLOCK_TICKS_PER_SECOND)
}

/// The bearer tokens of the run, made before it starts so that signing is not measured.
#[derive(Debug)]
struct Tokens {
    service: String,
    partner: String,
    /// One customer per delivery, indexed like the deliveries.
    customers: Vec<String>,
}

impl Tokens {
    fn mint(
        signer: &TokenSigner,
        partner_id: &str,
        tag: &str,
        deliveries: usize,
    ) -> Result<Tokens, BoxError> {
        let mint = |role, sub: String, customer_id: Option<String>, partner_id: Option<&str>| {
            let principal = Principal::try_from(IdentityClaims {
                sub,
                role,
                customer_id,
                partner_id: partner_id.map(str::to_owned),
            })?;
            Ok::<_, BoxError>(signer.mint(&principal, Utc::now(), TOKEN_TTL)?)
        };
        Ok(Tokens {
            service: mint(
                PrincipalRole::Service,
                "loadgen-payments".into(),
                None,
                None,
            )?,
            partner: mint(
                PrincipalRole::Partner,
                "loadgen-partner".into(),
                None,
                Some(partner_id),
            )?,
            customers: (0..deliveries)
                .map(|index| {
                    let customer = customer_id(tag, index);
                    mint(
                        PrincipalRole::Customer,
                        format!("loadgen-{customer}"),
                        Some(customer),
                        None,
                    )
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

fn customer_id(tag: &str, index: usize) -> String {
    format!("cust-{tag}-{index}")
}

/// The server under load.
#[derive(Debug)]
struct Server {
    base_url: String,
    /// The process, when this program started it (not with `--base-url`).
    spawned: Option<SpawnedServer>,
}

#[derive(Debug)]
struct SpawnedServer {
    process: Child,
    database_url: String,
    /// Holds the server's log and, by default, its SQLite file.
    workdir: TempDir,
    /// The partner the server books with: the simulator, silent.
    partner: partner_simulator::Running,
}

impl Server {
    fn external(base_url: &str) -> Server {
        Server {
            base_url: base_url.trim_end_matches('/').to_owned(),
            spawned: None,
        }
    }

    /// Starts the server; with `amqp_namespace`, on RabbitMQ under that namespace, else on
    /// its in-process bus.
    async fn start(args: &Args, amqp_namespace: Option<&str>) -> Result<Server, BoxError> {
        let server_bin = match &args.server_bin {
            Some(path) => path.clone(),
            None => default_server_bin()?,
        };
        let workdir = tempfile::Builder::new().prefix("loadgen-").tempdir()?;
        let database_url = args.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                workdir.path().join("delivery.db").display()
            )
        });
        // The OS picks a free port; the server binds it a moment later.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let log = std::fs::File::create(workdir.path().join("server.log"))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let secret = WebhookSecret::random()
            .map_err(|err| format!("cannot make a webhook secret: {err}"))?
            .to_string();
        let partner = Simulator::new(SimulatorConfig {
            silent: true,
            ..SimulatorConfig::new(
                &args.partner,
                &format!("{base_url}/v1/partner/webhooks"),
                &secret,
            )
        })?
        .start((Ipv4Addr::LOCALHOST, 0).into())
        .await?;
        let jwt = &args.jwt;
        let mut command = Command::new(&server_bin);
        match amqp_namespace {
            Some(namespace) => command
                .env("AMQP_URL", amqp::url())
                .env("AMQP_NAMESPACE", namespace),
            // An AMQP_URL in our environment must not turn an HTTP run into a RabbitMQ one.
            None => command.env_remove("AMQP_URL"),
        };
        let process = command
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", jwt.jwt_secret.as_deref().unwrap_or_default())
            .env_remove("JWT_PUBLIC_KEY_FILE")
            .env("JWT_ISSUER", &jwt.jwt_issuer)
            .env("JWT_AUDIENCE", &jwt.jwt_audience)
            .arg("--default-partner")
            .arg(&args.partner)
            .arg("--partner")
            .arg(format!("{}={}", args.partner, partner.base_url()))
            .arg("--partner-webhook-secret")
            .arg(format!("{}={secret}", args.partner))
            .env_remove("DEFAULT_PARTNER")
            .env_remove("PARTNERS")
            .env_remove("PARTNER_WEBHOOK_SECRETS")
            .env("RATE_LIMIT_PER_SECOND", UNTHROTTLED_RATE)
            .env("RATE_LIMIT_BURST", UNTHROTTLED_RATE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", server_bin.display()))?;
        Ok(Server {
            base_url,
            spawned: Some(SpawnedServer {
                process,
                database_url,
                workdir,
                partner,
            }),
        })
    }

    /// The backend, named by the URL's scheme: the rest may hold a password.
    fn database(&self) -> String {
        self.spawned.as_ref().map_or_else(
            || "as the running server is configured".to_owned(),
            |spawned| {
                let (scheme, _) = spawned.database_url.split_once(':').unwrap_or_default();
                scheme.to_owned()
            },
        )
    }

    /// Polls `/readyz` until the database is migrated and answers.
    async fn wait_ready(&mut self, client: &Client) -> Result<(), BoxError> {
        let url = format!("{}/readyz", self.base_url);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(spawned) = &mut self.spawned
                && let Some(status) = spawned.process.try_wait()?
            {
                let log = std::fs::read_to_string(spawned.workdir.path().join("server.log"))?;
                return Err(
                    format!("the server exited ({status}) before it was ready:\n{log}").into(),
                );
            }
            let ready = client.get(&url).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{url} did not answer 200 within {STARTUP_TIMEOUT:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The most memory the started server held at once (Linux's `VmHWM`).
    fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.spawned.as_ref()?.process.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    }

    /// The bookings the started server has made with its partner so far.
    fn partner_bookings(&self) -> Option<usize> {
        let spawned = self.spawned.as_ref()?;
        Some(spawned.partner.simulator().ledger().shipments().len())
    }

    /// The started server's CPU time so far, in seconds.
    fn cpu_secs(&self) -> Option<f64> {
        let pid = self.spawned.as_ref()?.process.id()?;
        cpu_secs_of(&pid.to_string())
    }

    /// Stops a started server. After a failed run its log is kept for reading; the path is
    /// returned.
    async fn stop(self, keep_log: bool) -> Option<PathBuf> {
        let SpawnedServer {
            mut process,
            workdir,
            partner,
            ..
        } = self.spawned?;
        // Nothing is left to finish: the run is over and its data is thrown away.
        if let Err(err) = process.kill().await {
            eprintln!("loadgen: cannot stop the server: {err}");
        }
        partner.stop().await;
        keep_log.then(|| workdir.keep().join("server.log"))
    }
}

/// `delivery-svc` in the directory above this program's (`<target>/release/examples/`).
fn default_server_bin() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell where this program is; pass --server-bin")?;
    Ok(release.join("delivery-svc"))
}

/// What the run times, reported separately: each kind of request, and the way of a payment
/// message to the read side. The variants are in report order, and `measure as usize`
/// indexes the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    PaymentEvent,
    PaymentMessage,
    ReadOrdering,
    PickUp,
    Deliver,
    ConfirmReceipt,
    ReadDelivery,
    PaymentVisible,
}

impl Measure {
    /// Every variant, in declaration order.
    const ALL: [Measure; 8] = [
        Measure::PaymentEvent,
        Measure::PaymentMessage,
        Measure::ReadOrdering,
        Measure::PickUp,
        Measure::Deliver,
        Measure::ConfirmReceipt,
        Measure::ReadDelivery,
        Measure::PaymentVisible,
    ];

    fn label(self) -> &'static str {
        match self {
            Measure::PaymentEvent => "POST /v1/payment-events",
            Measure::PaymentMessage => "AMQP publish payment (to confirm)",
            Measure::ReadOrdering => "GET /v1/orderings/{id}/deliveries",
            Measure::PickUp => "POST …/transitions pick_up",
            Measure::Deliver => "POST …/transitions deliver",
            Measure::ConfirmReceipt => "POST …/transitions confirm_receipt",
            Measure::ReadDelivery => "GET /v1/deliveries/{id}",
            Measure::PaymentVisible => "payment published → visible (a)",
        }
    }

    fn is_transition(self) -> bool {
        matches!(
            self,
            Measure::PickUp | Measure::Deliver | Measure::ConfirmReceipt
        )
    }

    /// Whether this is one HTTP request (and so counts in "all requests").
    fn is_request(self) -> bool {
        !matches!(self, Measure::PaymentMessage | Measure::PaymentVisible)
    }
}

/// What every client shares.
#[derive(Debug)]
struct Load {
    client: Client,
    base_url: String,
    tokens: Tokens,
    /// Makes this run's ids unique, so a database that holds earlier runs takes it too.
    tag: String,
    idempotency_keys: bool,
    payments_only: bool,
    /// Whether the customer reads the delivery once it is confirmed.
    read: bool,
    /// With `--amqp`: payments go this way, and the delivery events are timed.
    rabbit: Option<Rabbit>,
    /// The index of the next delivery a client takes.
    next: AtomicUsize,
    deliveries: usize,
    /// With `--rate`: delivery `index` starts `index` intervals after `started`.
    start_interval: Option<Duration>,
    /// With `--think-ms`: the mean pause before each step.
    think: Option<Duration>,
    started: Instant,
    /// `started` on the clock the service stamps events with.
    started_at: DateTime<Utc>,
}

/// Why a delivery could not go on.
#[derive(Debug)]
struct Failure {
    measure: Measure,
    message: String,
}

impl Load {
    /// One client: takes deliveries until there are none left.
    async fn drive(self: Arc<Self>, mut stats: Stats) -> Stats {
        if let Some(think) = self.think {
            // Spread over a whole delivery's pauses, so that the clients are at every step
            // of their deliveries from the start, as they are later on, not all paying first.
            let pauses = if self.payments_only { 1.0 } else { 4.0 };
            tokio::time::sleep(think.mul_f64(pauses * rand::random::<f64>())).await;
        }
        for started in 0.. {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.deliveries {
                break;
            }
            // Between one delivery and the next (the spread above comes before the first),
            // so that a client that is done does not pause once more.
            if started > 0 {
                self.pause().await;
            }
            if let Some(interval) = self.start_interval {
                let due = self.started + interval.mul_f64(index as f64);
                tokio::time::sleep_until(due.into()).await;
                // A delivery that starts late was not offered at the rate asked for.
                stats.start_lag = stats.start_lag.max(due.elapsed());
            }
            if let Err(failure) = self.drive_delivery(index, &mut stats).await {
                stats.record_failure(failure);
            }
        }
        stats
    }

    /// With `--think-ms`, a random pause of about that long; else none.
    async fn pause(&self) {
        if let Some(think) = self.think {
            tokio::time::sleep(think.mul_f64(0.5 + rand::random::<f64>())).await;
        }
    }

    /// The happy path of delivery `index`, stopping at the first unexpected answer.
    async fn drive_delivery(&self, index: usize, stats: &mut Stats) -> Result<(), Failure> {
        let payment = self.payment(index);
        let id = match &self.rabbit {
            None => self.start_by_payment_event(&payment, stats).await?,
            Some(rabbit) => {
                self.start_by_payment_message(rabbit, index, &payment, stats)
                    .await?
            }
        };
        if self.payments_only {
            return Ok(());
        }
        let transitions = format!("{}/v1/deliveries/{id}/transitions", self.base_url);
        let customer = &self.tokens.customers[index];
        let steps = [
            (Measure::PickUp, &self.tokens.partner, "PICKED_UP"),
            (Measure::Deliver, &self.tokens.partner, "DELIVERED"),
            (Measure::ConfirmReceipt, customer, "DELIVERY_CONFIRMED"),
        ];
        for (measure, token, to) in steps {
            self.pause().await;
            // Made as it is sent: a delivery is reported delivered when it was.
            let body = match measure {
                Measure::PickUp => {
                    json!({"transition": "pick_up", "partner_order_number": format!("LG-{}-{index}", self.tag)})
                }
                Measure::Deliver => json!({"transition": "deliver", "delivered_at": Utc::now()}),
                _ => json!({"transition": "confirm_receipt"}),
            };
            let request = self.post(&transitions, token, &body);
            let outcome = self.send(measure, request, StatusCode::OK, stats).await?;
            if let Some(rabbit) = &self.rabbit {
                rabbit.answered(&id, to, Utc::now());
            }
            expect_field(measure, &outcome, "to", to)?;
        }
        if !self.read {
            return Ok(());
        }
        let request = self
            .client
            .get(format!("{}/v1/deliveries/{id}", self.base_url))
            .bearer_auth(customer);
        let delivery = self
            .send(Measure::ReadDelivery, request, StatusCode::OK, stats)
            .await?;
        expect_field(
            Measure::ReadDelivery,
            &delivery,
            "state",
            "DELIVERY_CONFIRMED",
        )
    }

    /// The payment service's `payment.succeeded` for delivery `index`: the same JSON over
    /// HTTP and over RabbitMQ.
    fn payment(&self, index: usize) -> Value {
        let tag = &self.tag;
        json!({
            "event_id": Uuid::new_v4(),
            "type": "payment.succeeded",
            "occurred_at": Utc::now(),
            "payment_id": format!("pay-{tag}-{index}"),
            "ordering_id": ordering_id(tag, index),
            "customer_id": customer_id(tag, index),
            "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square",
                                 "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
            "lines": [{"product_id": "isbn-9780141439518", "title": "Pride and Prejudice",
                       "format": "PHYSICAL", "quantity": 1}],
        })
    }

    /// How the delivery comes to exist over HTTP: the payment service posts the payment.
    /// Returns the new delivery's id.
    async fn start_by_payment_event(
        &self,
        payment: &Value,
        stats: &mut Stats,
    ) -> Result<String, Failure> {
        let measure = Measure::PaymentEvent;
        let request = self.post(
            &format!("{}/v1/payment-events", self.base_url),
            &self.tokens.service,
            payment,
        );
        let created = self
            .send(measure, request, StatusCode::CREATED, stats)
            .await?;
        text_field(measure, &created["delivery_id"])
    }

    /// How the delivery comes to exist over RabbitMQ: the payment service publishes the
    /// payment; once its `delivery.created` event is out (the read side is written in the
    /// same batch), the customer reads the ordering's deliveries. Times the way from
    /// publish to that answer. Returns the new delivery's id.
    async fn start_by_payment_message(
        &self,
        rabbit: &Rabbit,
        index: usize,
        payment: &Value,
        stats: &mut Stats,
    ) -> Result<String, Failure> {
        let ordering_id = ordering_id(&self.tag, index);
        let created = rabbit.creation_of(&ordering_id);
        let published = Instant::now();
        let fail = |message: String| Failure {
            measure: Measure::PaymentVisible,
            message,
        };
        rabbit
            .publish_payment(payment)
            .await
            .map_err(|message| Failure {
                measure: Measure::PaymentMessage,
                message,
            })?;
        stats.record(Measure::PaymentMessage, published, published.elapsed());
        tokio::time::timeout(EVENT_TIMEOUT, created)
            .await
            .map_err(|_| fail(format!("no delivery.created within {EVENT_TIMEOUT:?}")))?
            .map_err(|_| fail("the delivery.events consumer stopped".into()))?;
        let request = self
            .client
            .get(format!(
                "{}/v1/orderings/{ordering_id}/deliveries",
                self.base_url
            ))
            .bearer_auth(&self.tokens.customers[index]);
        let listed = self
            .send(Measure::ReadOrdering, request, StatusCode::OK, stats)
            .await?;
        stats.record(Measure::PaymentVisible, published, published.elapsed());
        text_field(Measure::ReadOrdering, &listed["items"][0]["id"])
    }

    fn post(&self, url: &str, token: &str, body: &Value) -> RequestBuilder {
        let request = self.client.post(url).bearer_auth(token).json(body);
        if self.idempotency_keys {
            request.header("Idempotency-Key", Uuid::new_v4().to_string())
        } else {
            request
        }
    }

    /// Sends `request` and reads the whole answer, timing both; anything but `expected`
    /// is a failure.
    async fn send(
        &self,
        measure: Measure,
        request: RequestBuilder,
        expected: StatusCode,
        stats: &mut Stats,
    ) -> Result<Value, Failure> {
        let fail = |message: String| Failure { measure, message };
        let started = Instant::now();
        let response = request.send().await.map_err(|err| fail(err.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| fail(err.to_string()))?;
        let elapsed = started.elapsed();
        if status != expected {
            return Err(fail(format!(
                "{status} (expected {expected}): {}",
                String::from_utf8_lossy(&body)
            )));
        }
        stats.record(measure, started, elapsed);
        serde_json::from_slice(&body).map_err(|err| fail(format!("not JSON: {err}")))
    }
}

fn ordering_id(tag: &str, index: usize) -> String {
    format!("ord-{tag}-{index}")
}

fn expect_field(measure: Measure, body: &Value, field: &str, want: &str) -> Result<(), Failure> {
    if body[field] == want {
        Ok(())
    } else {
        Err(Failure {
            measure,
            message: format!("`{field}` is {}, expected {want:?}", body[field]),
        })
    }
}

fn text_field(measure: Measure, value: &Value) -> Result<String, Failure> {
    value.as_str().map(str::to_owned).ok_or_else(|| Failure {
        measure,
        message: format!("expected a string, got {value}"),
    })
}

/// 1 µs to 10 minutes at 3 significant digits: 0.1% resolution over every latency a run
/// can see.
fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// A latency as [`histogram`] records it: in microseconds, at least its lowest value, 1.
fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Latencies and failures, per measure.
#[derive(Debug)]
struct Stats {
    /// Microseconds of successes, indexed by `Measure as usize`.
    latencies: Vec<Histogram<u64>>,
    /// Microseconds of every successful request.
    all_latencies: Histogram<u64>,
    failures: [usize; Measure::ALL.len()],
    failure_samples: Vec<String>,
    /// With `--rate`: how late the latest delivery started.
    start_lag: Duration,
    /// Each successful request: when it was answered, whether it was a transition, and
    /// its latency.
    answered: Vec<(Instant, bool, Duration)>,
    /// Of one client, from its first request to its last answer; once the clients' stats
    /// are merged, from the latest first request to the earliest last answer: the time
    /// when every client (that had an answer) was at work, without the run's start and end.
    all_busy: Option<(Instant, Instant)>,
}

impl Stats {
    fn new() -> Result<Stats, BoxError> {
        Ok(Stats {
            latencies: Measure::ALL
                .iter()
                .map(|_| histogram())
                .collect::<Result<_, _>>()?,
            all_latencies: histogram()?,
            failures: [0; Measure::ALL.len()],
            failure_samples: Vec::new(),
            start_lag: Duration::ZERO,
            answered: Vec::new(),
            all_busy: None,
        })
    }

    /// A success of `measure` sent at `sent`, answered `elapsed` later, by the client
    /// whose stats these are.
    fn record(&mut self, measure: Measure, sent: Instant, elapsed: Duration) {
        let answered = sent + elapsed;
        let first = self.all_busy.map_or(sent, |(first, _)| first);
        self.all_busy = Some((first, answered));
        let latency = micros(elapsed);
        self.latencies[measure as usize].saturating_record(latency);
        if measure.is_request() {
            self.answered
                .push((answered, measure.is_transition(), elapsed));
            self.all_latencies.saturating_record(latency);
        }
    }

    fn record_failure(&mut self, failure: Failure) {
        self.failures[failure.measure as usize] += 1;
        if self.failure_samples.len() < FAILURE_SAMPLES {
            self.failure_samples
                .push(format!("{}: {}", failure.measure.label(), failure.message));
        }
    }

    /// Adds what `other` measured.
    fn merge(&mut self, other: Stats) -> Result<(), BoxError> {
        for (mine, theirs) in self.latencies.iter_mut().zip(&other.latencies) {
            mine.add(theirs)?;
        }
        self.all_latencies.add(&other.all_latencies)?;
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine += theirs;
        }
        let room = FAILURE_SAMPLES.saturating_sub(self.failure_samples.len());
        self.failure_samples
            .extend(other.failure_samples.into_iter().take(room));
        self.start_lag = self.start_lag.max(other.start_lag);
        self.answered.extend(other.answered);
        self.all_busy = match (self.all_busy, other.all_busy) {
            (Some((my_first, my_last)), Some((their_first, their_last))) => {
                Some((my_first.max(their_first), my_last.min(their_last)))
            }
            (mine, theirs) => mine.or(theirs),
        };
        Ok(())
    }
}

/// What [`Report::all_busy`] finds.
#[derive(Debug)]
struct AllBusy {
    seconds: f64,
    transitions_per_second: f64,
    requests: Row,
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    deliveries: usize,
    clients: usize,
    rate: Option<f64>,
    think_ms: Option<u64>,
    database: String,
    /// How payments arrive: "HTTP" or "RabbitMQ".
    feed: &'static str,
    idempotency_keys: bool,
    elapsed: Duration,
    server_peak_rss_kib: Option<u64>,
    server_cpu_secs: Option<f64>,
    loadgen_cpu_secs: Option<f64>,
    /// Bookings the started server made with the run's partner by the end of the run.
    partner_bookings: Option<usize>,
    stats: Stats,
    events: Option<EventLatencies>,
}

/// One row of the report.
#[derive(Debug)]
struct Row {
    label: &'static str,
    count: u64,
    failures: usize,
    /// p50, p95, p99 and max, in milliseconds.
    millis: [f64; 4],
}

impl Row {
    fn new(label: &'static str, latencies: &Histogram<u64>, failures: usize) -> Row {
        Row {
            label,
            count: latencies.len(),
            failures,
            millis: [
                latencies.value_at_quantile(0.50),
                latencies.value_at_quantile(0.95),
                latencies.value_at_quantile(0.99),
                latencies.max(),
            ]
            .map(|micros| micros as f64 / 1000.0),
        }
    }

    fn write(&self, out: &mut String) {
        let [p50, p95, p99, max] = self.millis;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<36} {:>7} {:>6} {p50:>8.2} {p95:>8.2} {p99:>8.2} {max:>8.2}",
            self.label, self.count, self.failures
        );
    }

    fn to_json(&self) -> Value {
        let [p50, p95, p99, max] = self.millis;
        json!({
            "measure": self.label, "count": self.count, "errors": self.failures,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max,
        })
    }
}

impl EventLatencies {
    fn rows(&self) -> [Row; 2] {
        [
            Row::new("occurred_at → received (b, ≥)", &self.since_occurred, 0),
            Row::new("HTTP answer → received (b, ≤)", &self.since_answer, 0),
        ]
    }

    fn per_second(count: usize, secs: f64) -> f64 {
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }
}

impl Report {
    fn failures(&self) -> usize {
        self.stats.failures.iter().sum::<usize>()
            + self.events.as_ref().map_or(0, EventLatencies::failures)
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }

    /// The run while every client was at work, without its start and its end: none if that
    /// was under a second, too short to say anything.
    fn all_busy(&self) -> Option<AllBusy> {
        let (first, last) = self.stats.all_busy?;
        let seconds = last.checked_duration_since(first)?.as_secs_f64();
        if seconds < 1.0 {
            return None;
        }
        let within: Vec<_> = self
            .stats
            .answered
            .iter()
            .filter(|(answered, ..)| (first..=last).contains(answered))
            .collect();
        let transitions = within
            .iter()
            .filter(|(_, transition, _)| *transition)
            .count();
        let mut latencies = histogram().ok()?;
        for (.., latency) in &within {
            latencies.saturating_record(micros(*latency));
        }
        Some(AllBusy {
            seconds,
            transitions_per_second: transitions as f64 / seconds,
            requests: Row::new("all requests", &latencies, 0),
        })
    }

    fn successful(&self, include: impl Fn(Measure) -> bool) -> u64 {
        Measure::ALL
            .iter()
            .zip(&self.stats.latencies)
            .filter(|(measure, _)| include(**measure))
            .map(|(_, latencies)| latencies.len())
            .sum()
    }

    /// A row per measure the run made, then one for all requests together.
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = Measure::ALL
            .iter()
            .zip(&self.stats.latencies)
            .zip(self.stats.failures)
            .filter(|((_, latencies), failures)| !latencies.is_empty() || *failures > 0)
            .map(|((measure, latencies), failures)| Row::new(measure.label(), latencies, failures))
            .collect();
        rows.push(Row::new(
            "all requests",
            &self.stats.all_latencies,
            self.stats
                .failures
                .iter()
                .zip(Measure::ALL)
                .filter(|(_, measure)| measure.is_request())
                .map(|(failures, _)| failures)
                .sum(),
        ));
        rows
    }

    fn to_table(&self) -> String {
        let mut out = String::new();
        let rss = self.server_peak_rss_kib.map_or_else(
            || "not measured".to_owned(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        );
        let seconds =
            |secs: Option<f64>| secs.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"));
        let pace = match (self.rate, self.think_ms) {
            (Some(rate), _) => format!("starting {rate} deliveries/s"),
            (None, Some(think)) => format!("each pausing {think} ms ±50 % before every step"),
            (None, None) => "each starting the next delivery at once".to_owned(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} deliveries, {} concurrent clients {pace}, payments over {}, database {}, idempotency keys {}",
            self.deliveries,
            self.clients,
            self.feed,
            self.database,
            if self.idempotency_keys { "on" } else { "off" }
        );
        let _ = writeln!(
            out,
            "{:<36} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            "measure", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for row in self.rows() {
            row.write(&mut out);
        }
        let _ = writeln!(
            out,
            "{:.2} s: {:.0} requests/s, {:.0} transitions/s; server peak RSS {rss}, CPU {}; loadgen CPU {}",
            self.elapsed.as_secs_f64(),
            self.per_second(self.successful(Measure::is_request)),
            self.per_second(self.successful(Measure::is_transition)),
            seconds(self.server_cpu_secs),
            seconds(self.loadgen_cpu_secs),
        );
        if let Some(busy) = self.all_busy() {
            let _ = writeln!(
                out,
                "while all {} clients were at work ({:.2} s): {:.0} transitions/s, and",
                self.clients, busy.seconds, busy.transitions_per_second
            );
            busy.requests.write(&mut out);
        }
        if let Some(bookings) = self.partner_bookings {
            let _ = writeln!(out, "partner (silent simulator): {bookings} bookings");
        }
        if self.rate.is_some() {
            let _ = writeln!(
                out,
                "latest start: {:.2} ms behind schedule",
                self.stats.start_lag.as_secs_f64() * 1000.0
            );
        }
        if let Some(events) = &self.events {
            let _ = writeln!(
                out,
                "delivery.events: {} of {} expected received ({} malformed); state change → received:",
                events.received, events.expected, events.malformed
            );
            for row in events.rows() {
                row.write(&mut out);
            }
            let _ = writeln!(
                out,
                "  {} arrived before the HTTP answer (counted as 0); {:.0} deliveries created/s \
                 (run start → last delivery.created), {:.0} events/s",
                events.before_answer,
                EventLatencies::per_second(events.creations, events.last_creation_secs),
                EventLatencies::per_second(events.received, events.last_event_secs),
            );
        }
        if self.failures() > 0 {
            let _ = writeln!(out, "{} failures, for example:", self.failures());
            for sample in &self.stats.failure_samples {
                let _ = writeln!(out, "  {sample}");
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        let measures: Vec<Value> = self.rows().iter().map(Row::to_json).collect();
        let events = self.events.as_ref().map(|events| {
            json!({
                "received": events.received,
                "expected": events.expected,
                "malformed": events.malformed,
                "latencies": events.rows().iter().map(Row::to_json).collect::<Vec<_>>(),
                "before_answer": events.before_answer,
                "created_per_second": EventLatencies::per_second(events.creations, events.last_creation_secs),
                "events_per_second": EventLatencies::per_second(events.received, events.last_event_secs),
            })
        });
        json!({
            "deliveries": self.deliveries,
            "clients": self.clients,
            "deliveries_per_second_offered": self.rate,
            "think_ms": self.think_ms,
            "start_lag_ms": self.rate.map(|_| self.stats.start_lag.as_secs_f64() * 1000.0),
            "payments_over": self.feed,
            "database": self.database,
            "idempotency_keys": self.idempotency_keys,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.per_second(self.successful(Measure::is_request)),
            "transitions_per_second": self.per_second(self.successful(Measure::is_transition)),
            "while_all_clients_at_work": self.all_busy().map(|busy| json!({
                "seconds": busy.seconds,
                "transitions_per_second": busy.transitions_per_second,
                "all_requests": busy.requests.to_json(),
            })),
            "server_peak_rss_kib": self.server_peak_rss_kib,
            "server_cpu_seconds": self.server_cpu_secs,
            "loadgen_cpu_seconds": self.loadgen_cpu_secs,
            "partner_bookings": self.partner_bookings,
            "errors": self.failures(),
            "failure_samples": self.stats.failure_samples,
            "measures": measures,
            "delivery_events": events,
        })
    }
}
