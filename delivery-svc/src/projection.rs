//! The projector: keeps the read models (`delivery_view`, `delivery_history`) in step with
//! the event store (`delivery_event`).
//!
//! Consistency model: a command projects its events in its own batch of writes (one
//! statement, or one transaction), so the read models change atomically with the write
//! model. A client reads its own write at
//! once (the view's `version` is the `seq` of the last event projected), and no reader ever
//! sees a state change without its history entry, or the other way round.
//!
//! The projector knows nothing but the event and the view row it updates: a creation opens
//! the view row, a transition applies its command to the order that row describes (through
//! delivery-core, so the state data is computed by the same code as the write model's).
//! That is why [`Deliveries::rebuild_projections`] can throw the read models away and replay
//! the event store into the same rows. A command projects its own event with
//! `project_made`, which takes the order the command made instead of reading the view row
//! and applying the command again: the same delivery-core code, the same row.

use delivery_core::{
    Actor, AnyDeliveryOrder, Change, Command, DeliveryDetails, DeliveryEvent, DeliveryId,
    EventMeta, StateFields,
};
use sea_orm::prelude::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, IsolationLevel,
    QueryFilter, TransactionTrait,
};
use serde_json::Value;

use crate::commands::Deliveries;
use crate::db::{Batch, begin_write, is_postgres};
use crate::domain::ServiceError;
use crate::entity::{
    StateColumns, corrupt, delivery_event, delivery_history, delivery_view, from_db_seq, from_json,
    parse, parse_opt, to_db_seq, to_json,
};

/// An event as the event store holds it: delivery-core's event and what the service adds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: DeliveryEvent,
    /// The partner the delivery order is assigned to; recorded with the creation.
    pub partner_id: Option<String>,
    /// The request that made the change.
    pub request_id: Option<String>,
}

/// The key under which a creation's payload records the assigned partner, beside the
/// delivery details.
const PARTNER_ID: &str = "partner_id";
/// The name [`Change::name`] gives a creation.
const CREATION: &str = "create";
/// The key of delivery-core's serialised [`Change`] that names the transition; the event
/// store keeps it in its own column, not in the payload.
const TRANSITION: &str = "transition";

impl StoredEvent {
    /// What the event carried, as `delivery_event.payload`, the history's `data` and the
    /// published message's `payload` show it: the transition's fields (for a creation: the
    /// delivery details and the partner).
    pub fn payload(&self) -> Result<Value, DbErr> {
        let Value::Object(mut payload) = to_json(&self.event.change)? else {
            return Err(DbErr::Custom(
                "an event's change must serialise to an object".into(),
            ));
        };
        payload.remove(TRANSITION);
        if let Some(partner_id) = &self.partner_id {
            payload.insert(PARTNER_ID.into(), Value::String(partner_id.clone()));
        }
        Ok(Value::Object(payload))
    }

    /// The event's row of `delivery_event`.
    pub fn to_row(&self) -> Result<delivery_event::ActiveModel, DbErr> {
        let event = &self.event;
        Ok(delivery_event::ActiveModel {
            id: NotSet,
            delivery_id: Set(event.delivery_id.0),
            seq: Set(to_db_seq(event.seq)?),
            transition: Set(event.change.name().to_owned()),
            from_state: Set(event.from.map(|state| state.name().to_owned())),
            to_state: Set(event.to.name().to_owned()),
            payload: Set(self.payload()?),
            actor_role: Set(event.actor.role.name().to_owned()),
            actor_id: Set(event.actor.id.to_string()),
            request_id: Set(self.request_id.clone()),
            graph_version: Set(event.graph_version.to_string()),
            occurred_at: Set(event.occurred_at),
        })
    }

    /// Reads a row of `delivery_event` back, refusing one that does not parse.
    pub fn from_row(row: delivery_event::Model) -> Result<Self, DbErr> {
        let (change, partner_id) = decode_payload(&row.transition, row.payload)?;
        let event = DeliveryEvent {
            delivery_id: DeliveryId(row.delivery_id),
            seq: from_db_seq("seq", row.seq)?,
            from: parse_opt("from_state", row.from_state.as_deref())?,
            to: parse("to_state", &row.to_state)?,
            change,
            actor: Actor {
                role: parse("actor_role", &row.actor_role)?,
                id: parse("actor_id", &row.actor_id)?,
            },
            occurred_at: row.occurred_at,
            graph_version: parse("graph_version", &row.graph_version)?,
        };
        Ok(StoredEvent {
            event,
            partner_id,
            request_id: row.request_id,
        })
    }
}

/// The inverse of [`StoredEvent::payload`].
fn decode_payload(transition: &str, payload: Value) -> Result<(Change, Option<String>), DbErr> {
    let Value::Object(mut payload) = payload else {
        return Err(corrupt("payload: not an object"));
    };
    // Only a creation records the partner; any other payload is the command's own.
    let partner_id = if transition == CREATION {
        match payload.remove(PARTNER_ID) {
            None => None,
            Some(Value::String(partner_id)) => Some(partner_id),
            Some(other) => {
                return Err(corrupt(format!(
                    "payload: partner_id {other} is not a string"
                )));
            }
        }
    } else {
        None
    };
    payload.insert(TRANSITION.into(), Value::String(transition.to_owned()));
    let change = from_json("payload", Value::Object(payload))?;
    Ok((change, partner_id))
}

