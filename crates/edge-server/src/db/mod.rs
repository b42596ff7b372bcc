//! The database: one `sqlx::AnyPool` over SQLite (embedded default, WAL) or PostgreSQL,
//! one SQL dialect subset (`$n` placeholders, BIGINT/TEXT columns), migrations for both
//! (`migrations/`, embedded by `sqlx::migrate!`, see `schema.rs`).

mod schema;

mod held;

pub use held::{assert_not_holding, scope};

use held::Held;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which server is behind the pool (only the task claim and locks differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The shared database handle. Every connection is taken through it ([`Db::pool`],
/// [`Db::conn`], [`Db::tx`]), so that a task holding one never asks for a second
/// (see [`held`](self::held)).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Backend kind.
    pub backend: Backend,
}

/// Counts committed write transactions in this process. Caches of database state (the
/// authentication cache) are valid only while it has not moved.
pub static WRITE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// A write transaction (`BEGIN IMMEDIATE` on SQLite, so writers queue instead of failing).
/// Derefs to the connection; committing moves [`WRITE_EPOCH`].
pub struct Tx {
    tx: Transaction<'static, Any>,
    _held: Held,
}

impl Tx {
    /// Commits, then invalidates this process's caches of database state.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let r = self.tx.commit().await;
        WRITE_EPOCH.fetch_add(1, Ordering::SeqCst);
        r
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// A pooled connection held for several statements (reads that must see one snapshot,
/// or many small queries). Derefs to the connection.
pub struct Conn {
    conn: PoolConnection<Any>,
    _held: Held,
}

impl std::ops::Deref for Conn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }
}

impl Db {
    /// Connects; for SQLite also enables WAL and a busy timeout on every connection.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            });
        let pool = opts.connect(url).await?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Db { pool, backend })
    }

    /// The pool, for one statement at a time (each takes a connection and gives it back).
    #[track_caller]
    pub fn pool(&self) -> &AnyPool {
        assert_not_holding("a query on the pool");
        &self.pool
    }

    /// Takes a connection for several statements.
    #[track_caller]
    pub fn conn(&self) -> impl Future<Output = Result<Conn, sqlx::Error>> + '_ {
        let held = Held::take("a connection");
        async move { Ok(Conn { conn: self.pool.acquire().await?, _held: held }) }
    }

    /// Begins a write transaction.
    #[track_caller]
    pub fn tx(&self) -> impl Future<Output = Result<Tx, sqlx::Error>> + '_ {
        let held = Held::take("a transaction");
        async move {
            let tx = match self.backend {
                Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres => self.pool.begin().await?,
            };
            Ok(Tx { tx, _held: held })
        }
    }

    /// Pool size and idle connections (for metrics); takes nothing.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Closes every connection (shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies pending migrations (`schema.rs`: `sqlx::migrate!` over `migrations/`, after
    /// adopting an old `schema_version` record); safe to run concurrently from several
    /// processes: all of it is one write transaction, under an advisory lock on PostgreSQL.
    /// Returns the schema version now in force.
    pub async fn migrate(&self) -> Result<i64, sqlx::Error> {
        use sqlx::migrate::Migrate;
        let migrator = schema::migrator();
        let mut tx = self.tx().await?;
        if self.backend == Backend::Postgres {
            // One migrator at a time across processes; released at commit.
            sqlx::query("SELECT pg_advisory_xact_lock(7310001)").execute(&mut *tx).await?;
        }
        let adopted = schema::adopt_legacy(&mut tx, self.backend, &migrator).await?;
        if adopted > 0 {
            tracing::info!(
                versions = adopted,
                "migrations: the schema_version record was adopted into _sqlx_migrations"
            );
        }
        // `run` would take the connection through `Acquire`, whose future is not `Send`
        // here (sqlx's own note on `run_direct`), and handlers need `Send`.
        migrator.run_direct(&mut *tx).await?;
        let version =
            tx.list_applied_migrations().await?.iter().map(|m| m.version).max().unwrap_or(0);
        tx.commit().await?;
        Ok(version)
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Reads an optional text column, leniently (any error is `None`): for tests and tools that
/// read a row ad hoc. The server decodes its rows strictly (`sqlx::FromRow`, in `store`).
pub fn opt_s(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

/// Reads a text column ("" when null).
pub fn s(row: &AnyRow, col: &str) -> String {
    opt_s(row, col).unwrap_or_default()
}

/// Reads an optional integer column.
pub fn opt_i(row: &AnyRow, col: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(col).ok().flatten()
}

/// Reads an integer column (0 when null).
pub fn i(row: &AnyRow, col: &str) -> i64 {
    opt_i(row, col).unwrap_or(0)
}
