//! The watchdogs: the system's own transitions (graph.yaml's `system` role), made when a
//! deadline passes.
//!
//! - CREATED longer than the pick-up limit → `fail` with SLA_EXCEEDED;
//! - PICKED_UP longer than the delivery limit → `fail` with SLA_EXCEEDED;
//! - DELIVERY_FAILED → `escalate` to the operators' queue at once (unassigned);
//! - DELIVERED longer than the confirmation window, neither confirmed nor disputed →
//!   `confirm_receipt`.
//!
//! How long a delivery has been in its state is measured from its last event
//! (`delivery_order.updated_at`: every event changes the state), which the index
//! `ix_delivery_order_state_updated_at` serves. Each due delivery is moved in a batch of writes
//! of its own through the write path every transition takes, with its version checked: when
//! several instances run the watchdogs at once, one of them makes each transition and the
//! others find the version changed and count a lost race. Nothing is ever done twice.
//!
//! [`Deliveries::run_watchdogs`] is one round at a given `now`. [`run`] sweeps on an
//! interval until shut down: at each tick it runs rounds until no rule finds a full batch,
//! each round going on after the deliveries the last one took ([`Sweep`]). So a delivery
//! that cannot be moved is tried again at the next tick, and does not hold up the ones
//! behind it.

use std::future::Future;
use std::pin::pin;

use chrono::{DateTime, Utc};
use delivery_core::{
    Command, ConfirmReceipt, DeliveryId, DeliveryState, Escalate, Fail, FailureReason, Role, Text,
};
use futures_util::FutureExt as _;
use sea_orm::Condition;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::time::MissedTickBehavior;

use crate::commands::Deliveries;
use crate::config::WatchdogConfig;
use crate::db::OneBatch;
use crate::domain::{Principal, PrincipalRole, RequestContext, ServiceError};
use crate::entity::delivery_order;

/// The actor id of the watchdogs' events.
pub const WATCHDOG_ACTOR: &str = "watchdog";

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchdogReport {
    /// Deliveries failed with SLA_EXCEEDED (not picked up or not delivered in time).
    pub failed: u64,
    /// Failed deliveries put in the operators' queue.
    pub escalated: u64,
    /// Delivered deliveries confirmed after the window.
    pub confirmed: u64,
    /// Due deliveries another instance (or anyone) changed first: left alone.
    pub lost_races: u64,
    /// Due deliveries that could not be moved for another reason (logged); tried again
    /// next round.
    pub errors: u64,
    /// A rule found a full batch: more may be due, and the next round should not wait.
    pub more_due: bool,
}

/// Where a sweep of rounds has got to: for each rule, the last delivery (its `updated_at`
/// and id) a round took. The next round of the sweep takes the deliveries due after it.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    taken_up_to: [Option<(DateTime<Utc>, uuid::Uuid)>; RULES],
}

impl WatchdogReport {
    fn changed(&self) -> u64 {
        self.failed + self.escalated + self.confirmed
    }
}

/// One watchdog: deliveries in `state` since at least `after` get `command`, counted in
/// the report by `count`.
struct Rule {
    state: DeliveryState,
    after: std::time::Duration,
    command: Command,
    count: fn(&mut WatchdogReport) -> &mut u64,
}

const RULES: usize = 4;

/// The rules in the order a round applies them: a delivery failed by an SLA rule is
/// escalated in the same round.
fn rules(config: &WatchdogConfig) -> Result<[Rule; RULES], ServiceError> {
    let sla_exceeded = |what: &str, limit: std::time::Duration| {
        let detail = format!("{what} within {}", human(limit));
        Text::parse(&detail)
            .map(|detail| {
                Command::Fail(Fail {
                    reason: FailureReason::SlaExceeded,
                    detail: Some(detail),
                })
            })
            .map_err(|err| ServiceError::Invalid(format!("watchdog detail: {err}")))
    };
    Ok([
        Rule {
            state: DeliveryState::Created,
            after: config.pickup_limit,
            command: sla_exceeded("not picked up", config.pickup_limit)?,
            count: |report| &mut report.failed,
        },
        Rule {
            state: DeliveryState::PickedUp,
            after: config.delivery_limit,
            command: sla_exceeded("not delivered", config.delivery_limit)?,
            count: |report| &mut report.failed,
        },
        Rule {
            state: DeliveryState::DeliveryFailed,
            after: std::time::Duration::ZERO,
            command: Command::Escalate(Escalate { assignee: None }),
            count: |report| &mut report.escalated,
        },
        Rule {
            state: DeliveryState::Delivered,
            after: config.confirmation_window,
            command: Command::ConfirmReceipt(ConfirmReceipt {}),
            count: |report| &mut report.confirmed,
        },
    ])
}

/// `2d`, `36h`, `90s`: the largest unit that divides the duration.
fn human(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match [(86_400, 'd'), (3600, 'h'), (60, 'm')]
        .into_iter()
        .find(|(unit, _)| seconds > 0 && seconds.is_multiple_of(*unit))
    {
        Some((unit, suffix)) => format!("{}{suffix}", seconds / unit),
        None => format!("{seconds}s"),
    }
}

