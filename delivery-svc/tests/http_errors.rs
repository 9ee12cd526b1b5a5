//! Every way a request can fail comes back as RFC 9457 problem+json with the right status,
//! including the failures poem itself detects before a handler runs.

mod common;

use std::num::NonZeroU32;

use common::{TestApp, generous_limits, on_every_backend, on_every_backend_with, principal};
use delivery_core::DeliveryState;
use delivery_svc::config::LimitsConfig;
use delivery_svc::domain::PrincipalRole::{Admin, Customer, Operator, Partner, Service};
use poem::http::{Method, StatusCode};
use serde_json::json;

async fn raw_post(
    app: &TestApp,
    path: &str,
    body: &'static str,
    content_type: Option<&str>,
) -> common::Reply {
    let mut request = app
        .client
        .post(path)
        .header(
            "authorization",
            format!("Bearer {}", app.token(&principal(Partner))),
        )
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    common::Reply::read(request.send().await.0).await
}

#[tokio::test]
async fn bodies_that_are_not_json_are_400_and_invalid_ones_422() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let path = format!("/v1/deliveries/{id}/transitions");
        let json_type = Some("application/json");

        raw_post(app, &path, "{\"transition\": \"pick_up\"", json_type)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed-request", &path);
        raw_post(app, &path, "", json_type).await.assert_problem(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            &path,
        );
        raw_post(app, &path, "{\"transition\": \"pick_up\"}", None)
            .await
            .assert_problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                &path,
            );

        let partner = principal(Partner);
        for invalid in [
            json!({"transition": "pick_up"}),
            json!({"transition": "pick_up", "partner_order_number": " DX-1"}),
            json!({"transition": "pick_up", "partner_order_number": "DX 1"}),
            json!({"transition": "fail", "reason": "ON_FIRE"}),
            json!({"transition": "fail", "reason": "OTHER", "detail": "   "}),
            json!({"transition": "fail", "reason": "OTHER", "detail": "a\u{0}b"}),
            json!({"transition": "deliver", "delivered_at": "yesterday"}),
            json!({"transition": "teleport"}),
            json!({"partner_order_number": "DX-1"}),
            json!(["pick_up"]),
        ] {
            let reply = app.post(&path, &partner, &invalid).await;
            reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", &path);
        }

        // The refusal quotes the value it refused, but not a whole 60 KB body.
        let padded = json!({"transition": "teleport", "pad": "A".repeat(60_000)});
        let reply = app.post(&path, &partner, &padded).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", &path);
        let detail = reply.json["detail"].as_str().expect("a detail");
        assert!(detail.chars().count() < 600, "{} characters", detail.len());
        assert!(detail.ends_with("more characters)"), "{detail}");

        let mut event = common::payment_event("ord-1", &["PHYSICAL"]);
        event["lines"][0]["quantity"] = json!(0);
        event["shipping_address"]["country"] = json!("Britain");
        app.post("/v1/payment-events", &principal(Service), &event)
            .await
            .assert_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "/v1/payment-events",
            );

        let unchanged = app.get(&format!("/v1/deliveries/{id}"), &partner).await;
        assert_eq!(unchanged.json["state"], "CREATED");
    })
    .await;
}

/// A partner's `delivered_at` lies between the order's creation and now, give or take a
/// partner's clock: the future or a time before the order existed is refused, and the
/// delivery stays where it was.
#[tokio::test]
async fn a_delivery_time_in_the_future_or_before_the_order_is_refused() {
    on_every_backend(async |app| {
        let id = app.delivery_in(DeliveryState::PickedUp).await;
        let path = format!("/v1/deliveries/{id}/transitions");
        let partner = principal(Partner);
        let soon = chrono::Utc::now() + chrono::Duration::minutes(1);
        for (delivered_at, why) in [
            ("2999-01-01T00:00:00+05:00", "in the future"),
            (
                "1970-01-01T00:00:00Z",
                "before the delivery order was created",
            ),
        ] {
            let body = json!({"transition": "deliver", "delivered_at": delivered_at});
            let reply = app.post(&path, &partner, &body).await;
            reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", &path);
            let detail = reply.json["detail"].as_str().expect("a detail");
            assert!(detail.contains(why), "{detail}");
        }
        let view = app.get(&format!("/v1/deliveries/{id}"), &partner).await;
        assert_eq!(view.json["state"], "PICKED_UP");
        // A partner's clock a minute ahead of ours is no error.
        let body = json!({"transition": "deliver", "delivered_at": soon});
        app.post(&path, &partner, &body)
            .await
            .assert_status(StatusCode::OK);
    })
    .await;
}

