//! The database connection: SQLite (the default, a file) or PostgreSQL, chosen by the URL;
//! the schema migrations; and the readiness check.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use delivery_core::DeliveryId;
use migrations::{Migrator, MigratorTrait};
use sea_orm::prelude::async_trait::async_trait;
use sea_orm::sea_query::{LockBehavior, LockType, Values};
use sea_orm::sqlx::error::DatabaseError;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sea_orm::sqlx::query::Query;
use sea_orm::sqlx::sqlite::{SqliteError, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, ExecResult, QueryResult, QuerySelect, QueryTrait, RuntimeErr,
    SqlxPostgresConnector, Statement, TransactionTrait,
};
use sea_query_binder::SqlxValues;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::messaging::workers::Backoff;

/// How long a SQLite connection waits for another connection's write lock before it gives
/// up with `database is locked`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool of `size` connections for `url`: `sqlite://path?mode=rwc` or
/// `postgres://…`, with one connection open at once, so that a database that cannot be
/// reached fails here. SQLite has one writer at a time whatever the pool size; more
/// connections serve concurrent readers (WAL lets them read while one writes).
///
/// SQLite connections are set up by sqlx as each one opens (pragmas are per connection):
/// WAL journal (readers do not block the writer), a busy timeout, foreign keys enforced,
/// and `synchronous = NORMAL`, which is durable at every checkpoint and safe with WAL.
pub async fn connect(url: &str, size: NonZeroU32) -> Result<DatabaseConnection, DbErr> {
    open(url, size, Opening::Now).await
}

/// [`connect`], opening no connection until one is used: for a pool a process may never
/// use, like the workers' pool of an API-only process.
pub async fn connect_on_first_use(
    url: &str,
    size: NonZeroU32,
) -> Result<DatabaseConnection, DbErr> {
    open(url, size, Opening::OnFirstUse).await
}

/// When a pool opens its first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Now,
    OnFirstUse,
}

impl Opening {
    /// The connections the pool keeps open: one, or none until used (sqlx would open the
    /// minimum at once even for a lazy pool).
    fn min_connections(self) -> u32 {
        match self {
            Opening::Now => 1,
            Opening::OnFirstUse => 0,
        }
    }
}

async fn open(url: &str, size: NonZeroU32, opening: Opening) -> Result<DatabaseConnection, DbErr> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return connect_postgres(url, size, opening).await;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(size.get())
        .min_connections(opening.min_connections())
        .connect_lazy(opening == Opening::OnFirstUse)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sea-orm logs every statement itself, at debug level through `tracing`.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    Database::connect(options).await
}

/// How long a request waits for a pooled connection before it is answered busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled PostgreSQL connection used within this long is taken as alive; one idle
/// longer is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// The PostgreSQL pool, built with sqlx because sea-orm's options can only ping a
/// connection at every acquire or never. Every acquire was one more round trip per
/// command. sqlx pings a connection as it goes back to the pool anyway, so one idle under
/// a second was checked under a second ago; one that has died since fails its statement
/// as a lost connection ([`is_transient`]), which is answered busy and retried.
async fn connect_postgres(
    url: &str,
    size: NonZeroU32,
    opening: Opening,
) -> Result<DatabaseConnection, DbErr> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|err| DbErr::Conn(RuntimeErr::SqlxError(err)))?;
    let pool = PgPoolOptions::new()
        .max_connections(size.get())
        .min_connections(opening.min_connections())
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        });
    let options = options.disable_statement_logging();
    let pool = match opening {
        Opening::Now => pool
            .connect_with(options)
            .await
            .map_err(|err| DbErr::Conn(RuntimeErr::SqlxError(err)))?,
        Opening::OnFirstUse => pool.connect_lazy_with(options),
    };
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Ready to serve: the database answers and its schema is the one this build expects.
pub async fn readiness(db: &DatabaseConnection) -> Result<(), String> {
    db.ping()
        .await
        .map_err(|err| format!("database unreachable: {err}"))?;
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|err| format!("cannot read the migration status: {err}"))?;
    if pending.is_empty() {
        Ok(())
    } else {
        let names: Vec<_> = pending
            .iter()
            .map(|migration| migration.name().to_owned())
            .collect();
        Err(format!(
            "{} pending migration(s): {}",
            names.len(),
            names.join(", ")
        ))
    }
}

/// Begins a transaction that is going to write.
///
/// SQLite has one writer at a time, and a transaction that has read and then tries to
/// write fails at once with "database is locked" if another one committed in between. So
/// on SQLite this takes the write lock before anything else, as `BEGIN IMMEDIATE` would
/// (sea-orm only begins DEFERRED): concurrent writers queue for up to the busy timeout
/// instead of failing. PostgreSQL locks rows, not the database, and needs nothing.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // A write statement takes the write lock even when it changes nothing.
        txn.execute_unprepared("UPDATE delivery_order SET version = version WHERE 0 = 1")
            .await?;
    }
    Ok(txn)
}

/// What a command's reads and its one [`Batch`] of writes run on (ADR 0009), from
/// [`OneBatch::begin`] to [`OneBatch::commit`], which runs the batch. Through the scope
/// itself a command can only read: a write there is refused (sea-orm's own writes
/// included), so nothing a command writes through it escapes its batch. On PostgreSQL the
/// batch commits as it runs; on SQLite nothing is written until the transaction commits
/// after it.
///
/// On PostgreSQL, one pooled connection outside a transaction: the batch is one
/// statement, atomic by itself, and the reads before it need no transaction, because the
/// batch's guards check what they read (a version, a key that must still be free). That
/// saves the `BEGIN` and `COMMIT` round trips. The connection, one of the
/// [`RequestConnections`], is held from the first read to the batch, so a command waits
/// for a connection once. On SQLite, a write transaction ([`begin_write`]), whose lock must
/// come before the reads.
#[derive(Debug)]
pub(crate) struct OneBatch(Held);