impl Deliveries {
    /// One round of every watchdog at `now`: finds the deliveries due (at most a batch per
    /// rule, the longest waiting first) and moves each as the system.
    pub async fn run_watchdogs(
        &self,
        config: &WatchdogConfig,
        now: DateTime<Utc>,
    ) -> Result<WatchdogReport, ServiceError> {
        self.continue_watchdogs(config, now, &mut Sweep::default())
            .await
    }

    /// The next round of `sweep` at `now`: as [`Self::run_watchdogs`], but each rule takes
    /// only the deliveries due after the last one an earlier round of the sweep took.
    pub async fn continue_watchdogs(
        &self,
        config: &WatchdogConfig,
        now: DateTime<Utc>,
        sweep: &mut Sweep,
    ) -> Result<WatchdogReport, ServiceError> {
        let ctx = system_context(WATCHDOG_ACTOR, now);
        let batch = config.watchdog_batch.get();
        let mut report = WatchdogReport::default();
        for (rule, taken_up_to) in rules(config)?.into_iter().zip(&mut sweep.taken_up_to) {
            let after = chrono::Duration::from_std(rule.after)
                .map_err(|err| ServiceError::Invalid(format!("watchdog limit: {err}")))?;
            let mut due = delivery_order::Entity::find()
                .filter(delivery_order::Column::State.eq(rule.state.name()))
                .filter(delivery_order::Column::UpdatedAt.lte(now - after));
            if let Some((updated_at, id)) = *taken_up_to {
                due = due.filter(
                    Condition::any()
                        .add(delivery_order::Column::UpdatedAt.gt(updated_at))
                        .add(
                            Condition::all()
                                .add(delivery_order::Column::UpdatedAt.eq(updated_at))
                                .add(delivery_order::Column::Id.gt(id)),
                        ),
                );
            }
            let due = due
                .order_by_asc(delivery_order::Column::UpdatedAt)
                .order_by_asc(delivery_order::Column::Id)
                .limit(batch)
                .all(self.db())
                .await?;
            report.more_due |= due.len() as u64 == batch;
            if let Some(last) = due.last() {
                *taken_up_to = Some((last.updated_at, last.id));
            }
            for row in due {
                let id = DeliveryId(row.id);
                match self.move_as_system(row, rule.command.clone(), &ctx).await {
                    Ok(()) => *(rule.count)(&mut report) += 1,
                    Err(ServiceError::Conflict { .. }) => report.lost_races += 1,
                    Err(err) => {
                        tracing::error!(delivery_id = %id, error = %err, "watchdog cannot move a delivery");
                        report.errors += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Makes `command` as the system on the delivery in `row`, if its version is still the
    /// one in `row`; else [`ServiceError::Conflict`].
    pub(crate) async fn move_as_system(
        &self,
        row: delivery_order::Model,
        command: Command,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        self.write_once(ctx, async |_: &OneBatch, writes| {
            self.apply_command(writes, row, command, Role::System, ctx)
        })
        .await
        .map(drop)
    }
}

/// The context of a change the system makes on its own: a service principal named
/// `actor`, a request id of its own.
pub(crate) fn system_context(actor: &str, now: DateTime<Utc>) -> RequestContext {
    RequestContext {
        principal: Principal {
            role: PrincipalRole::Service,
            subject: actor.to_owned(),
            customer_id: None,
            partner_id: None,
        },
        request_id: format!("{actor}-{}", uuid::Uuid::new_v4()),
        idempotency: None,
        now,
    }
}

/// Sweeps the watchdogs every `config.watchdog_interval`, at the time `clock` says, until
/// `shutdown` resolves; a round in progress is finished first. A round that found more due
/// than a batch is followed by the next round of the sweep at once.
pub async fn run(
    deliveries: Deliveries,
    config: WatchdogConfig,
    clock: impl Fn() -> DateTime<Utc>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    let mut ticks = tokio::time::interval(config.watchdog_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let mut sweep = Sweep::default();
        loop {
            match deliveries
                .continue_watchdogs(&config, clock(), &mut sweep)
                .await
            {
                Ok(report) => {
                    if report.changed() + report.errors > 0 {
                        tracing::info!(?report, "watchdogs ran");
                    }
                    if !report.more_due {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "watchdogs cannot look for due deliveries");
                    break;
                }
            }
            // Between rounds, so that a long backlog does not hold up a shutdown.
            if shutdown.as_mut().now_or_never().is_some() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_in_their_largest_unit() {
        let human = |seconds| human(std::time::Duration::from_secs(seconds));
        assert_eq!(human(48 * 3600), "2d");
        assert_eq!(human(36 * 3600), "36h");
        assert_eq!(human(90), "90s");
        assert_eq!(human(120), "2m");
        assert_eq!(human(0), "0s");
    }
}