/// Who may not call an operation at all is told so before its body is read: the body's
/// validation would otherwise answer first, and tell a forbidden caller about the schema.
#[tokio::test]
async fn a_caller_who_may_not_call_an_operation_is_refused_before_its_body_is_read() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let transitions = format!("/v1/deliveries/{id}/transitions");
        for (role, path) in [
            (Customer, "/v1/payment-events"),
            (Partner, "/v1/payment-events"),
            (Service, transitions.as_str()),
        ] {
            let token = app.token(&principal(role));
            for body in [json!({"garbage": 1}), json!([])] {
                app.send(Method::POST, path, Some(&token), Some(&body), &[])
                    .await
                    .assert_problem(StatusCode::FORBIDDEN, "forbidden", path);
            }
        }
        let unauthenticated = app
            .client
            .post("/v1/payment-events")
            .content_type("application/json")
            .body("{")
            .send()
            .await;
        common::Reply::read(unauthenticated.0).await.assert_problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "/v1/payment-events",
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_ids_routes_methods_and_bad_parameters_are_problems() {
    on_every_backend(async |app| {
        let operator = principal(Operator);
        let unknown = format!("/v1/deliveries/{}", uuid::Uuid::new_v4());
        app.get(&unknown, &operator).await.assert_problem(
            StatusCode::NOT_FOUND,
            "not-found",
            &unknown,
        );
        let transitions = format!("{unknown}/transitions");
        app.post(&transitions, &operator, &json!({"transition": "escalate"}))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found", &transitions);

        app.get("/v1/nothing-here", &operator).await.assert_problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "/v1/nothing-here",
        );
        // Routes of the OpenAPI document and those beside it alike say what they take.
        for (method, path, allow) in [
            (Method::DELETE, "/v1/graph", "GET, HEAD"),
            (Method::POST, "/v1/live", "GET, HEAD"),
            (Method::PUT, "/openapi.json", "GET, HEAD"),
            (Method::DELETE, "/docs", "GET, HEAD"),
        ] {
            let refused = app
                .send(method, path, Some(&app.token(&operator)), None, &[])
                .await;
            refused.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", path);
            assert_eq!(refused.headers["allow"], allow, "{path}");
        }
        let docs = app.client.get("/docs").send().await;
        docs.assert_status_is_ok();
        docs.assert_content_type("text/html; charset=utf-8");
        app.get("/v1/deliveries/not-a-uuid", &operator)
            .await
            .assert_problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "/v1/deliveries/not-a-uuid",
            );
        app.get("/v1/deliveries?state=LOST_IN_SPACE", &operator)
            .await
            .assert_problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "/v1/deliveries",
            );
        for query in [
            "limit=0",
            "ordering_id=",
            "customer_id=%20",
            "partner_id=",
            "partner_id=%20p-1",
        ] {
            app.get(&format!("/v1/deliveries?{query}"), &operator)
                .await
                .assert_problem(
                    StatusCode::BAD_REQUEST,
                    "malformed-request",
                    "/v1/deliveries",
                );
        }
    })
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let limits = LimitsConfig {
        max_body_bytes: 1024,
        ..generous_limits()
    };
    on_every_backend_with(limits, async |app| {
        let id = app.create_delivery().await;
        let path = format!("/v1/deliveries/{id}/transitions");
        let oversized =
            json!({"transition": "fail", "reason": "OTHER", "detail": "x".repeat(2000)});
        app.post(&path, &principal(Partner), &oversized)
            .await
            .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", &path);

        // No Content-Length: the body is cut off while it is read.
        let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(vec![b' '; 2000])]);
        let streamed = app
            .client
            .post(&path)
            .header(
                "authorization",
                format!("Bearer {}", app.token(&principal(Partner))),
            )
            .content_type("application/json")
            .body(poem::Body::from_bytes_stream(chunks))
            .send()
            .await;
        common::Reply::read(streamed.0).await.assert_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            &path,
        );
    })
    .await;
}

