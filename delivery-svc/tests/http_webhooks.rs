//! `POST /v1/partner/webhooks` through the HTTP API, on SQLite and PostgreSQL. Every
//! webhook here is signed by the Standard Webhooks reference library (`standardwebhooks`
//! crate), not by this project's code.

mod common;

use chrono::{Duration, Utc};
use common::{
    OTHER_PARTNER, OTHER_PARTNER_WEBHOOK_SECRET, PARTNER, PARTNER_OLD_WEBHOOK_SECRET,
    PARTNER_WEBHOOK_SECRET, Reply, TestApp, new_id, on_every_backend, principal,
};
use delivery_svc::domain::PrincipalRole;
use poem::http::StatusCode;
use serde_json::{Value, json};
use standardwebhooks::Webhook;

const PATH: &str = "/v1/partner/webhooks";

/// A report of `partner`: its type (`picked_up`, `delivered`, `failed`) and `data` beyond
/// the partner's name and the delivery id, as the partner would serialise it.
fn report(partner: &str, kind: &str, delivery_id: &str, data: Value) -> String {
    let mut body = json!({
        "type": format!("delivery.{kind}"),
        "timestamp": Utc::now().to_rfc3339(),
        "data": {"partner": partner, "delivery_id": delivery_id},
    });
    body["data"]
        .as_object_mut()
        .expect("an object")
        .extend(data.as_object().expect("an object").clone());
    body.to_string()
}

fn picked_up(delivery_id: &str) -> String {
    report(
        PARTNER,
        "picked_up",
        delivery_id,
        json!({"partner_order_number": new_id("DX")}),
    )
}

fn delivered(delivery_id: &str) -> String {
    report(
        PARTNER,
        "delivered",
        delivery_id,
        json!({"delivered_at": common::delivered_at()}),
    )
}

/// A signed webhook as a partner sends it.
#[derive(Clone)]
struct SignedWebhook {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

/// `body` signed with `secret` by the reference library, now, under a new id.
fn signed(secret: &str, body: &str) -> SignedWebhook {
    signed_at(secret, body, Utc::now().timestamp())
}

fn signed_at(secret: &str, body: &str, timestamp: i64) -> SignedWebhook {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let signature = Webhook::new(secret)
        .expect("a Standard Webhooks secret")
        .sign(&id, timestamp, body.as_bytes())
        .expect("a signature");
    SignedWebhook {
        id,
        timestamp,
        signature,
        body: body.as_bytes().to_vec(),
    }
}

impl SignedWebhook {
    async fn send(&self, app: &TestApp) -> Reply {
        let response = app
            .client
            .post(PATH)
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string())
            .header("webhook-signature", &self.signature)
            .content_type("application/json")
            .body(self.body.clone())
            .send()
            .await;
        Reply::read(response.0).await
    }
}

async fn delivery(app: &TestApp, id: &str) -> Value {
    let reply = app
        .get(
            &format!("/v1/deliveries/{id}"),
            &principal(PrincipalRole::Admin),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    reply.json
}

/// The delivery's history as (transition, actor role, actor id).
async fn history(app: &TestApp, id: &str) -> Vec<(String, String, String)> {
    let reply = app
        .get(
            &format!("/v1/deliveries/{id}/history"),
            &principal(PrincipalRole::Admin),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    reply.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().expect("a string").to_owned();
            (text("transition"), text("actor_role"), text("actor_id"))
        })
        .collect()
}

fn transitions(history: &[(String, String, String)]) -> Vec<&str> {
    history.iter().map(|(name, _, _)| name.as_str()).collect()
}

#[track_caller]
fn assert_outcome(reply: &Reply, outcome: &str, state: &str, version: u64) {
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        (
            &reply.json["outcome"],
            &reply.json["state"],
            &reply.json["version"]
        ),
        (&json!(outcome), &json!(state), &json!(version)),
        "{}",
        reply.json
    );
}

#[tokio::test]
async fn a_webhook_signed_by_the_reference_library_is_accepted_and_one_changed_byte_is_refused() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let genuine = signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id));
        let mut tampered = genuine.clone();
        // One byte of the partner order number, still valid JSON and a valid report.
        let at = tampered
            .body
            .windows(3)
            .position(|window| window == b"DX-")
            .expect("the order number");
        tampered.body[at] = b'Q';

        tampered.send(app).await.assert_problem(
            StatusCode::FORBIDDEN,
            "webhook-signature-invalid",
            PATH,
        );
        assert_eq!(delivery(app, &id).await["state"], "CREATED");

        let reply = genuine.send(app).await;
        assert_outcome(&reply, "applied", "PICKED_UP", 2);
        assert_eq!(reply.json["delivery_id"], id);
    })
    .await;
}

