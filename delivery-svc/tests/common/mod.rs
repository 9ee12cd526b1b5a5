//! What the HTTP tests share: the service in-process behind `poem::test::TestClient`, on a
//! fresh database per test, tokens for every role, and the graph-driven helpers that put a
//! delivery in any state.
//!
//! Databases: every test runs on SQLite, then on PostgreSQL when `TEST_POSTGRES_URL` is
//! set, each fresh ([`databases`]).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod databases;

use std::collections::VecDeque;
use std::num::NonZeroU32;

use chrono::{Duration, Utc};
use delivery_core::{DeliveryState, Transition};
use delivery_svc::app::App;
use delivery_svc::auth::{TokenSigner, transition_roles};
use delivery_svc::config::{
    BookingConfig, Config, JwtConfig, LimitsConfig, LiveConfig, LogConfig, LogFormat,
    MessagingConfig, PartnersConfig, PoolConfig, WatchdogConfig,
};
use delivery_svc::domain::{Principal, PrincipalRole};
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};

/// The HS256 secret of the tests' tokens.
pub const SECRET: &str = "a test secret of at least thirty-two bytes";
/// The partner every delivery is assigned to.
pub const PARTNER: &str = "simulated";
/// The customer of every delivery the helpers create.
pub const CUSTOMER: &str = "cust-1";
/// [`PARTNER`]'s webhook secrets: it is rotating from the old one to the new one, so both
/// verify.
pub const PARTNER_WEBHOOK_SECRET: &str = "whsec_vOpkj8rHoMEr44iDl1RwgWHoAAUMOb5tNkT52FTZ5AY=";
pub const PARTNER_OLD_WEBHOOK_SECRET: &str = "whsec_huvHOQtwG9AZJGw5gvPoMEH0oUdVmjSuPye2dVtEznE=";
/// A second configured partner, to which no delivery is assigned, and its secret.
pub const OTHER_PARTNER: &str = "other-partner";
pub const OTHER_PARTNER_WEBHOOK_SECRET: &str = "whsec_huQlwDvAwygLzg9rdZWXgr3/ttTpEbkjwgmoHh+Q6Ck=";

/// Limits that no functional test reaches.
pub fn generous_limits() -> LimitsConfig {
    LimitsConfig {
        rate_limit_per_second: NonZeroU32::new(10_000).expect("not zero"),
        rate_limit_burst: NonZeroU32::new(10_000).expect("not zero"),
        max_body_bytes: 64 * 1024,
    }
}

/// The configuration of a test service on `database_url`.
pub fn config(database_url: String, limits: LimitsConfig) -> Config {
    Config {
        database_url,
        pools: PoolConfig::default(),
        bind: "127.0.0.1:0".parse().expect("an address"),
        jwt: jwt_config(Some(SECRET.into())),
        limits,
        default_partner: PARTNER.into(),
        partners: partners_config(),
        watchdog: WatchdogConfig::default(),
        booking: BookingConfig::default(),
        log: LogConfig {
            log_format: LogFormat::Text,
            log_filter: "info".into(),
        },
        messaging: MessagingConfig::default(),
        live: LiveConfig::default(),
        redis_url: None,
    }
}

/// [`PARTNER`] and [`OTHER_PARTNER`] with their secrets.
pub fn partners_config() -> PartnersConfig {
    fn parse<T: std::str::FromStr<Err = String>>(text: String) -> T {
        text.parse().expect("a valid partner setting")
    }
    PartnersConfig {
        partner: vec![
            parse(format!("{PARTNER}=http://127.0.0.1:9")),
            parse(format!("{OTHER_PARTNER}=http://127.0.0.1:9")),
        ],
        partner_webhook_secret: vec![
            parse(format!("{PARTNER}={PARTNER_OLD_WEBHOOK_SECRET}")),
            parse(format!("{PARTNER}={PARTNER_WEBHOOK_SECRET}")),
            parse(format!("{OTHER_PARTNER}={OTHER_PARTNER_WEBHOOK_SECRET}")),
        ],
        webhook_tolerance_secs: 300,
        no_partner_simulator: false,
    }
}

pub fn jwt_config(secret: Option<String>) -> JwtConfig {
    JwtConfig {
        jwt_secret: secret,
        jwt_public_key_file: None,
        jwt_issuer: "delivery-svc".into(),
        jwt_audience: "delivery-api".into(),
    }
}

/// Runs `test` against a fresh service on SQLite, then on PostgreSQL (see the module docs).
pub async fn on_every_backend(test: impl AsyncFn(&TestApp)) {
    on_every_backend_with(generous_limits(), test).await;
}

