//! Redis as the service uses it: a read-through cache of single deliveries kept current by
//! writes, rate limits shared by instances, and neither ever an error when Redis is down.
//!
//! The first two tests use the machine's Redis (`TEST_REDIS_URL`); the outage test runs a
//! Redis server of its own (the same `redis-server` binary) so that stopping it disturbs
//! no one else. Without `TEST_REDIS_URL` the tests print why they skip; with
//! `REQUIRE_SERVICES` set (CI) that fails them instead.

mod common;

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PARTNER, TestApp, config, principal};
use delivery_core::Transition;
use delivery_svc::config::LimitsConfig;
use delivery_svc::domain::{Principal, PrincipalRole};
use poem::http::StatusCode;

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("REQUIRE_SERVICES").is_none(),
                "REQUIRE_SERVICES is set but TEST_REDIS_URL is not"
            );
            println!("skipping: TEST_REDIS_URL not set");
            None
        }
    }
}

fn limits(per_second: u32, burst: u32) -> LimitsConfig {
    LimitsConfig {
        rate_limit_per_second: NonZeroU32::new(per_second).expect("not zero"),
        rate_limit_burst: NonZeroU32::new(burst).expect("not zero"),
        max_body_bytes: 64 * 1024,
    }
}

/// An instance of the service on the SQLite file in `dir`, with Redis at `redis_url`.
async fn instance(dir: &tempfile::TempDir, redis_url: &str, limits: LimitsConfig) -> TestApp {
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("redis.db").display()
    );
    let mut config = config(database, limits);
    config.redis_url = Some(redis_url.to_owned());
    TestApp::start(config).await
}

/// An operator no other test spends the rate limit of.
fn fresh_operator() -> Principal {
    Principal {
        subject: common::new_id("operator"),
        ..principal(PrincipalRole::Operator)
    }
}

/// Changes the read model behind the service's back (each test's database holds one
/// delivery): a read that still shows the old value came from the cache.
async fn tamper_with_view(app: &TestApp, detail: Option<&str>) {
    let detail = detail.map_or("NULL".to_owned(), |detail| format!("'{detail}'"));
    let changed = app
        .execute(&format!(
            "UPDATE delivery_view SET failure_detail = {detail}"
        ))
        .await;
    assert_eq!(changed, 1, "one delivery in the test's database");
}

async fn failure_detail(app: &TestApp, id: &str) -> serde_json::Value {
    let reply = app
        .get(&format!("/v1/deliveries/{id}"), &fresh_operator())
        .await;
    reply.assert_status(StatusCode::OK);
    reply.json["failure_detail"].clone()
}

#[tokio::test]
async fn single_delivery_reads_come_from_the_cache_and_writes_keep_it_current() {
    let Some(redis_url) = redis_url() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = instance(&dir, &redis_url, common::generous_limits()).await;
    let id = app.create_delivery().await;
    // The creation put the new delivery into the cache.
    tamper_with_view(&app, Some("from the database")).await;
    assert_eq!(failure_detail(&app, &id).await, serde_json::Value::Null);
    // (Put back: a transition projects onto the row as it is.)
    tamper_with_view(&app, None).await;

    // A write refreshes the entry: the next read shows the new state at once.
    app.transition(&id, Transition::PickUp, &principal(PrincipalRole::Partner))
        .await
        .assert_status(StatusCode::OK);
    let reply = app
        .get(
            &format!("/v1/deliveries/{id}"),
            &principal(PrincipalRole::Operator),
        )
        .await;
    assert_eq!(reply.json["state"], "PICKED_UP");

    // Whoever may not see the delivery still may not, cached or not.
    let stranger = Principal {
        partner_id: Some(format!("not-{PARTNER}")),
        ..principal(PrincipalRole::Partner)
    };
    app.get(&format!("/v1/deliveries/{id}"), &stranger)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    app.close().await;
}

#[tokio::test]
async fn instances_share_one_rate_limit_per_caller() {
    let Some(redis_url) = redis_url() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = instance(&dir, &redis_url, limits(1, 3)).await;
    let second = instance(&dir, &redis_url, limits(1, 3)).await;
    let operator = fresh_operator();
    for app in [&first, &second, &first] {
        app.get("/v1/operator/queue", &operator)
            .await
            .assert_status(StatusCode::OK);
    }
    // Each instance alone has let through fewer than the burst of 3.
    let refused = second.get("/v1/operator/queue", &operator).await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header("retry-after").is_some());
    first.close().await;
    second.close().await;
}

/// A Redis server of the test's own, on a free port.
struct PrivateRedis {
    port: u16,
    server: Option<Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis { port, server: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let server = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (Redis is installed where TEST_REDIS_URL is set)");
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill().expect("stop redis-server");
            server.wait().expect("redis-server exits");
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn with_redis_down_reads_and_rate_limits_keep_working_and_the_cache_returns_with_it() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = instance(&dir, &redis.url(), limits(1, 5)).await;
    let id = app.create_delivery().await;

    redis.stop();
    // Reads come from the database now: they see what the cache would have hidden.
    tamper_with_view(&app, Some("from the database")).await;
    assert_eq!(failure_detail(&app, &id).await, "from the database");
    // Rate limits still hold, in-process.
    let operator = fresh_operator();
    let statuses: Vec<_> =
        futures_util::future::join_all((0..8).map(|_| app.get("/v1/operator/queue", &operator)))
            .await
            .into_iter()
            .map(|reply| reply.status)
            .collect();
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    redis.restart();
    // Once the service tries Redis again, a read fills the cache and the next one is
    // served from it, whatever the database says meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tamper_with_view(&app, None).await;
        failure_detail(&app, &id).await;
        tamper_with_view(&app, Some("from the database")).await;
        if failure_detail(&app, &id).await == serde_json::Value::Null {
            break;
        }
        assert!(Instant::now() < deadline, "the cache was not used again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.close().await;
}
