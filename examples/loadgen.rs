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

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use delivery_svc::auth::{IdentityClaims, KeyMode, TokenAuthority, TokenSigner};
use delivery_svc::config::JwtConfig;
use delivery_svc::domain::{Principal, PrincipalRole};
use hdrhistogram::Histogram;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uuid::Uuid;

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

    /// The delivery-svc binary to start.
    #[arg(long, default_value = "target/release/delivery-svc")]
    server_bin: PathBuf,

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

    let mut server = match &args.base_url {
        Some(base_url) => Server::external(base_url),
        None => Server::start(&args).await?,
    };
    let client = Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    server.wait_ready(&client).await?;

    let load = Arc::new(Load {
        client,
        base_url: server.base_url.clone(),
        tokens,
        tag,
        idempotency_keys: !args.no_idempotency_keys,
        next: AtomicUsize::new(0),
        deliveries: args.deliveries,
        start_interval,
        started: Instant::now(),
    });
    let clients: Vec<_> = (0..args.concurrency.min(args.deliveries))
        .map(|_| Ok(tokio::spawn(Arc::clone(&load).drive(Stats::new()?))))
        .collect::<Result<_, BoxError>>()?;
    let mut stats = Stats::new()?;
    for client in clients {
        stats.merge(client.await?)?;
    }
    let elapsed = load.started.elapsed();

    let report = Report {
        deliveries: args.deliveries,
        concurrency: args.concurrency,
        rate: args.rate,
        database: server.database(),
        idempotency_keys: load.idempotency_keys,
        elapsed,
        server_peak_rss_kib: server.peak_rss_kib(),
        stats,
    };
    let kept_log = server.stop(report.failures() > 0).await;
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
}

impl Server {
    fn external(base_url: &str) -> Server {
        Server {
            base_url: base_url.trim_end_matches('/').to_owned(),
            spawned: None,
        }
    }

