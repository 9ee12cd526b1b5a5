//! The persistence layer against real databases: every test runs on SQLite (a temporary
//! file) and on PostgreSQL when `TEST_POSTGRES_URL` is set.

#[path = "common/store_support.rs"]
mod support;

use std::collections::HashSet;

use delivery_core::{
    Command, ConfirmReceipt, Deliver, DeliveryId, DeliveryState, Escalate, Fail, FailureReason,
    Format, PickUp, Resolution, Resolve, Role, TransitionError,
};
use delivery_svc::commands::Deliveries;
use delivery_svc::config::PoolConfig;
use delivery_svc::db;
use delivery_svc::domain::{DeliveryFilter, PaymentOutcome, ServiceError, TransitionOutcome};
use delivery_svc::entity::{
    delivery_event, delivery_history, delivery_order, delivery_view, idempotency_key, inbox,
    ordering, outbox,
};
use delivery_svc::partner::webhook::{Handling, PartnerEvent, PartnerReport};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use support::*;

fn pick_up(number: &str) -> Command {
    Command::PickUp(PickUp {
        partner_order_number: number.parse().expect("a partner order number"),
    })
}

fn fail(reason: FailureReason) -> Command {
    Command::Fail(Fail {
        reason,
        detail: None,
    })
}

fn resolve(resolution: Resolution) -> Command {
    Command::Resolve(Resolve {
        resolution,
        note: Some("sent again".parse().expect("a note")),
    })
}

/// How many rows each table of the write side and the read side holds.
/// How many rows table `E` holds.
async fn rows<E: EntityTrait<Model: Sync>>(deliveries: &Deliveries) -> u64 {
    E::find().count(deliveries.db()).await.expect("count")
}

async fn row_counts(deliveries: &Deliveries) -> [u64; 7] {
    [
        rows::<ordering::Entity>(deliveries).await,
        rows::<delivery_order::Entity>(deliveries).await,
        rows::<delivery_event::Entity>(deliveries).await,
        rows::<outbox::Entity>(deliveries).await,
        rows::<delivery_view::Entity>(deliveries).await,
        rows::<delivery_history::Entity>(deliveries).await,
        rows::<idempotency_key::Entity>(deliveries).await,
    ]
}

async fn event_seqs(deliveries: &Deliveries, id: DeliveryId) -> Vec<i64> {
    delivery_event::Entity::find()
        .filter(delivery_event::Column::DeliveryId.eq(id.0))
        .order_by_asc(delivery_event::Column::Seq)
        .all(deliveries.db())
        .await
        .expect("events")
        .into_iter()
        .map(|event| event.seq)
        .collect()
}

#[tokio::test]
async fn a_payment_creates_a_delivery_order_in_created() {
    on_every_backend(async |deliveries| {
        let payment = payment("ord-1", "cust-1");
        let outcome = deliveries
            .ingest_payment(payment, &ctx(&service(), 0))
            .await
            .expect("ingested");
        let PaymentOutcome::Created { delivery_id } = outcome else {
            panic!("expected Created, got {outcome:?}");
        };

        let view = deliveries
            .delivery(delivery_id, &customer("cust-1"))
            .await
            .expect("visible to its customer");
        assert_eq!(view.state, DeliveryState::Created);
        assert_eq!(view.version, 1);
        assert_eq!(view.ordering_id.as_str(), "ord-1");
        assert_eq!(view.partner_id.as_deref(), Some(PARTNER));
        assert_eq!(view.created_at, at(0));
        assert!(
            view.lines
                .iter()
                .all(|line| line.format == Format::Physical),
            "{:?}",
            view.lines
        );
        assert_eq!(view.lines.len(), 1);

        let history = deliveries
            .history(delivery_id, &customer("cust-1"))
            .await
            .expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(
            (
                history[0].transition.as_str(),
                history[0].from,
                history[0].to
            ),
            ("create", None, DeliveryState::Created)
        );
        assert_eq!(
            (history[0].actor_role.as_str(), history[0].actor_id.as_str()),
            ("system", "payments")
        );
        assert_eq!(history[0].data["partner_id"], PARTNER);

        let message = outbox::Entity::find()
            .one(deliveries.db())
            .await
            .expect("outbox")
            .expect("a message");
        assert_eq!(message.routing_key, "delivery.created");
        assert_eq!(message.payload["delivery_id"], delivery_id.to_string());
        assert_eq!(message.payload["ordering_id"], "ord-1");
        assert_eq!(message.payload["seq"], 1);
        assert_eq!(message.payload["to"], "CREATED");
        assert!(message.published_at.is_none());
        assert_eq!(rows::<ordering::Entity>(deliveries).await, 1);
    })
    .await;
}

