//! What happens to every request around its handler, outermost first:
//!
//! 1. [`RequestScope`]: the request id (the caller's `X-Request-Id` if it is sane, else a
//!    new UUID), a tracing span that carries it into every log line of the request, the
//!    id on the response, and every error (ours, poem's, a panic) rendered as problem+json.
//! 2. [`Authenticate`]: verifies the bearer token, if any, once; handlers read the verdict
//!    through [`crate::auth::BearerAuth`]. The token comes from `Authorization` or, on a
//!    WebSocket handshake (browsers cannot set headers there), from the subprotocol
//!    `bearer.<token>`.
//! 3. [`RateLimit`]: per principal (by token subject; unauthenticated callers by peer
//!    address), shared by all instances through Redis when it is configured and answers,
//!    with `RateLimit-*` headers and 429 + `Retry-After` when used up. The liveness probe,
//!    `/healthz`, is not limited.
//! 4. [`BodyLimit`]: reads the body up to the configured size (413 beyond it) and
//!    fingerprints the request for idempotency.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use poem::error::ReadBodyError;
use poem::http::header::{AUTHORIZATION, CONTENT_LENGTH, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use poem::http::{HeaderMap, HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use redis::Script;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::auth::{AuthError, Authentication, Operation, TokenAuthority, principal_of};
use crate::cache::RedisLink;
use crate::config::LimitsConfig;
use crate::error::{ApiError, retry_after_secs};
use crate::http::methods::PathTemplate;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id: carried into logs, events and problem responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The caller's id when it is short and plain (it ends up in logs), else a new one.
    fn of(request: &Request) -> RequestId {
        let given = request.header(REQUEST_ID_HEADER).filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
        RequestId(given.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned))
    }
}

/// SHA-256 (hex) of the request's method, path and body: tells an idempotent replay from a
/// different request under the same `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint(pub String);

impl RequestFingerprint {
    fn of(request: &Request, body: &[u8]) -> RequestFingerprint {
        let digest = Sha256::new()
            .chain_update(request.method().as_str())
            .chain_update(b" ")
            .chain_update(request.uri().path())
            .chain_update(b"\n")
            .chain_update(body)
            .finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        RequestFingerprint(hex)
    }
}

/// Request id, request span, problem+json for every error.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestScope;

impl<E: Endpoint> Middleware<E> for RequestScope {
    type Output = RequestScopeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestScopeEndpoint { inner }
    }
}

#[derive(Debug)]
pub struct RequestScopeEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RequestScopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let request_id = RequestId::of(&request);
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id.0,
            method = %request.method(),
            path = %path,
            role = tracing::field::Empty,
            subject = tracing::field::Empty,
        );
        request.extensions_mut().insert(request_id.clone());
        async move {
            let started = Instant::now();
            // A panic in a handler becomes a 500 with the request id, not a dropped connection.
            let outcome = AssertUnwindSafe(self.inner.call(request))
                .catch_unwind()
                .await;
            let mut response = match outcome {
                Ok(Ok(output)) => output.into_response(),
                Ok(Err(err)) => ApiError::from_poem(err).into_response(&path, &request_id.0),
                Err(_) => {
                    tracing::error!("the handler panicked");
                    ApiError::Internal.into_response(&path, &request_id.0)
                }
            };
            if let Ok(value) = HeaderValue::from_str(&request_id.0) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            tracing::info!(
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request finished"
            );
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// Verifies the bearer token once per request.
#[derive(Debug, Clone)]
pub struct Authenticate {
    authority: Arc<TokenAuthority>,
}

impl Authenticate {
    pub fn new(authority: Arc<TokenAuthority>) -> Self {
        Authenticate { authority }
    }
}

impl<E: Endpoint> Middleware<E> for Authenticate {
    type Output = AuthenticateEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AuthenticateEndpoint {
            inner,
            authority: self.authority.clone(),
        }
    }
}

#[derive(Debug)]
pub struct AuthenticateEndpoint<E> {
    inner: E,
    authority: Arc<TokenAuthority>,
}

impl<E: Endpoint> Endpoint for AuthenticateEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut request: Request) -> poem::Result<Self::Output> {
        let token = match request.headers().get(AUTHORIZATION) {
            Some(header) => Some(header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
                AuthError::Invalid("the Authorization header is not `Bearer <JWT>`".into())
            })),
            None => subprotocol_token(&request).map(Ok),
        };
        if let Some(token) = token {
            let verdict = token.and_then(|token| self.authority.verify(token));
            if let Ok(principal) = &verdict {
                let span = tracing::Span::current();
                span.record("role", crate::auth::role_name(principal.role));
                span.record("subject", principal.subject.as_str());
            }
            request.extensions_mut().insert(Authentication(verdict));
        }
        self.inner.call(request).await
    }
}

