//! The RBAC table (`delivery_svc::auth`), cell by cell through the HTTP API, and the check
//! that docs/security.md shows exactly that table.

mod common;

use common::{
    PARTNER, Reply, TestApp, maker, on_every_backend, payment_event, principal, sample_transition,
};
use delivery_core::{DeliveryState, Transition};
use delivery_svc::auth::{Operation, PRINCIPAL_ROLES, role_name, transition_roles};
use delivery_svc::domain::{Principal, PrincipalRole};
use poem::http::{Method, StatusCode};
use serde_json::Value;

fn cell(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// The endpoint × role matrix, as docs/security.md shows it.
fn endpoint_matrix() -> String {
    let roles: Vec<_> = PRINCIPAL_ROLES.map(role_name).into();
    let mut table = format!("| endpoint | {} | object-level rule |\n", roles.join(" | "));
    table += &format!("|---|{}---|\n", "---|".repeat(roles.len()));
    for operation in Operation::ALL {
        let permission = operation.permission();
        let cells: Vec<_> = PRINCIPAL_ROLES
            .map(|role| cell(permission.roles.contains(&role)))
            .into();
        table += &format!(
            "| `{} {}` | {} | {} |\n",
            permission.method,
            permission.path,
            cells.join(" | "),
            permission.object_rule
        );
    }
    table
}

/// The transition × role matrix (graph.yaml's roles through `PrincipalRole::graph_role`), as docs/security.md
/// shows it.
fn transition_matrix() -> String {
    let roles: Vec<_> = PRINCIPAL_ROLES.map(role_name).into();
    let mut table = format!("| transition | from → to | {} |\n", roles.join(" | "));
    table += &format!("|---|---|{}\n", "---|".repeat(roles.len()));
    for transition in Transition::ALL {
        let from: Vec<_> = transition
            .sources()
            .iter()
            .map(|state| state.name())
            .collect();
        let may = transition_roles(transition);
        let cells: Vec<_> = PRINCIPAL_ROLES.map(|role| cell(may.contains(&role))).into();
        table += &format!(
            "| `{}` | {} → {} | {} |\n",
            transition.name(),
            from.join(", "),
            transition.target().name(),
            cells.join(" | ")
        );
    }
    table
}

#[test]
fn docs_security_md_shows_the_rbac_tables_the_code_enforces() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    for table in [endpoint_matrix(), transition_matrix()] {
        assert!(
            doc.contains(&table),
            "docs/security.md is out of date; it should contain:\n\n{table}"
        );
    }
}

#[test]
fn the_transition_endpoint_is_open_to_exactly_the_roles_that_act_in_the_graph() {
    let makers: Vec<_> = PRINCIPAL_ROLES
        .into_iter()
        .filter(|&role| role.graph_role().is_some())
        .collect();
    assert_eq!(
        Operation::ApplyTransition.permission().roles,
        makers.as_slice()
    );
}

/// A request to `operation` as `who` that passes everything but the role check: the caller
/// owns the delivery, and a transition is one `who` may make from the delivery's state.
async fn call(app: &TestApp, operation: Operation, who: &Principal) -> (String, Reply) {
    let permission = operation.permission();
    let method = Method::from_bytes(permission.method.as_bytes()).expect("an HTTP method");
    let (id, body): (String, Option<Value>) = match operation {
        Operation::IngestPaymentEvent => (
            String::new(),
            Some(payment_event(&common::new_id("ord"), &["PHYSICAL"])),
        ),
        Operation::ApplyTransition => {
            let transition = Transition::ALL
                .into_iter()
                .find(|&t| transition_roles(t).contains(&who.role))
                .unwrap_or(Transition::PickUp);
            let id = app.delivery_in(transition.sources()[0]).await;
            (id, Some(sample_transition(transition)))
        }
        Operation::ListOrderingDeliveries => {
            let id = app.create_delivery().await;
            let delivery = app
                .get(
                    &format!("/v1/deliveries/{id}"),
                    &principal(PrincipalRole::Admin),
                )
                .await;
            (
                delivery.json["ordering_id"]
                    .as_str()
                    .expect("an ordering id")
                    .to_owned(),
                None,
            )
        }
        Operation::ReadDelivery | Operation::ReadHistory => (app.create_delivery().await, None),
        Operation::ListDeliveries
        | Operation::ReadOperatorQueue
        | Operation::ReadGraph
        | Operation::SubscribeLive => (String::new(), None),
    };
    let path = permission.path.replace("{id}", &id);
    let reply = app
        .send(method, &path, Some(&app.token(who)), body.as_ref(), &[])
        .await;
    (path, reply)
}