    async fn start(args: &Args) -> Result<Server, BoxError> {
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
        let jwt = &args.jwt;
        let process = Command::new(&args.server_bin)
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", jwt.jwt_secret.as_deref().unwrap_or_default())
            .env_remove("JWT_PUBLIC_KEY_FILE")
            .env("JWT_ISSUER", &jwt.jwt_issuer)
            .env("JWT_AUDIENCE", &jwt.jwt_audience)
            .env("DEFAULT_PARTNER", &args.partner)
            .env("RATE_LIMIT_PER_SECOND", UNTHROTTLED_RATE)
            .env("RATE_LIMIT_BURST", UNTHROTTLED_RATE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", args.server_bin.display()))?;
        Ok(Server {
            base_url: format!("http://127.0.0.1:{port}"),
            spawned: Some(SpawnedServer {
                process,
                database_url,
                workdir,
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

    /// Stops a started server. After a failed run its log is kept for reading; the path is
    /// returned.
    async fn stop(self, keep_log: bool) -> Option<PathBuf> {
        let SpawnedServer {
            mut process,
            workdir,
            ..
        } = self.spawned?;
        // Nothing is left to finish: the run is over and its data is thrown away.
        if let Err(err) = process.kill().await {
            eprintln!("loadgen: cannot stop the server: {err}");
        }
        keep_log.then(|| workdir.keep().join("server.log"))
    }
}

/// A request the run makes, reported separately. The variants are in report order, and
/// `endpoint as usize` indexes the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    PaymentEvent,
    PickUp,
    Deliver,
    ConfirmReceipt,
    ReadDelivery,
}

impl Endpoint {
    /// Every variant, in declaration order.
    const ALL: [Endpoint; 5] = [
        Endpoint::PaymentEvent,
        Endpoint::PickUp,
        Endpoint::Deliver,
        Endpoint::ConfirmReceipt,
        Endpoint::ReadDelivery,
    ];

    fn label(self) -> &'static str {
        match self {
            Endpoint::PaymentEvent => "POST /v1/payment-events",
            Endpoint::PickUp => "POST …/transitions pick_up",
            Endpoint::Deliver => "POST …/transitions deliver",
            Endpoint::ConfirmReceipt => "POST …/transitions confirm_receipt",
            Endpoint::ReadDelivery => "GET /v1/deliveries/{id}",
        }
    }

    fn is_transition(self) -> bool {
        matches!(
            self,
            Endpoint::PickUp | Endpoint::Deliver | Endpoint::ConfirmReceipt
        )
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
    /// The index of the next delivery a client takes.
    next: AtomicUsize,
    deliveries: usize,
    /// With `--rate`: delivery `index` starts `index` intervals after `started`.
    start_interval: Option<Duration>,
    started: Instant,
}

/// Why a delivery could not go on.
#[derive(Debug)]
struct Failure {
    endpoint: Endpoint,
    message: String,
}

impl Load {
    /// One client: takes deliveries until there are none left.
    async fn drive(self: Arc<Self>, mut stats: Stats) -> Stats {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.deliveries {
                return stats;
            }
            if let Some(interval) = self.start_interval {
                tokio::time::sleep_until((self.started + interval.mul_f64(index as f64)).into())
                    .await;
            }
            if let Err(failure) = self.drive_delivery(index, &mut stats).await {
                stats.record_failure(failure);
            }
        }
    }

    /// The happy path of delivery `index`, stopping at the first unexpected answer.
    async fn drive_delivery(&self, index: usize, stats: &mut Stats) -> Result<(), Failure> {
        let id = self.start_by_payment_event(index, stats).await?;
        let transitions = format!("{}/v1/deliveries/{id}/transitions", self.base_url);
        let customer = &self.tokens.customers[index];
        let steps = [
            (
                Endpoint::PickUp,
                &self.tokens.partner,
                json!({"transition": "pick_up", "partner_order_number": format!("LG-{}-{index}", self.tag)}),
                "PICKED_UP",
            ),
            (
                Endpoint::Deliver,
                &self.tokens.partner,
                json!({"transition": "deliver", "delivered_at": Utc::now()}),
                "DELIVERED",
            ),
            (
                Endpoint::ConfirmReceipt,
                customer,
                json!({"transition": "confirm_receipt"}),
                "DELIVERY_CONFIRMED",
            ),
        ];
        for (endpoint, token, body, to) in steps {
            let request = self.post(&transitions, token, &body);
            let outcome = self.send(endpoint, request, StatusCode::OK, stats).await?;
            expect_field(endpoint, &outcome, "to", to)?;
        }
        let request = self
            .client
            .get(format!("{}/v1/deliveries/{id}", self.base_url))
            .bearer_auth(customer);
        let delivery = self
            .send(Endpoint::ReadDelivery, request, StatusCode::OK, stats)
            .await?;
        expect_field(
            Endpoint::ReadDelivery,
            &delivery,
            "state",
            "DELIVERY_CONFIRMED",
        )
    }

    /// How delivery `index` comes to exist: the payment service posts `payment.succeeded`.
    /// Returns the new delivery's id.
    async fn start_by_payment_event(
        &self,
        index: usize,
        stats: &mut Stats,
    ) -> Result<String, Failure> {
        let tag = &self.tag;
        let event = json!({
            "event_id": Uuid::new_v4(),
            "type": "payment.succeeded",
            "occurred_at": Utc::now(),
            "payment_id": format!("pay-{tag}-{index}"),
            "ordering_id": format!("ord-{tag}-{index}"),
            "customer_id": customer_id(tag, index),
            "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square",
                                 "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
            "lines": [{"product_id": "isbn-9780141439518", "title": "Pride and Prejudice",
                       "format": "PHYSICAL", "quantity": 1}],
        });
        let endpoint = Endpoint::PaymentEvent;
        let request = self.post(
            &format!("{}/v1/payment-events", self.base_url),
            &self.tokens.service,
            &event,
        );
        let created = self
            .send(endpoint, request, StatusCode::CREATED, stats)
            .await?;
        created["delivery_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure {
                endpoint,
                message: format!("no delivery_id in {created}"),
            })
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
        endpoint: Endpoint,
        request: RequestBuilder,
        expected: StatusCode,
        stats: &mut Stats,
    ) -> Result<Value, Failure> {
        let fail = |message: String| Failure { endpoint, message };
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
        stats.record(endpoint, elapsed);
        serde_json::from_slice(&body).map_err(|err| fail(format!("not JSON: {err}")))
    }
}

fn expect_field(endpoint: Endpoint, body: &Value, field: &str, want: &str) -> Result<(), Failure> {
    if body[field] == want {
        Ok(())
    } else {
        Err(Failure {
            endpoint,
            message: format!("`{field}` is {}, expected {want:?}", body[field]),
        })
    }
}

/// Latencies and failures, per endpoint.
#[derive(Debug)]
struct Stats {
    /// Microseconds of successful requests, indexed by `Endpoint as usize`.
    latencies: Vec<Histogram<u64>>,
    /// Microseconds of every successful request.
    all_latencies: Histogram<u64>,
    failures: [usize; Endpoint::ALL.len()],
    failure_samples: Vec<String>,
}

impl Stats {
    fn new() -> Result<Stats, BoxError> {
        // 1 µs to 10 minutes at 3 significant digits: 0.1% resolution over every latency
        // a run can see.
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3);
        Ok(Stats {
            latencies: Endpoint::ALL
                .iter()
                .map(|_| histogram())
                .collect::<Result<_, _>>()?,
            all_latencies: histogram()?,
            failures: [0; Endpoint::ALL.len()],
            failure_samples: Vec::new(),
        })
    }

    fn record(&mut self, endpoint: Endpoint, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let micros = micros.max(1);
        self.latencies[endpoint as usize].saturating_record(micros);
        self.all_latencies.saturating_record(micros);
    }

    fn record_failure(&mut self, failure: Failure) {
        self.failures[failure.endpoint as usize] += 1;
        if self.failure_samples.len() < FAILURE_SAMPLES {
            self.failure_samples
                .push(format!("{}: {}", failure.endpoint.label(), failure.message));
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
        Ok(())
    }
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    deliveries: usize,
    concurrency: usize,
    rate: Option<f64>,
    database: String,
    idempotency_keys: bool,
    elapsed: Duration,
    server_peak_rss_kib: Option<u64>,
    stats: Stats,
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

impl Report {
    fn failures(&self) -> usize {
        self.stats.failures.iter().sum()
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }

    fn successful(&self, include: impl Fn(Endpoint) -> bool) -> u64 {
        Endpoint::ALL
            .iter()
            .zip(&self.stats.latencies)
            .filter(|(endpoint, _)| include(**endpoint))
            .map(|(_, latencies)| latencies.len())
            .sum()
    }

    /// A row per endpoint, then one for all requests together.
    fn rows(&self) -> Vec<Row> {
        let row = |label, latencies: &Histogram<u64>, failures| Row {
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
        };
        let mut rows: Vec<Row> = Endpoint::ALL
            .iter()
            .zip(&self.stats.latencies)
            .zip(self.stats.failures)
            .map(|((endpoint, latencies), failures)| row(endpoint.label(), latencies, failures))
            .collect();
        rows.push(row(
            "all requests",
            &self.stats.all_latencies,
            self.failures(),
        ));
        rows
    }

    fn to_table(&self) -> String {
        let mut out = String::new();
        let rss = self.server_peak_rss_kib.map_or_else(
            || "not measured".to_owned(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        );
        let pace = self.rate.map_or_else(
            || "each starting the next delivery at once".to_owned(),
            |rate| format!("starting {rate} deliveries/s"),
        );
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} deliveries, {} concurrent clients {pace}, database {}, idempotency keys {}",
            self.deliveries,
            self.concurrency,
            self.database,
            if self.idempotency_keys { "on" } else { "off" }
        );
        let _ = writeln!(
            out,
            "{:<34} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            "endpoint", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for row in self.rows() {
            let [p50, p95, p99, max] = row.millis;
            let _ = writeln!(
                out,
                "{:<34} {:>7} {:>6} {p50:>8.2} {p95:>8.2} {p99:>8.2} {max:>8.2}",
                row.label, row.count, row.failures
            );
        }
        let _ = writeln!(
            out,
            "{:.2} s: {:.0} requests/s, {:.0} transitions/s; server peak RSS {rss}",
            self.elapsed.as_secs_f64(),
            self.per_second(self.successful(|_| true)),
            self.per_second(self.successful(Endpoint::is_transition)),
        );
        if self.failures() > 0 {
            let _ = writeln!(out, "{} failed requests, for example:", self.failures());
            for sample in &self.stats.failure_samples {
                let _ = writeln!(out, "  {sample}");
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        let endpoints: Vec<Value> = self
            .rows()
            .into_iter()
            .map(|row| {
                let [p50, p95, p99, max] = row.millis;
                json!({
                    "endpoint": row.label, "count": row.count, "errors": row.failures,
                    "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max,
                })
            })
            .collect();
        json!({
            "deliveries": self.deliveries,
            "concurrency": self.concurrency,
            "deliveries_per_second_offered": self.rate,
            "database": self.database,
            "idempotency_keys": self.idempotency_keys,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.per_second(self.successful(|_| true)),
            "transitions_per_second": self.per_second(self.successful(Endpoint::is_transition)),
            "server_peak_rss_kib": self.server_peak_rss_kib,
            "errors": self.failures(),
            "failure_samples": self.stats.failure_samples,
            "endpoints": endpoints,
        })
    }
}