#[tokio::test]
async fn a_report_is_applied_once_however_often_it_is_sent() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let webhook = signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id));
        assert_outcome(&webhook.send(app).await, "applied", "PICKED_UP", 2);
        for _ in 0..3 {
            assert_outcome(&webhook.send(app).await, "duplicate", "PICKED_UP", 2);
        }
        // The same news under another id: the delivery already says so.
        let body = String::from_utf8(webhook.body.clone()).expect("UTF-8");
        assert_outcome(
            &signed(PARTNER_WEBHOOK_SECRET, &body).send(app).await,
            "ignored",
            "PICKED_UP",
            2,
        );
        let history = history(app, &id).await;
        assert_eq!(transitions(&history), ["create", "pick_up"]);
        assert_eq!(
            history[1],
            (
                "pick_up".to_owned(),
                "partner".to_owned(),
                PARTNER.to_owned()
            )
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_copies_of_a_report_are_applied_once() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let webhook = signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id));
        let replies = futures_util::future::join_all((0..6).map(|_| webhook.send(app))).await;
        let mut outcomes: Vec<&str> = replies
            .iter()
            .map(|reply| {
                reply.assert_status(StatusCode::OK);
                reply.json["outcome"].as_str().expect("an outcome")
            })
            .collect();
        outcomes.sort_unstable();
        assert_eq!(
            outcomes,
            [
                "applied",
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate"
            ]
        );
        assert_eq!(transitions(&history(app, &id).await), ["create", "pick_up"]);
    })
    .await;
}

#[tokio::test]
async fn of_different_reports_racing_for_one_delivery_one_applies_and_the_rest_conflict_or_are_moot()
 {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        // Different webhook ids and numbers: each is a report of its own, not a copy.
        let webhooks: Vec<_> = (0..8)
            .map(|_| signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id)))
            .collect();
        let replies =
            futures_util::future::join_all(webhooks.iter().map(|webhook| webhook.send(app))).await;
        let mut applied = 0;
        for reply in &replies {
            match reply.status {
                StatusCode::OK if reply.json["outcome"] == "applied" => applied += 1,
                StatusCode::OK => assert_eq!(reply.json["outcome"], "ignored", "{:?}", reply.json),
                // Read before the winner committed, written after: a lost race.
                StatusCode::CONFLICT => {
                    assert_eq!(
                        reply.json["type"], "urn:delivery-svc:problem:concurrent-change",
                        "{:?}",
                        reply.json
                    )
                }
                other => panic!(
                    "neither applied, ignored nor a conflict: {other} {:?}",
                    reply.json
                ),
            }
        }
        assert_eq!(applied, 1);
        assert_eq!(transitions(&history(app, &id).await), ["create", "pick_up"]);
    })
    .await;
}

#[tokio::test]
async fn a_delivery_moves_to_delivered_by_webhooks_alone() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        for (body, state, version) in [
            (picked_up(&id), "PICKED_UP", 2),
            (delivered(&id), "DELIVERED", 3),
        ] {
            let reply = signed(PARTNER_WEBHOOK_SECRET, &body).send(app).await;
            assert_outcome(&reply, "applied", state, version);
        }
        let view = delivery(app, &id).await;
        assert_eq!(view["delivered_at"], common::delivered_at());
        assert!(
            view["partner_order_number"]
                .as_str()
                .is_some_and(|number| number.starts_with("DX-")),
            "{view}"
        );
    })
    .await;
}

/// The policy of docs/adr/0003-partner-webhooks.md: a report that comes too early is
/// refused with nothing recorded, so the partner's retry of the same message applies it
/// once the earlier report has arrived.
#[tokio::test]
async fn delivered_before_picked_up_is_refused_until_the_pick_up_arrives() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let early = signed(PARTNER_WEBHOOK_SECRET, &delivered(&id));
        let reply = early.send(app).await;
        reply.assert_problem(StatusCode::CONFLICT, "illegal-transition", PATH);
        assert_eq!(reply.json["current_state"], "CREATED");
        assert_eq!(reply.json["attempted_transition"], "deliver");
        assert_eq!(transitions(&history(app, &id).await), ["create"]);

        let pick_up = signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id));
        assert_outcome(&pick_up.send(app).await, "applied", "PICKED_UP", 2);
        // The partner retries the same message, as Standard Webhooks senders do.
        assert_outcome(&early.send(app).await, "applied", "DELIVERED", 3);
        assert_outcome(&early.send(app).await, "duplicate", "DELIVERED", 3);
        assert_outcome(&pick_up.send(app).await, "duplicate", "PICKED_UP", 2);
        assert_eq!(
            transitions(&history(app, &id).await),
            ["create", "pick_up", "deliver"]
        );
    })
    .await;
}

