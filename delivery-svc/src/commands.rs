//! The write side: every change to a delivery order writes the order, its event, the
//! outbox message, the read models and (when the request has an `Idempotency-Key`) the
//! stored outcome — all of them or none: in one batch of writes, which on PostgreSQL is
//! one statement outside a transaction, on SQLite in a write transaction (ADR 0009).
//!
//! Concurrency is optimistic: a transition reads the order, applies the command through
//! delivery-core and saves with `UPDATE … WHERE version = <read>`. Whoever commits first
//! wins; the other gets [`ServiceError::Conflict`], its writes undone, and may retry,
//! which then meets the new state. On PostgreSQL writers lock only the rows they write.
//! SQLite has one writer at a time: write transactions take its lock as they begin
//! (`db::begin_write`) and queue for it rather than fail; one that still cannot get it
//! within the busy timeout is the same retryable conflict, as is a PostgreSQL
//! serialization failure or deadlock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use delivery_core::{
    Actor, ActorId, AnyDeliveryOrder, Command, Created, CustomerId, DeliveryDetails, DeliveryEvent,
    DeliveryId, DeliveryOrder, DeliverySnapshot, DeliveryState, EventMeta, GraphVersion,
    OrderingId, PhysicalLines, Role,
};
use sea_orm::sea_query::{Alias, Condition, Expr, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, QueryFilter, QueryTrait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::auth::{Operation, role_name};
use crate::cache::DeliveryCache;
use crate::db::{Batch, Guard, OneBatch, RequestConnections, is_contention};
use crate::domain::{
    IdempotencyKey, PaymentOutcome, PaymentSucceeded, RequestContext, ServiceError,
    TransitionOutcome,
};
use crate::entity::{
    StateColumns, booking, corrupt, delivery_event, delivery_order, from_db_seq, from_json,
    idempotency_key, inbox, ordering, outbox, to_db_seq, to_json,
};
use crate::partner::Partners;
use crate::partner::booking::pending as pending_booking;
use crate::projection::{StoredEvent, project_made};
use crate::queries::Scope;

/// The only event type [`Deliveries::ingest_payment`] takes.
const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
/// The inbox consumer that records handled payment events.
const PAYMENT_CONSUMER: &str = "payment.succeeded";

/// The delivery service's domain operations on one database: the write side here, the
/// read side in [`crate::queries`], the read models' rebuild in [`crate::projection`].
#[derive(Debug, Clone)]
pub struct Deliveries {
    db: DatabaseConnection,
    /// What commands run on: `db`'s database, connections of their own on PostgreSQL.
    connections: RequestConnections,
    /// What queries run on: as `connections`, but a pool apart, so that reads never queue
    /// behind writes for a connection.
    read_connections: RequestConnections,
    /// The partner every new delivery order is assigned to.
    default_partner: String,
    /// Notified after every commit, so that the outbox relay publishes without waiting for
    /// its next poll.
    outbox_written: Arc<Notify>,
    /// Notified when this process commits a new delivery order (and so its booking).
    bookings_due: Arc<Notify>,
    /// Single-delivery reads through Redis, refreshed after every commit.
    cache: Option<DeliveryCache>,
    /// The partners whose signed reports move deliveries (see [`crate::partner`]).
    partners: Arc<Partners>,
}

impl Deliveries {
    pub fn new(db: DatabaseConnection, default_partner: impl Into<String>) -> Self {
        Deliveries {
            connections: RequestConnections::of(&db),
            read_connections: RequestConnections::of(&db),
            db,
            default_partner: default_partner.into(),
            outbox_written: Arc::default(),
            bookings_due: Arc::default(),
            cache: None,
            partners: Arc::default(),
        }
    }

    /// Takes reports from `partners` (without, every partner's webhook is refused).
    pub fn with_partners(mut self, partners: Partners) -> Self {
        self.partners = Arc::new(partners);
        self
    }

    pub fn partners(&self) -> &Partners {
        &self.partners
    }

    /// The same deliveries (notifications, cache, partners) through another connection pool
    /// of the same database.
    pub fn with_db(mut self, db: DatabaseConnection) -> Self {
        self.connections = RequestConnections::of(&db);
        self.read_connections = RequestConnections::of(&db);
        self.db = db;
        self
    }

    /// Serves single-delivery reads through `cache`, and keeps it current after writes.
    pub fn with_cache(mut self, cache: DeliveryCache) -> Self {
        self.cache = Some(cache);
        self
    }

    pub(crate) fn cache(&self) -> Option<&DeliveryCache> {
        self.cache.as_ref()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn connections(&self) -> &RequestConnections {
        &self.connections
    }

    pub(crate) fn read_connections(&self) -> &RequestConnections {
        &self.read_connections
    }

    /// What the outbox relay waits on (see [`crate::messaging::relay`]).
    pub fn outbox_written(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    /// What the booker waits on (see [`crate::partner::booking`]).
    pub fn bookings_due(&self) -> Arc<Notify> {
        self.bookings_due.clone()
    }

    /// Handles the payment service's `payment.succeeded`: a delivery order in CREATED for
    /// the ordering's physical lines, assigned to the default partner, created by the
    /// system on behalf of the reporting service.
    ///
    /// Each `event_id` is handled once: the inbox row that records it is written in the
    /// same batch, so a redelivered event answers [`PaymentOutcome::AlreadyHandled`] and
    /// changes nothing, also when the two handlings run at once. An ordering with only
    /// e-books is recorded too, and gets no delivery order.
    pub async fn ingest_payment(
        &self,
        payment: PaymentSucceeded,
        ctx: &RequestContext,
    ) -> Result<PaymentOutcome, ServiceError> {
        if payment.kind != PAYMENT_SUCCEEDED {
            return Err(ServiceError::Invalid(format!(
                "event type {:?} is not {PAYMENT_SUCCEEDED:?}",
                payment.kind
            )));
        }
        if !Operation::IngestPaymentEvent.allows(ctx.principal.role) {
            return Err(ServiceError::Forbidden(
                "only a service principal reports payments".into(),
            ));
        }
        let message_id = payment.event_id.to_string();
        let handled = async |db: &OneBatch| {
            Ok(find_message_with_key(db, PAYMENT_CONSUMER, &message_id, ctx).await?)
        };
        let written = self
            .write_once_after(ctx, handled, async |_db, writes, handled| {
                if let Some(first) = handled {
                    return first_handling_of_payment(first);
                }
                let outcome = self.handle_payment(writes, payment, ctx)?;
                writes.push(&record_message(
                    PAYMENT_CONSUMER,
                    &message_id,
                    &outcome,
                    ctx.now,
                )?);
                Ok(outcome)
            })
            .await;
        self.handled_meanwhile(
            written,
            PAYMENT_CONSUMER,
            &message_id,
            first_handling_of_payment,
        )
        .await
    }

    /// Adds to `writes` what `payment` makes: the ordering and a delivery order for its
    /// physical lines, or nothing.
    fn handle_payment(
        &self,
        writes: &mut Batch,
        payment: PaymentSucceeded,
        ctx: &RequestContext,
    ) -> Result<PaymentOutcome, ServiceError> {
        Ok(match PhysicalLines::from_ordering(payment.lines) {
            Err(_nothing_to_deliver) => PaymentOutcome::NothingToDeliver,
            Ok(lines) => {
                let details = DeliveryDetails {
                    ordering_id: payment.ordering_id,
                    customer_id: payment.customer_id,
                    payment_id: payment.payment_id,
                    shipping_address: payment.shipping_address,
                    lines,
                    replaces: None,
                };
                writes.push(&remember_ordering(&details, ctx.now)?);
                let meta = event_meta(Role::System, ctx)?;
                let (order, creation) = DeliveryOrder::create(new_delivery_id(), details, meta);
                let delivery_id = order.id();
                self.open_delivery(writes, order, creation, ctx)?;
                PaymentOutcome::Created { delivery_id }
            }
        })
    }

    /// For a message of `consumer` whose handling ended as `written`: if its batch failed
    /// where a concurrent handling of the same message would make it fail (the inbox key,
    /// or the delivery both changed) and the inbox now records the message, that handling
    /// came first, and the answer is its, from `first`; else `written` as it is. A refusal
    /// of the request itself (a reused idempotency key, a transition not allowed) stays
    /// what it is.
    pub(crate) async fn handled_meanwhile<T>(
        &self,
        written: Result<T, ServiceError>,
        consumer: &str,
        message_id: &str,
        first: impl FnOnce(inbox::Model) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let err = match written {
            Err(err @ (ServiceError::Database(_) | ServiceError::Conflict { .. })) => err,
            other => return other,
        };
        match find_message(&self.reads().await?, consumer, message_id).await? {
            Some(row) => first(row),
            None => Err(err),
        }
    }

    /// Applies `command` to delivery `id` on behalf of the caller.
    ///
    /// A caller sees only what it may act on: a customer its own deliveries, a partner
    /// those assigned to it, operators and admins (acting as operators) all of them; any
    /// other delivery is [`ServiceError::NotFound`], so that its existence does not leak.
    /// Service principals may not make transitions at all. The graph then checks the
    /// role and the transition. A REDELIVER resolution creates the replacement delivery
    /// order in the same batch of writes.
    pub async fn transition(
        &self,
        id: DeliveryId,
        command: Command,
        ctx: &RequestContext,
    ) -> Result<TransitionOutcome, ServiceError> {
        let role = ctx.principal.role.graph_role().ok_or_else(|| {
            ServiceError::Forbidden("service principals may not change a delivery".into())
        })?;
        // Read with the caller's key, in one query (a delivery the caller may not see is
        // NotFound whatever the key), without a lock: the save checks that the version is
        // still the one read. Customer and partner never change, so the check of who may
        // act holds for the row as saved.
        let scope = Scope::of(&ctx.principal);
        let written = self
            .write_once_after(
                ctx,
                async |db| find_in_scope_with_key(db, id, &scope, ctx).await,
                async |_db, writes, row| self.apply_command(writes, row, command, role, ctx),
            )
            .await;
        match written {
            Err(ServiceError::Busy(err)) if is_contention(&err) => {
                // Refused before the order was read (the SQLite write lock not granted in
                // time, say): the conflict names the version there is now.
                let row = find_in_scope(&self.reads().await?, id, &scope).await?;
                let expected = from_db_seq("version", row.version)?;
                Err(ServiceError::Conflict { id, expected })
            }
            written => written,
        }
    }

    /// Applies `command`, made by `role`, to the order in `row`: adds to `writes` the save
    /// of the order, if its version is still the one in `row`, the event, the outbox
    /// message and the read models; and, for a REDELIVER resolution, the replacement
    /// delivery order with its own.
    pub(crate) fn apply_command(
        &self,
        writes: &mut Batch,
        row: delivery_order::Model,
        command: Command,
        role: Role,
        ctx: &RequestContext,
    ) -> Result<TransitionOutcome, ServiceError> {
        let id = DeliveryId(row.id);
        let order = AnyDeliveryOrder::from_snapshot(row.snapshot()?)
            .map_err(|err| corrupt(format!("delivery_order {id}: {err}")))?;
        let from = order.state();
        let loaded_version = order.version();
        let ordering_id = order.details().ordering_id.clone();
        let customer_id = order.details().customer_id.clone();
        let meta = event_meta(role, ctx)?;
        let (order, event) = order
            .apply(command, meta.clone())
            .map_err(|rejected| rejected.error)?;
        if let AnyDeliveryOrder::Delivered(delivered) = &order {
            check_delivered_at(delivered.delivered_at(), row.created_at, ctx.now)?;
        }
        let replacement = match &order {
            AnyDeliveryOrder::Resolved(resolved) => resolved.redelivery(new_delivery_id(), meta),
            _ => None,
        };
        let replacement_delivery_id = replacement
            .as_ref()
            .map(|(replacement, _)| replacement.id());
        // The guarded save first: on SQLite, which runs a batch in order, a stale version
        // stops it there. The event's writes read nothing another writes.
        save_transition(writes, &order, &event, loaded_version)?;
        let stored = StoredEvent {
            event,
            partner_id: None,
            request_id: Some(ctx.request_id.clone()),
        };
        let owners = Owners {
            ordering_id: &ordering_id,
            customer_id: &customer_id,
            partner_id: row.partner_id.as_deref(),
        };
        add_event(writes, &stored, &owners, &order, replacement_delivery_id)?;
        if let Some((replacement, creation)) = replacement {
            self.open_delivery(writes, replacement, creation, ctx)?;
        }
        Ok(TransitionOutcome {
            delivery_id: id,
            from,
            to: order.state(),
            version: order.version(),
            replacement_delivery_id,
        })
    }

    /// Runs `work` in a [`OneBatch`] scope and commits it, at most once per
    /// `Idempotency-Key` of the caller.
    ///
    /// `work` reads what it needs and adds its writes, a guarded save included, to a
    /// [`Batch`], which runs with the stored key after them as the scope commits: so `work`
    /// must not read what it added, and it cannot write through the scope. If the guarded save
    /// loses a race, the answer is [`ServiceError::Conflict`] with the version it expected.
    ///
    /// The key is looked up first: a key used before with the same fingerprint returns
    /// the stored outcome and writes nothing; with another fingerprint it is
    /// [`ServiceError::IdempotencyKeyReused`]. A new key is stored with the outcome, in
    /// the batch. Two requests
    /// with one key at once both find it new; the later to write then finds the earlier's
    /// change or key in its way and fails, and, finding the key stored, answers as the
    /// earlier did.
    ///
    /// Only successful outcomes are stored. A failed request writes nothing, so the
    /// client may retry it with the same key: a conflict or a refusal describes the
    /// delivery at that moment, not the request, and replaying it forever would turn a
    /// "retry" answer into a permanent one.
    ///
    /// The changes are logged on the `audit` target once they are committed, and only
    /// then: a replay changed nothing and is not logged again.
    pub(crate) async fn write_once<T, W>(
        &self,
        ctx: &RequestContext,
        work: W,
    ) -> Result<T, ServiceError>
    where
        T: Serialize + DeserializeOwned + StateChanges,
        W: AsyncFnOnce(&OneBatch, &mut Batch) -> Result<T, ServiceError>,
    {
        self.write_once_after(
            ctx,
            async |scope| Ok(((), find_key(scope, ctx).await?)),
            async |scope, writes, ()| work(scope, writes).await,
        )
        .await
    }

    /// [`write_once`](Self::write_once), with a first read `prepare` in the same scope (a
    /// read whose failure must come first), whose result `work` takes. `prepare` also
    /// looks up the caller's key, in the same statement where it can ([`find_key`] where
    /// it cannot).
    pub(crate) async fn write_once_after<T, R, P, W>(
        &self,
        ctx: &RequestContext,
        prepare: P,
        work: W,
    ) -> Result<T, ServiceError>
    where
        T: Serialize + DeserializeOwned + StateChanges,
        P: AsyncFnOnce(&OneBatch) -> Result<(R, Earlier), ServiceError>,
        W: AsyncFnOnce(&OneBatch, &mut Batch, R) -> Result<T, ServiceError>,
    {
        let scope = OneBatch::begin(&self.db, &self.connections).await?;
        let (prepared, earlier) = prepare(&scope).await?;
        if let (Some(earlier), Some(key)) = (earlier, &ctx.idempotency) {
            return replay(earlier, key);
        }
        let mut writes = Batch::new(&scope);
        let written = async move {
            let outcome = work(&scope, &mut writes, prepared).await?;
            if let Some(key) = &ctx.idempotency {
                writes.push(&store_key(&ctx.principal.subject, key, &outcome, ctx.now)?);
            }
            let guard = writes.guard();
            scope.commit(writes).await.map_err(|err| match guard {
                Some(Guard { delivery, expected }) if is_contention(&err) => {
                    ServiceError::Conflict {
                        id: delivery,
                        expected,
                    }
                }
                _ => err.into(),
            })?;
            Ok(outcome)
        }
        .await;
        // The scope went with the batch: a failed one's connection is back in its pool (or
        // closed, if the batch was left midway).
        let outcome = match written {
            Ok(outcome) => outcome,
            Err(err) => return self.answered_meanwhile(ctx, err).await,
        };
        self.outbox_written.notify_one();
        for (delivery_id, from, to) in outcome.state_changes() {
            if from.is_none() {
                self.bookings_due.notify_one();
            }
            audit(ctx, delivery_id, from, to);
            self.refresh_cache(delivery_id).await;
        }
        Ok(outcome)
    }

    /// For a request that failed with `err`: the answer to the same key that a concurrent
    /// request committed meanwhile, if there is one; else `err`.
    async fn answered_meanwhile<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        err: ServiceError,
    ) -> Result<T, ServiceError> {
        let Some(key) = &ctx.idempotency else {
            return Err(err);
        };
        match find_key(&self.reads().await?, ctx).await? {
            Some(earlier) => replay(earlier, key),
            None => Err(err),
        }
    }

    /// Puts delivery `id` as committed into the cache, so that nobody reads the version
    /// before this write from it. Best effort: a failure leaves the entry to expire.
    async fn refresh_cache(&self, id: DeliveryId) {
        let Some(cache) = &self.cache else {
            return;
        };
        match self.view(id).await {
            Ok(Some(view)) => cache.store(&view).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, %id, "cannot refresh the cache"),
        }
    }

    /// Adds to `writes` a new delivery order, assigned to the default partner, with its
    /// creation event and its booking.
    fn open_delivery(
        &self,
        writes: &mut Batch,
        order: DeliveryOrder<Created>,
        creation: DeliveryEvent,
        ctx: &RequestContext,
    ) -> Result<(), DbErr> {
        let order = AnyDeliveryOrder::from(order);
        let snapshot = order.snapshot();
        let details = &snapshot.details;
        let shipment = delivery_order::Shipment {
            shipping_address: details.shipping_address.clone(),
            lines: details.lines.clone(),
        };
        let mut row = changed_columns(&snapshot, &creation)?;
        row.id = Set(snapshot.id.0);
        row.ordering_id = Set(details.ordering_id.to_string());
        row.customer_id = Set(details.customer_id.to_string());
        row.payment_id = Set(details.payment_id.to_string());
        row.partner_id = Set(Some(self.default_partner.clone()));
        row.replaces_delivery_id = Set(details.replaces.map(|replaced| replaced.0));
        row.details = Set(to_json(&shipment)?);
        row.created_at = Set(creation.occurred_at);
        let creation_time = creation.occurred_at;
        // The order before the rows that refer to it: SQLite runs a batch in order (PostgreSQL
        // checks the references at the end of the statement).
        writes.push(&delivery_order::Entity::insert(row));
        let stored = StoredEvent {
            event: creation,
            partner_id: Some(self.default_partner.clone()),
            request_id: Some(ctx.request_id.clone()),
        };
        let owners = Owners {
            ordering_id: &details.ordering_id,
            customer_id: &details.customer_id,
            partner_id: Some(&self.default_partner),
        };
        add_event(writes, &stored, &owners, &order, None)?;
        writes.push(&booking::Entity::insert(pending_booking(
            snapshot.id,
            &self.default_partner,
            creation_time,
        )));
        Ok(())
    }
}

/// The state changes a write's outcome reports: (delivery, from, to); `from` is `None`
/// for a new delivery order.
pub(crate) trait StateChanges {
    fn state_changes(
        &self,
    ) -> impl Iterator<Item = (DeliveryId, Option<DeliveryState>, DeliveryState)>;
}

impl StateChanges for PaymentOutcome {
    fn state_changes(
        &self,
    ) -> impl Iterator<Item = (DeliveryId, Option<DeliveryState>, DeliveryState)> {
        let created = match self {
            PaymentOutcome::Created { delivery_id } => Some(*delivery_id),
            PaymentOutcome::NothingToDeliver | PaymentOutcome::AlreadyHandled { .. } => None,
        };
        created
            .map(|id| (id, None, DeliveryState::Created))
            .into_iter()
    }
}

impl StateChanges for TransitionOutcome {
    fn state_changes(
        &self,
    ) -> impl Iterator<Item = (DeliveryId, Option<DeliveryState>, DeliveryState)> {
        let replacement = self
            .replacement_delivery_id
            .map(|id| (id, None, DeliveryState::Created));
        std::iter::once((self.delivery_id, Some(self.from), self.to)).chain(replacement)
    }
}

/// Logs a committed state change on the `audit` target: who, in which request, which
/// delivery, from what to what. (The event store keeps the same facts durably.)
fn audit(
    ctx: &RequestContext,
    delivery_id: DeliveryId,
    from: Option<DeliveryState>,
    to: DeliveryState,
) {
    tracing::info!(
        target: "audit",
        role = role_name(ctx.principal.role),
        subject = %ctx.principal.subject,
        request_id = %ctx.request_id,
        delivery_id = %delivery_id,
        from = from.map_or("-", DeliveryState::name),
        to = to.name(),
        idempotency_key = ctx.idempotency.as_ref().map(|key| key.key.as_str()),
        "delivery state changed"
    );
}

/// The columns of `delivery_order` an event changes: the state, its data, the version.
fn changed_columns(
    order: &DeliverySnapshot,
    event: &DeliveryEvent,
) -> Result<delivery_order::ActiveModel, DbErr> {
    let mut row = delivery_order::ActiveModel {
        state: Set(order.state.name().to_owned()),
        version: Set(to_db_seq(order.version)?),
        graph_version: Set(event.graph_version.to_string()),
        updated_at: Set(event.occurred_at),
        ..Default::default()
    };
    row.set_state_columns(StateColumns::from(&order.fields));
    Ok(row)
}

/// Saves the order a transition produced, as the first write of `writes`, if nobody
/// changed it since `loaded_version`: else the batch fails as contention (see
/// [`crate::db::is_contention`]), which [`Deliveries::write_once_after`] answers as a
/// conflict.
fn save_transition(
    writes: &mut Batch,
    order: &AnyDeliveryOrder,
    event: &DeliveryEvent,
    loaded_version: u64,
) -> Result<(), DbErr> {
    writes.push_guarded(
        &delivery_order::Entity::update_many()
            .set(changed_columns(&order.snapshot(), event)?)
            .filter(delivery_order::Column::Id.eq(order.id().0))
            .filter(delivery_order::Column::Version.eq(to_db_seq(loaded_version)?)),
        Guard {
            delivery: order.id(),
            expected: loaded_version,
        },
    )
}

/// Records an event that left the order as `order` (and opened `replacement`, a
/// REDELIVER's): appends it to the event store, queues its message in the outbox and
/// projects it into the read models, as writes of `writes`. The one way every event
/// (creation, transition, redelivery) is written.
fn add_event(
    writes: &mut Batch,
    stored: &StoredEvent,
    owners: &Owners<'_>,
    order: &AnyDeliveryOrder,
    replacement: Option<DeliveryId>,
) -> Result<(), DbErr> {
    writes.push(&delivery_event::Entity::insert(stored.to_row()?));
    writes.push(&outbox::Entity::insert(outbox_row(stored, owners)?));
    project_made(writes, stored, order, replacement)
}

/// Whose delivery an event is about: its message names them.
#[derive(Debug)]
struct Owners<'a> {
    ordering_id: &'a OrderingId,
    customer_id: &'a CustomerId,
    partner_id: Option<&'a str>,
}