/// Refuses a caller who may not call the operation a request is for at all, before its
/// handler reads the body: 401 without a valid token, 403 for a role the RBAC table does
/// not list for it. So a forbidden caller learns nothing from the body's validation. The
/// handlers check the role again (`Operation::authorize`) with the principal they get.
#[derive(Debug, Clone)]
pub struct Authorize {
    operations: Arc<[(PathTemplate, Operation)]>,
}

impl Default for Authorize {
    fn default() -> Self {
        Authorize {
            operations: Operation::ALL
                .into_iter()
                .map(|operation| (PathTemplate::new(operation.permission().path), operation))
                .collect(),
        }
    }
}

impl Authorize {
    /// The operation a request of `method` to `path` calls (HEAD calls GET's), if any.
    fn operation(&self, method: &Method, path: &str) -> Option<Operation> {
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        let of_method = self
            .operations
            .iter()
            .filter(|(_, operation)| operation.permission().method == method);
        PathTemplate::route(
            of_method.map(|(template, operation)| (template, *operation)),
            path,
        )
    }
}

impl<E: Endpoint> Middleware<E> for Authorize {
    type Output = AuthorizeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AuthorizeEndpoint {
            inner,
            table: self.clone(),
        }
    }
}

#[derive(Debug)]
pub struct AuthorizeEndpoint<E> {
    inner: E,
    table: Authorize,
}

impl<E: Endpoint> Endpoint for AuthorizeEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, request: Request) -> poem::Result<Self::Output> {
        if let Some(operation) = self.table.operation(request.method(), request.uri().path()) {
            operation.check(principal_of(&request)?.role)?;
        }
        self.inner.call(request).await
    }
}

/// The token a WebSocket handshake carries as the subprotocol `bearer.<token>`.
fn subprotocol_token(request: &Request) -> Option<&str> {
    let upgrade = request.headers().get(UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix("bearer."))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RateLimitKey {
    Subject(String),
    Peer(String),
}

impl RateLimitKey {
    fn of(request: &Request) -> RateLimitKey {
        match request.extensions().get::<Authentication>() {
            Some(Authentication(Ok(principal))) => RateLimitKey::Subject(principal.subject.clone()),
            _ => RateLimitKey::Peer(request.remote_addr().as_socket_addr().map_or_else(
                || request.remote_addr().to_string(),
                |addr| addr.ip().to_string(),
            )),
        }
    }

    fn redis_key(&self) -> String {
        match self {
            RateLimitKey::Subject(subject) => format!("delivery-svc:rate:sub:{subject}"),
            RateLimitKey::Peer(peer) => format!("delivery-svc:rate:peer:{peer}"),
        }
    }
}

type KeyedLimiter = RateLimiter<
    RateLimitKey,
    DefaultKeyedStateStore<RateLimitKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Above this many remembered callers, those whose budget is full again are forgotten.
const RATE_LIMIT_KEYS_KEPT: usize = 10_000;

/// GCRA on Redis, the same algorithm `governor` runs in-process, so that every instance
/// spends from one budget per caller. The state per caller is its theoretical arrival
/// time (TAT) in microseconds of Redis' clock; answers {allowed, wait µs, remaining,
/// reset µs}.
const SHARED_GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - tolerance
if now < allowed_at then
    return {0, allowed_at - now, 0, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, 0, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now}
";

/// Per-principal rate limiting (GCRA): shared through Redis when there is one and it
/// answers, in-process (`governor`) otherwise.
#[derive(Debug, Clone)]
pub struct RateLimit {
    local: Arc<KeyedLimiter>,
    shared: Option<SharedLimit>,
    burst: NonZeroU32,
}

#[derive(Debug, Clone)]
struct SharedLimit {
    redis: RedisLink,
    script: Arc<Script>,
    /// Microseconds between two requests at the average rate.
    interval_us: u64,
}

/// What the limiter decided for one request.
#[derive(Debug)]
enum Verdict {
    Allowed { remaining: u32, reset: Duration },
    Refused { retry_after: Duration },
}

impl RateLimit {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32, redis: Option<RedisLink>) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        RateLimit {
            local: Arc::new(
                RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            ),
            shared: redis.map(|redis| SharedLimit {
                redis,
                script: Arc::new(Script::new(SHARED_GCRA)),
                interval_us: 1_000_000 / u64::from(per_second.get()),
            }),
            burst,
        }
    }

    pub fn from_config(limits: &LimitsConfig, redis: Option<RedisLink>) -> Self {
        RateLimit::new(limits.rate_limit_per_second, limits.rate_limit_burst, redis)
    }

    async fn check(&self, key: &RateLimitKey) -> Verdict {
        if let Some(shared) = &self.shared
            && let Some(verdict) = shared.check(key, self.burst).await
        {
            return verdict;
        }
        self.check_locally(key)
    }

    fn check_locally(&self, key: &RateLimitKey) -> Verdict {
        if self.local.len() > RATE_LIMIT_KEYS_KEPT {
            self.local.retain_recent();
        }
        match self.local.check_key(key) {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let remaining = snapshot.remaining_burst_capacity();
                let used = quota.burst_size().get().saturating_sub(remaining);
                Verdict::Allowed {
                    remaining,
                    reset: quota.replenish_interval() * used,
                }
            }
            Err(not_until) => Verdict::Refused {
                retry_after: not_until.wait_time_from(self.local.clock().now()),
            },
        }
    }
}

