//! Every error the API gives, as RFC 9457 `application/problem+json`.
//!
//! Handlers and middleware return [`ApiError`]; poem's own errors (unknown route, wrong
//! method, unparsable path or query parameter, missing token) are classified into one by
//! [`ApiError::from_poem`]. The request-context middleware renders whichever it gets with
//! [`ApiError::into_response`], the one problem builder, which adds the request path
//! (`instance`) and `request_id`. [`ProblemResponse`] is both what renders a problem and what
//! documents the problem responses in the OpenAPI operations.

use std::time::Duration;

use delivery_core::{DeliveryState, Transition, TransitionError};
use poem::error::{MethodNotAllowedError, NotFoundError, ResponseError};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::error::{AuthorizationError, ContentTypeError};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::{ApiResponse, Object};

use crate::auth::AuthError;
use crate::domain::ServiceError;
use crate::http::middleware::set_rate_limit_headers;
use crate::http::wire::{JsonBody, Wire};
use crate::partner::signature::WebhookError;

/// An RFC 9457 problem details object. For an illegal transition it also says the
/// delivery's `current_state`, the `attempted_transition` and the `allowed_transitions`.
// (No doc comments on the `Wire` fields: see `Wire`'s schema.)
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// Names the kind of problem; stable, so clients can branch on it.
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem (the same for every occurrence).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// The request's id (`X-Request-Id`): quote it when reporting a problem.
    pub request_id: String,
    pub current_state: Option<Wire<DeliveryState>>,
    pub attempted_transition: Option<Wire<Transition>>,
    /// For an illegal transition: what the current state allows.
    pub allowed_transitions: Option<Vec<Wire<Transition>>>,
    /// For a transition the caller's role may not make: the graph roles that may.
    pub allowed_roles: Option<Vec<String>>,
}

/// Why a request failed; each variant is one kind of problem.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not JSON, or a path or query parameter that does not parse.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// Authenticated, but the role (or the object-level rule) does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The graph does not allow the transition now (409), or the role never may (403).
    #[error("{0}")]
    Transition(TransitionError),
    #[error("{0}")]
    NotFound(String),
    /// `allow`: the methods the route takes, for the `Allow` header.
    #[error("this route does not take this method; it takes {allow}")]
    MethodNotAllowed { allow: String },
    /// Another change to the same delivery committed first.
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed, but a field is missing or holds an invalid value.
    #[error("{0}")]
    Invalid(String),
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error("too many requests; retry after {} s", retry_after_secs(*retry_after))]
    RateLimited { limit: u32, retry_after: Duration },
    /// Not ready: the database does not answer, or its schema is behind.
    #[error("{0}")]
    Unavailable(String),
    /// Ready, but the database cannot take this request now; nothing was changed.
    #[error("the service is busy; retry after {} s", retry_after_secs(*retry_after))]
    Busy { retry_after: Duration },
    /// A partner webhook that is malformed (400) or not proven to be the partner's (403).
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// Logged where it happened; the client learns nothing about it but the request id.
    #[error("an internal error occurred; report it with the request id")]
    Internal,
}