/// The message announcing an event on the `delivery.events` exchange: DOMAIN.md's fields,
/// plus the delivery's customer and partner, so that a consumer (the live updates) can
/// tell whose it is without a lookup.
#[derive(Debug, Serialize)]
struct DeliveryMessage<'a> {
    event_id: Uuid,
    delivery_id: DeliveryId,
    ordering_id: &'a OrderingId,
    customer_id: &'a CustomerId,
    partner_id: Option<&'a str>,
    seq: u64,
    transition: &'static str,
    from: Option<DeliveryState>,
    to: DeliveryState,
    graph_version: GraphVersion,
    occurred_at: DateTime<Utc>,
    payload: Value,
}

fn outbox_row(stored: &StoredEvent, owners: &Owners<'_>) -> Result<outbox::ActiveModel, DbErr> {
    let event = &stored.event;
    let message = DeliveryMessage {
        event_id: Uuid::new_v4(),
        delivery_id: event.delivery_id,
        ordering_id: owners.ordering_id,
        customer_id: owners.customer_id,
        partner_id: owners.partner_id,
        seq: event.seq,
        transition: event.change.name(),
        from: event.from,
        to: event.to,
        graph_version: event.graph_version,
        occurred_at: event.occurred_at,
        payload: stored.payload()?,
    };
    Ok(outbox::ActiveModel {
        event_id: Set(message.event_id),
        delivery_id: Set(event.delivery_id.0),
        seq: Set(to_db_seq(event.seq)?),
        routing_key: Set(format!("delivery.{}", event.to.name().to_lowercase())),
        payload: Set(to_json(&message)?),
        created_at: Set(event.occurred_at),
        published_at: Set(None),
        ..Default::default()
    })
}

