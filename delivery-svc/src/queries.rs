//! The read side: reads only the read models (`delivery_view`, `delivery_history`), which
//! the commands keep current in their own batches of writes (see [`crate::projection`]).
//!
//! Who sees what is enforced here, in the query itself: a customer only its own
//! deliveries, a partner only those assigned to it, operators, admins and services all of
//! them. A delivery someone may not see is [`ServiceError::NotFound`], exactly as one that
//! does not exist, so that its existence does not leak.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use delivery_core::{DeliveryId, DeliveryState, OrderingId};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Operation;
use crate::commands::Deliveries;
use crate::db::Reads;
use crate::domain::{
    DeliveryFilter, DeliveryView, HistoryEntry, Page, Principal, PrincipalRole, ServiceError,
};
use crate::entity::{delivery_history, delivery_view, from_db_seq, parse, parse_opt};

/// The largest page a list returns, whatever the caller asks for.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The states of the operators' exception queue.
pub(crate) const QUEUE_STATES: [DeliveryState; 2] = [
    DeliveryState::DeliveryFailed,
    DeliveryState::PendingByOperator,
];

/// Which deliveries a principal may see (and, with a graph role, act on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    Customer(String),
    Partner(String),
    /// A customer or partner token that does not say which one.
    Nothing,
}

impl Scope {
    pub(crate) fn of(principal: &Principal) -> Scope {
        match principal.role {
            PrincipalRole::Customer => principal
                .customer_id
                .as_ref()
                .map_or(Scope::Nothing, |customer_id| {
                    Scope::Customer(customer_id.to_string())
                }),
            PrincipalRole::Partner => principal
                .partner_id
                .clone()
                .map_or(Scope::Nothing, Scope::Partner),
            PrincipalRole::Operator | PrincipalRole::Admin | PrincipalRole::Service => Scope::All,
        }
    }

    /// Whether a delivery of `customer_id`, assigned to `partner_id`, is in scope.
    pub(crate) fn includes(&self, customer_id: &str, partner_id: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Customer(own) => own == customer_id,
            Scope::Partner(own) => Some(own.as_str()) == partner_id,
            Scope::Nothing => false,
        }
    }

    /// The same rule as a condition on `delivery_view`.
    fn condition(&self) -> Condition {
        match self {
            Scope::All => Condition::all(),
            Scope::Customer(own) => {
                Condition::all().add(delivery_view::Column::CustomerId.eq(own.as_str()))
            }
            Scope::Partner(own) => {
                Condition::all().add(delivery_view::Column::PartnerId.eq(own.as_str()))
            }
            Scope::Nothing => Condition::all().add(Expr::value(false)),
        }
    }
}

impl Deliveries {
    /// What a query runs on (see [`Reads`]).
    pub(crate) async fn reads(&self) -> Result<Reads, DbErr> {
        Reads::begin(self.db(), self.read_connections()).await
    }

    /// One delivery, if the caller may see it.
    pub async fn delivery(
        &self,
        id: DeliveryId,
        principal: &Principal,
    ) -> Result<DeliveryView, ServiceError> {
        let scope = Scope::of(principal);
        let visible = |view: &DeliveryView| {
            scope.includes(view.customer_id.as_str(), view.partner_id.as_deref())
        };
        if let Some(cache) = self.cache()
            && let Some(view) = cache.get(id).await
        {
            return Some(view).filter(visible).ok_or(ServiceError::NotFound(id));
        }
        let view = self.view(id).await?;
        if let (Some(cache), Some(view)) = (self.cache(), &view) {
            cache.store(view).await;
        }
        view.filter(visible).ok_or(ServiceError::NotFound(id))
    }

    /// Delivery `id` as the read model has it, whoever asks.
    pub(crate) async fn view(&self, id: DeliveryId) -> Result<Option<DeliveryView>, DbErr> {
        delivery_view::Entity::find_by_id(id.0)
            .one(&self.reads().await?)
            .await?
            .map(to_view)
            .transpose()
    }

    /// The deliveries matching `filter` that the caller may see, newest first. A customer's
    /// or partner's own scope is added to the filter, so naming someone else's customer or
    /// partner id finds nothing. `limit` is clamped to 1..=[`MAX_PAGE_SIZE`]; `cursor` is
    /// the `next_cursor` of the previous page.
    pub async fn deliveries(
        &self,
        filter: DeliveryFilter,
        cursor: Option<String>,
        limit: u64,
        principal: &Principal,
    ) -> Result<Page<DeliveryView>, ServiceError> {
        let condition = filter_condition(&filter).add(Scope::of(principal).condition());
        self.page(condition, Keyset::NEWEST_FIRST, cursor, limit)
            .await
    }

