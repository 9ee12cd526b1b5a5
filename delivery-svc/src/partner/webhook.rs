//! What a partner's signed report does to a delivery: picked up → `pick_up`, delivered →
//! `deliver`, failed → `fail`, made by the partner (role partner, actor the partner's name)
//! on a delivery assigned to it, through the same write path as every transition.
//!
//! Partners retry, duplicate and reorder their webhooks; the policy
//! (docs/adr/0003-partner-webhooks.md):
//!
//! - Each `webhook-id` is handled once: its inbox row (consumer `webhook:<partner>`) is
//!   written in the batch of the change, so a repeat answers `duplicate` with what the
//!   first did, and changes nothing.
//! - A report the graph allows now is applied (`applied`).
//! - A report that comes too early, from a state that can still reach the transition's
//!   source (delivered while CREATED), is refused with 409 and nothing recorded, so that
//!   the partner's retry applies it once the earlier report has arrived.
//! - A report the delivery is already past, or that its branch can no longer take
//!   (picked up when it already is, anything after it failed), is recorded in the inbox
//!   with the report and answered `ignored`: the graph never goes back.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use delivery_core::{
    Command, Deliver, DeliveryId, DeliveryState, Fail, FailureReason, PartnerOrderNumber, PickUp,
    Role, Text, TransitionError,
};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};

use crate::commands::{Deliveries, StateChanges, find_message, record_message};
use crate::db::{Batch, OneBatch};
use crate::domain::{RequestContext, ServiceError};
use crate::entity::{corrupt, delivery_order, from_db_seq, from_json, inbox};

/// What a partner reports about one of its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PartnerEvent {
    /// The partner collected the parcel, under its own delivery order number.
    PickedUp {
        partner_order_number: PartnerOrderNumber,
    },
    /// The partner handed the parcel over.
    Delivered { delivered_at: DateTime<Utc> },
    /// The delivery failed; `status` is the partner's own code for why, `message` its words.
    Failed {
        status: String,
        message: Option<String>,
    },
}

/// A report as received: which partner, under which `webhook-id`, about which delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerReport {
    pub partner: String,
    pub webhook_id: String,
    pub delivery_id: DeliveryId,
    pub event: PartnerEvent,
}

/// What handling a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// The transition was made.
    Applied,
    /// The delivery is already past what the report says, or can no longer take it;
    /// nothing changed, the report is kept in the inbox.
    Ignored,
    /// This `webhook-id` was handled before; nothing changed. The rest of the outcome is
    /// the first handling's.
    Duplicate,
}

/// The outcome of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub handling: Handling,
    pub delivery_id: DeliveryId,
    /// The delivery's state before the report and after it.
    pub from: DeliveryState,
    pub state: DeliveryState,
    /// The delivery's version after the report.
    pub version: u64,
}

impl StateChanges for WebhookOutcome {
    fn state_changes(
        &self,
    ) -> impl Iterator<Item = (DeliveryId, Option<DeliveryState>, DeliveryState)> {
        (self.handling == Handling::Applied)
            .then_some((self.delivery_id, Some(self.from), self.state))
            .into_iter()
    }
}

/// What the inbox keeps of a handled report: the report itself, so that an ignored one is
/// not lost, and the outcome a duplicate answers with.
#[derive(Debug, Serialize, Deserialize)]
struct HandledReport {
    event: PartnerEvent,
    outcome: WebhookOutcome,
}

impl Deliveries {
    /// Handles a partner's report, whose signature the caller has checked. `ctx`'s principal
    /// is the partner.
    ///
    /// A delivery that does not exist or is not assigned to the partner is
    /// [`ServiceError::NotFound`]; a report that comes too early is
    /// [`TransitionError::NotAllowed`]. Either way nothing is written, the inbox row
    /// included, so the partner's retry is handled afresh.
    pub async fn apply_partner_report(
        &self,
        report: PartnerReport,
        ctx: &RequestContext,
    ) -> Result<WebhookOutcome, ServiceError> {
        let consumer = format!("webhook:{}", report.partner);
        let written = self
            .write_once(ctx, async |db, writes| {
                if let Some(first) = find_message(db, &consumer, &report.webhook_id).await? {
                    return first_outcome(first);
                }
                let outcome = self.handle_report(db, writes, &report, ctx).await?;
                let handled = HandledReport {
                    event: report.event.clone(),
                    outcome,
                };
                writes.push(&record_message(
                    &consumer,
                    &report.webhook_id,
                    &handled,
                    ctx.now,
                )?);
                Ok(outcome)
            })
            .await;
        self.handled_meanwhile(written, &consumer, &report.webhook_id, first_outcome)
            .await
    }