/// How far a partner's clock may be from ours when it says when it delivered.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// A delivery's `delivered_at` lies between the delivery order's creation and now, give
/// or take [`CLOCK_SKEW`]: a time outside it is a partner's error, not a fact to keep.
fn check_delivered_at(
    delivered_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    if delivered_at > now + CLOCK_SKEW {
        Err(ServiceError::Invalid(format!(
            "delivered_at {delivered_at} is in the future (now is {now})"
        )))
    } else if delivered_at < created_at - CLOCK_SKEW {
        Err(ServiceError::Invalid(format!(
            "delivered_at {delivered_at} is before the delivery order was created ({created_at})"
        )))
    } else {
        Ok(())
    }
}

/// The write that records the ordering the first time we hear of it. An ordering's
/// customer, payment and address do not change, so a later report of the same ordering
/// leaves the row as it is.
fn remember_ordering(
    details: &DeliveryDetails,
    now: DateTime<Utc>,
) -> Result<sea_orm::Insert<ordering::ActiveModel>, DbErr> {
    let row = ordering::ActiveModel {
        id: Set(details.ordering_id.to_string()),
        customer_id: Set(details.customer_id.to_string()),
        payment_id: Set(details.payment_id.to_string()),
        shipping_address: Set(to_json(&details.shipping_address)?),
        created_at: Set(now),
    };
    Ok(ordering::Entity::insert(row).on_conflict(
        OnConflict::column(ordering::Column::Id)
            .do_nothing()
            .to_owned(),
    ))
}