#[tokio::test]
async fn missing_expired_tampered_and_foreign_tokens_are_401_with_a_bearer_challenge() {
    on_every_backend(async |app| {
        let path = "/v1/graph";
        let missing = app.send(Method::GET, path, None, None, &[]).await;
        missing.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated", path);
        assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

        let valid = app.token(&principal(Operator));
        let mut tampered = valid.clone();
        let last = tampered.pop().expect("a character");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        // An operator's signature under an admin's claims.
        let admin = app.token(&principal(Admin));
        let forged_claims = [
            valid.split('.').next(),
            admin.split('.').nth(1),
            valid.split('.').nth(2),
        ]
        .map(|part| part.expect("three parts"))
        .join(".");
        let foreign_audience = {
            let config = delivery_svc::config::JwtConfig {
                jwt_audience: "someone-else".into(),
                ..common::jwt_config(Some(common::SECRET.into()))
            };
            delivery_svc::auth::TokenSigner::hs256(common::SECRET.as_bytes(), &config)
                .mint(
                    &principal(Operator),
                    chrono::Utc::now(),
                    chrono::Duration::hours(1),
                )
                .expect("a token")
        };
        for token in [
            app.expired_token(&principal(Operator)),
            tampered,
            forged_claims,
            foreign_audience,
            "not-a-jwt".to_owned(),
        ] {
            let reply = app.send(Method::GET, path, Some(&token), None, &[]).await;
            reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated", path);
            let challenge = reply.header("www-authenticate").expect("a challenge");
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\""),
                "{challenge}"
            );
        }
        let expired = app
            .send(
                Method::GET,
                path,
                Some(&app.expired_token(&principal(Operator))),
                None,
                &[],
            )
            .await;
        assert_eq!(expired.json["detail"], "the token has expired");

        app.send(Method::GET, path, Some(&valid), None, &[])
            .await
            .assert_status(StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn a_principal_over_its_rate_limit_gets_429_with_retry_after() {
    let limits = LimitsConfig {
        rate_limit_per_second: NonZeroU32::new(1).expect("not zero"),
        rate_limit_burst: NonZeroU32::new(2).expect("not zero"),
        ..generous_limits()
    };
    on_every_backend_with(limits, async |app| {
        let operator = principal(Operator);
        let first = app.get("/v1/graph", &operator).await;
        first.assert_status(StatusCode::OK);
        assert_eq!(first.header("ratelimit-limit"), Some("2"));
        assert_eq!(first.header("ratelimit-remaining"), Some("1"));
        app.get("/v1/graph", &operator)
            .await
            .assert_status(StatusCode::OK);

        let limited = app.get("/v1/graph", &operator).await;
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "/v1/graph");
        let retry_after: u64 = limited
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        assert_eq!(limited.header("ratelimit-limit"), Some("2"));
        assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
        assert!(limited.header("ratelimit-reset").is_some());

        // The budget is the principal's: another one still has its own.
        app.get("/v1/graph", &principal(Partner))
            .await
            .assert_status(StatusCode::OK);

        // The liveness probe is not limited (the spec documents it as answering 200
        // only); the readiness probe, which pings the database, is.
        for _ in 0..3 {
            let answer = app.get("/healthz", &operator).await;
            answer.assert_status(StatusCode::OK);
            assert_eq!(answer.header("ratelimit-limit"), None);
        }
        app.get("/readyz", &operator).await.assert_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "/readyz",
        );
    })
    .await;
}

#[tokio::test]
async fn the_callers_request_id_is_used_and_a_made_up_one_is_replaced() {
    on_every_backend(async |app| {
        let path = format!("/v1/deliveries/{}", uuid::Uuid::new_v4());
        let token = app.token(&principal(Operator));
        let given = app
            .send(
                Method::GET,
                &path,
                Some(&token),
                None,
                &[("x-request-id", "trace-42")],
            )
            .await;
        assert_eq!(given.header("x-request-id"), Some("trace-42"));
        given.assert_problem(StatusCode::NOT_FOUND, "not-found", &path);

        let hostile = app
            .send(
                Method::GET,
                &path,
                Some(&token),
                None,
                &[("x-request-id", "a b\"c")],
            )
            .await;
        let replaced = hostile.header("x-request-id").expect("a request id");
        assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");

        let ok = app.send(Method::GET, "/healthz", None, None, &[]).await;
        ok.assert_status(StatusCode::OK);
        assert!(ok.header("x-request-id").is_some());
    })
    .await;
}

#[tokio::test]
async fn a_database_out_of_reach_is_a_503_to_retry_that_tells_nothing_and_makes_the_service_unready()
 {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        app.break_database().await;
        let path = format!("/v1/deliveries/{id}");
        let reply = app.get(&path, &principal(Operator)).await;
        reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy", &path);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.json["detail"], "the service is busy; retry after 1 s");
        app.send(Method::GET, "/readyz", None, None, &[])
            .await
            .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "/readyz");
        app.send(Method::GET, "/healthz", None, None, &[])
            .await
            .assert_status(StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_record_is_a_500_that_tells_nothing() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        app.execute("UPDATE delivery_view SET state = 'LOST_IN_THE_MAIL'")
            .await;
        let path = format!("/v1/deliveries/{id}");
        let reply = app.get(&path, &principal(Operator)).await;
        reply.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", &path);
        assert_eq!(
            reply.json["detail"],
            "an internal error occurred; report it with the request id"
        );
    })
    .await;
}
