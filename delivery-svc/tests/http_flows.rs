//! The delivery's life through the HTTP API: payment event to confirmation, failure to
//! redelivery, reads, and idempotent retries.

mod common;

use common::{
    CUSTOMER, PARTNER, new_id, on_every_backend, payment_event, principal, sample_transition,
};
use delivery_svc::domain::PrincipalRole::{Customer, Operator, Partner, Service};
use poem::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_paid_ordering_is_picked_up_delivered_and_confirmed() {
    on_every_backend(async |app| {
        let ordering = new_id("ord");
        let created = app
            .post(
                "/v1/payment-events",
                &principal(Service),
                &payment_event(&ordering, &["PHYSICAL", "EBOOK"]),
            )
            .await;
        created.assert_status(StatusCode::CREATED);
        assert_eq!(created.json["outcome"], "created");
        let id = created.json["delivery_id"]
            .as_str()
            .expect("a delivery id")
            .to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("/v1/deliveries/{id}").as_str())
        );

        let transitions = format!("/v1/deliveries/{id}/transitions");
        let steps = [
            (
                Partner,
                json!({"transition": "pick_up", "partner_order_number": "DX-1042"}),
                "CREATED",
                "PICKED_UP",
            ),
            (
                Partner,
                json!({"transition": "deliver", "delivered_at": common::delivered_at()}),
                "PICKED_UP",
                "DELIVERED",
            ),
            (
                Customer,
                json!({"transition": "confirm_receipt"}),
                "DELIVERED",
                "DELIVERY_CONFIRMED",
            ),
        ];
        for (version, (role, body, from, to)) in (2..).zip(steps) {
            let reply = app.post(&transitions, &principal(role), &body).await;
            reply.assert_status(StatusCode::OK);
            assert_eq!(
                reply.json,
                json!({"delivery_id": id, "from": from, "to": to, "version": version})
            );
        }

        let delivery = app
            .get(&format!("/v1/deliveries/{id}"), &principal(Customer))
            .await;
        delivery.assert_status(StatusCode::OK);
        assert_eq!(delivery.json["state"], "DELIVERY_CONFIRMED");
        assert_eq!(delivery.json["allowed_transitions"], json!([]));
        assert_eq!(delivery.json["partner_id"], PARTNER);
        assert_eq!(delivery.json["partner_order_number"], "DX-1042");
        assert_eq!(delivery.json["delivered_at"], common::delivered_at());
        assert_eq!(
            delivery.json["lines"].as_array().map(Vec::len),
            Some(1),
            "only the physical line"
        );

        let history = app
            .get(
                &format!("/v1/deliveries/{id}/history"),
                &principal(Customer),
            )
            .await;
        history.assert_status(StatusCode::OK);
        let steps: Vec<_> = history.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|entry| (entry["transition"].clone(), entry["to"].clone()))
            .collect();
        assert_eq!(
            steps,
            [
                (json!("create"), json!("CREATED")),
                (json!("pick_up"), json!("PICKED_UP")),
                (json!("deliver"), json!("DELIVERED")),
                (json!("confirm_receipt"), json!("DELIVERY_CONFIRMED")),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_delivery_escalated_and_resolved_redeliver_gives_the_ordering_a_second_delivery() {
    on_every_backend(async |app| {
        let ordering = new_id("ord");
        let created = app
            .post("/v1/payment-events", &principal(Service), &payment_event(&ordering, &["PHYSICAL"]))
            .await;
        let first = created.json["delivery_id"].as_str().expect("a delivery id").to_owned();
        let transitions = format!("/v1/deliveries/{first}/transitions");

        let failed = app
            .post(&transitions, &principal(Partner), &json!({"transition": "fail", "reason": "ADDRESS_INVALID"}))
            .await;
        failed.assert_status(StatusCode::OK);
        let queue = app.get("/v1/operator/queue", &principal(Operator)).await;
        queue.assert_status(StatusCode::OK);
        assert!(queue.json["items"].as_array().expect("items").iter().any(|item| item["id"] == first));

        app.post(&transitions, &principal(Operator), &json!({"transition": "escalate"}))
            .await
            .assert_status(StatusCode::OK);
        let resolved = app
            .post(
                &transitions,
                &principal(Operator),
                &json!({"transition": "resolve", "resolution": "REDELIVER", "note": "Address corrected."}),
            )
            .await;
        resolved.assert_status(StatusCode::OK);
        assert_eq!(resolved.json["to"], "RESOLVED");
        let second = resolved.json["replacement_delivery_id"].as_str().expect("a replacement").to_owned();

        let deliveries = app.get(&format!("/v1/orderings/{ordering}/deliveries"), &principal(Customer)).await;
        deliveries.assert_status(StatusCode::OK);
        let items = deliveries.json["items"].as_array().expect("items");
        let summary: Vec<_> = items.iter().map(|d| (d["id"].clone(), d["state"].clone())).collect();
        assert_eq!(summary, [(json!(first), json!("RESOLVED")), (json!(second), json!("CREATED"))]);
        assert_eq!(items[0]["resolution"], "REDELIVER");
        assert_eq!(items[0]["replaced_by_delivery_id"], second);
        assert_eq!(items[1]["replaces_delivery_id"], first);
    })
    .await;
}

#[tokio::test]
async fn payment_events_say_what_they_did() {
    on_every_backend(async |app| {
        let service = principal(Service);
        let ebooks = app
            .post(
                "/v1/payment-events",
                &service,
                &payment_event(&new_id("ord"), &["EBOOK"]),
            )
            .await;
        ebooks.assert_status(StatusCode::OK);
        assert_eq!(ebooks.json, json!({"outcome": "nothing_to_deliver"}));

        let event = payment_event(&new_id("ord"), &["PHYSICAL"]);
        let first = app.post("/v1/payment-events", &service, &event).await;
        first.assert_status(StatusCode::CREATED);
        let again = app.post("/v1/payment-events", &service, &event).await;
        again.assert_status(StatusCode::OK);
        assert_eq!(
            again.json,
            json!({"outcome": "already_handled", "delivery_id": first.json["delivery_id"]})
        );
    })
    .await;
}

#[tokio::test]
async fn lists_filter_and_page_within_what_the_caller_may_see() {
    on_every_backend(async |app| {
        let picked_up = app
            .delivery_in(delivery_core::DeliveryState::PickedUp)
            .await;
        let created = app.create_delivery().await;

        let only_picked_up = app
            .get("/v1/deliveries?state=PICKED_UP", &principal(Operator))
            .await;
        only_picked_up.assert_status(StatusCode::OK);
        let ids: Vec<_> = only_picked_up.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        assert_eq!(ids, [json!(picked_up)]);

        let first_page = app
            .get("/v1/deliveries?limit=1", &principal(Customer))
            .await;
        first_page.assert_status(StatusCode::OK);
        assert_eq!(first_page.json["items"][0]["id"], created, "newest first");
        let cursor = first_page.json["next_cursor"]
            .as_str()
            .expect("a next page");
        let second_page = app
            .get(
                &format!("/v1/deliveries?limit=1&cursor={cursor}"),
                &principal(Customer),
            )
            .await;
        assert_eq!(second_page.json["items"][0]["id"], picked_up);

        // Another customer's filter does not widen a customer's view.
        let someone_else = app
            .get(
                &format!("/v1/deliveries?customer_id={CUSTOMER}-other"),
                &principal(Customer),
            )
            .await;
        assert_eq!(someone_else.json["items"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn an_idempotent_retry_gets_the_first_response_and_a_reused_key_is_refused() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let path = format!("/v1/deliveries/{id}/transitions");
        let token = app.token(&principal(Partner));
        let body = sample_transition(delivery_core::Transition::PickUp);
        let key = [("idempotency-key", "pick-up-1")];

        let first = app
            .send(Method::POST, &path, Some(&token), Some(&body), &key)
            .await;
        first.assert_status(StatusCode::OK);
        let replay = app
            .send(Method::POST, &path, Some(&token), Some(&body), &key)
            .await;
        replay.assert_status(StatusCode::OK);
        assert_eq!(replay.json, first.json);

        let other_body = sample_transition(delivery_core::Transition::PickUp);
        let reused = app
            .send(Method::POST, &path, Some(&token), Some(&other_body), &key)
            .await;
        reused.assert_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            &path,
        );

        let event = payment_event(&new_id("ord"), &["PHYSICAL"]);
        let token = app.token(&principal(Service));
        let key = [("idempotency-key", "payment-1")];
        let created = app
            .send(
                Method::POST,
                "/v1/payment-events",
                Some(&token),
                Some(&event),
                &key,
            )
            .await;
        created.assert_status(StatusCode::CREATED);
        let replay = app
            .send(
                Method::POST,
                "/v1/payment-events",
                Some(&token),
                Some(&event),
                &key,
            )
            .await;
        replay.assert_status(StatusCode::CREATED);
        assert_eq!(replay.json, created.json);
    })
    .await;
}

#[tokio::test]
async fn of_concurrent_transitions_on_one_delivery_one_wins_and_the_others_are_409() {
    on_every_backend(async |app| {
        let id = app.create_delivery().await;
        let partner = principal(Partner);
        let attempts =
            (0..5).map(|_| app.transition(&id, delivery_core::Transition::PickUp, &partner));
        let replies = futures_util::future::join_all(attempts).await;
        let won = replies
            .iter()
            .filter(|reply| reply.status == StatusCode::OK)
            .count();
        assert_eq!(won, 1, "{replies:?}");
        let path = format!("/v1/deliveries/{id}/transitions");
        for reply in replies
            .iter()
            .filter(|reply| reply.status != StatusCode::OK)
        {
            // Either the loser saw the winner's state, or both read the old one and the
            // loser's write found the version moved on.
            let kind = if reply.json["current_state"].is_null() {
                "concurrent-change"
            } else {
                "illegal-transition"
            };
            reply.assert_problem(StatusCode::CONFLICT, kind, &path);
        }
        let delivery = app.get(&format!("/v1/deliveries/{id}"), &partner).await;
        assert_eq!(delivery.json["version"], 2);
    })
    .await;
}

/// A payment for an ordering the service knows must name the ordering's customer: another
/// customer's is refused and changes nothing, the same customer's makes a second delivery.
#[tokio::test]
async fn a_payment_naming_another_customer_for_a_known_ordering_is_refused() {
    on_every_backend(async |app| {
        let ordering = new_id("ord");
        let service = principal(Service);
        let pay_as = async |customer: &str| {
            let mut event = payment_event(&ordering, &["PHYSICAL"]);
            event["customer_id"] = json!(customer);
            app.post("/v1/payment-events", &service, &event).await
        };
        pay_as(CUSTOMER).await.assert_status(StatusCode::CREATED);
        let refused = pay_as(&format!("{CUSTOMER}-other")).await;
        refused.assert_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "/v1/payment-events",
        );
        let detail = refused.json["detail"].as_str().expect("a detail");
        assert!(detail.contains("another customer"), "{detail}");
        pay_as(CUSTOMER).await.assert_status(StatusCode::CREATED);

        let deliveries = app
            .get(
                &format!("/v1/orderings/{ordering}/deliveries"),
                &principal(Operator),
            )
            .await;
        let customers: Vec<&str> = deliveries.json["items"]
            .as_array()
            .expect("a page")
            .iter()
            .map(|delivery| delivery["customer_id"].as_str().expect("a customer"))
            .collect();
        assert_eq!(customers, [CUSTOMER, CUSTOMER]);
    })
    .await;
}