/// The inbox row of `message_id` for `consumer`, if a handling recorded it.
pub(crate) async fn find_message(
    db: &impl ConnectionTrait,
    consumer: &str,
    message_id: &str,
) -> Result<Option<inbox::Model>, DbErr> {
    inbox::Entity::find_by_id((consumer.to_owned(), message_id.to_owned()))
        .one(db)
        .await
}

/// [`find_message`] and the request that used the caller's `Idempotency-Key` before, in one
/// query: either may be missing, so both are joined to a table of one row.
async fn find_message_with_key(
    db: &impl ConnectionTrait,
    consumer: &str,
    message_id: &str,
    ctx: &RequestContext,
) -> Result<(Option<inbox::Model>, Earlier), DbErr> {
    let Some(key) = &ctx.idempotency else {
        return Ok((find_message(db, consumer, message_id).await?, None));
    };
    const MESSAGE: &str = "A_";
    const EARLIER: &str = "B_";
    let mut query = Query::select();
    query.from_subquery(
        Query::select().expr(Expr::val(1)).to_owned(),
        Alias::new("one"),
    );
    select_prefixed::<inbox::Entity>(&mut query, MESSAGE);
    select_prefixed::<idempotency_key::Entity>(&mut query, EARLIER);
    query
        .left_join(
            inbox::Entity,
            Condition::all()
                .add(inbox::Column::Consumer.eq(consumer))
                .add(inbox::Column::MessageId.eq(message_id)),
        )
        .left_join(idempotency_key::Entity, earlier_request(ctx, key));
    let row = db
        .query_one(db.get_database_backend().build(&query))
        .await?
        .ok_or_else(|| DbErr::Custom("a join to a table of one row answered none".into()))?;
    // As in sea-orm's `select_also`: columns that do not make a row are none. (A stored
    // row that does not decode makes the batch fail on its key, and the lookup after that
    // reports it.)
    Ok((
        inbox::Model::from_query_result_optional(&row, MESSAGE)?,
        idempotency_key::Model::from_query_result_optional(&row, EARLIER)?,
    ))
}