/// What a [`OneBatch`] holds, and runs its batch on; or what [`Reads`] run on.
#[derive(Debug)]
enum Held {
    Statement(Mutex<Lease>),
    Transaction(DatabaseTransaction),
    /// For [`Reads`] on SQLite only: never a batch's.
    Pool(DatabaseConnection),
}

/// What a write through a [`OneBatch`] (not through its batch) is refused with.
const WRITE_OUTSIDE_THE_BATCH: &str = "a command writes only through its batch";

impl OneBatch {
    /// A scope on `db`, with a connection of `connections` on PostgreSQL.
    pub(crate) async fn begin(
        db: &DatabaseConnection,
        connections: &RequestConnections,
    ) -> Result<Self, DbErr> {
        Ok(OneBatch(connections.hold_for_writes(db).await?))
    }

    /// Runs `writes` and commits: the one way a command's changes are written.
    pub(crate) async fn commit(self, writes: Batch) -> Result<(), DbErr> {
        writes.run(&self.0).await?;
        match self.0 {
            Held::Transaction(txn) => txn.commit().await,
            Held::Statement(_) | Held::Pool(_) => Ok(()),
        }
    }
}

/// `ConnectionTrait` for a scope through which only reads go, run by the scope's `.0`; a
/// write is refused with `$refusal`. sea-orm sends an insert, update or delete that returns
/// rows as a query where the backend supports `RETURNING`; without it, every write comes to
/// `execute`, and one that must return rows is not sent at all (sea-orm panics).
macro_rules! reads_only {
    ($scope:ty, $refusal:expr) => {
        #[async_trait]
        impl ConnectionTrait for $scope {
            fn get_database_backend(&self) -> DatabaseBackend {
                self.0.get_database_backend()
            }

            fn support_returning(&self) -> bool {
                false
            }

            async fn execute(&self, _: Statement) -> Result<ExecResult, DbErr> {
                Err(DbErr::Custom($refusal.into()))
            }

            async fn execute_unprepared(&self, _: &str) -> Result<ExecResult, DbErr> {
                Err(DbErr::Custom($refusal.into()))
            }

            async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.0.query_one(stmt).await
            }

            async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.0.query_all(stmt).await
            }
        }
    };
}

reads_only!(OneBatch, WRITE_OUTSIDE_THE_BATCH);

/// PostgreSQL connections for requests: one such pool for commands ([`OneBatch`]), one
/// for queries ([`Reads`]), each beside sea-orm's and as large as the pool it is made for,
/// which the rest keeps (readiness, a rebuild; the background work has a pool of its own).
/// sqlx pings a connection every time it goes back to its pool (sqlx 0.8 cannot be told
/// not to), one more round trip for every request, which cost 2.6 % of the service's and
/// PostgreSQL's CPU in the load generator (docs/benchmarks.md). Here a connection goes
/// back without a word when every statement run on it was answered (with rows or with an
/// error); one left mid-statement (its request cancelled) or broken is closed instead, so
/// that nothing half-read is handed on. One idle for [`PING_WHEN_IDLE_FOR`] or longer is
/// pinged before use, one idle for [`IDLE_TIMEOUT`] closed, as sea-orm's pool does.
#[derive(Debug, Clone)]
pub(crate) struct RequestConnections(Option<Arc<RequestPool>>);

impl RequestConnections {
    /// For `db`'s database, as many as its pool may open. None on SQLite, where a command
    /// runs in a transaction of `db`'s own ([`begin_write`]) and a query on its pool, nor
    /// without a database.
    pub(crate) fn of(db: &DatabaseConnection) -> Self {
        let DatabaseConnection::SqlxPostgresPoolConnection(_) = db else {
            return RequestConnections(None);
        };
        let pool = db.get_postgres_connection_pool();
        let size = pool.options().get_max_connections() as usize;
        RequestConnections(Some(Arc::new(RequestPool {
            made_for: pool.clone(),
            options: pool.connect_options().as_ref().clone(),
            permits: Arc::new(Semaphore::new(size)),
            idle: std::sync::Mutex::default(),
        })))
    }

    /// One of these connections on PostgreSQL, else what `otherwise` holds.
    async fn hold(
        &self,
        otherwise: impl AsyncFnOnce() -> Result<Held, DbErr>,
    ) -> Result<Held, DbErr> {
        match &self.0 {
            Some(pool) => Ok(Held::Statement(Mutex::new(pool.lease().await?))),
            None => otherwise().await,
        }
    }

    /// One of these connections on PostgreSQL, else a write transaction on `db`
    /// ([`begin_write`]): what a command or a claim writes through.
    async fn hold_for_writes(&self, db: &DatabaseConnection) -> Result<Held, DbErr> {
        self.hold(async || Ok(Held::Transaction(begin_write(db).await?)))
            .await
    }
}

#[derive(Debug)]
struct RequestPool {
    /// sea-orm's pool: once it is closed, so is this one.
    made_for: PgPool,
    options: PgConnectOptions,
    /// One per connection in use: a lease takes an idle connection before it opens one,
    /// so there are never more connections than permits.
    permits: Arc<Semaphore>,
    /// The connections not in use, the most recently used last.
    idle: std::sync::Mutex<Vec<(PgConnection, Instant)>>,
}

/// A connection idle this long is closed rather than kept, as sqlx's pools do by default.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

