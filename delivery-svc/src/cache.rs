//! Redis, when `REDIS_URL` is set: a read-through cache of single deliveries and the
//! state of the shared rate limiter.
//!
//! Redis is an accelerator, never a dependency: every call has a short time budget, and
//! after a failure the service leaves Redis alone for a moment and answers from the
//! database (and limits rates in-process) instead. A caller gets `None` for "Redis had
//! nothing to say", whatever the reason, and never an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use delivery_core::DeliveryId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisResult, Script};
use tokio::sync::OnceCell;

use crate::domain::DeliveryView;

/// The longest a request waits for Redis before it goes on without it.
const CALL_BUDGET: Duration = Duration::from_millis(100);
/// How long Redis is left alone after it failed.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How long a cached delivery lives without being refreshed: a bound on what a missed
/// refresh (Redis down while a write committed) can leave stale.
const DELIVERY_TTL: Duration = Duration::from_secs(60);

/// A connection to Redis that fails fast and recovers by itself.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Made on first use, so that the service starts while Redis is down; after that
    /// `ConnectionManager` reconnects by itself.
    connection: OnceCell<ConnectionManager>,
    /// When Redis was last found failing, in milliseconds since `epoch`, or 0.
    failed_at_ms: AtomicU64,
    /// Whether the last call failed: logs the change of health once, not every call.
    failing: AtomicBool,
    epoch: Instant,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("server", &self.inner.client.get_connection_info().addr)
            .field("failing", &self.inner.failing.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisLink {
    /// A link to the Redis at `url` (checked now, connected on first use).
    pub fn new(url: &str) -> RedisResult<RedisLink> {
        Ok(RedisLink {
            inner: Arc::new(Inner {
                client: redis::Client::open(url)?,
                connection: OnceCell::new(),
                failed_at_ms: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                epoch: Instant::now(),
            }),
        })
    }

    /// Runs `call` on Redis within the budget: `None` when Redis is resting, failing or
    /// slow.
    pub async fn run<T>(
        &self,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> RedisResult<T>,
    ) -> Option<T> {
        let inner = &*self.inner;
        let now_ms = elapsed_ms(inner.epoch);
        let failed_at = inner.failed_at_ms.load(Ordering::Relaxed);
        if failed_at != 0 && now_ms < failed_at + millis(REST_AFTER_FAILURE) {
            return None;
        }
        let attempt = async {
            let connection = inner
                .connection
                .get_or_try_init(|| {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(CALL_BUDGET)
                        .set_response_timeout(CALL_BUDGET)
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(inner.client.clone(), config)
                })
                .await?;
            call(&mut connection.clone()).await
        };
        let outcome = match tokio::time::timeout(CALL_BUDGET, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_elapsed) => Err(format!("no answer within {CALL_BUDGET:?}")),
        };
        match outcome {
            Ok(value) => {
                if inner.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again");
                }
                Some(value)
            }
            Err(err) => {
                // Never 0, which means "has not failed".
                inner.failed_at_ms.store(now_ms.max(1), Ordering::Relaxed);
                if !inner.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Redis failed: going on without it");
                }
                None
            }
        }
    }
}

fn elapsed_ms(epoch: Instant) -> u64 {
    millis(epoch.elapsed())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Single deliveries as the read side shows them, keyed by id.
///
/// Entries carry the read model's version, and a store replaces an entry only with a newer
/// version: a reader that loaded a delivery just before a write cannot put the old version
/// back over the one the writer stored.
#[derive(Debug, Clone)]
pub struct DeliveryCache {
    redis: RedisLink,
    store_if_newer: Arc<Script>,
}

impl DeliveryCache {
    pub fn new(redis: RedisLink) -> DeliveryCache {
        DeliveryCache {
            redis,
            store_if_newer: Arc::new(Script::new(
                r"
                local cached = redis.call('HGET', KEYS[1], 'version')
                if cached and tonumber(cached) >= tonumber(ARGV[1]) then
                    return 0
                end
                redis.call('HSET', KEYS[1], 'version', ARGV[1], 'view', ARGV[2])
                redis.call('PEXPIRE', KEYS[1], ARGV[3])
                return 1
                ",
            )),
        }
    }

    /// The cached delivery `id`, if Redis has it and answers.
    pub async fn get(&self, id: DeliveryId) -> Option<DeliveryView> {
        let key = key(id);
        let cached = self
            .redis
            .run(async |redis| redis.hget::<_, _, Option<String>>(&key, "view").await)
            .await??;
        match serde_json::from_str(&cached) {
            Ok(view) => Some(view),
            Err(err) => {
                // Written by another build, perhaps: the database knows better.
                tracing::warn!(error = %err, %id, "unreadable cache entry ignored");
                None
            }
        }
    }

    /// Caches `view` unless a newer version of it is cached.
    pub async fn store(&self, view: &DeliveryView) {
        let Ok(json) = serde_json::to_string(view) else {
            return;
        };
        let key = key(view.id);
        let script = &self.store_if_newer;
        let stored: Option<i64> = self
            .redis
            .run(async |redis| {
                script
                    .key(&key)
                    .arg(view.version)
                    .arg(&json)
                    .arg(millis(DELIVERY_TTL))
                    .invoke_async(redis)
                    .await
            })
            .await;
        tracing::trace!(id = %view.id, version = view.version, ?stored, "cache store");
    }
}

fn key(id: DeliveryId) -> String {
    format!("delivery-svc:delivery:{id}")
}