pub async fn on_every_backend_with(limits: LimitsConfig, test: impl AsyncFn(&TestApp)) {
    on_every_database(async |url| {
        let app = TestApp::start(config(url, limits.clone())).await;
        test(&app).await;
        app.close().await;
    })
    .await;
}

/// Runs `test` with the URL of a fresh SQLite database, then of a fresh PostgreSQL schema
/// (see [`databases`]).
pub async fn on_every_database(test: impl AsyncFn(String)) {
    databases::on_every_database("http", test).await;
}

/// The service in-process, and tokens to call it with.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    signer: TokenSigner,
    db: DatabaseConnection,
}

impl TestApp {
    pub async fn start(config: Config) -> TestApp {
        let jwt = config.jwt.clone();
        TestApp::of(&App::new(config).await.expect("the service starts"), &jwt)
    }

    /// The HTTP surface of `app`, started with `jwt`.
    pub fn of(app: &App, jwt: &JwtConfig) -> TestApp {
        TestApp {
            client: TestClient::new(app.endpoint().boxed()),
            signer: TokenSigner::hs256(SECRET.as_bytes(), jwt),
            db: app.deliveries().db().clone(),
        }
    }

    pub async fn close(self) {
        self.db.close().await.expect("close the pool");
    }

    /// Closes the service's connection pool under it: every query fails from now on.
    pub async fn break_database(&self) {
        self.db.clone().close().await.expect("close the pool");
    }

    /// Runs `sql` on the service's database behind its back; returns the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        self.db
            .execute_unprepared(sql)
            .await
            .expect("the statement runs")
            .rows_affected()
    }

    /// A valid token for `principal`.
    pub fn token(&self, principal: &Principal) -> String {
        self.signer
            .mint(principal, Utc::now(), Duration::hours(1))
            .expect("a token")
    }

    /// A token for `principal` that expired an hour ago.
    pub fn expired_token(&self, principal: &Principal) -> String {
        self.signer
            .mint(
                principal,
                Utc::now() - Duration::hours(2),
                Duration::hours(1),
            )
            .expect("a token")
    }

    /// Sends a request; `token` and `body` (JSON) are optional.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.body_json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::read(request.send().await.0).await
    }

    pub async fn get(&self, path: &str, who: &Principal) -> Reply {
        self.send(Method::GET, path, Some(&self.token(who)), None, &[])
            .await
    }

    pub async fn post(&self, path: &str, who: &Principal, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(&self.token(who)), Some(body), &[])
            .await
    }

    /// Reports a payment for a new ordering of [`CUSTOMER`] with one physical book; returns
    /// the new delivery's id.
    pub async fn create_delivery(&self) -> String {
        let reply = self
            .post(
                "/v1/payment-events",
                &principal(PrincipalRole::Service),
                &payment_event(&new_id("ord"), &["PHYSICAL"]),
            )
            .await;
        reply.assert_status(StatusCode::CREATED);
        reply.json["delivery_id"]
            .as_str()
            .expect("a delivery id")
            .to_owned()
    }

    /// Makes `transition` on delivery `id` as `who`, with [`sample_transition`]'s body.
    pub async fn transition(&self, id: &str, transition: Transition, who: &Principal) -> Reply {
        self.post(
            &format!("/v1/deliveries/{id}/transitions"),
            who,
            &sample_transition(transition),
        )
        .await
    }

    /// A new delivery, moved to `state` along the graph's shortest path.
    pub async fn delivery_in(&self, state: DeliveryState) -> String {
        let id = self.create_delivery().await;
        for transition in path_to(state) {
            let reply = self
                .transition(&id, transition, &principal(maker(transition)))
                .await;
            reply.assert_status(StatusCode::OK);
        }
        id
    }
}

/// A response, its body read as JSON (`null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub async fn read(response: Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .into_vec()
            .await
            .expect("a readable body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                panic!(
                    "{status}: body is not JSON ({err}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status, and that a successful answer's body is declared as the spec
    /// declares it: exactly `application/json`.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.json);
        if status.is_success() && !self.json.is_null() {
            assert_eq!(self.header("content-type"), Some("application/json"));
        }
    }

    /// Asserts an RFC 9457 problem of this status and kind (the last part of its `type`)
    /// for the request at `path`, carrying the response's request id.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, kind: &str, path: &str) {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.json
        );
        assert_eq!(
            self.json["type"],
            format!("urn:delivery-svc:problem:{kind}"),
            "{}",
            self.json
        );
        assert_eq!(self.json["status"], status.as_u16(), "{}", self.json);
        assert_eq!(self.json["instance"], path, "{}", self.json);
        assert!(
            self.json["title"].is_string() && self.json["detail"].is_string(),
            "{}",
            self.json
        );
        let request_id = self.header("x-request-id").expect("an X-Request-Id header");
        assert_eq!(self.json["request_id"], request_id, "{}", self.json);
    }
}