/// The join condition that finds the request that used the caller's `key` before.
fn earlier_request(ctx: &RequestContext, key: &IdempotencyKey) -> Condition {
    Condition::all()
        .add(idempotency_key::Column::Subject.eq(ctx.principal.subject.as_str()))
        .add(idempotency_key::Column::Key.eq(key.key.as_str()))
}

/// Every column of `E`, each named with `prefix` before it.
fn select_prefixed<E: EntityTrait>(query: &mut SelectStatement, prefix: &str) {
    for column in E::Column::iter() {
        query.expr_as(
            Expr::col((E::default(), column)),
            Alias::new(format!("{prefix}{}", column.as_str())),
        );
    }
}

/// The write that records `message_id` as handled by `consumer`, with what handling it
/// did. A concurrent handling of the same message that records it first makes this
/// write, and its batch, fail on the inbox's key.
pub(crate) fn record_message(
    consumer: &str,
    message_id: &str,
    result: &impl Serialize,
    now: DateTime<Utc>,
) -> Result<sea_orm::Insert<inbox::ActiveModel>, DbErr> {
    Ok(inbox::Entity::insert(inbox::ActiveModel {
        consumer: Set(consumer.to_owned()),
        message_id: Set(message_id.to_owned()),
        handled_at: Set(now),
        result: Set(Some(to_json(result)?)),
    }))
}

