//! The database connection: SQLite (the default, a file) or PostgreSQL, chosen by the URL;
//! the schema migrations; and the readiness check.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteError, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, RuntimeErr, TransactionTrait,
};

/// Connections per pool. SQLite has one writer at a time whatever the pool size; more
/// connections serve concurrent readers (WAL lets them read while one writes).
const POOL_SIZE: u32 = 10;

/// How long a SQLite connection waits for another connection's write lock before it gives
/// up with `database is locked`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool for `url`: `sqlite://path?mode=rwc` or `postgres://…`.
///
/// SQLite connections are set up by sqlx as each one opens (pragmas are per connection):
/// WAL journal (readers do not block the writer), a busy timeout, foreign keys enforced,
/// and `synchronous = NORMAL`, which is durable at every checkpoint and safe with WAL.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(POOL_SIZE)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        // sea-orm logs every statement itself, at debug level through `tracing`.
        .sqlx_logging(false)
        // Applies only when the URL is a SQLite one.
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    Database::connect(options).await
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

/// Whether the database refused a statement because a concurrent transaction holds or
/// changed what it needs, so the same request may succeed if retried: SQLite's busy and
/// locked (another connection writes, or wrote since this transaction read), PostgreSQL's
/// serialization failure and deadlock.
pub(crate) fn is_contention(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db_err)))
    | DbErr::Exec(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db_err)))
    | DbErr::Query(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db_err)))) = err
    else {
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
    }
}

/// Whether the database failed for a reason that passes: contention (see
/// [`is_contention`]), the pool out of connections for its acquire timeout, or the
/// connection lost. Retrying the same request later may succeed.
pub(crate) fn is_transient(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let (DbErr::Conn(RuntimeErr::SqlxError(sqlx))
    | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = err
    else {
        return matches!(err, DbErr::ConnectionAcquire(_));
    };
    matches!(sqlx, Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed) || is_contention(err)
}

/// The backend behind `db`, for the few statements that differ between them.
pub(crate) fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}