impl RequestPool {
    /// A connection: the most recently used idle one, or a new one; within
    /// [`ACQUIRE_TIMEOUT`] all told, as sea-orm's pool, else busy (a transient error).
    /// Refused once sea-orm's pool is closed (the service stopping), as by that pool.
    async fn lease(self: &Arc<Self>) -> Result<Lease, DbErr> {
        if self.made_for.is_closed() {
            self.idle.lock().expect("never poisoned").clear();
            return Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed));
        }
        tokio::time::timeout(ACQUIRE_TIMEOUT, async {
            let permit = self.permits.clone().acquire_owned().await;
            let permit =
                permit.map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed))?;
            Ok(Lease {
                connection: Some(self.connection().await),
                reusable: true,
                in_transaction: false,
                pool: self.clone(),
                _permit: permit,
            })
        })
        .await
        .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?
    }

    /// An idle connection that answers, or else a new one, trying again until it opens
    /// (the caller's timeout ends the wait: a database restarting, or out of connections).
    async fn connection(&self) -> PgConnection {
        let kept = {
            let mut idle = self.idle.lock().expect("never poisoned");
            idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
            idle.pop()
        };
        if let Some((mut connection, since)) = kept
            && (since.elapsed() < PING_WHEN_IDLE_FOR || connection.ping().await.is_ok())
        {
            return connection;
        }
        let mut backoff = Backoff::default();
        loop {
            match self.options.connect().await {
                Ok(connection) => return connection,
                Err(err) => {
                    tracing::warn!(error = %err, "no new PostgreSQL connection for a request");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// A connection of a [`RequestPool`] in use: back to the pool when dropped, if reusable.
#[derive(Debug)]
struct Lease {
    connection: Option<PgConnection>,
    /// Every statement run on the connection was answered.
    reusable: bool,
    /// Between a [`Claim`]'s `BEGIN` and its `COMMIT`: not to be handed on.
    in_transaction: bool,
    pool: Arc<RequestPool>,
    /// Released after the connection is back (fields drop after [`Drop::drop`]), so that
    /// the pool never holds more connections than permits.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Runs `statement` on the connection. An answer, an error the database sent
    /// included, leaves it reusable (sqlx reads what is left of an answer before the next
    /// statement); a statement abandoned midway or a broken connection does not, ever again.
    async fn run<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sea_orm::sqlx::Error>,
    ) -> Result<T, sea_orm::sqlx::Error> {
        let connection = self.connection.as_mut().expect("held until dropped");
        let reusable = std::mem::replace(&mut self.reusable, false);
        let result = statement(connection).await;
        self.reusable =
            reusable && matches!(&result, Ok(_) | Err(sea_orm::sqlx::Error::Database(_)));
        result
    }

    async fn execute(&mut self, mut stmt: Statement) -> Result<ExecResult, DbErr> {
        self.run(async |connection| bound(&mut stmt).execute(connection).await)
            .await
            .map(ExecResult::from)
            .map_err(|err| DbErr::Exec(RuntimeErr::SqlxError(err)))
    }

    async fn query_one(&mut self, mut stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.run(async |connection| bound(&mut stmt).fetch_optional(connection).await)
            .await
            .map(|row| row.map(QueryResult::from))
            .map_err(|err| DbErr::Query(RuntimeErr::SqlxError(err)))
    }

    async fn query_all(&mut self, mut stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.run(async |connection| bound(&mut stmt).fetch_all(connection).await)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(|err| DbErr::Query(RuntimeErr::SqlxError(err)))
    }

    /// Begins a transaction; until [`Lease::commit`] the connection is closed, not handed
    /// on, when the lease ends (closing it rolls the transaction back).
    async fn begin(&mut self) -> Result<(), DbErr> {
        self.in_transaction = true;
        self.execute(Statement::from_string(DatabaseBackend::Postgres, "BEGIN"))
            .await
            .map(drop)
    }

    /// Ends the transaction: committed, or rolled back by the server if a statement of it
    /// failed. A `COMMIT` that fails leaves the connection not reusable, even for an error
    /// the database sent: that may be the last word of a session it ended (an idle
    /// transaction timed out, a backend terminated) while the claim waited for a broker.
    async fn commit(&mut self) -> Result<(), DbErr> {
        let committed = self
            .execute(Statement::from_string(DatabaseBackend::Postgres, "COMMIT"))
            .await
            .map(drop);
        self.reusable &= committed.is_ok();
        self.in_transaction = false;
        committed
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let reusable = self.reusable && !self.in_transaction && !self.pool.made_for.is_closed();
        let Some(connection) = self.connection.take().filter(|_| reusable) else {
            return;
        };
        // Those idle too long are closed as the next lease looks.
        let mut idle = self.pool.idle.lock().expect("never poisoned");
        idle.push((connection, Instant::now()));
    }
}

/// sea-orm's statement as sqlx runs it, its values (moved out, not copied) bound as
/// sea-orm binds them.
fn bound(stmt: &mut Statement) -> Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.take().unwrap_or(Values(Vec::new()));
    sea_orm::sqlx::query_with(&stmt.sql, SqlxValues(values))
}

#[async_trait]
impl ConnectionTrait for Held {
    fn get_database_backend(&self) -> DatabaseBackend {
        match self {
            Held::Statement(_) => DatabaseBackend::Postgres,
            Held::Transaction(txn) => txn.get_database_backend(),
            Held::Pool(db) => db.get_database_backend(),
        }
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Held::Statement(lease) => lease.lock().await.execute(stmt).await,
            Held::Transaction(txn) => txn.execute(stmt).await,
            Held::Pool(db) => db.execute(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            // One statement, prepared like any other.
            Held::Statement(_) => {
                self.execute(Statement::from_string(DatabaseBackend::Postgres, sql))
                    .await
            }
            Held::Transaction(txn) => txn.execute_unprepared(sql).await,
            Held::Pool(db) => db.execute_unprepared(sql).await,
        }
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Held::Statement(lease) => lease.lock().await.query_one(stmt).await,
            Held::Transaction(txn) => txn.query_one(stmt).await,
            Held::Pool(db) => db.query_one(stmt).await,
        }
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Held::Statement(lease) => lease.lock().await.query_all(stmt).await,
            Held::Transaction(txn) => txn.query_all(stmt).await,
            Held::Pool(db) => db.query_all(stmt).await,
        }
    }
}