/// Updates the read models from one event, on `db` (a rebuild's transaction).
pub async fn project<C: ConnectionTrait>(db: &C, stored: &StoredEvent) -> Result<(), DbErr> {
    let mut writes = Batch::new(db);
    add_history_entry(&mut writes, stored)?;
    match &stored.event.change {
        Change::Create(details) => {
            // A rebuild replays in (delivery_id, seq) order, so a replacement may already
            // be in the view before the order it replaces.
            let replaced_by = delivery_view::Entity::find()
                .filter(delivery_view::Column::ReplacesDeliveryId.eq(stored.event.delivery_id.0))
                .one(db)
                .await?
                .map(|replacement| replacement.id);
            open_view(&mut writes, stored, details, replaced_by)?;
            if let Some(replaced) = details.replaces {
                link_replaced(&mut writes, replaced, stored.event.delivery_id);
            }
        }
        Change::Transition(command) => {
            advance_view(db, &mut writes, &stored.event, command).await?
        }
    }
    writes.run(db).await
}

/// Adds to `writes` what the event a command just made changes in the read models, where
/// `order` is the order the event left and `replacement` the order its REDELIVER opened:
/// what [`project`] computes from the view row, without reading it. The view row must be
/// at the version before the event's, as [`project`] requires too.
///
/// A REDELIVER and its replacement's creation are one command, written in one batch, where
/// no two writes may change one row: so the resolved order's row takes its link to the
/// replacement here, with its new state, and the creation does not write it again.
pub(crate) fn project_made(
    writes: &mut Batch,
    stored: &StoredEvent,
    order: &AnyDeliveryOrder,
    replacement: Option<DeliveryId>,
) -> Result<(), DbErr> {
    add_history_entry(writes, stored)?;
    let event = &stored.event;
    match &event.change {
        // Live, a new order has no replacement yet: it is made after the order it replaces.
        Change::Create(details) => open_view(writes, stored, details, None),
        Change::Transition(_) => {
            let previous = event.seq.checked_sub(1).ok_or_else(|| {
                corrupt(format!(
                    "delivery {}: a transition at seq 0",
                    event.delivery_id
                ))
            })?;
            write_view(writes, event, order, to_db_seq(previous)?, replacement)
        }
    }
}

fn add_history_entry(writes: &mut Batch, stored: &StoredEvent) -> Result<(), DbErr> {
    let event = &stored.event;
    let entry = delivery_history::ActiveModel {
        delivery_id: Set(event.delivery_id.0),
        seq: Set(to_db_seq(event.seq)?),
        transition: Set(event.change.name().to_owned()),
        from_state: Set(event.from.map(|state| state.name().to_owned())),
        to_state: Set(event.to.name().to_owned()),
        actor_role: Set(event.actor.role.name().to_owned()),
        actor_id: Set(event.actor.id.to_string()),
        request_id: Set(stored.request_id.clone()),
        graph_version: Set(event.graph_version.to_string()),
        occurred_at: Set(event.occurred_at),
        data: Set(stored.payload()?),
    };
    writes.push(&delivery_history::Entity::insert(entry));
    Ok(())
}

/// A creation: the view row of a new delivery order, linked to the order it replaces, if
/// any, and to its own replacement, if a rebuild has met it already.
fn open_view(
    writes: &mut Batch,
    stored: &StoredEvent,
    details: &DeliveryDetails,
    replaced_by: Option<uuid::Uuid>,
) -> Result<(), DbErr> {
    let event = &stored.event;
    let mut row = delivery_view::ActiveModel {
        id: Set(event.delivery_id.0),
        ordering_id: Set(details.ordering_id.to_string()),
        customer_id: Set(details.customer_id.to_string()),
        payment_id: Set(details.payment_id.to_string()),
        state: Set(event.to.name().to_owned()),
        version: Set(to_db_seq(event.seq)?),
        partner_id: Set(stored.partner_id.clone()),
        replaces_delivery_id: Set(details.replaces.map(|replaced| replaced.0)),
        replaced_by_delivery_id: Set(replaced_by),
        shipping_address: Set(to_json(&details.shipping_address)?),
        lines: Set(to_json(&details.lines)?),
        graph_version: Set(event.graph_version.to_string()),
        created_at: Set(event.occurred_at),
        updated_at: Set(event.occurred_at),
        ..Default::default()
    };
    // CREATED carries no state data yet.
    row.set_state_columns(StateColumns::from(&StateFields::default()));
    writes.push(&delivery_view::Entity::insert(row));
    Ok(())
}

