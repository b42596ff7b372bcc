//! The database: one `sqlx::AnyPool` over SQLite (embedded default, WAL) or PostgreSQL,
//! one SQL dialect subset (`$n` placeholders, BIGINT/TEXT columns), migrations for both.

mod schema;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
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

/// The shared database handle.
#[derive(Clone)]
pub struct Db {
    /// Connection pool.
    pub pool: AnyPool,
    /// Backend kind.
    pub backend: Backend,
}

/// Counts committed write transactions in this process. Caches of database state (the
/// authentication cache) are valid only while it has not moved.
pub static WRITE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// A write transaction (`BEGIN IMMEDIATE` on SQLite, so writers queue instead of failing).
/// Derefs to the connection; committing moves [`WRITE_EPOCH`].
pub struct Tx(Transaction<'static, Any>);

impl Tx {
    /// Commits, then invalidates this process's caches of database state.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let r = self.0.commit().await;
        WRITE_EPOCH.fetch_add(1, Ordering::SeqCst);
        r
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.0
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

    /// Begins a write transaction.
    pub async fn tx(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        }))
    }

    /// Applies pending migrations; safe to run concurrently from several processes.
    /// Returns the schema version now in force.
    pub async fn migrate(&self) -> Result<i64, sqlx::Error> {
        let mut tx = self.tx().await?;
        if self.backend == Backend::Postgres {
            // One migrator at a time across processes; released at commit.
            sqlx::query("SELECT pg_advisory_xact_lock(7310001)").execute(&mut *tx).await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").execute(&mut *tx).await?;
        let current: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM schema_version").fetch_one(&mut *tx).await?.try_get::<Option<i64>, _>("v")?;
        let current = current.unwrap_or(0);
        let mut version = current;
        for (i, m) in schema::MIGRATIONS.iter().enumerate() {
            let v = i as i64 + 1;
            if v <= current {
                continue;
            }
            for stmt in m.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)").bind(v).execute(&mut *tx).await?;
            version = v;
        }
        tx.commit().await?;
        Ok(version)
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Reads an optional text column.
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