/// What a query of the read models runs on: on PostgreSQL one of the
/// [`RequestConnections`] for queries, as a command runs on those for commands (no ping as
/// it goes back, the most recently used first); on SQLite the pool, whose readers do not
/// wait for its writer (WAL). Read-only: a write through it is refused.
#[derive(Debug)]
pub(crate) struct Reads(Held);

/// What a write through [`Reads`] is refused with.
const WRITE_THROUGH_READS: &str = "a query only reads";

impl Reads {
    /// A connection of `connections` on PostgreSQL, else `db`'s pool.
    pub(crate) async fn begin(
        db: &DatabaseConnection,
        connections: &RequestConnections,
    ) -> Result<Self, DbErr> {
        Ok(Reads(
            connections
                .hold(async || Ok(Held::Pool(db.clone())))
                .await?,
        ))
    }
}

reads_only!(Reads, WRITE_THROUGH_READS);

/// A transaction in which a worker claims rows ([`skip_locked`]) and writes what it did
/// with them. On PostgreSQL, one of the [`RequestConnections`] between `BEGIN` and
/// `COMMIT`, so that, as for a command, no ping follows as the connection goes back; one
/// dropped uncommitted (an error, a round cut off) is closed, which rolls it back, and
/// never handed on mid-transaction. On SQLite, a write transaction ([`begin_write`]).
#[derive(Debug)]
pub(crate) struct Claim(Held);

impl Claim {
    /// A transaction on `db`, on a connection of `connections` on PostgreSQL.
    pub(crate) async fn begin(
        db: &DatabaseConnection,
        connections: &RequestConnections,
    ) -> Result<Self, DbErr> {
        let mut held = connections.hold_for_writes(db).await?;
        if let Held::Statement(lease) = &mut held {
            lease.get_mut().begin().await?;
        }
        Ok(Claim(held))
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        match self.0 {
            Held::Statement(lease) => lease.into_inner().commit().await,
            Held::Transaction(txn) => txn.commit().await,
            Held::Pool(_) => Ok(()),
        }
    }
}

#[async_trait]
impl ConnectionTrait for Claim {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.0.get_database_backend()
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.0.execute(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.0.execute_unprepared(sql).await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.0.query_one(stmt).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.0.query_all(stmt).await
    }
}

/// Whether the database refused a statement because a concurrent transaction holds or
/// changed what it needs, so the same request may succeed if retried: SQLite's busy and
/// locked (another connection writes, or wrote since this transaction read), PostgreSQL's
/// serialization failure and deadlock; and a write that lost a race for a delivery's
/// version: a guarded write of a [`Batch`] that found its row changed, or a second
/// event with the same (delivery, seq), which only a transaction that read the same
/// version as a concurrent one writes.
pub(crate) fn is_contention(err: &DbErr) -> bool {
    if matches!(err, DbErr::RecordNotUpdated) {
        return true;
    }
    let Some(db_err) = database_error(err) else {
        return false;
    };
    let Some(code) = db_err.code() else {
        return false;
    };
    if db_err.try_downcast_ref::<SqliteError>().is_some() {
        // Extended result codes: the primary code is the low byte.
        const SQLITE_BUSY: i32 = 5;
        const SQLITE_LOCKED: i32 = 6;
        code.parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
    } else {
        matches!(&*code, "40001" | "40P01")
            || (code == UNIQUE_VIOLATION
                && db_err
                    .constraint()
                    .is_some_and(|key| DELIVERY_SEQ_KEYS.contains(&key)))
    }
}

/// PostgreSQL's SQLSTATEs for a unique key and a foreign key violated.
const UNIQUE_VIOLATION: &str = "23505";
const FOREIGN_KEY_VIOLATION: &str = "23503";

/// The unique keys on (delivery_id, seq) of the event store, the outbox and the history.
/// (SQLite has one writer at a time: its writes never race for a version.)
const DELIVERY_SEQ_KEYS: [&str; 3] = [
    "ux_delivery_event_delivery_seq",
    "ux_outbox_delivery_seq",
    "delivery_history_pkey",
];

/// A rule of the schema that a request's own data can break, as each backend reports it.
struct SchemaRule {
    /// SQLite's whole message.
    sqlite_message: &'static str,
    /// PostgreSQL's SQLSTATE and the constraint's name.
    sqlstate: &'static str,
    constraint: &'static str,
}

impl SchemaRule {
    fn refused(&self, err: &DbErr) -> bool {
        let Some(db_err) = database_error(err) else {
            return false;
        };
        if db_err.try_downcast_ref::<SqliteError>().is_some() {
            db_err.message() == self.sqlite_message
        } else {
            db_err.code().as_deref() == Some(self.sqlstate)
                && db_err.constraint() == Some(self.constraint)
        }
    }
}

/// Whether a write was refused because its partner has the partner order number on
/// another delivery already: PostgreSQL names the key, SQLite its columns.
pub(crate) fn is_partner_order_number_taken(err: &DbErr) -> bool {
    SchemaRule {
        sqlite_message: "UNIQUE constraint failed: delivery_order.partner_id, delivery_order.partner_order_number",
        sqlstate: UNIQUE_VIOLATION,
        constraint: "ux_delivery_order_partner_order_number",
    }
    .refused(err)
}

/// Whether `err` is the schema refusing a delivery order whose customer is not its
/// ordering's (migration `m20261201_000001`).
pub(crate) fn is_ordering_of_another_customer(err: &DbErr) -> bool {
    SchemaRule {
        sqlite_message: migrations::ORDERING_CUSTOMER_MESSAGE,
        sqlstate: FOREIGN_KEY_VIOLATION,
        constraint: migrations::ORDERING_CUSTOMER_CONSTRAINT,
    }
    .refused(err)
}

