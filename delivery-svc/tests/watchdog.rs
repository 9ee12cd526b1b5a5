//! The watchdogs against real databases (SQLite, and PostgreSQL when `TEST_POSTGRES_URL` is
//! set), with a controlled clock: every round is run at a `now` the test chooses.

#[path = "common/store_support.rs"]
#[allow(dead_code)] // Shared with tests/store.rs, which uses the rest of it.
mod support;

use std::num::NonZeroU64;
use std::time::Duration;

use delivery_core::{Command, Deliver, DeliveryId, DeliveryState, Dispute, DisputeReason};
use delivery_svc::commands::Deliveries;
use delivery_svc::config::WatchdogConfig;
use delivery_svc::domain::Principal;
use delivery_svc::entity::{delivery_event, delivery_order};
use delivery_svc::watchdog::{self, Sweep, WATCHDOG_ACTOR, WatchdogReport};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use support::*;

const HOUR: i64 = 3600;

/// Limits short enough to reason about: an hour to pick up, two to deliver, a day to
/// confirm.
fn config() -> WatchdogConfig {
    WatchdogConfig {
        watchdog_interval: Duration::from_millis(10),
        pickup_limit: Duration::from_secs(HOUR as u64),
        delivery_limit: Duration::from_secs(2 * HOUR as u64),
        confirmation_window: Duration::from_secs(24 * HOUR as u64),
        watchdog_batch: NonZeroU64::new(100).expect("not zero"),
    }
}

/// The delivery's events as (transition, actor role, actor id).
async fn events(deliveries: &Deliveries, id: DeliveryId) -> Vec<(String, String, String)> {
    delivery_event::Entity::find()
        .filter(delivery_event::Column::DeliveryId.eq(id.0))
        .order_by_asc(delivery_event::Column::Seq)
        .all(deliveries.db())
        .await
        .expect("events")
        .into_iter()
        .map(|event| (event.transition, event.actor_role, event.actor_id))
        .collect()
}

fn by_watchdog(transition: &str) -> (String, String, String) {
    (transition.into(), "system".into(), WATCHDOG_ACTOR.into())
}

/// One round of the watchdogs at `at(seconds)`.
async fn round(deliveries: &Deliveries, seconds: i64) -> WatchdogReport {
    deliveries
        .run_watchdogs(&config(), at(seconds))
        .await
        .expect("a round")
}

async fn state(deliveries: &Deliveries, id: DeliveryId) -> DeliveryState {
    deliveries
        .delivery(id, &admin())
        .await
        .expect("a delivery")
        .state
}

async fn make(deliveries: &Deliveries, id: DeliveryId, command: Command, who: &Principal, at: i64) {
    deliveries
        .transition(id, command, &ctx(who, at))
        .await
        .expect("the transition is made");
}

fn pick_up() -> Command {
    Command::PickUp(delivery_core::PickUp {
        partner_order_number: format!("DX-{}", uuid::Uuid::new_v4().simple())
            .parse()
            .expect("a number"),
    })
}

fn deliver() -> Command {
    Command::Deliver(Deliver {
        delivered_at: at(0),
    })
}

#[tokio::test]
async fn deliveries_past_their_limits_fail_with_sla_exceeded_and_are_escalated_at_once() {
    on_every_backend(async |deliveries| {
        let waiting = new_delivery(deliveries, "cust-1", 0).await;
        let carried = new_delivery(deliveries, "cust-1", 0).await;
        make(deliveries, carried, pick_up(), &partner(PARTNER), 600).await;

        let early = round(deliveries, HOUR - 1).await;
        assert_eq!(early, WatchdogReport::default());

        let report = round(deliveries, HOUR).await;
        assert_eq!((report.failed, report.escalated), (1, 1), "{report:?}");
        assert_eq!(
            state(deliveries, waiting).await,
            DeliveryState::PendingByOperator
        );
        assert_eq!(state(deliveries, carried).await, DeliveryState::PickedUp);
        let view = deliveries
            .delivery(waiting, &admin())
            .await
            .expect("a view");
        assert_eq!(
            view.failure_reason,
            Some(delivery_core::FailureReason::SlaExceeded)
        );
        assert_eq!(
            view.failure_detail.as_deref(),
            Some("not picked up within 1h")
        );
        assert_eq!(view.assignee, None);
        assert_eq!(
            events(deliveries, waiting).await[1..],
            [by_watchdog("fail"), by_watchdog("escalate")]
        );

        // Picked up at 600 s, so due two hours later.
        let report = round(deliveries, 600 + 2 * HOUR - 1).await;
        assert_eq!(report, WatchdogReport::default());
        let report = round(deliveries, 600 + 2 * HOUR).await;
        assert_eq!((report.failed, report.escalated), (1, 1), "{report:?}");
        assert_eq!(
            events(deliveries, carried).await[2..],
            [by_watchdog("fail"), by_watchdog("escalate")]
        );
    })
    .await;
}