/// Links the view row of the `replaced` order, if a rebuild has made it already, to its
/// `replacement`: a link, not a change of the replaced order, so its version and
/// updated_at stay.
fn link_replaced(writes: &mut Batch, replaced: DeliveryId, replacement: DeliveryId) {
    writes.push(
        &delivery_view::Entity::update_many()
            .col_expr(
                delivery_view::Column::ReplacedByDeliveryId,
                Expr::value(replacement.0),
            )
            .filter(delivery_view::Column::Id.eq(replaced.0)),
    );
}

/// A transition: the view row moves to the state the command takes its order to.
async fn advance_view<C: ConnectionTrait>(
    db: &C,
    writes: &mut Batch,
    event: &DeliveryEvent,
    command: &Command,
) -> Result<(), DbErr> {
    let id = event.delivery_id;
    let view = delivery_view::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .ok_or_else(|| {
            corrupt(format!(
                "delivery {id}: event {} has no view row to apply to",
                event.seq
            ))
        })?;
    let order = AnyDeliveryOrder::from_snapshot(view.snapshot()?)
        .map_err(|err| corrupt(format!("delivery_view {id}: {err}")))?;
    if order.version() + 1 != event.seq {
        return Err(corrupt(format!(
            "delivery {id}: event {} does not follow the view's version {}",
            event.seq,
            order.version()
        )));
    }
    // The actor was authorised when the event was made; under the same graph it still is.
    let meta = EventMeta {
        actor: event.actor.clone(),
        occurred_at: event.occurred_at,
    };
    let (next, _) = order
        .apply(command.clone(), meta)
        .map_err(|rejected| corrupt(format!("delivery {id}: event {}: {rejected}", event.seq)))?;
    write_view(writes, event, &next, view.version, None)
}

/// Moves the view row of `event`'s delivery, at version `previous`, to `next`, linked to
/// its `replacement` if the event opened one.
fn write_view(
    writes: &mut Batch,
    event: &DeliveryEvent,
    next: &AnyDeliveryOrder,
    previous: i64,
    replacement: Option<DeliveryId>,
) -> Result<(), DbErr> {
    let mut row = delivery_view::ActiveModel {
        state: Set(next.state().name().to_owned()),
        version: Set(to_db_seq(next.version())?),
        graph_version: Set(event.graph_version.to_string()),
        updated_at: Set(event.occurred_at),
        ..Default::default()
    };
    if let Some(replacement) = replacement {
        row.replaced_by_delivery_id = Set(Some(replacement.0));
    }
    row.set_state_columns(StateColumns::from(&next.state_fields()));
    // One row, or the batch fails: only a rebuild running at the same time can have
    // replaced the row under us (or the view is not in step with the event store, which a
    // rebuild mends).
    writes.push_expecting(
        &delivery_view::Entity::update_many()
            .set(row)
            .filter(delivery_view::Column::Id.eq(event.delivery_id.0))
            .filter(delivery_view::Column::Version.eq(previous)),
        1,
    );
    Ok(())
}

/// Events replayed per query during a rebuild.
const REPLAY_BATCH: u64 = 500;

impl Deliveries {
    /// Empties the read models and replays the whole event store into them, in
    /// (delivery_id, seq) order, in one transaction: readers see the old rows or the new
    /// ones, never a half-built read model. Returns the number of events replayed.
    ///
    /// It is meant for a quiet moment (a deployment that changed a projection). On
    /// PostgreSQL it reads one snapshot of the event store (REPEATABLE READ), and a command
    /// that races it fails and may be retried; on SQLite it holds the write lock throughout,
    /// and commands wait for it (up to the busy timeout).
    pub async fn rebuild_projections(&self) -> Result<u64, ServiceError> {
        let txn = self.begin_snapshot().await?;
        delivery_history::Entity::delete_many().exec(&txn).await?;
        delivery_view::Entity::delete_many().exec(&txn).await?;
        let mut replayed = 0;
        let mut after = None;
        loop {
            let batch = events_after(&txn, after).await?;
            let Some(last) = batch.last() else { break };
            after = Some((last.delivery_id, last.seq));
            for row in batch {
                project(&txn, &StoredEvent::from_row(row)?).await?;
                replayed += 1;
            }
        }
        txn.commit().await?;
        Ok(replayed)
    }

    async fn begin_snapshot(&self) -> Result<DatabaseTransaction, DbErr> {
        if is_postgres(self.db()) {
            self.db()
                .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
                .await
        } else {
            begin_write(self.db()).await
        }
    }
}

/// The next events in (delivery_id, seq) order after `after`.
async fn events_after(
    txn: &DatabaseTransaction,
    after: Option<(uuid::Uuid, i64)>,
) -> Result<Vec<delivery_event::Model>, DbErr> {
    use delivery_event::Column;
    let mut events = delivery_event::Entity::find().cursor_by((Column::DeliveryId, Column::Seq));
    if let Some(after) = after {
        events.after(after);
    }
    events.first(REPLAY_BATCH).all(txn).await
}