/// sqlx's error behind `err`, if sqlx failed.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => Some(sqlx),
        _ => None,
    }
}

/// The database's own error, when it refused a statement.
fn database_error(err: &DbErr) -> Option<&dyn DatabaseError> {
    match sqlx_error(err)? {
        sea_orm::sqlx::Error::Database(db_err) => Some(db_err.as_ref()),
        _ => None,
    }
}

/// Whether the database failed for a reason that passes: contention (see
/// [`is_contention`]), the pool out of connections for its acquire timeout, or the
/// connection lost (on the socket, or as PostgreSQL reports it). Retrying the same request
/// later may succeed.
pub(crate) fn is_transient(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    is_contention(err)
        || matches!(err, DbErr::ConnectionAcquire(_))
        || sqlx_error(err)
            .is_some_and(|sqlx| matches!(sqlx, Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed))
        || database_error(err)
            .and_then(|db_err| db_err.code())
            .is_some_and(|code| is_connection_lost(&code))
}

/// PostgreSQL's SQLSTATEs for a connection that is gone or not yet usable, which a
/// connection used within the last second (so not pinged) may meet: a connection
/// exception (class 08), an administrator's or a crash's shutdown, the server starting up,
/// or the session idle too long.
fn is_connection_lost(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "57P05")
}

/// The backend behind `db`, for the few statements that differ between them.
pub(crate) fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

/// `select` with its rows locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so that workers
/// side by side each take other rows without waiting for one another. SQLite has no row
/// locks; its one writer at a time keeps workers apart there.
pub(crate) fn skip_locked<S: QuerySelect>(select: S, db: &impl ConnectionTrait) -> S {
    if is_postgres(db) {
        select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
    } else {
        select
    }
}

/// Writes that must all succeed and that read nothing another of them writes, sent
/// together: on PostgreSQL as one statement (each a data-modifying `WITH` query), so one
/// round trip; on SQLite, which has none to save, one after another. Each may require a
/// number of rows changed; any other number fails the batch (see [`Expect`]): on
/// PostgreSQL inside the statement (`batch_expect`, migration m20261129), which undoes
/// all of it even outside a transaction ([`OneBatch`]); on SQLite as the write returns,
/// and the caller's transaction must then be rolled back.
///
/// PostgreSQL runs the queries of one statement on one snapshot, in an unspecified order:
/// no two of them may change the same row, and none sees what another wrote (each may
/// see what earlier statements of the transaction wrote).
#[derive(Debug)]
pub(crate) struct Batch {
    backend: DatabaseBackend,
    writes: Vec<(Statement, Expect)>,
    guard: Option<Guard>,
}

/// The delivery whose save a [`Batch`] guards, and the version that save expects to
/// replace: what a lost race is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Guard {
    pub(crate) delivery: DeliveryId,
    pub(crate) expected: u64,
}

/// What a write of a [`Batch`] must change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Anything,
    /// Exactly this many rows; any other number is an error of the service.
    Rows(u64),
    /// Exactly one row, the one a version guard selects; none means a concurrent
    /// transaction changed it first: [`DbErr::RecordNotUpdated`] (on PostgreSQL, a
    /// serialization failure), which [`is_contention`] knows.
    Guarded,
}

impl Expect {
    fn check(self, changed: u64) -> Result<(), DbErr> {
        match self {
            Expect::Anything => Ok(()),
            Expect::Rows(rows) if rows == changed => Ok(()),
            Expect::Rows(rows) => Err(DbErr::Custom(format!(
                "a write of a batch changed {changed} rows, not {rows}"
            ))),
            Expect::Guarded if changed == 1 => Ok(()),
            Expect::Guarded => Err(DbErr::RecordNotUpdated),
        }
    }

    /// The column of a batch statement's answer that reports the write `w{index}`, with
    /// the check that fails the statement when the count is wrong.
    ///
    /// PostgreSQL evaluates the answer's columns in order, each running its write on
    /// first use, and the guarded save is pushed first: so a lost race raises as a lost
    /// race (409) before a later write that depends on the same version (the view's)
    /// finds no row and raises as a fault.
    fn column(self, index: usize) -> String {
        let count = format!("(SELECT count(*) FROM w{index})");
        let checked = match self {
            Expect::Anything => count,
            Expect::Rows(rows) => format!("batch_expect({count}, {rows}, false)"),
            Expect::Guarded => format!("batch_expect({count}, 1, true)"),
        };
        format!("{checked} AS n{index}")
    }
}

impl Batch {
    pub(crate) fn new(db: &impl ConnectionTrait) -> Batch {
        Batch {
            backend: db.get_database_backend(),
            writes: Vec::new(),
            guard: None,
        }
    }

    /// Adds a write whatever it changes.
    pub(crate) fn push(&mut self, write: &impl QueryTrait) {
        self.push_with(write, Expect::Anything);
    }

    /// Adds a write that must change exactly `rows` rows.
    pub(crate) fn push_expecting(&mut self, write: &impl QueryTrait, rows: u64) {
        self.push_with(write, Expect::Rows(rows));
    }

    /// Adds the save of `guard`'s delivery, which changes its row unless a concurrent
    /// transaction got there first: the batch then fails as contention, which the caller
    /// answers as a conflict with `guard`. One per batch: a lost race is answered with
    /// one delivery and version, so a second guarded save is refused.
    pub(crate) fn push_guarded(
        &mut self,
        write: &impl QueryTrait,
        guard: Guard,
    ) -> Result<(), DbErr> {
        if let Some(first) = self.guard {
            return Err(DbErr::Custom(format!(
                "a batch guards one save: {} already, not {} too",
                first.delivery, guard.delivery
            )));
        }
        self.guard = Some(guard);
        self.push_with(write, Expect::Guarded);
        Ok(())
    }