/// When to retry a request the database was too busy for: soon, since locks and pooled
/// connections are held for milliseconds.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// When to ask again whether a service that is not ready is: a database restart or a
/// migration takes seconds.
const NOT_READY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Whole seconds, rounded up, so that a client waiting that long is let in.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ApiError {
    /// The problem's `type` (a URN: stable, not meant to be fetched), `title` and status.
    fn kind(&self) -> (&'static str, &'static str, StatusCode) {
        use StatusCode as S;
        match self {
            ApiError::Malformed(_) => (
                "malformed-request",
                "The request is malformed",
                S::BAD_REQUEST,
            ),
            ApiError::Unauthenticated(_) => (
                "unauthenticated",
                "Authentication is required",
                S::UNAUTHORIZED,
            ),
            ApiError::Forbidden(_) => ("forbidden", "Not allowed", S::FORBIDDEN),
            ApiError::Transition(TransitionError::NotAllowed { .. }) => (
                "illegal-transition",
                "The transition is not allowed in the current state",
                S::CONFLICT,
            ),
            ApiError::Transition(TransitionError::RoleNotAllowed { .. }) => (
                "role-not-allowed",
                "The caller's role may not make this transition",
                S::FORBIDDEN,
            ),
            ApiError::NotFound(_) => ("not-found", "Not found", S::NOT_FOUND),
            ApiError::MethodNotAllowed { .. } => (
                "method-not-allowed",
                "Method not allowed",
                S::METHOD_NOT_ALLOWED,
            ),
            ApiError::Conflict(_) => (
                "concurrent-change",
                "The delivery changed concurrently",
                S::CONFLICT,
            ),
            ApiError::PayloadTooLarge { .. } => (
                "payload-too-large",
                "The request body is too large",
                S::PAYLOAD_TOO_LARGE,
            ),
            ApiError::UnsupportedMediaType(_) => (
                "unsupported-media-type",
                "Unsupported media type",
                S::UNSUPPORTED_MEDIA_TYPE,
            ),
            ApiError::Invalid(_) => (
                "invalid-input",
                "The input is invalid",
                S::UNPROCESSABLE_ENTITY,
            ),
            ApiError::IdempotencyKeyReused(_) => (
                "idempotency-key-reused",
                "The Idempotency-Key was used for another request",
                S::UNPROCESSABLE_ENTITY,
            ),
            ApiError::RateLimited { .. } => {
                ("rate-limited", "Too many requests", S::TOO_MANY_REQUESTS)
            }
            ApiError::Unavailable(_) => (
                "unavailable",
                "The service is not ready",
                S::SERVICE_UNAVAILABLE,
            ),
            ApiError::Busy { .. } => ("busy", "The service is busy", S::SERVICE_UNAVAILABLE),
            ApiError::Webhook(WebhookError::Malformed(_)) => (
                "webhook-malformed",
                "The webhook is malformed",
                S::BAD_REQUEST,
            ),
            ApiError::Webhook(WebhookError::UnknownPartner(_)) => (
                "unknown-partner",
                "No such partner is configured",
                S::FORBIDDEN,
            ),
            ApiError::Webhook(WebhookError::BadSignature) => (
                "webhook-signature-invalid",
                "The webhook signature does not verify",
                S::FORBIDDEN,
            ),
            ApiError::Webhook(WebhookError::OutsideTolerance { .. }) => (
                "webhook-timestamp-outside-tolerance",
                "The webhook timestamp is too far from now",
                S::FORBIDDEN,
            ),
            ApiError::Internal => (
                "internal",
                "Internal server error",
                S::INTERNAL_SERVER_ERROR,
            ),
        }
    }

    /// Classifies an error from anywhere in the request's path: ours, or poem's own.
    pub fn from_poem(err: poem::Error) -> ApiError {
        let err = match err.downcast::<ApiError>() {
            Ok(api_error) => return api_error,
            Err(err) => err,
        };
        if err.is::<NotFoundError>() {
            ApiError::NotFound("no such route".into())
        } else if err.is::<MethodNotAllowedError>() {
            // `http::methods::AllowedMethods` answers this with the route's methods before
            // it gets here; an empty `Allow` ("no method") is all that is known here.
            ApiError::MethodNotAllowed {
                allow: String::new(),
            }
        } else if err.is::<AuthorizationError>() {
            ApiError::Unauthenticated(AuthError::Missing)
        } else if err.is::<ContentTypeError>() {
            ApiError::UnsupportedMediaType(err.to_string())
        } else if err.status().is_client_error() {
            // Unparsable path or query parameters, unreadable bodies, and whatever else
            // poem refuses before a handler runs.
            ApiError::Malformed(err.to_string())
        } else {
            tracing::error!(error = %err, status = %err.status(), "request failed");
            ApiError::Internal
        }
    }

    /// The one problem builder: the problem+json response for this error on the request
    /// with path `instance`.
    pub fn into_response(self, instance: &str, request_id: &str) -> Response {
        let (slug, title, status) = self.kind();
        let mut problem = Problem {
            kind: format!("urn:delivery-svc:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: bounded(self.to_string()),
            instance: instance.into(),
            request_id: request_id.into(),
            current_state: None,
            attempted_transition: None,
            allowed_transitions: None,
            allowed_roles: None,
        };
        match &self {
            ApiError::Transition(TransitionError::NotAllowed {
                current,
                attempted,
                allowed,
            }) => {
                problem.current_state = Some(Wire(*current));
                problem.attempted_transition = Some(Wire(*attempted));
                problem.allowed_transitions = Some(allowed.iter().copied().map(Wire).collect());
            }
            ApiError::Transition(TransitionError::RoleNotAllowed { allowed_roles, .. }) => {
                problem.allowed_roles = Some(
                    allowed_roles
                        .iter()
                        .map(|role| role.name().to_owned())
                        .collect(),
                );
            }
            _ => {}
        }
        let rate_limit = match self {
            ApiError::RateLimited { limit, retry_after } => Some((limit, retry_after)),
            _ => None,
        };
        let mut response = ProblemResponse::from_error(self, problem).into_response();
        if let Some((limit, retry_after)) = rate_limit {
            set_rate_limit_headers(response.headers_mut(), limit, 0, retry_after);
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(_) => ApiError::NotFound(err.to_string()),
            ServiceError::Forbidden(reason) => ApiError::Forbidden(reason),
            ServiceError::Transition(err) => ApiError::Transition(err),
            ServiceError::Conflict { .. } => ApiError::Conflict(err.to_string()),
            ServiceError::IdempotencyKeyReused(key) => ApiError::IdempotencyKeyReused(key),
            ServiceError::Invalid(reason) => ApiError::Invalid(reason),
            ServiceError::Busy(err) => {
                tracing::warn!(error = %err, "database busy");
                ApiError::Busy {
                    retry_after: BUSY_RETRY_AFTER,
                }
            }
            ServiceError::Database(err) => {
                tracing::error!(error = %err, "database error");
                ApiError::Internal
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.kind().2
    }
}

/// Documents the problem responses of every operation (any of them can meet the
/// middleware's 401, 413 and 429).
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        ProblemResponse::meta()
    }

    fn register(registry: &mut Registry) {
        ProblemResponse::register(registry);
    }
}

/// A problem as an HTTP response: status, `application/problem+json`, and the headers some
/// statuses require.
#[derive(Debug, ApiResponse)]
pub enum ProblemResponse {
    /// The request is malformed: not JSON, or a path or query parameter that does not
    /// parse; a partner webhook without its Standard Webhooks headers or partner.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(JsonBody<Problem>),
    /// No valid bearer token: missing, expired, not yet valid, or tampered with.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        JsonBody<Problem>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The caller's role may not do this, or the object is not the caller's; a partner
    /// webhook from an unknown partner, with a signature that does not verify, or with a
    /// timestamp outside the tolerance.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(JsonBody<Problem>),
    /// No such delivery (or route).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(JsonBody<Problem>),
    /// The route exists, but not with this method.
    #[oai(status = 405, content_type = "application/problem+json")]
    MethodNotAllowed(
        JsonBody<Problem>,
        /// The methods the route takes.
        #[oai(header = "Allow")]
        String,
    ),
    /// The transition is not allowed in the delivery's current state (`current_state`,
    /// `allowed_transitions`), or the delivery changed concurrently: reload and retry.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(JsonBody<Problem>),
    /// The request body is larger than the configured limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(JsonBody<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(JsonBody<Problem>),
    /// Well-formed JSON with a missing field or an invalid value, or an Idempotency-Key
    /// reused for a different request.
    #[oai(status = 422, content_type = "application/problem+json")]
    UnprocessableEntity(JsonBody<Problem>),
    /// The caller's rate limit is used up.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        JsonBody<Problem>,
        /// Seconds until a request will be let through.
        #[oai(header = "Retry-After")]
        u64,
        // The RateLimit-* headers are documented once for every response (`api_service`):
        // declared here too, the spec would name them twice, and strict JSON parsers such
        // as openapi-generator's refuse a document with duplicate keys.
    ),
    /// Something failed inside the service; it was logged under the request id.
    #[oai(status = 500, content_type = "application/problem+json")]
    InternalServerError(JsonBody<Problem>),
    /// The service cannot serve yet (the database does not answer), or the database is
    /// too busy for this request now; nothing was changed.
    #[oai(status = 503, content_type = "application/problem+json")]
    ServiceUnavailable(
        JsonBody<Problem>,
        /// Seconds after which a retry may succeed.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl ProblemResponse {
    /// The variant of `err`'s status (a test checks that they agree).
    fn from_error(err: ApiError, problem: Problem) -> ProblemResponse {
        let problem = JsonBody(problem);
        match err {
            ApiError::Malformed(_) => ProblemResponse::BadRequest(problem),
            ApiError::Unauthenticated(auth) => {
                let challenge = match auth.challenge_code() {
                    Some(code) => {
                        let description = auth.to_string().replace('"', "'");
                        format!("Bearer error=\"{code}\", error_description=\"{description}\"")
                    }
                    None => "Bearer".to_owned(),
                };
                ProblemResponse::Unauthorized(problem, challenge)
            }
            ApiError::Forbidden(_)
            | ApiError::Transition(TransitionError::RoleNotAllowed { .. }) => {
                ProblemResponse::Forbidden(problem)
            }
            ApiError::NotFound(_) => ProblemResponse::NotFound(problem),
            ApiError::MethodNotAllowed { allow } => {
                ProblemResponse::MethodNotAllowed(problem, allow)
            }
            ApiError::Transition(TransitionError::NotAllowed { .. }) | ApiError::Conflict(_) => {
                ProblemResponse::Conflict(problem)
            }
            ApiError::PayloadTooLarge { .. } => ProblemResponse::PayloadTooLarge(problem),
            ApiError::UnsupportedMediaType(_) => ProblemResponse::UnsupportedMediaType(problem),
            ApiError::Invalid(_) | ApiError::IdempotencyKeyReused(_) => {
                ProblemResponse::UnprocessableEntity(problem)
            }
            ApiError::RateLimited { retry_after, .. } => {
                ProblemResponse::TooManyRequests(problem, retry_after_secs(retry_after))
            }
            ApiError::Unavailable(_) => ProblemResponse::ServiceUnavailable(
                problem,
                retry_after_secs(NOT_READY_RETRY_AFTER),
            ),
            ApiError::Busy { retry_after } => {
                ProblemResponse::ServiceUnavailable(problem, retry_after_secs(retry_after))
            }
            ApiError::Internal => ProblemResponse::InternalServerError(problem),
            ApiError::Webhook(WebhookError::Malformed(_)) => ProblemResponse::BadRequest(problem),
            ApiError::Webhook(_) => ProblemResponse::Forbidden(problem),
        }
    }
}

/// The longest `detail` a problem carries, in characters: a body's validation error
/// quotes the value it refused, which may be the whole body.
const DETAIL_LIMIT: usize = 500;

/// `detail`, cut to [`DETAIL_LIMIT`] characters, saying how much was cut.
fn bounded(detail: String) -> String {
    match detail.char_indices().nth(DETAIL_LIMIT) {
        None => detail,
        Some((end, _)) => {
            let cut = detail[end..].chars().count();
            format!("{}… ({cut} more characters)", &detail[..end])
        }
    }
}

#[cfg(test)]
mod tests {
    use delivery_core::{DeliveryState, Role};

    use super::*;

    /// The status a problem's kind names is the one its response variant sends.
    #[test]
    fn every_kind_of_problem_is_sent_with_its_own_status() {
        let errors = [
            ApiError::Malformed(String::new()),
            ApiError::Unauthenticated(AuthError::Expired),
            ApiError::Forbidden(String::new()),
            ApiError::Transition(TransitionError::NotAllowed {
                current: DeliveryState::Created,
                attempted: Transition::Deliver,
                allowed: DeliveryState::Created.allowed_transitions(),
            }),
            ApiError::Transition(TransitionError::RoleNotAllowed {
                role: Role::Customer,
                transition: Transition::PickUp,
                allowed_roles: Transition::PickUp.roles(),
            }),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed {
                allow: "GET".into(),
            },
            ApiError::Conflict(String::new()),
            ApiError::PayloadTooLarge { limit_bytes: 1 },
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::Invalid(String::new()),
            ApiError::IdempotencyKeyReused(String::new()),
            ApiError::RateLimited {
                limit: 1,
                retry_after: Duration::from_millis(1500),
            },
            ApiError::Unavailable(String::new()),
            ApiError::Busy {
                retry_after: Duration::from_secs(1),
            },
            ApiError::Internal,
            ApiError::Webhook(WebhookError::Malformed(String::new())),
            ApiError::Webhook(WebhookError::UnknownPartner(String::new())),
            ApiError::Webhook(WebhookError::BadSignature),
            ApiError::Webhook(WebhookError::OutsideTolerance {
                timestamp: 0,
                off_by_secs: 301,
                tolerance_secs: 300,
            }),
        ];
        for err in errors {
            let status = err.kind().2;
            let response = err.into_response("/", "request");
            assert_eq!(response.status(), status);
            // RFC 9110: both say when to come back.
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                assert!(response.headers().contains_key("retry-after"), "{status}");
            }
        }
    }
}