    /// Every delivery order of an ordering the caller may see, in the order they were
    /// created (a redelivery after the order it replaces).
    pub async fn ordering_deliveries(
        &self,
        ordering_id: &OrderingId,
        principal: &Principal,
    ) -> Result<Vec<DeliveryView>, ServiceError> {
        let rows = delivery_view::Entity::find()
            .filter(delivery_view::Column::OrderingId.eq(ordering_id.as_str()))
            .filter(Scope::of(principal).condition())
            .order_by_asc(delivery_view::Column::CreatedAt)
            .order_by_asc(delivery_view::Column::Id)
            .all(&self.reads().await?)
            .await?;
        Ok(rows.into_iter().map(to_view).collect::<Result<_, _>>()?)
    }

    /// A delivery's audit trail, oldest first, if the caller may see the delivery.
    pub async fn history(
        &self,
        id: DeliveryId,
        principal: &Principal,
    ) -> Result<Vec<HistoryEntry>, ServiceError> {
        self.delivery(id, principal).await?;
        let rows = delivery_history::Entity::find()
            .filter(delivery_history::Column::DeliveryId.eq(id.0))
            .order_by_asc(delivery_history::Column::Seq)
            .all(&self.reads().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(to_history_entry)
            .collect::<Result<_, _>>()?)
    }

    /// The operators' exception queue: failed deliveries and those pending with an
    /// operator, the longest waiting first. For operators and admins only.
    pub async fn operator_queue(
        &self,
        cursor: Option<String>,
        limit: u64,
        principal: &Principal,
    ) -> Result<Page<DeliveryView>, ServiceError> {
        if !Operation::ReadOperatorQueue.allows(principal.role) {
            return Err(ServiceError::Forbidden(
                "the exception queue is for operators".into(),
            ));
        }
        self.page(
            queue_condition(),
            Keyset::LONGEST_WAITING_FIRST,
            cursor,
            limit,
        )
        .await
    }

    /// One page of the view rows matching `condition`, in `keyset` order.
    async fn page(
        &self,
        condition: Condition,
        keyset: Keyset,
        cursor: Option<String>,
        limit: u64,
    ) -> Result<Page<DeliveryView>, ServiceError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let cursor = cursor
            .map(|cursor| PageCursor::decode(&cursor))
            .transpose()?;
        let mut rows = page_query(condition, keyset, cursor.as_ref(), limit)
            .all(&self.reads().await?)
            .await?;
        let has_more = rows.len() as u64 > limit;
        rows.truncate(rows.len().min(limit as usize));
        let next_cursor = match rows.last() {
            Some(last) if has_more => Some(keyset.cursor_at(last).encode()?),
            _ => None,
        };
        let items = rows.into_iter().map(to_view).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// The view rows matching `condition` after `cursor` in `keyset` order: one more than a
/// page of `limit`, which tells whether there is a next page.
fn page_query(
    condition: Condition,
    keyset: Keyset,
    cursor: Option<&PageCursor>,
    limit: u64,
) -> Select<delivery_view::Entity> {
    let mut query = delivery_view::Entity::find().filter(condition);
    if let Some(cursor) = cursor {
        query = query.filter(keyset.after(cursor));
    }
    query
        .order_by(keyset.column, keyset.order())
        .order_by(delivery_view::Column::Id, keyset.order())
        .limit(limit + 1)
}

/// The deliveries in the operators' queue, written as the partial index
/// `ix_delivery_view_queue` is (a literal list of states, not bound values): a database
/// reads a partial index only for a condition it can see implies the index's.
fn queue_condition() -> Condition {
    let states = QUEUE_STATES.map(|state| format!("'{}'", state.name()));
    Condition::all().add(Expr::cust(format!("state IN ({})", states.join(", "))))
}

/// The caller's filters, combined with AND.
fn filter_condition(filter: &DeliveryFilter) -> Condition {
    use delivery_view::Column;
    let mut condition = Condition::all();
    if let Some(state) = filter.state {
        condition = condition.add(Column::State.eq(state.name()));
    }
    if let Some(ordering_id) = &filter.ordering_id {
        condition = condition.add(Column::OrderingId.eq(ordering_id.as_str()));
    }
    if let Some(customer_id) = &filter.customer_id {
        condition = condition.add(Column::CustomerId.eq(customer_id.as_str()));
    }
    if let Some(partner_id) = &filter.partner_id {
        condition = condition.add(Column::PartnerId.eq(partner_id.as_str()));
    }
    condition
}

/// A stable order of view rows for keyset pagination: a timestamp column, then the id to
/// break ties.
#[derive(Debug, Clone, Copy)]
struct Keyset {
    column: delivery_view::Column,
    /// The value of `column` in a row.
    value: fn(&delivery_view::Model) -> DateTime<Utc>,
    descending: bool,
}

impl Keyset {
    const NEWEST_FIRST: Keyset = Keyset {
        column: delivery_view::Column::CreatedAt,
        value: |row| row.created_at,
        descending: true,
    };
    const LONGEST_WAITING_FIRST: Keyset = Keyset {
        column: delivery_view::Column::UpdatedAt,
        value: |row| row.updated_at,
        descending: false,
    };

    fn order(self) -> Order {
        if self.descending {
            Order::Desc
        } else {
            Order::Asc
        }
    }