#[tokio::test]
async fn every_endpoint_lets_in_exactly_the_roles_of_the_rbac_table() {
    on_every_backend(async |app| {
        for operation in Operation::ALL {
            let allowed = operation.permission().roles;
            for role in PRINCIPAL_ROLES {
                let (path, reply) = call(app, operation, &principal(role)).await;
                if allowed.contains(&role) && operation == Operation::SubscribeLive {
                    // Let in, up to the handshake, which a TestClient cannot make; the
                    // real handshake is walked in tests/live_updates.rs.
                    reply.assert_problem(StatusCode::BAD_REQUEST, "malformed-request", &path);
                } else if allowed.contains(&role) {
                    assert!(
                        reply.status.is_success(),
                        "{operation:?} as {role:?}: {} {}",
                        reply.status,
                        reply.json
                    );
                } else {
                    reply.assert_problem(StatusCode::FORBIDDEN, "forbidden", &path);
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn every_endpoint_needs_a_token() {
    on_every_backend(async |app| {
        for operation in Operation::ALL {
            let permission = operation.permission();
            let method = Method::from_bytes(permission.method.as_bytes()).expect("an HTTP method");
            let path = permission
                .path
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            let body = (method == Method::POST).then(|| sample_transition(Transition::PickUp));
            app.send(method, &path, None, body.as_ref(), &[])
                .await
                .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated", &path);
        }
    })
    .await;
}

#[tokio::test]
async fn every_transition_lets_in_exactly_the_roles_graph_yaml_names() {
    on_every_backend(async |app| {
        for transition in Transition::ALL {
            let may = transition_roles(transition);
            for role in PRINCIPAL_ROLES {
                let id = app.delivery_in(transition.sources()[0]).await;
                let reply = app.transition(&id, transition, &principal(role)).await;
                let path = format!("/v1/deliveries/{id}/transitions");
                match (may.contains(&role), role.graph_role()) {
                    (true, _) => reply.assert_status(StatusCode::OK),
                    // A role outside the graph never reaches it.
                    (false, None) => {
                        reply.assert_problem(StatusCode::FORBIDDEN, "forbidden", &path)
                    }
                    (false, Some(_)) => {
                        reply.assert_problem(StatusCode::FORBIDDEN, "role-not-allowed", &path);
                        assert!(reply.json["allowed_roles"].is_array(), "{}", reply.json);
                    }
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn customers_and_partners_see_and_act_on_only_their_own_deliveries() {
    on_every_backend(async |app| {
        let id = app.delivery_in(DeliveryState::Delivered).await;
        let other_customer = Principal {
            customer_id: Some("cust-2".parse().expect("a customer id")),
            subject: "test-other-customer".into(),
            ..principal(PrincipalRole::Customer)
        };
        let other_partner = Principal {
            partner_id: Some("other-partner".into()),
            subject: "test-other-partner".into(),
            ..principal(PrincipalRole::Partner)
        };
        for stranger in [&other_customer, &other_partner] {
            let path = format!("/v1/deliveries/{id}");
            app.get(&path, stranger).await.assert_problem(
                StatusCode::NOT_FOUND,
                "not-found",
                &path,
            );
            let history = format!("{path}/history");
            app.get(&history, stranger).await.assert_problem(
                StatusCode::NOT_FOUND,
                "not-found",
                &history,
            );
        }
        let transitions = format!("/v1/deliveries/{id}/transitions");
        for (stranger, transition) in [
            (&other_customer, Transition::ConfirmReceipt),
            (&other_partner, Transition::Fail),
        ] {
            assert_eq!(maker(transition), stranger.role);
            app.transition(&id, transition, stranger)
                .await
                .assert_problem(StatusCode::NOT_FOUND, "not-found", &transitions);
        }
        let listed = app.get("/v1/deliveries", &other_customer).await;
        assert_eq!(listed.json["items"], serde_json::json!([]));
    })
    .await;
}

/// `POST /v1/partner/webhooks` is outside the RBAC table: the partner authenticates with
/// the webhook's signature (tests/http_webhooks.rs), and a bearer token, of any role, lets
/// nothing through without one.
#[tokio::test]
async fn the_partner_webhook_takes_a_signature_and_no_token_stands_in_for_it() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let body = serde_json::json!({
            "type": "delivery.picked_up",
            "data": {"partner": PARTNER, "delivery_id": id, "partner_order_number": "DX-1"},
        });
        let path = "/v1/partner/webhooks";
        let forged = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1764000000"),
            ("webhook-signature", "v1,Zm9yZ2Vk"),
        ];
        for role in PRINCIPAL_ROLES {
            let token = app.token(&principal(role));
            app.send(Method::POST, path, Some(&token), Some(&body), &[])
                .await
                .assert_problem(StatusCode::BAD_REQUEST, "malformed-request", path);
            app.send(Method::POST, path, Some(&token), Some(&body), &forged)
                .await
                .assert_problem(StatusCode::FORBIDDEN, "webhook-signature-invalid", path);
        }
        let delivery = app
            .get(
                &format!("/v1/deliveries/{id}"),
                &principal(PrincipalRole::Admin),
            )
            .await;
        assert_eq!(delivery.json["state"], "CREATED");
    })
    .await;
}