impl SharedLimit {
    /// The verdict of the shared budget, or `None` when Redis does not answer.
    async fn check(&self, key: &RateLimitKey, burst: NonZeroU32) -> Option<Verdict> {
        let key = key.redis_key();
        let (allowed, wait_us, remaining, reset_us): (u8, u64, u32, u64) = self
            .redis
            .run(async |redis| {
                self.script
                    .key(&key)
                    .arg(self.interval_us)
                    .arg(burst.get())
                    .invoke_async(redis)
                    .await
            })
            .await?;
        Some(if allowed == 1 {
            Verdict::Allowed {
                remaining,
                reset: Duration::from_micros(reset_us),
            }
        } else {
            Verdict::Refused {
                retry_after: Duration::from_micros(wait_us),
            }
        })
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RateLimitEndpoint {
            inner,
            limit: self.clone(),
        }
    }
}

#[derive(Debug)]
pub struct RateLimitEndpoint<E> {
    inner: E,
    limit: RateLimit,
}

/// The liveness probe: an orchestrator polls it, and a budget used up by others calling
/// from its address must not make it restart the service. It touches nothing, so it
/// costs nothing to leave open. The readiness probe pings the database, so it stays
/// limited: unlimited, anyone could keep the pool busy through it.
const UNLIMITED_PATH: &str = "/healthz";

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        if request.uri().path() == UNLIMITED_PATH {
            return Ok(self.inner.call(request).await?.into_response());
        }
        let burst = self.limit.burst.get();
        let (remaining, reset) = match self.limit.check(&RateLimitKey::of(&request)).await {
            Verdict::Allowed { remaining, reset } => (remaining, reset),
            Verdict::Refused { retry_after } => {
                return Err(ApiError::RateLimited {
                    limit: burst,
                    retry_after,
                }
                .into());
            }
        };
        let mut response = self.inner.call(request).await?.into_response();
        set_rate_limit_headers(response.headers_mut(), burst, remaining, reset);
        Ok(response)
    }
}

/// The caller's quota, on a successful answer or a 429: a burst of `limit`, `remaining` of
/// it left, and when the quota is whole again (on a 429, when a request will be let
/// through). Other errors leave the handler as errors and are rendered further out.
pub(crate) fn set_rate_limit_headers(
    headers: &mut HeaderMap,
    limit: u32,
    remaining: u32,
    reset: Duration,
) {
    headers.insert("ratelimit-limit", limit.into());
    headers.insert("ratelimit-remaining", remaining.into());
    headers.insert("ratelimit-reset", retry_after_secs(reset).into());
}

/// Reads the body up to a limit and fingerprints the request.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    max_bytes: usize,
}

impl BodyLimit {
    pub fn new(max_bytes: usize) -> Self {
        BodyLimit { max_bytes }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut request: Request) -> poem::Result<Self::Output> {
        let too_large = ApiError::PayloadTooLarge {
            limit_bytes: self.max_bytes,
        };
        // A declared length over the limit is refused before reading a byte; a body without
        // one (chunked) is cut off at the limit.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_bytes as u64) {
            return Err(too_large.into());
        }
        let body = request
            .take_body()
            .into_bytes_limit(self.max_bytes)
            .await
            .map_err(|err| match err {
                ReadBodyError::PayloadTooLarge => too_large,
                other => ApiError::Malformed(format!("the body could not be read: {other}")),
            })?;
        let fingerprint = RequestFingerprint::of(&request, &body);
        request.extensions_mut().insert(fingerprint);
        request.set_body(body);
        self.inner.call(request).await
    }
}