    /// The save this batch guards, if any.
    pub(crate) fn guard(&self) -> Option<Guard> {
        self.guard
    }

    fn push_with(&mut self, write: &impl QueryTrait, expect: Expect) {
        self.writes.push((write.build(self.backend), expect));
    }

    /// Runs the writes on `db`: a [`OneBatch`]'s connection (through [`OneBatch::commit`]),
    /// or a transaction.
    pub(crate) async fn run(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.backend != DatabaseBackend::Postgres {
            for (write, expect) in self.writes {
                expect.check(db.execute(write).await?.rows_affected())?;
            }
            return Ok(());
        }
        if self.writes.is_empty() {
            return Ok(());
        }
        let mut sql = String::from("WITH ");
        let mut values = Vec::new();
        let mut columns = Vec::with_capacity(self.writes.len());
        for (index, (write, expect)) in self.writes.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("w{index} AS ("));
            shift_placeholders(&write.sql, values.len(), &mut sql);
            sql.push_str(" RETURNING 1)");
            values.extend(
                write
                    .values
                    .iter()
                    .flat_map(|values| values.0.iter().cloned()),
            );
            columns.push(expect.column(index));
        }
        sql.push_str(" SELECT ");
        sql.push_str(&columns.join(", "));
        db.query_one(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("a batch of writes answered no row".into()))
        .map(drop)
    }
}

/// Appends `sql` to `out` with its PostgreSQL placeholders `$n` renumbered `$(n + by)`.
/// Quoted identifiers and string literals are copied as they are. The text between the
/// characters that matter (quotes and `$`, all ASCII) is copied a run at a time: this
/// runs for every statement of every batch.
fn shift_placeholders(sql: &str, by: usize, out: &mut String) {
    let bytes = sql.as_bytes();
    let mut quote = None;
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match quote {
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'\'' || byte == b'"' => quote = Some(byte),
            None if byte == b'$' => {
                let digits = bytes[at + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    let number: usize = sql[at + 1..at + 1 + digits].parse().expect("ASCII digits");
                    out.push_str(&sql[copied..at]);
                    write!(out, "${}", number + by).expect("a String takes any text");
                    at += 1 + digits;
                    copied = at;
                    continue;
                }
            }
            None => {}
        }
        at += 1;
    }
    out.push_str(&sql[copied..]);
}

#[cfg(test)]
mod tests {
    use super::{DbErr, Expect, connect, connect_on_first_use, shift_placeholders};
    use std::num::NonZeroU32;