/// A unique id with a readable prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The principal the tests use for `role`: the customer is [`CUSTOMER`], the partner
/// [`PARTNER`], the owners of every delivery the helpers create.
pub fn principal(role: PrincipalRole) -> Principal {
    Principal {
        role,
        subject: format!("test-{}", delivery_svc::auth::role_name(role)),
        customer_id: (role == PrincipalRole::Customer)
            .then(|| CUSTOMER.parse().expect("a customer id")),
        partner_id: (role == PrincipalRole::Partner).then(|| PARTNER.to_owned()),
    }
}

/// A `payment.succeeded` event for `ordering_id` of [`CUSTOMER`], one line per format.
pub fn payment_event(ordering_id: &str, formats: &[&str]) -> Value {
    let lines: Vec<Value> = formats
        .iter()
        .enumerate()
        .map(|(n, format)| {
            json!({"product_id": format!("isbn-{n}"), "title": "Pride and Prejudice", "format": format, "quantity": 1})
        })
        .collect();
    json!({
        "event_id": uuid::Uuid::new_v4(),
        "type": "payment.succeeded",
        "occurred_at": "2026-11-24T12:00:00Z",
        "payment_id": new_id("pay"),
        "ordering_id": ordering_id,
        "customer_id": CUSTOMER,
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
        "lines": lines,
    })
}

/// A delivery time the service takes for any delivery a test makes: the second the tests
/// started, the same in every body (so that a replayed request is the same request), and
/// within the clock skew the service allows before a delivery order's creation. Written
/// as the service writes it back.
pub fn delivered_at() -> Value {
    static STARTED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use chrono::SubsecRound as _;
        Utc::now().trunc_subsecs(0).to_rfc3339()
    });
    json!(*STARTED)
}

/// A valid request body for `transition`. A transition added to graph.yaml fails to compile
/// here until the tests know its payload.
pub fn sample_transition(transition: Transition) -> Value {
    match transition {
        Transition::PickUp => {
            json!({"transition": "pick_up", "partner_order_number": new_id("DX")})
        }
        Transition::Fail => {
            json!({"transition": "fail", "reason": "RECIPIENT_UNAVAILABLE", "detail": "Nobody home."})
        }
        Transition::Deliver => {
            json!({"transition": "deliver", "delivered_at": delivered_at()})
        }
        Transition::ConfirmReceipt => json!({"transition": "confirm_receipt"}),
        Transition::Dispute => json!({"transition": "dispute", "reason": "NOT_RECEIVED"}),
        Transition::Escalate => json!({"transition": "escalate", "assignee": "op-ada"}),
        Transition::Resolve => json!({"transition": "resolve", "resolution": "REFUND"}),
    }
}

/// The first role graph.yaml lets make `transition` (through the RBAC mapping).
pub fn maker(transition: Transition) -> PrincipalRole {
    transition_roles(transition)[0]
}

/// The shortest path of transitions from CREATED to `state`, found in the graph itself.
pub fn path_to(state: DeliveryState) -> Vec<Transition> {
    let mut paths = VecDeque::from([(DeliveryState::Created, Vec::new())]);
    while let Some((at, path)) = paths.pop_front() {
        if at == state {
            return path;
        }
        for transition in at.allowed_transitions() {
            let mut longer = path.clone();
            longer.push(*transition);
            paths.push_back((transition.target(), longer));
        }
    }
    panic!("{state} cannot be reached from CREATED")
}

/// A loopback port, bound before the service that will serve on it exists (so that a
/// partner simulator can be told where to send its webhooks).
pub struct Loopback {
    acceptor: poem::listener::TcpAcceptor,
    pub addr: std::net::SocketAddr,
}

impl Loopback {
    pub async fn bind() -> Loopback {
        use poem::listener::{Acceptor as _, Listener as _};
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("a loopback port");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("an IP address");
        Loopback { acceptor, addr }
    }

    /// Serves `endpoint` here until [`Served::stop`].
    pub fn serve(self, endpoint: impl poem::Endpoint + 'static) -> Served {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            poem::Server::new_with_acceptor(self.acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _stopped = stopped.await;
                    },
                    Some(std::time::Duration::from_secs(1)),
                )
                .await
                .expect("the server runs");
        });
        Served {
            addr: self.addr,
            stop,
            server,
        }
    }
}

/// An endpoint served on a loopback port.
pub struct Served {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    pub async fn stop(self) {
        drop(self.stop);
        self.server.await.expect("the server stops");
    }
}