#[tokio::test]
async fn a_failure_maps_the_partners_code_keeps_it_and_makes_later_reports_moot() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let failed = report(
            PARTNER,
            "failed",
            &id,
            json!({"status": "customer_refused", "message": "Refused at the door."}),
        );
        let reply = signed(PARTNER_WEBHOOK_SECRET, &failed).send(app).await;
        assert_outcome(&reply, "applied", "DELIVERY_FAILED", 2);
        let view = delivery(app, &id).await;
        assert_eq!(view["failure_reason"], "RECIPIENT_REFUSED");
        assert_eq!(
            view["failure_detail"],
            "partner status customer_refused: Refused at the door."
        );

        // The graph never goes back: later news is kept in the inbox and changes nothing.
        for body in [picked_up(&id), delivered(&id), failed] {
            let reply = signed(PARTNER_WEBHOOK_SECRET, &body).send(app).await;
            assert_outcome(&reply, "ignored", "DELIVERY_FAILED", 2);
        }
        assert_eq!(transitions(&history(app, &id).await), ["create", "fail"]);
    })
    .await;
}

#[tokio::test]
async fn either_secret_of_a_rotating_partner_verifies() {
    on_every_backend(async |app| {
        for secret in [PARTNER_OLD_WEBHOOK_SECRET, PARTNER_WEBHOOK_SECRET] {
            let id = app.create_delivery().await;
            let reply = signed(secret, &picked_up(&id)).send(app).await;
            assert_outcome(&reply, "applied", "PICKED_UP", 2);
        }
        // A sender in the middle of a rotation signs with both; one is enough.
        let id = app.create_delivery().await;
        let mut webhook = signed(PARTNER_WEBHOOK_SECRET, &picked_up(&id));
        let foreign = Webhook::new(OTHER_PARTNER_WEBHOOK_SECRET)
            .expect("a secret")
            .sign(&webhook.id, webhook.timestamp, &webhook.body)
            .expect("a signature");
        webhook.signature = format!("{foreign} {}", webhook.signature);
        assert_outcome(&webhook.send(app).await, "applied", "PICKED_UP", 2);
    })
    .await;
}

#[tokio::test]
async fn unverifiable_stale_foreign_and_unknown_reports_are_refused_and_change_nothing() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let body = picked_up(&id);
        let now = Utc::now().timestamp();
        let tolerance = Duration::minutes(5).num_seconds();

        // Another partner's secret does not speak for this partner.
        signed(OTHER_PARTNER_WEBHOOK_SECRET, &body)
            .send(app)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "webhook-signature-invalid", PATH);
        // Correctly signed, but too old (a replay) or too far ahead.
        for timestamp in [now - tolerance - 60, now + tolerance + 60] {
            signed_at(PARTNER_WEBHOOK_SECRET, &body, timestamp)
                .send(app)
                .await
                .assert_problem(
                    StatusCode::FORBIDDEN,
                    "webhook-timestamp-outside-tolerance",
                    PATH,
                );
        }
        // A partner nobody configured.
        signed(
            PARTNER_WEBHOOK_SECRET,
            &report(
                "nobody",
                "picked_up",
                &id,
                json!({"partner_order_number": "DX-1"}),
            ),
        )
        .send(app)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "unknown-partner", PATH);
        // A delivery that does not exist, and one assigned to another partner.
        let unknown = uuid::Uuid::new_v4().to_string();
        signed(PARTNER_WEBHOOK_SECRET, &picked_up(&unknown))
            .send(app)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found", PATH);
        signed(
            OTHER_PARTNER_WEBHOOK_SECRET,
            &report(
                OTHER_PARTNER,
                "picked_up",
                &id,
                json!({"partner_order_number": "DX-2"}),
            ),
        )
        .send(app)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found", PATH);
        // Not naming a partner; a report of a kind the contract does not have.
        signed(
            PARTNER_WEBHOOK_SECRET,
            r#"{"type":"delivery.picked_up","data":{}}"#,
        )
        .send(app)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "webhook-malformed", PATH);
        signed(
            PARTNER_WEBHOOK_SECRET,
            &report(PARTNER, "teleported", &id, json!({})),
        )
        .send(app)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", PATH);
        // A NUL, which PostgreSQL cannot store, in the partner's code or words.
        for data in [
            json!({"status": "lost\u{0}", "message": "Gone."}),
            json!({"status": "lost", "message": "Gone\u{0}."}),
        ] {
            signed(
                PARTNER_WEBHOOK_SECRET,
                &report(PARTNER, "failed", &id, data),
            )
            .send(app)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", PATH);
        }
        // Without the Standard Webhooks headers.
        let reply = app
            .client
            .post(PATH)
            .content_type("application/json")
            .body(body.clone())
            .send()
            .await;
        Reply::read(reply.0).await.assert_problem(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            PATH,
        );

        assert_eq!(delivery(app, &id).await["state"], "CREATED");
        assert_eq!(transitions(&history(app, &id).await), ["create"]);
    })
    .await;
}