    /// Applies `report` to its delivery as read on `db`.
    async fn handle_report(
        &self,
        db: &OneBatch,
        writes: &mut Batch,
        report: &PartnerReport,
        ctx: &RequestContext,
    ) -> Result<WebhookOutcome, ServiceError> {
        let id = report.delivery_id;
        // The verdict below depends on the state read here, without a lock: the save checks
        // that the version is still the one read. A report found moot stays moot, since
        // the graph never leads back.
        let row = delivery_order::Entity::find_by_id(id.0)
            .one(db)
            .await?
            .filter(|row| row.partner_id.as_deref() == Some(report.partner.as_str()))
            .ok_or(ServiceError::NotFound(id))?;
        let current: DeliveryState = row
            .state
            .parse()
            .map_err(|err| corrupt(format!("delivery_order {id}: {err}")))?;
        let command = report.event.command()?;
        let transition = command.transition();
        if current.allowed_transitions().contains(&transition) {
            let made = self.apply_command(writes, row, command, Role::Partner, ctx)?;
            return Ok(WebhookOutcome {
                handling: Handling::Applied,
                delivery_id: id,
                from: made.from,
                state: made.to,
                version: made.version,
            });
        }
        if transition
            .sources()
            .iter()
            .any(|&source| reaches(current, source))
        {
            return Err(TransitionError::NotAllowed {
                current,
                attempted: transition,
                allowed: current.allowed_transitions(),
            }
            .into());
        }
        tracing::warn!(
            delivery_id = %id,
            partner = %report.partner,
            webhook_id = %report.webhook_id,
            state = current.name(),
            report = transition.name(),
            "a partner report the delivery can no longer take is ignored"
        );
        Ok(WebhookOutcome {
            handling: Handling::Ignored,
            delivery_id: id,
            from: current,
            state: current,
            version: from_db_seq("version", row.version)?,
        })
    }
}

/// The outcome of a report's first handling, as a duplicate answers it.
fn first_outcome(first: inbox::Model) -> Result<WebhookOutcome, ServiceError> {
    let result = first.result.ok_or_else(|| {
        corrupt(format!(
            "inbox {}: handled without a result",
            first.message_id
        ))
    })?;
    let handled: HandledReport = from_json("inbox.result", result)?;
    Ok(WebhookOutcome {
        handling: Handling::Duplicate,
        ..handled.outcome
    })
}

/// Whether the graph leads from `from` to `to` (or they are the same state).
fn reaches(from: DeliveryState, to: DeliveryState) -> bool {
    let mut seen = HashSet::new();
    let mut next = vec![from];
    while let Some(state) = next.pop() {
        if state == to {
            return true;
        }
        if seen.insert(state) {
            next.extend(state.allowed_transitions().iter().map(|t| t.target()));
        }
    }
    false
}

impl PartnerEvent {
    /// The graph's command for this report.
    fn command(&self) -> Result<Command, ServiceError> {
        Ok(match self {
            PartnerEvent::PickedUp {
                partner_order_number,
            } => Command::PickUp(PickUp {
                partner_order_number: partner_order_number.clone(),
            }),
            PartnerEvent::Delivered { delivered_at } => Command::Deliver(Deliver {
                delivered_at: *delivered_at,
            }),
            PartnerEvent::Failed { status, message } => {
                // The partner's own words stay with the failure, whatever reason they map to.
                let detail = match message {
                    Some(message) => format!("partner status {status}: {message}"),
                    None => format!("partner status {status}"),
                };
                Command::Fail(Fail {
                    reason: failure_reason(status),
                    detail: Some(Text::parse(&detail).map_err(|err| {
                        ServiceError::Invalid(format!("the failure's status and message: {err}"))
                    })?),
                })
            }
        })
    }
}