/// How a payment event handled before is answered: with the delivery order its first
/// handling created, if any.
fn first_handling_of_payment(first: inbox::Model) -> Result<PaymentOutcome, ServiceError> {
    let result = first.result.ok_or_else(|| {
        corrupt(format!(
            "inbox {}: handled without a result",
            first.message_id
        ))
    })?;
    let delivery_id = match from_json("inbox.result", result)? {
        PaymentOutcome::Created { delivery_id } => Some(delivery_id),
        PaymentOutcome::NothingToDeliver | PaymentOutcome::AlreadyHandled { .. } => None,
    };
    Ok(PaymentOutcome::AlreadyHandled { delivery_id })
}

/// The request that used the caller's `Idempotency-Key` before, if any.
pub(crate) type Earlier = Option<idempotency_key::Model>;

/// The request that used the caller's key before, if the request has a key and it was.
async fn find_key(db: &impl ConnectionTrait, ctx: &RequestContext) -> Result<Earlier, DbErr> {
    let Some(key) = &ctx.idempotency else {
        return Ok(None);
    };
    idempotency_key::Entity::find_by_id((ctx.principal.subject.clone(), key.key.clone()))
        .one(db)
        .await
}

/// The write that stores the caller's `key` with the outcome to replay.
fn store_key(
    subject: &str,
    key: &IdempotencyKey,
    outcome: &impl Serialize,
    now: DateTime<Utc>,
) -> Result<sea_orm::Insert<idempotency_key::ActiveModel>, DbErr> {
    Ok(idempotency_key::Entity::insert(
        idempotency_key::ActiveModel {
            subject: Set(subject.to_owned()),
            key: Set(key.key.clone()),
            fingerprint: Set(key.fingerprint.clone()),
            response: Set(Some(to_json(outcome)?)),
            created_at: Set(now),
        },
    ))
}