    #[test]
    fn only_a_guarded_write_that_changed_nothing_is_a_lost_race() {
        let lost_race = |result: Result<(), DbErr>| matches!(result, Err(DbErr::RecordNotUpdated));
        let fault = |result: Result<(), DbErr>| matches!(result, Err(DbErr::Custom(_)));
        for (expect, changed, ok, race) in [
            (Expect::Anything, 0, true, false),
            (Expect::Anything, 7, true, false),
            (Expect::Rows(1), 1, true, false),
            (Expect::Rows(1), 0, false, false),
            (Expect::Rows(2), 3, false, false),
            (Expect::Guarded, 1, true, false),
            (Expect::Guarded, 0, false, true),
        ] {
            let result = expect.check(changed);
            assert_eq!(result.is_ok(), ok, "{expect:?} {changed}");
            if !ok {
                assert!(
                    if race {
                        lost_race(result)
                    } else {
                        fault(result)
                    },
                    "{expect:?} {changed}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_pool_opened_on_first_use_needs_no_database_until_then() {
        // Neither can be opened: nothing listens on port 1, the directory does not exist.
        // (Only SQLite's refusal is quick enough to wait for: sqlx retries a refused TCP
        // connection until the acquire timeout.)
        let sqlite = "sqlite:///nonexistent-directory/none.db";
        assert!(connect(sqlite, NonZeroU32::MIN).await.is_err());
        for url in ["postgres://nobody@127.0.0.1:1/none", sqlite] {
            connect_on_first_use(url, NonZeroU32::MIN).await.expect(url);
        }
    }

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        let cases = [
            (
                r#"UPDATE "t$1" SET "a" = $1, "b" = '$2' WHERE "c" = $12"#,
                r#"UPDATE "t$1" SET "a" = $4, "b" = '$2' WHERE "c" = $15"#,
            ),
            ("$1", "$4"),
            ("SELECT $9,$10", "SELECT $12,$13"),
            ("SELECT 'it''s $1', $1", "SELECT 'it''s $1', $4"),
            ("SELECT $ + $a, 'é' || $2é", "SELECT $ + $a, 'é' || $5é"),
            ("", ""),
        ];
        for (sql, shifted) in cases {
            let mut out = String::from("prefix ");
            shift_placeholders(sql, 3, &mut out);
            assert_eq!(out, format!("prefix {shifted}"), "{sql}");
        }
    }
}

#[cfg(test)]
#[path = "../tests/common/databases.rs"]
pub(crate) mod test_databases;

/// What a [`OneBatch`] and its [`Batch`] guarantee, on the real databases.
#[cfg(test)]
mod scope_tests {
    use super::test_databases::{on_every_database, on_postgres};
    use super::{
        Batch, Claim, ConnAcquireErr, DbErr, Guard, Held, OneBatch, Reads, RequestConnections,
        WRITE_OUTSIDE_THE_BATCH, WRITE_THROUGH_READS, connect, is_contention, migrate,
    };
    use crate::entity::{delivery_order, ordering};
    use delivery_core::DeliveryId;
    use sea_orm::prelude::Expr;
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        EntityTrait, Insert, PaginatorTrait, QueryFilter, QueryTrait, UpdateMany,
    };
    use std::num::NonZeroU32;

    async fn migrated(url: &str) -> DatabaseConnection {
        let db = connect(url, NonZeroU32::MIN).await.expect("connect");
        migrate(&db).await.expect("migrate");
        db
    }

    fn ordering_row(id: &str) -> ordering::ActiveModel {
        ordering::ActiveModel {
            id: Set(id.to_owned()),
            customer_id: Set("cust-1".into()),
            payment_id: Set("pay-1".into()),
            shipping_address: Set(serde_json::json!({})),
            created_at: Set(chrono::Utc::now()),
        }
    }

    fn ordering(id: &str) -> Insert<ordering::ActiveModel> {
        ordering::Entity::insert(ordering_row(id))
    }

    /// A save of a delivery that does not exist: it changes no row.
    fn save_of(delivery: DeliveryId) -> UpdateMany<delivery_order::Entity> {
        delivery_order::Entity::update_many()
            .col_expr(delivery_order::Column::Version, Expr::value(2))
            .filter(delivery_order::Column::Id.eq(delivery.0))
    }

    fn guard(delivery: DeliveryId) -> Guard {
        Guard {
            delivery,
            expected: 1,
        }
    }

    async fn orderings(db: &DatabaseConnection) -> Vec<String> {
        ordering::Entity::find()
            .all(db)
            .await
            .expect("orderings")
            .into_iter()
            .map(|row| row.id)
            .collect()
    }

    /// A command's writes all go through its batch: nothing else it does through its scope
    /// can write (so it cannot write outside the batch's all-or-nothing through it), and
    /// the batch answers one lost race, so it takes one guarded save.
    #[tokio::test]
    async fn a_scope_writes_only_its_batch_with_at_most_one_guard() {
        on_every_database("scope", async |url| {
            let db = migrated(&url).await;
            let scope = OneBatch::begin(&db, &RequestConnections::of(&db))
                .await
                .expect("a scope");
            refuses_every_write(&scope, WRITE_OUTSIDE_THE_BATCH).await;

            let (first, second) = (
                DeliveryId(uuid::Uuid::new_v4()),
                DeliveryId(uuid::Uuid::new_v4()),
            );
            let mut writes = Batch::new(&scope);
            writes.push(&ordering("ord-batch"));
            writes
                .push_guarded(&save_of(first), guard(first))
                .expect("a batch's first guard");
            let err = writes
                .push_guarded(&save_of(second), guard(second))
                .expect_err("a second guard");
            assert!(err.to_string().contains("guards one save"), "{err}");
            assert_eq!(writes.guard(), Some(guard(first)));
            assert!(is_contention(
                &scope
                    .commit(writes)
                    .await
                    .expect_err("the first guard missed")
            ));
            assert!(orderings(&db).await.is_empty());
            db.close().await.expect("close");
        })
        .await;
    }

    /// The batch of a [`OneBatch`] on PostgreSQL runs outside any transaction: a write that
    /// changes the wrong number of rows must undo the others by failing their statement.
    #[tokio::test]
    async fn a_batch_outside_a_transaction_is_all_or_nothing_on_postgres() {
        on_postgres("batch", async |url| {
            let db = migrated(&url).await;
            let connections = RequestConnections::of(&db);
            // Each batch adds an ordering and then changes nothing where it must change a row.
            let no_delivery = DeliveryId(uuid::Uuid::new_v4());
            let run = async |batch: Batch| {
                let scope = OneBatch::begin(&db, &connections).await.expect("a scope");
                assert!(matches!(scope.0, Held::Statement(_)));
                scope.commit(batch).await
            };

            let mut lost_race = Batch::new(&db);
            lost_race.push(&ordering("ord-race"));
            lost_race
                .push_guarded(&save_of(no_delivery), guard(no_delivery))
                .expect("the batch's one guard");
            let err = run(lost_race)
                .await
                .expect_err("a guarded save that missed");
            assert!(is_contention(&err), "{err:?}");

            let mut fault = Batch::new(&db);
            fault.push(&ordering("ord-fault"));
            fault.push_expecting(&save_of(no_delivery), 1);
            let err = run(fault).await.expect_err("a write that changed no row");
            assert!(!is_contention(&err), "{err:?}");
            assert!(!matches!(err, DbErr::RecordNotUpdated), "{err:?}");

            let mut fine = Batch::new(&db);
            fine.push(&ordering("ord-fine"));
            fine.push_expecting(&save_of(no_delivery), 0);
            run(fine).await.expect("counts as expected");

            assert_eq!(orderings(&db).await, ["ord-fine"]);
            assert_eq!(
                delivery_order::Entity::find()
                    .count(&db)
                    .await
                    .expect("count"),
                0
            );
            db.close().await.expect("close");
        })
        .await;
    }

    /// Checks that every kind of write through `scope` is refused with `refusal`: a
    /// statement, an unprepared one, and sea-orm's own (which on PostgreSQL would return
    /// rows as a query).
    async fn refuses_every_write(scope: &impl ConnectionTrait, refusal: &str) {
        fn refused<T: std::fmt::Debug>(result: Result<T, DbErr>, refusal: &str) {
            assert!(
                matches!(&result, Err(DbErr::Custom(message)) if message == refusal),
                "{result:?}"
            );
        }
        let write = ordering("ord-outside").build(scope.get_database_backend());
        refused(scope.execute(write).await, refusal);
        refused(
            scope.execute_unprepared("DELETE FROM ordering").await,
            refusal,
        );
        refused(ordering_row("ord-active").insert(scope).await, refusal);
    }

    /// The backend process serving `scope`'s connection.
    async fn backend_pid(scope: &impl ConnectionTrait) -> i32 {
        let row = scope
            .query_one(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_backend_pid() AS pid",
            ))
            .await
            .expect("a pid")
            .expect("a row");
        row.try_get("", "pid").expect("an int")
    }