/// Partners' own failure codes that name one of ours differently. A code is compared in
/// upper case with `-` and spaces as `_`; one of our own names is taken as it is.
const FAILURE_ALIASES: &[(&str, FailureReason)] = &[
    ("BAD_ADDRESS", FailureReason::AddressInvalid),
    ("UNDELIVERABLE_ADDRESS", FailureReason::AddressInvalid),
    ("ADDRESS_NOT_FOUND", FailureReason::AddressInvalid),
    ("CUSTOMER_UNAVAILABLE", FailureReason::RecipientUnavailable),
    (
        "CUSTOMER_NOT_AVAILABLE",
        FailureReason::RecipientUnavailable,
    ),
    ("NOBODY_HOME", FailureReason::RecipientUnavailable),
    ("CUSTOMER_REFUSED", FailureReason::RecipientRefused),
    ("REFUSED", FailureReason::RecipientRefused),
    (
        "CANNOT_ACCESS_LOCATION",
        FailureReason::LocationInaccessible,
    ),
    ("DAMAGED", FailureReason::PackageDamaged),
    ("LOST", FailureReason::PackageLost),
    ("NO_COURIER", FailureReason::CourierUnavailable),
    ("NO_DRIVER_AVAILABLE", FailureReason::CourierUnavailable),
    ("PICKUP_NOT_POSSIBLE", FailureReason::PickupFailed),
    ("RETURNED", FailureReason::ReturnedToSender),
    ("RETURN_TO_SENDER", FailureReason::ReturnedToSender),
    ("CANCELLED", FailureReason::CancelledByPartner),
    ("CANCELED", FailureReason::CancelledByPartner),
];

/// Our reason for a partner's failure code; OTHER when we do not know the code (the code
/// itself is kept in the failure's detail).
pub fn failure_reason(status: &str) -> FailureReason {
    let code = status.trim().to_ascii_uppercase().replace(['-', ' '], "_");
    code.parse().unwrap_or_else(|_| {
        FAILURE_ALIASES
            .iter()
            .find(|(alias, _)| *alias == code)
            .map_or(FailureReason::Other, |(_, reason)| *reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_codes_map_onto_failure_reasons_and_unknown_ones_onto_other() {
        assert_eq!(
            failure_reason("recipient-unavailable"),
            FailureReason::RecipientUnavailable
        );
        assert_eq!(failure_reason("SLA_EXCEEDED"), FailureReason::SlaExceeded);
        assert_eq!(
            failure_reason("nobody home"),
            FailureReason::RecipientUnavailable
        );
        assert_eq!(
            failure_reason("canceled"),
            FailureReason::CancelledByPartner
        );
        assert_eq!(failure_reason("ufo_sighting"), FailureReason::Other);
    }

    #[test]
    fn the_partners_status_and_message_are_the_failures_detail() {
        let event = PartnerEvent::Failed {
            status: "damaged".into(),
            message: Some("Box crushed.".into()),
        };
        let Ok(Command::Fail(fail)) = event.command() else {
            panic!("a fail command");
        };
        assert_eq!(fail.reason, FailureReason::PackageDamaged);
        assert_eq!(
            fail.detail.map(|detail| detail.as_str().to_owned()),
            Some("partner status damaged: Box crushed.".to_owned())
        );
    }

    #[test]
    fn reachability_follows_the_graph_forward_only() {
        assert!(reaches(DeliveryState::Created, DeliveryState::PickedUp));
        assert!(reaches(DeliveryState::Created, DeliveryState::Resolved));
        assert!(!reaches(DeliveryState::Delivered, DeliveryState::PickedUp));
        assert!(!reaches(
            DeliveryState::DeliveryFailed,
            DeliveryState::Created
        ));
    }
}