/// The earlier request's outcome, if it was the same request.
fn replay<T: DeserializeOwned>(
    earlier: idempotency_key::Model,
    key: &IdempotencyKey,
) -> Result<T, ServiceError> {
    if earlier.fingerprint != key.fingerprint {
        return Err(ServiceError::IdempotencyKeyReused(key.key.clone()));
    }
    let response = earlier.response.ok_or_else(|| {
        corrupt(format!(
            "idempotency key {:?}: stored without a response",
            key.key
        ))
    })?;
    Ok(from_json("idempotency_key.response", response)?)
}

/// Delivery `id`'s order, if `scope` includes it; else [`ServiceError::NotFound`].
async fn find_in_scope(
    db: &impl ConnectionTrait,
    id: DeliveryId,
    scope: &Scope,
) -> Result<delivery_order::Model, ServiceError> {
    in_scope(
        delivery_order::Entity::find_by_id(id.0).one(db).await?,
        id,
        scope,
    )
}

/// [`find_in_scope`], and the request that used the caller's key before, in one query.
async fn find_in_scope_with_key(
    db: &impl ConnectionTrait,
    id: DeliveryId,
    scope: &Scope,
    ctx: &RequestContext,
) -> Result<(delivery_order::Model, Earlier), ServiceError> {
    let Some(key) = &ctx.idempotency else {
        return Ok((find_in_scope(db, id, scope).await?, None));
    };
    let mut select = delivery_order::Entity::find_by_id(id.0).select_also(idempotency_key::Entity);
    QueryTrait::query(&mut select).left_join(idempotency_key::Entity, earlier_request(ctx, key));
    let (row, earlier) = select.one(db).await?.unzip();
    Ok((in_scope(row, id, scope)?, earlier.flatten()))
}

fn in_scope(
    row: Option<delivery_order::Model>,
    id: DeliveryId,
    scope: &Scope,
) -> Result<delivery_order::Model, ServiceError> {
    row.filter(|row| scope.includes(&row.customer_id, row.partner_id.as_deref()))
        .ok_or(ServiceError::NotFound(id))
}

/// The caller, in `role`, now.
fn event_meta(role: Role, ctx: &RequestContext) -> Result<EventMeta, ServiceError> {
    let id = ActorId::parse(&ctx.principal.subject)
        .map_err(|err| ServiceError::Invalid(format!("the caller's subject: {err}")))?;
    Ok(EventMeta {
        actor: Actor { role, id },
        occurred_at: ctx.now,
    })
}

fn new_delivery_id() -> DeliveryId {
    DeliveryId(Uuid::new_v4())
}