    /// The rows that come after `cursor` in this order.
    fn after(self, cursor: &PageCursor) -> Condition {
        let id = delivery_view::Column::Id;
        let (later, later_id) = if self.descending {
            (self.column.lt(cursor.at), id.lt(cursor.id))
        } else {
            (self.column.gt(cursor.at), id.gt(cursor.id))
        };
        Condition::any().add(later).add(
            Condition::all()
                .add(self.column.eq(cursor.at))
                .add(later_id),
        )
    }

    fn cursor_at(self, row: &delivery_view::Model) -> PageCursor {
        PageCursor {
            at: (self.value)(row),
            id: row.id,
        }
    }
}

/// Where a page ended. Opaque to clients: base64url of its JSON.
#[derive(Debug, Serialize, Deserialize)]
struct PageCursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl PageCursor {
    fn encode(&self) -> Result<String, ServiceError> {
        let json = serde_json::to_vec(self)
            .map_err(|err| DbErr::Custom(format!("cannot encode a cursor: {err}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(cursor: &str) -> Result<Self, ServiceError> {
        let invalid = || {
            ServiceError::Invalid(
                "not a cursor: pass a page's `next_cursor` as it was given".into(),
            )
        };
        let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

fn to_view(row: delivery_view::Model) -> Result<DeliveryView, DbErr> {
    let details = row.details()?;
    Ok(DeliveryView {
        id: DeliveryId(row.id),
        ordering_id: details.ordering_id,
        customer_id: details.customer_id,
        payment_id: details.payment_id,
        state: parse("state", &row.state)?,
        version: from_db_seq("version", row.version)?,
        partner_id: row.partner_id,
        partner_order_number: row.partner_order_number,
        failure_reason: parse_opt("failure_reason", row.failure_reason.as_deref())?,
        failure_detail: row.failure_detail,
        assignee: row.assignee,
        resolution: parse_opt("resolution", row.resolution.as_deref())?,
        note: row.note,
        delivered_at: row.delivered_at,
        replaces_delivery_id: row.replaces_delivery_id.map(DeliveryId),
        replaced_by_delivery_id: row.replaced_by_delivery_id.map(DeliveryId),
        shipping_address: details.shipping_address,
        lines: details.lines.into(),
        graph_version: row.graph_version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn to_history_entry(row: delivery_history::Model) -> Result<HistoryEntry, DbErr> {
    Ok(HistoryEntry {
        seq: from_db_seq("seq", row.seq)?,
        transition: row.transition,
        from: parse_opt("from_state", row.from_state.as_deref())?,
        to: parse("to_state", &row.to_state)?,
        actor_role: row.actor_role,
        actor_id: row.actor_id,
        request_id: row.request_id,
        graph_version: row.graph_version,
        occurred_at: row.occurred_at,
        data: row.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_databases::on_every_database;
    use crate::db::{connect, migrate};
    use sea_orm::{
        ConnectionTrait, DatabaseBackend, DatabaseConnection, QueryTrait, TransactionTrait,
    };
    use std::num::NonZeroU32;

    /// The database's plan for `query`, one line per step. PostgreSQL is kept off
    /// sequential scans, which an empty table would otherwise get whatever its indexes,
    /// and plans as for any execution of a prepared statement, without the bound values.
    async fn plan(db: &DatabaseConnection, query: Select<delivery_view::Entity>) -> String {
        let backend = db.get_database_backend();
        let (explain, column) = match backend {
            DatabaseBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
            _ => ("EXPLAIN QUERY PLAN", "detail"),
        };
        let txn = db.begin().await.expect("begin");
        if backend == DatabaseBackend::Postgres {
            txn.execute_unprepared(
                "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan",
            )
            .await
            .expect("set");
        }
        let mut explained = query.build(backend);
        explained.sql = format!("{explain} {}", explained.sql);
        let rows = txn.query_all(explained).await.expect("explain");
        rows.iter()
            .map(|row| row.try_get::<String>("", column).expect("a plan line"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn the_operators_queue_is_read_from_its_partial_index_page_after_page() {
        on_every_database("queue_plan", async |url| {
            let db = connect(&url, NonZeroU32::MIN).await.expect("connect");
            migrate(&db).await.expect("migrate");
            let cursor = PageCursor {
                at: Utc::now(),
                id: Uuid::new_v4(),
            };
            for cursor in [None, Some(&cursor)] {
                let query = page_query(
                    queue_condition(),
                    Keyset::LONGEST_WAITING_FIRST,
                    cursor,
                    MAX_PAGE_SIZE,
                );
                let plan = plan(&db, query).await;
                assert!(plan.contains("ix_delivery_view_queue"), "{plan}");
            }
        })
        .await;
    }

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_invalid() {
        let cursor = PageCursor {
            at: Utc::now(),
            id: Uuid::new_v4(),
        };
        let decoded = PageCursor::decode(&cursor.encode().unwrap()).unwrap();
        assert_eq!((decoded.at, decoded.id), (cursor.at, cursor.id));
        assert!(matches!(
            PageCursor::decode("not a cursor"),
            Err(ServiceError::Invalid(_))
        ));
    }
}