    /// A pool of one connection, and the requests' own for it.
    async fn one_connection_and_its_requests(
        url: &str,
    ) -> (DatabaseConnection, RequestConnections) {
        let db = connect(url, NonZeroU32::MIN).await.expect("connect");
        let connections = RequestConnections::of(&db);
        (db, connections)
    }

    /// A command's connection is kept for the next command, with no round trip in between;
    /// one whose statement was abandoned midway (its request cancelled) is closed, and the
    /// next command gets a new one.
    #[tokio::test]
    async fn a_command_connection_serves_the_next_command_unless_left_mid_statement() {
        on_postgres("lease", async |url| {
            let (db, connections) = one_connection_and_its_requests(&url).await;
            let scope = OneBatch::begin(&db, &connections).await.expect("a scope");
            let first = backend_pid(&scope).await;
            drop(scope);
            let scope = OneBatch::begin(&db, &connections).await.expect("a scope");
            assert_eq!(backend_pid(&scope).await, first, "the same connection");

            let sleep = scope.query_one(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_sleep(5)",
            ));
            tokio::time::timeout(std::time::Duration::from_millis(100), sleep)
                .await
                .expect_err("abandoned before its answer");
            drop(scope);
            let scope = OneBatch::begin(&db, &connections).await.expect("a scope");
            assert_ne!(backend_pid(&scope).await, first, "a new connection");
        })
        .await;
    }

    /// A worker's transaction commits what it wrote, and on PostgreSQL hands its connection
    /// on, with no round trip in between; one dropped uncommitted leaves nothing, and on
    /// PostgreSQL its connection is closed, not handed on mid-transaction.
    #[tokio::test]
    async fn a_claim_commits_or_leaves_nothing_and_never_hands_on_an_open_transaction() {
        on_every_database("claim", async |url| {
            let (db, connections) = one_connection_and_its_requests(&url).await;
            migrate(&db).await.expect("migrate");
            let on_postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;

            let claim = Claim::begin(&db, &connections).await.expect("a claim");
            assert_eq!(matches!(claim.0, Held::Statement(_)), on_postgres);
            ordering("ord-dropped")
                .exec(&claim)
                .await
                .expect("written in the claim");
            let pid = async |claim: &Claim| match on_postgres {
                true => Some(backend_pid(claim).await),
                false => None,
            };
            let dropped = pid(&claim).await;
            drop(claim);
            assert!(orderings(&db).await.is_empty(), "rolled back");

            let claim = Claim::begin(&db, &connections).await.expect("a claim");
            let committed = pid(&claim).await;
            if on_postgres {
                assert_ne!(committed, dropped, "a new connection");
            }
            ordering("ord-committed")
                .exec(&claim)
                .await
                .expect("written in the claim");
            claim.commit().await.expect("commit");
            assert_eq!(orderings(&db).await, ["ord-committed"]);

            let claim = Claim::begin(&db, &connections).await.expect("a claim");
            assert_eq!(pid(&claim).await, committed, "the same connection");
            if on_postgres {
                // The session ends while the claim is open: its COMMIT fails, and the
                // connection is not handed on.
                db.execute_unprepared(&format!(
                    "SELECT pg_terminate_backend({})",
                    committed.expect("a pid")
                ))
                .await
                .expect("terminated");
                claim.commit().await.expect_err("a session that ended");
                let claim = Claim::begin(&db, &connections).await.expect("a claim");
                assert_ne!(pid(&claim).await, committed, "a new connection");
                claim.commit().await.expect("commit");
            } else {
                drop(claim);
            }
            db.close().await.expect("close");
        })
        .await;
    }

    /// Commands hold at most as many connections as the pool they are made for may open:
    /// one more waits until one is back.
    #[tokio::test]
    async fn commands_wait_for_a_connection_while_as_many_as_the_pool_may_open_are_in_use() {
        on_postgres("lease_limit", async |url| {
            let (db, connections) = one_connection_and_its_requests(&url).await;
            let held = OneBatch::begin(&db, &connections).await.expect("a scope");
            let second = OneBatch::begin(&db, &connections);
            tokio::pin!(second);
            let waited =
                tokio::time::timeout(std::time::Duration::from_millis(200), &mut second).await;
            assert!(waited.is_err(), "the second waits while the first is held");
            let pid = backend_pid(&held).await;
            drop(held);
            let second = second.await.expect("a scope once the first is back");
            assert_eq!(backend_pid(&second).await, pid);
        })
        .await;
    }

    /// A query only reads. On PostgreSQL it runs on a connection of its pool, not sea-orm's,
    /// which the next query gets once it is back; none once sea-orm's pool is closed.
    #[tokio::test]
    async fn a_query_only_reads_and_on_postgres_hands_its_connection_to_the_next() {
        on_every_database("reads", async |url| {
            let (db, connections) = one_connection_and_its_requests(&url).await;
            migrate(&db).await.expect("migrate");
            let reads = Reads::begin(&db, &connections).await.expect("reads");
            refuses_every_write(&reads, WRITE_THROUGH_READS).await;
            assert!(orderings(&db).await.is_empty());
            if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
                assert!(matches!(reads.0, Held::Pool(_)));
                return;
            }
            assert!(matches!(reads.0, Held::Statement(_)));
            let first = backend_pid(&reads).await;
            assert_ne!(first, backend_pid(&db).await, "not sea-orm's connection");
            drop(reads);
            let reads = Reads::begin(&db, &connections).await.expect("reads");
            assert_eq!(backend_pid(&reads).await, first, "the same connection");
            drop(reads);
            db.clone().close().await.expect("close");
            let closed = Reads::begin(&db, &connections).await;
            assert!(
                matches!(
                    closed,
                    Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed))
                ),
                "{closed:?}"
            );
        })
        .await;
    }
}
