//! The HTTP surface: the OpenAPI operations ([`api`]), their bodies ([`bodies`]), how
//! domain values cross the wire ([`wire`]), and what wraps every request ([`middleware`]);
//! the partners' signed webhooks ([`webhooks`]); the live updates' WebSocket ([`live`]).
//!
//! Routes: the API under `/v1`, the probes `/healthz` and `/readyz`, the spec at
//! `/openapi.json` and `/openapi.yaml`, Swagger UI at `/docs`, the WebSocket at `/v1/live`
//! (outside the spec).

pub mod api;
pub mod bodies;
pub mod live;
pub mod methods;
pub mod middleware;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use poem_openapi::{ExtraHeader, OpenApiService};
use sea_orm::DatabaseConnection;

use self::api::{DeliveryApi, OperationsApi};
use self::live::LiveEndpoint;
use self::methods::AllowedMethods;
use self::middleware::{Authenticate, Authorize, BodyLimit, RateLimit, RequestScope};
use self::webhooks::PartnerWebhookApi;
use crate::auth::TokenAuthority;
use crate::cache::RedisLink;
use crate::commands::Deliveries;
use crate::config::LimitsConfig;

const DESCRIPTION: &str = "\
The delivery orders of an online bookstore as a state machine (graph.yaml): created when a \
payment succeeds, moved along the graph by the partner, the customer and operators.

Every request but the probes and the partners' signed webhooks needs an OAuth2 bearer JWT \
whose `role` claim is one of customer, partner, operator, service, admin (see \
docs/security.md for who may call what). \
Every error is `application/problem+json` (RFC 9457) with the request's `request_id`. \
Every POST with a bearer token takes an optional `Idempotency-Key`; a partner's webhook is \
deduplicated by its `webhook-id` instead. Requests are rate limited per principal.";

type Apis = (DeliveryApi, PartnerWebhookApi, OperationsApi);

fn api_service(deliveries: Deliveries) -> OpenApiService<Apis, ()> {
    let apis = (
        DeliveryApi {
            deliveries: deliveries.clone(),
        },
        PartnerWebhookApi {
            deliveries: deliveries.clone(),
        },
        OperationsApi { deliveries },
    );
    OpenApiService::new(apis, "Delivery service", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .extra_request_header::<Option<String>, _>(ExtraHeader::new("X-Request-Id").description(
            "Your id for the request (1 to 128 of A-Z a-z 0-9 - _ . :); one is made when absent.",
        ))
        .extra_response_header::<String, _>(
            ExtraHeader::new("X-Request-Id")
                .description("The request's id, as in logs and problems."),
        )
        .extra_response_header::<Option<u32>, _>(
            ExtraHeader::new("RateLimit-Limit").description("Requests allowed in a burst."),
        )
        .extra_response_header::<Option<u32>, _>(
            ExtraHeader::new("RateLimit-Remaining").description("Requests left now."),
        )
        .extra_response_header::<Option<u64>, _>(
            ExtraHeader::new("RateLimit-Reset")
                .description(
                "Seconds until the full burst is available again; on a 429, until a request will be let through.",
            ),
        )
}

/// The OpenAPI document as JSON. Needs no database: the operations are only described.
pub fn openapi_json() -> String {
    api_service(Deliveries::new(
        DatabaseConnection::Disconnected,
        String::new(),
    ))
    .spec()
}

/// The whole HTTP surface over `deliveries`, with its middleware.
pub fn endpoint(
    deliveries: Deliveries,
    authority: Arc<TokenAuthority>,
    limits: &LimitsConfig,
    redis: Option<RedisLink>,
    live: LiveEndpoint,
) -> impl Endpoint<Output = Response> + 'static {
    let api = api_service(deliveries);
    let allowed_methods = AllowedMethods::from_spec(&api.spec())
        .with_route("/openapi.json", &["GET"])
        .with_route("/openapi.yaml", &["GET"])
        .with_route("/docs", &["GET"])
        .with_route("/docs/{page}", &["GET"])
        .with_route(live::PATH, &["GET"]);
    Route::new()
        .at("/openapi.json", poem::get(api.spec_endpoint()))
        .at("/openapi.yaml", poem::get(api.spec_endpoint_yaml()))
        .nest("/docs", poem::get(api.swagger_ui()))
        .at(live::PATH, poem::get(live))
        .nest("/", api)
        .with(allowed_methods)
        .with(BodyLimit::new(limits.max_body_bytes))
        .with(Authorize::default())
        .with(RateLimit::from_config(limits, redis))
        .with(Authenticate::new(authority))
        .with(RequestScope)
}