#[tokio::test]
async fn a_failure_reported_by_the_partner_is_escalated_in_the_next_round() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;
        let fail = Command::Fail(delivery_core::Fail {
            reason: delivery_core::FailureReason::PackageLost,
            detail: None,
        });
        make(deliveries, id, fail, &partner(PARTNER), 5).await;
        let report = round(deliveries, 5).await;
        assert_eq!(
            report,
            WatchdogReport {
                escalated: 1,
                ..WatchdogReport::default()
            }
        );
        assert_eq!(
            state(deliveries, id).await,
            DeliveryState::PendingByOperator
        );
        // The partner's reason stays.
        let view = deliveries.delivery(id, &admin()).await.expect("a view");
        assert_eq!(
            view.failure_reason,
            Some(delivery_core::FailureReason::PackageLost)
        );
    })
    .await;
}

#[tokio::test]
async fn a_delivery_nobody_confirms_or_disputes_is_confirmed_after_the_window() {
    on_every_backend(async |deliveries| {
        let mut delivered = Vec::new();
        for _ in 0..3 {
            let id = new_delivery(deliveries, "cust-1", 0).await;
            make(deliveries, id, pick_up(), &partner(PARTNER), 10).await;
            make(deliveries, id, deliver(), &partner(PARTNER), 20).await;
            delivered.push(id);
        }
        let [silent, confirmed, disputed] = delivered[..] else {
            unreachable!()
        };
        let customer = customer("cust-1");
        make(
            deliveries,
            confirmed,
            Command::ConfirmReceipt(delivery_core::ConfirmReceipt {}),
            &customer,
            30,
        )
        .await;
        let dispute = Command::Dispute(Dispute {
            reason: DisputeReason::NotReceived,
            detail: None,
        });
        make(deliveries, disputed, dispute, &customer, 30).await;

        let window = 24 * HOUR;
        let report = round(deliveries, 20 + window - 1).await;
        // Only the dispute's failure is due: escalated at once.
        assert_eq!(
            report,
            WatchdogReport {
                escalated: 1,
                ..WatchdogReport::default()
            }
        );
        assert_eq!(state(deliveries, silent).await, DeliveryState::Delivered);

        let report = round(deliveries, 20 + window).await;
        assert_eq!(
            report,
            WatchdogReport {
                confirmed: 1,
                ..WatchdogReport::default()
            }
        );
        assert_eq!(
            state(deliveries, silent).await,
            DeliveryState::DeliveryConfirmed
        );
        assert_eq!(
            events(deliveries, silent).await.last(),
            Some(&by_watchdog("confirm_receipt"))
        );
        assert_eq!(
            state(deliveries, confirmed).await,
            DeliveryState::DeliveryConfirmed
        );
        assert_eq!(
            events(deliveries, confirmed).await.len(),
            4,
            "confirmed once, by its customer"
        );
        assert_eq!(
            state(deliveries, disputed).await,
            DeliveryState::PendingByOperator
        );
    })
    .await;
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_says_more_is_due() {
    on_every_backend(async |deliveries| {
        for _ in 0..3 {
            new_delivery(deliveries, "cust-1", 0).await;
        }
        let config = WatchdogConfig {
            watchdog_batch: NonZeroU64::new(2).expect("not zero"),
            ..config()
        };
        let first = deliveries
            .run_watchdogs(&config, at(HOUR))
            .await
            .expect("a round");
        assert_eq!(
            (first.failed, first.escalated, first.more_due),
            (2, 2, true)
        );
        let second = deliveries
            .run_watchdogs(&config, at(HOUR))
            .await
            .expect("a round");
        assert_eq!(
            (second.failed, second.escalated, second.more_due),
            (1, 1, false)
        );
    })
    .await;
}

/// Deliveries whose rows cannot be read fill a whole batch at the head of the line: the
/// sweep's next round goes on behind them, and the next sweep tries them again.
#[tokio::test]
async fn deliveries_that_cannot_be_moved_do_not_hold_up_the_ones_behind_them() {
    on_every_backend(async |deliveries| {
        let mut ids = Vec::new();
        for seconds in 0..3 {
            ids.push(new_delivery(deliveries, "cust-1", seconds).await);
        }
        delivery_order::Entity::update_many()
            .col_expr(
                delivery_order::Column::Details,
                Expr::value(serde_json::json!({"not": "a shipment"})),
            )
            .filter(delivery_order::Column::Id.is_in([ids[0].0, ids[1].0]))
            .exec(deliveries.db())
            .await
            .expect("two rows broken");
        let config = WatchdogConfig {
            watchdog_batch: NonZeroU64::new(2).expect("not zero"),
            ..config()
        };
        let mut sweep = Sweep::default();
        let mut round = async || {
            let report = deliveries
                .continue_watchdogs(&config, at(HOUR + 2), &mut sweep)
                .await
                .expect("a round");
            (
                report.errors,
                report.failed,
                report.escalated,
                report.more_due,
            )
        };
        assert_eq!(round().await, (2, 0, 0, true), "the broken two");
        assert_eq!(round().await, (0, 1, 1, false), "the one behind them");
        assert_eq!(
            state(deliveries, ids[2]).await,
            DeliveryState::PendingByOperator
        );

        let next_sweep = deliveries
            .run_watchdogs(&config, at(HOUR + 2))
            .await
            .expect("a round");
        assert_eq!(
            (next_sweep.errors, next_sweep.failed, next_sweep.more_due),
            (2, 0, true),
            "the broken two, tried again"
        );
    })
    .await;
}

/// Two instances on one database, at the same `now`, at the same time: each due delivery
/// is moved once, by one of them; the other loses the race and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_move_each_due_delivery_exactly_once() {
    on_every_backend(async |deliveries| {
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(new_delivery(deliveries, "cust-1", 0).await);
        }
        let other = Deliveries::new(deliveries.db().clone(), PARTNER);
        let now = at(HOUR);
        let one = tokio::spawn({
            let deliveries = deliveries.clone();
            async move { deliveries.run_watchdogs(&config(), now).await }
        });
        let two = tokio::spawn(async move { other.run_watchdogs(&config(), now).await });
        let one = one.await.expect("joined").expect("a round");
        let two = two.await.expect("joined").expect("a round");

        println!("one: {one:?}\ntwo: {two:?}");
        assert_eq!((one.errors, two.errors), (0, 0));
        assert_eq!(one.failed + two.failed, 20, "{one:?} {two:?}");
        assert_eq!(one.escalated + two.escalated, 20, "{one:?} {two:?}");
        for id in ids {
            let transitions: Vec<String> = events(deliveries, id)
                .await
                .into_iter()
                .map(|(transition, _, _)| transition)
                .collect();
            assert_eq!(transitions, ["create", "fail", "escalate"], "{id}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_loop_runs_rounds_until_it_is_shut_down() {
    on_every_backend(async |deliveries| {
        let id = new_delivery(deliveries, "cust-1", 0).await;

        // Shut down before it starts: not one round.
        watchdog::run(deliveries.clone(), config(), || at(HOUR), async {}).await;
        assert_eq!(state(deliveries, id).await, DeliveryState::Created);

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watchdog::run(
            deliveries.clone(),
            config(),
            || at(HOUR),
            async {
                let _ = stopped.await;
            },
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while state(deliveries, id).await != DeliveryState::PendingByOperator {
            assert!(tokio::time::Instant::now() < deadline, "no round ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).expect("the loop listens");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the loop stops")
            .expect("joined");
    })
    .await;
}