#[tokio::test]
async fn the_same_payment_event_twice_creates_one_delivery_order() {
    on_every_backend(async |deliveries| {
        let payment = payment("ord-1", "cust-1");
        let first = deliveries
            .ingest_payment(payment.clone(), &ctx(&service(), 0))
            .await
            .expect("first");
        let PaymentOutcome::Created { delivery_id } = first else {
            panic!("expected Created, got {first:?}");
        };
        let counts = row_counts(deliveries).await;

        let second = deliveries
            .ingest_payment(payment, &ctx(&service(), 5))
            .await
            .expect("second");

        assert_eq!(
            second,
            PaymentOutcome::AlreadyHandled {
                delivery_id: Some(delivery_id)
            }
        );
        assert_eq!(row_counts(deliveries).await, counts);
        assert_eq!(rows::<inbox::Entity>(deliveries).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_payment_event_handled_under_one_key_is_already_handled_under_another_which_answers_alike_again()
 {
    on_every_backend(async |deliveries| {
        let payment = payment("ord-1", "cust-1");
        let keyed = |seconds, key| ctx_with_key(&service(), seconds, key, "POST /payment-events");
        let first = deliveries
            .ingest_payment(payment.clone(), &keyed(0, "key-1"))
            .await
            .expect("first");
        let PaymentOutcome::Created { delivery_id } = first else {
            panic!("expected Created, got {first:?}");
        };
        let already = PaymentOutcome::AlreadyHandled {
            delivery_id: Some(delivery_id),
        };

        let under_another_key = deliveries
            .ingest_payment(payment.clone(), &keyed(5, "key-2"))
            .await
            .expect("under another key");
        assert_eq!(under_another_key, already);
        assert_eq!(rows::<idempotency_key::Entity>(deliveries).await, 2);
        let counts = row_counts(deliveries).await;

        let replayed = deliveries
            .ingest_payment(payment, &keyed(10, "key-2"))
            .await
            .expect("replayed");
        assert_eq!(replayed, already);
        assert_eq!(row_counts(deliveries).await, counts);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_same_payment_event_delivered_concurrently_creates_one_delivery_order() {
    on_every_backend(async |deliveries| {
        // Several rounds, so that some handlings surely read the inbox before any of them
        // has written it, and find it in their way when they write.
        const ROUNDS: u64 = 5;
        for round in 0..ROUNDS {
            let payment = payment(&format!("ord-{round}"), "cust-1");
            let handled = at_once(10, |attempt| {
                let (deliveries, payment) = (deliveries.clone(), payment.clone());
                async move {
                    deliveries
                        .ingest_payment(payment, &ctx(&service(), attempt))
                        .await
                }
            })
            .await;
            let mut created = Vec::new();
            let mut already_handled = Vec::new();
            for outcome in handled {
                match outcome.expect("handled") {
                    PaymentOutcome::Created { delivery_id } => created.push(delivery_id),
                    PaymentOutcome::AlreadyHandled { delivery_id } => {
                        already_handled.push(delivery_id)
                    }
                    PaymentOutcome::NothingToDeliver => panic!("the payment has a physical book"),
                }
            }
            assert_eq!(created.len(), 1);
            assert!(
                already_handled.iter().all(|id| *id == Some(created[0])),
                "{already_handled:?}"
            );
        }
        assert_eq!(rows::<delivery_order::Entity>(deliveries).await, ROUNDS);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn copies_of_a_partner_report_handled_concurrently_apply_it_once() {
    on_every_backend(async |deliveries| {
        // Several rounds, as for the payment above: the copies that read the delivery
        // before the first one wrote find its version changed when they write.
        for round in 0..5 {
            let id = new_delivery(deliveries, "cust-1", 0).await;
            let report = PartnerReport {
                partner: PARTNER.to_owned(),
                webhook_id: format!("msg_round{round}"),
                delivery_id: id,
                event: PartnerEvent::PickedUp {
                    partner_order_number: format!("DHL-{round}")
                        .parse()
                        .expect("a partner order number"),
                },
            };
            let handled = at_once(10, |attempt| {
                let (deliveries, report) = (deliveries.clone(), report.clone());
                async move {
                    deliveries
                        .apply_partner_report(report, &ctx(&partner(PARTNER), 10 + attempt))
                        .await
                }
            })
            .await;
            let mut handlings: Vec<Handling> = handled
                .into_iter()
                .map(|outcome| {
                    let outcome = outcome.expect("handled");
                    assert_eq!(
                        (outcome.delivery_id, outcome.state, outcome.version),
                        (id, DeliveryState::PickedUp, 2)
                    );
                    outcome.handling
                })
                .collect();
            handlings.sort_by_key(|handling| *handling != Handling::Applied);
            assert_eq!(handlings[0], Handling::Applied);
            assert!(
                handlings[1..].iter().all(|h| *h == Handling::Duplicate),
                "{handlings:?}"
            );
            assert_eq!(event_seqs(deliveries, id).await, [1, 2]);
        }
    })
    .await;
}

#[tokio::test]
async fn an_ebook_only_ordering_gets_no_delivery_order() {
    on_every_backend(async |deliveries| {
        let payment = ebook_only_payment("ord-1", "cust-1");
        let outcome = deliveries
            .ingest_payment(payment.clone(), &ctx(&service(), 0))
            .await
            .expect("ingested");
        assert_eq!(outcome, PaymentOutcome::NothingToDeliver);
        assert_eq!(row_counts(deliveries).await, [0; 7]);

        let again = deliveries
            .ingest_payment(payment, &ctx(&service(), 1))
            .await
            .expect("ingested again");
        assert_eq!(again, PaymentOutcome::AlreadyHandled { delivery_id: None });
        assert_eq!(rows::<inbox::Entity>(deliveries).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_payment_must_be_a_payment_succeeded_from_a_service() {
    on_every_backend(async |deliveries| {
        let refunded = delivery_svc::domain::PaymentSucceeded {
            kind: "payment.refunded".into(),
            ..payment("ord-1", "cust-1")
        };
        let invalid = deliveries
            .ingest_payment(refunded, &ctx(&service(), 0))
            .await;
        assert!(
            matches!(invalid, Err(ServiceError::Invalid(_))),
            "{invalid:?}"
        );

        let forbidden = deliveries
            .ingest_payment(payment("ord-1", "cust-1"), &ctx(&customer("cust-1"), 0))
            .await;
        assert!(
            matches!(forbidden, Err(ServiceError::Forbidden(_))),
            "{forbidden:?}"
        );
        assert_eq!(row_counts(deliveries).await, [0; 7]);
    })
    .await;
}

#[tokio::test]
async fn the_happy_path_ends_delivery_confirmed() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let dhl = partner(PARTNER);

        let picked_up = deliveries
            .transition(id, pick_up("DX-1042"), &ctx(&dhl, 10))
            .await
            .expect("pick_up");
        assert_eq!(
            (picked_up.from, picked_up.to, picked_up.version),
            (DeliveryState::Created, DeliveryState::PickedUp, 2)
        );
        let deliver = Command::Deliver(Deliver {
            delivered_at: at(20),
        });
        deliveries
            .transition(id, deliver, &ctx(&dhl, 21))
            .await
            .expect("deliver");
        let confirmed = deliveries
            .transition(
                id,
                Command::ConfirmReceipt(ConfirmReceipt {}),
                &ctx(&customer("cust-1"), 30),
            )
            .await
            .expect("confirm_receipt");

        assert_eq!(
            confirmed,
            TransitionOutcome {
                delivery_id: id,
                from: DeliveryState::Delivered,
                to: DeliveryState::DeliveryConfirmed,
                version: 4,
                replacement_delivery_id: None,
            }
        );
        let view = deliveries
            .delivery(id, &customer("cust-1"))
            .await
            .expect("view");
        assert_eq!(view.state, DeliveryState::DeliveryConfirmed);
        assert_eq!(view.version, 4);
        assert_eq!(view.partner_order_number.as_deref(), Some("DX-1042"));
        assert_eq!(view.delivered_at, Some(at(20)));
        assert_eq!(view.updated_at, at(30));

        let order = delivery_order::Entity::find_by_id(id.0)
            .one(deliveries.db())
            .await
            .expect("row")
            .expect("order");
        assert_eq!(
            (order.state.as_str(), order.version),
            ("DELIVERY_CONFIRMED", 4)
        );
        assert_eq!(event_seqs(deliveries, id).await, [1, 2, 3, 4]);

        let history = deliveries.history(id, &dhl).await.expect("history");
        let transitions: Vec<_> = history
            .iter()
            .map(|entry| entry.transition.as_str())
            .collect();
        assert_eq!(
            transitions,
            ["create", "pick_up", "deliver", "confirm_receipt"]
        );
        assert_eq!(history[1].data["partner_order_number"], "DX-1042");
        assert_eq!(history[3].actor_role, "customer");
        assert_eq!(history[3].actor_id, "user-cust-1");

        let routing_keys: Vec<_> = outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .all(deliveries.db())
            .await
            .expect("outbox")
            .into_iter()
            .map(|message| message.routing_key)
            .collect();
        assert_eq!(
            routing_keys,
            [
                "delivery.created",
                "delivery.picked_up",
                "delivery.delivered",
                "delivery.delivery_confirmed"
            ]
        );
    })
    .await;
}

/// A partner's order number names one delivery of that partner: a second pick-up under
/// it is the request's fault, and leaves that delivery as it was, to be picked up under
/// another number.
#[tokio::test]
async fn a_partner_order_number_already_used_by_the_partner_is_refused() {
    on_every_backend(async |deliveries| {
        let (first, second) = (
            new_delivery(deliveries, "cust-1", 0).await,
            new_delivery(deliveries, "cust-2", 1).await,
        );
        let dhl = partner(PARTNER);
        deliveries
            .transition(first, pick_up("DX-7"), &ctx(&dhl, 10))
            .await
            .expect("the first pick-up");
        let refused = deliveries
            .transition(second, pick_up("DX-7"), &ctx(&dhl, 11))
            .await
            .expect_err("the same number again");
        assert!(
            matches!(&refused, ServiceError::Invalid(message) if message.contains("partner order number")),
            "{refused:?}"
        );
        assert_eq!(event_seqs(deliveries, second).await, [1]);
        deliveries
            .transition(second, pick_up("DX-8"), &ctx(&dhl, 12))
            .await
            .expect("another number");
    })
    .await;
}

#[tokio::test]
async fn a_redelivery_is_a_new_delivery_order_linked_both_ways() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        deliveries
            .transition(
                id,
                fail(FailureReason::RecipientUnavailable),
                &ctx(&partner(PARTNER), 10),
            )
            .await
            .expect("fail");
        let queue = deliveries
            .operator_queue(None, 10, &operator())
            .await
            .expect("queue");
        assert_eq!(
            queue.items.iter().map(|view| view.id).collect::<Vec<_>>(),
            [id]
        );
        let escalate = Command::Escalate(Escalate {
            assignee: Some("op-ada".parse().expect("an operator id")),
        });
        deliveries
            .transition(id, escalate, &ctx(&operator(), 20))
            .await
            .expect("escalate");

        let resolved = deliveries
            .transition(id, resolve(Resolution::Redeliver), &ctx(&admin(), 30))
            .await
            .expect("resolve");

        assert_eq!(resolved.to, DeliveryState::Resolved);
        let replacement = resolved
            .replacement_delivery_id
            .expect("a replacement delivery order");
        let original = deliveries
            .delivery(id, &customer("cust-1"))
            .await
            .expect("original");
        let ordering_deliveries = deliveries
            .ordering_deliveries(&original.ordering_id, &customer("cust-1"))
            .await
            .expect("the ordering's deliveries");
        let ids: Vec<_> = ordering_deliveries.iter().map(|view| view.id).collect();
        assert_eq!(ids, [id, replacement]);
        let [original, redelivery] = &ordering_deliveries[..] else {
            panic!("two delivery orders expected");
        };
        assert_eq!(original.state, DeliveryState::Resolved);
        assert_eq!(original.resolution, Some(Resolution::Redeliver));
        assert_eq!(
            original.failure_reason,
            Some(FailureReason::RecipientUnavailable)
        );
        assert_eq!(original.assignee.as_deref(), Some("op-ada"));
        assert_eq!(original.replaced_by_delivery_id, Some(replacement));
        assert_eq!(original.version, 4);
        assert_eq!(redelivery.state, DeliveryState::Created);
        assert_eq!(redelivery.replaces_delivery_id, Some(id));
        assert_eq!(redelivery.created_at, at(30));
        assert_eq!(redelivery.shipping_address, original.shipping_address);

        let replacement_row = delivery_order::Entity::find_by_id(replacement.0)
            .one(deliveries.db())
            .await
            .expect("row")
            .expect("the replacement's row");
        assert_eq!(replacement_row.replaces_delivery_id, Some(id.0));
        let creation = deliveries
            .history(replacement, &operator())
            .await
            .expect("history");
        assert_eq!(
            (
                creation[0].actor_role.as_str(),
                creation[0].actor_id.as_str()
            ),
            ("operator", "admin-grace")
        );
        assert!(
            deliveries
                .operator_queue(None, 10, &operator())
                .await
                .expect("queue")
                .items
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn an_illegal_transition_is_refused_and_writes_nothing() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let counts = row_counts(deliveries).await;
        let view = deliveries.delivery(id, &operator()).await.expect("view");

        let deliver = Command::Deliver(Deliver {
            delivered_at: at(5),
        });
        let refused = deliveries
            .transition(id, deliver, &ctx(&partner(PARTNER), 5))
            .await;

        assert!(
            matches!(
                refused,
                Err(ServiceError::Transition(TransitionError::NotAllowed {
                    current: DeliveryState::Created,
                    ..
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(row_counts(deliveries).await, counts);
        assert_eq!(
            deliveries.delivery(id, &operator()).await.expect("view"),
            view
        );
    })
    .await;
}

#[tokio::test]
async fn a_role_the_graph_does_not_allow_is_refused() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let counts = row_counts(deliveries).await;

        let by_customer = deliveries
            .transition(id, pick_up("DX-1"), &ctx(&customer("cust-1"), 5))
            .await;
        assert!(
            matches!(
                by_customer,
                Err(ServiceError::Transition(TransitionError::RoleNotAllowed {
                    role: Role::Customer,
                    ..
                }))
            ),
            "{by_customer:?}"
        );
        let by_service = deliveries
            .transition(id, pick_up("DX-1"), &ctx(&service(), 5))
            .await;
        assert!(
            matches!(by_service, Err(ServiceError::Forbidden(_))),
            "{by_service:?}"
        );
        assert_eq!(row_counts(deliveries).await, counts);
    })
    .await;
}

#[tokio::test]
async fn only_the_owner_and_the_assigned_partner_see_and_act() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let counts = row_counts(deliveries).await;

        let other_partner = deliveries
            .transition(id, pick_up("DX-1"), &ctx(&partner("ups"), 5))
            .await;
        assert!(
            matches!(other_partner, Err(ServiceError::NotFound(found)) if found == id),
            "{other_partner:?}"
        );
        let dhl = ctx(&partner(PARTNER), 6);
        deliveries
            .transition(id, pick_up("DX-1"), &dhl)
            .await
            .expect("pick_up");
        deliveries
            .transition(
                id,
                Command::Deliver(Deliver {
                    delivered_at: at(7),
                }),
                &dhl,
            )
            .await
            .expect("deliver");
        let confirm = Command::ConfirmReceipt(ConfirmReceipt {});
        let other_customer = deliveries
            .transition(id, confirm, &ctx(&customer("cust-2"), 8))
            .await;
        assert!(
            matches!(other_customer, Err(ServiceError::NotFound(_))),
            "{other_customer:?}"
        );
        assert_eq!(
            row_counts(deliveries).await[2],
            counts[2] + 2,
            "only the partner's two events"
        );

        let anonymous_customer = delivery_svc::domain::Principal {
            customer_id: None,
            ..customer("cust-1")
        };
        for stranger in [customer("cust-2"), partner("ups"), anonymous_customer] {
            let read = deliveries.delivery(id, &stranger).await;
            assert!(matches!(read, Err(ServiceError::NotFound(_))), "{read:?}");
            let history = deliveries.history(id, &stranger).await;
            assert!(
                matches!(history, Err(ServiceError::NotFound(_))),
                "{history:?}"
            );
            let listed = deliveries
                .deliveries(DeliveryFilter::default(), None, 50, &stranger)
                .await
                .expect("list");
            assert!(listed.items.is_empty());
        }
        // Naming someone else's customer id does not widen a customer's scope.
        let filter = DeliveryFilter {
            customer_id: Some("cust-1".parse().expect("a customer id")),
            ..DeliveryFilter::default()
        };
        let sneaky = deliveries
            .deliveries(filter, None, 50, &customer("cust-2"))
            .await
            .expect("list");
        assert!(sneaky.items.is_empty());
        for insider in [
            customer("cust-1"),
            partner(PARTNER),
            operator(),
            admin(),
            service(),
        ] {
            let listed = deliveries
                .deliveries(DeliveryFilter::default(), None, 50, &insider)
                .await
                .expect("list");
            assert_eq!(listed.items.len(), 1, "{insider:?}");
        }
        let queue = deliveries
            .operator_queue(None, 10, &customer("cust-1"))
            .await;
        assert!(
            matches!(queue, Err(ServiceError::Forbidden(_))),
            "{queue:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn of_fifty_concurrent_conflicting_transitions_exactly_one_wins() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        // All start together, so that many load the same version.
        let attempts = at_once(50, |attempt| {
            let deliveries = deliveries.clone();
            let reason = if attempt % 2 == 0 {
                FailureReason::PickupFailed
            } else {
                FailureReason::CourierUnavailable
            };
            async move {
                deliveries
                    .transition(id, fail(reason), &ctx(&partner(PARTNER), 10 + attempt))
                    .await
            }
        })
        .await;
        let mut successes = 0;
        for attempt in attempts {
            match attempt {
                Ok(outcome) => {
                    assert_eq!(outcome.version, 2);
                    successes += 1;
                }
                Err(ServiceError::Conflict {
                    id: conflicted,
                    expected: 1,
                }) => assert_eq!(conflicted, id),
                Err(ServiceError::Transition(TransitionError::NotAllowed {
                    current: DeliveryState::DeliveryFailed,
                    ..
                })) => {}
                Err(other) => panic!("neither a success, a conflict nor a refusal: {other:?}"),
            }
        }
        assert_eq!(successes, 1);
        assert_eq!(event_seqs(deliveries, id).await, [1, 2]);
        assert_eq!(rows::<outbox::Entity>(deliveries).await, 2);
        let history = deliveries.history(id, &operator()).await.expect("history");
        assert_eq!(
            history.iter().map(|entry| entry.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            deliveries
                .delivery(id, &operator())
                .await
                .expect("view")
                .version,
            2
        );
    })
    .await;
}

#[tokio::test]
async fn a_replayed_request_returns_the_first_outcome_and_writes_nothing() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let dhl = partner(PARTNER);
        let first = deliveries
            .transition(
                id,
                pick_up("DX-1"),
                &ctx_with_key(&dhl, 10, "key-1", "POST /pick_up DX-1"),
            )
            .await
            .expect("first");
        let counts = row_counts(deliveries).await;

        // The delivery has moved on since; the replay still answers what the first did.
        let replayed = deliveries
            .transition(
                id,
                pick_up("DX-1"),
                &ctx_with_key(&dhl, 20, "key-1", "POST /pick_up DX-1"),
            )
            .await
            .expect("replay");

        assert_eq!(replayed, first);
        assert_eq!(row_counts(deliveries).await, counts);
        // Keys are per caller: another partner's key-1 is another key (and a stranger's
        // delivery is not found).
        let stranger = deliveries
            .transition(
                id,
                pick_up("DX-1"),
                &ctx_with_key(&partner("ups"), 20, "key-1", "POST /pick_up DX-1"),
            )
            .await;
        assert!(
            matches!(stranger, Err(ServiceError::NotFound(_))),
            "{stranger:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_request_sent_ten_times_at_once_with_its_key_changes_once_and_answers_alike() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let answers: Vec<_> = at_once(10, |_| {
            let deliveries = deliveries.clone();
            async move {
                let key = ctx_with_key(&partner(PARTNER), 10, "key-1", "POST /pick_up DX-1");
                deliveries.transition(id, pick_up("DX-1"), &key).await
            }
        })
        .await
        .into_iter()
        .map(|answer| answer.expect("answered"))
        .collect();
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "{answers:?}"
        );
        assert_eq!(answers[0].version, 2);
        assert_eq!(event_seqs(deliveries, id).await, [1, 2]);
        assert_eq!(rows::<idempotency_key::Entity>(deliveries).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let dhl = partner(PARTNER);
        deliveries
            .transition(
                id,
                pick_up("DX-1"),
                &ctx_with_key(&dhl, 10, "key-1", "POST /pick_up DX-1"),
            )
            .await
            .expect("first");
        let counts = row_counts(deliveries).await;

        let deliver = Command::Deliver(Deliver {
            delivered_at: at(20),
        });
        let reused = deliveries
            .transition(
                id,
                deliver,
                &ctx_with_key(&dhl, 20, "key-1", "POST /deliver"),
            )
            .await;

        refused_as_reused_writing_nothing(deliveries, reused, counts).await;
    })
    .await;
}

#[tokio::test]
async fn a_key_reused_for_another_payment_request_is_refused_though_the_event_was_handled() {
    on_every_backend(async |deliveries| {
        let payment = payment("ord-1", "cust-1");
        deliveries
            .ingest_payment(
                payment.clone(),
                &ctx_with_key(&service(), 10, "key-1", "POST /payment-events A"),
            )
            .await
            .expect("first");
        let counts = row_counts(deliveries).await;

        let reused = deliveries
            .ingest_payment(
                payment,
                &ctx_with_key(&service(), 20, "key-1", "POST /payment-events B"),
            )
            .await;

        refused_as_reused_writing_nothing(deliveries, reused, counts).await;
    })
    .await;
}

/// Checks that `reused` was refused for reusing `key-1`, with the row `counts` unchanged.
async fn refused_as_reused_writing_nothing<T: std::fmt::Debug>(
    deliveries: &Deliveries,
    reused: Result<T, ServiceError>,
    counts: [u64; 7],
) {
    assert!(
        matches!(&reused, Err(ServiceError::IdempotencyKeyReused(key)) if key == "key-1"),
        "{reused:?}"
    );
    assert_eq!(row_counts(deliveries).await, counts);
}

#[tokio::test]
async fn a_failed_request_stores_no_outcome_and_may_be_retried_with_its_key() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let key = |seconds| ctx_with_key(&partner(PARTNER), seconds, "key-1", "POST /deliver");
        let deliver = || {
            Command::Deliver(Deliver {
                delivered_at: at(5),
            })
        };
        let refused = deliveries.transition(id, deliver(), &key(5)).await;
        assert!(
            matches!(refused, Err(ServiceError::Transition(_))),
            "{refused:?}"
        );
        assert_eq!(rows::<idempotency_key::Entity>(deliveries).await, 0);

        deliveries
            .transition(id, pick_up("DX-1"), &ctx(&partner(PARTNER), 6))
            .await
            .expect("pick_up");
        let retried = deliveries
            .transition(id, deliver(), &key(7))
            .await
            .expect("the retry runs");
        assert_eq!(retried.to, DeliveryState::Delivered);
        assert_eq!(rows::<idempotency_key::Entity>(deliveries).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_partner_order_number_names_one_delivery_of_its_partner() {
    on_every_backend(async |deliveries| {
        let first = new_delivery(deliveries, "cust-1", 0).await;
        let second = new_delivery(deliveries, "cust-1", 1).await;
        let dhl = partner(PARTNER);
        deliveries
            .transition(first, pick_up("DX-1"), &ctx(&dhl, 5))
            .await
            .expect("pick_up");
        let counts = row_counts(deliveries).await;

        let duplicate = deliveries
            .transition(second, pick_up("DX-1"), &ctx(&dhl, 6))
            .await;

        assert!(
            matches!(duplicate, Err(ServiceError::Invalid(_))),
            "{duplicate:?}"
        );
        assert_eq!(row_counts(deliveries).await, counts);
    })
    .await;
}

#[tokio::test]
async fn every_migration_can_be_undone_and_redone() {
    on_every_backend(async |deliveries| {
        new_delivery(deliveries, "cust-1", 0).await;
        Migrator::down(deliveries.db(), None)
            .await
            .expect("every migration undone");
        assert_eq!(
            Migrator::get_applied_migrations(deliveries.db())
                .await
                .expect("the migration status")
                .len(),
            0
        );
        db::migrate(deliveries.db()).await.expect("redone");
        let id = new_delivery(deliveries, "cust-1", 0).await;
        deliveries
            .transition(id, pick_up("DX-1"), &ctx(&partner(PARTNER), 5))
            .await
            .expect("the schema works again");
    })
    .await;
}

#[tokio::test]
async fn rebuilding_the_projections_gives_the_same_rows() {
    on_every_backend(async |deliveries| {
        let dhl = partner(PARTNER);
        let confirmed = new_delivery(deliveries, "cust-1", 0).await;
        deliveries
            .transition(confirmed, pick_up("DX-1"), &ctx(&dhl, 1))
            .await
            .expect("pick_up");
        deliveries
            .transition(
                confirmed,
                Command::Deliver(Deliver {
                    delivered_at: at(2),
                }),
                &ctx(&dhl, 3),
            )
            .await
            .expect("deliver");
        deliveries
            .transition(
                confirmed,
                Command::ConfirmReceipt(ConfirmReceipt {}),
                &ctx(&customer("cust-1"), 4),
            )
            .await
            .expect("confirm");
        // Several redeliveries, so that some replacement sorts before the order it replaces.
        for round in 0..3 {
            let failed = new_delivery(deliveries, "cust-2", 10 + round).await;
            deliveries
                .transition(
                    failed,
                    fail(FailureReason::PackageLost),
                    &ctx(&dhl, 20 + round),
                )
                .await
                .expect("fail");
            deliveries
                .transition(
                    failed,
                    Command::Escalate(Escalate { assignee: None }),
                    &ctx(&operator(), 30 + round),
                )
                .await
                .expect("escalate");
            deliveries
                .transition(
                    failed,
                    resolve(Resolution::Redeliver),
                    &ctx(&operator(), 40 + round),
                )
                .await
                .expect("resolve");
        }
        new_delivery(deliveries, "cust-3", 50).await;
        let views = all_views(deliveries).await;
        let history = all_history(deliveries).await;
        let events = rows::<delivery_event::Entity>(deliveries).await;

        let replayed = deliveries.rebuild_projections().await.expect("rebuilt");

        assert_eq!(replayed, events);
        assert_eq!(all_views(deliveries).await, views);
        assert_eq!(all_history(deliveries).await, history);
        assert!(
            views
                .iter()
                .filter(|view| view.replaced_by_delivery_id.is_some())
                .count()
                == 3
        );
    })
    .await;
}

async fn all_views(deliveries: &Deliveries) -> Vec<delivery_view::Model> {
    delivery_view::Entity::find()
        .order_by_asc(delivery_view::Column::Id)
        .all(deliveries.db())
        .await
        .expect("views")
}

async fn all_history(deliveries: &Deliveries) -> Vec<delivery_history::Model> {
    delivery_history::Entity::find()
        .order_by_asc(delivery_history::Column::DeliveryId)
        .order_by_asc(delivery_history::Column::Seq)
        .all(deliveries.db())
        .await
        .expect("history")
}

#[tokio::test]
async fn the_schema_refuses_a_failed_delivery_without_a_reason() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let view = deliveries.delivery(id, &operator()).await.expect("view");
        let db = deliveries.db();
        // Plain SQL, around the service: only the database's own constraints stand.
        let insert = |ordering_id: &str, reason: &str| {
            format!(
                "INSERT INTO delivery_order (id, ordering_id, customer_id, payment_id, state, version, \
                 failure_reason, details, graph_version, created_at, updated_at) VALUES \
                 ('{}', '{ordering_id}', 'cust-1', 'pay-1', 'DELIVERY_FAILED', 2, {reason}, '{{}}', '1.0.0', \
                 '2026-11-24T12:00:00+00:00', '2026-11-24T12:00:00+00:00')",
                uuid::Uuid::new_v4()
            )
        };
        let ordering_id = view.ordering_id.as_str();

        let without_reason = db.execute_unprepared(&insert(ordering_id, "NULL")).await;
        assert!(without_reason.is_err(), "the CHECK let a reasonless failure in");
        let unknown_ordering = db.execute_unprepared(&insert("ord-unknown", "'OTHER'")).await;
        assert!(unknown_ordering.is_err(), "the foreign key let an unknown ordering in");
        db.execute_unprepared(&insert(ordering_id, "'OTHER'"))
            .await
            .expect("with a reason and a known ordering, the row is fine");
    })
    .await;
}

#[tokio::test]
async fn pages_cover_every_row_exactly_once_in_a_stable_order() {
    on_every_backend(async |deliveries| {
        // Pairs share a creation time, so the id breaks ties.
        let mut created = Vec::new();
        for n in 0..11 {
            let customer_id = if n % 3 == 0 { "cust-2" } else { "cust-1" };
            created.push(new_delivery(deliveries, customer_id, n / 2).await);
        }

        let everything = collect_pages(deliveries, DeliveryFilter::default(), &operator(), 3).await;
        assert_eq!(everything.len(), created.len());
        assert_eq!(
            everything
                .iter()
                .map(|view| view.id)
                .collect::<HashSet<_>>(),
            created.iter().copied().collect::<HashSet<_>>()
        );
        let order: Vec<_> = everything
            .iter()
            .map(|view| (view.created_at, view.id))
            .collect();
        let mut newest_first = order.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(order, newest_first);

        let own = collect_pages(
            deliveries,
            DeliveryFilter::default(),
            &customer("cust-2"),
            2,
        )
        .await;
        assert_eq!(own.len(), 4);
        assert!(own.iter().all(|view| view.customer_id.as_str() == "cust-2"));

        let created_only = DeliveryFilter {
            state: Some(DeliveryState::Created),
            ..DeliveryFilter::default()
        };
        assert_eq!(
            collect_pages(deliveries, created_only, &admin(), 100)
                .await
                .len(),
            created.len()
        );

        // The operators' queue pages the same way, the longest waiting first.
        for (n, id) in created.iter().enumerate().take(5) {
            let reason = fail(FailureReason::PickupFailed);
            deliveries
                .transition(*id, reason, &ctx(&partner(PARTNER), 100 - n as i64))
                .await
                .expect("fail");
        }
        let mut queue = Vec::new();
        let mut cursor = None;
        loop {
            let page = deliveries
                .operator_queue(cursor, 2, &operator())
                .await
                .expect("queue page");
            queue.extend(page.items.into_iter().map(|view| view.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let longest_waiting_first: Vec<_> = created[..5].iter().rev().copied().collect();
        assert_eq!(queue, longest_waiting_first);

        let garbage = deliveries
            .deliveries(
                DeliveryFilter::default(),
                Some("garbage".into()),
                3,
                &operator(),
            )
            .await;
        assert!(
            matches!(garbage, Err(ServiceError::Invalid(_))),
            "{garbage:?}"
        );
    })
    .await;
}

async fn collect_pages(
    deliveries: &Deliveries,
    filter: DeliveryFilter,
    principal: &delivery_svc::domain::Principal,
    limit: u64,
) -> Vec<delivery_svc::domain::DeliveryView> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = deliveries
            .deliveries(filter.clone(), cursor, limit, principal)
            .await
            .expect("a page");
        assert!(page.items.len() as u64 <= limit);
        items.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return items;
        }
    }
}

#[tokio::test]
async fn readiness_needs_the_schema_migrated() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ready.db").display()
    );
    let connection = db::connect(&url, PoolConfig::default().database_pool_size)
        .await
        .expect("connect");

    let unmigrated = db::readiness(&connection).await;
    assert!(
        unmigrated
            .as_ref()
            .is_err_and(|why| why.contains("pending")),
        "{unmigrated:?}"
    );
    db::migrate(&connection).await.expect("migrate");
    assert_eq!(db::readiness(&connection).await, Ok(()));
}

/// SQLite has one writer: a request that cannot get the write lock within the busy timeout
/// is `Busy` (retry later), changes nothing, and succeeds when retried after the lock is free.
#[tokio::test]
async fn a_payment_that_cannot_get_the_write_lock_is_busy_and_can_be_retried() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
    let deliveries = migrated(&url).await;
    let other_writer = db::connect(&url, PoolConfig::default().database_pool_size)
        .await
        .expect("a second pool");
    let holding = sea_orm::TransactionTrait::begin(&other_writer)
        .await
        .expect("begin");
    holding
        .execute_unprepared("UPDATE delivery_order SET version = version WHERE 0 = 1")
        .await
        .expect("the write lock");

    let payment = payment("ord-busy", "cust-1");
    let busy = deliveries
        .ingest_payment(payment.clone(), &ctx(&service(), 0))
        .await;
    assert!(matches!(busy, Err(ServiceError::Busy(_))), "{busy:?}");
    holding.rollback().await.expect("release the lock");
    assert_eq!(row_counts(&deliveries).await, [0; 7], "nothing was written");

    let retried = deliveries
        .ingest_payment(payment, &ctx(&service(), 1))
        .await
        .expect("the retry succeeds");
    assert!(
        matches!(retried, PaymentOutcome::Created { .. }),
        "{retried:?}"
    );
}
