//! Schema migrations: the SQL files of `crates/edge-server/migrations/`, one per version,
//! valid on SQLite and PostgreSQL alike (TEXT and BIGINT columns only; booleans are 0/1),
//! embedded at compile time by `sqlx::migrate!` and recorded in sqlx's `_sqlx_migrations`
//! table (version, checksum). Never edit a released migration — sqlx refuses to start on a
//! changed checksum —: add a file `NNNN_what.sql` with the next version.
//!
//! Databases made before the switch recorded their versions in a `schema_version` table
//! (one row per applied version). [`adopt_legacy`] copies that record into
//! `_sqlx_migrations` once, in the migrating transaction, so they upgrade in place;
//! `schema_version` itself is left as it was (a binary of the previous release started on
//! the database by mistake still sees its schema as current).

use super::Backend;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::AnyConnection;
use std::collections::HashSet;

/// The embedded migrations. sqlx's own lock is off: [`super::Db::migrate`] runs everything
/// in one write transaction that already excludes other migrators (`BEGIN IMMEDIATE` on
/// SQLite, an advisory transaction lock on PostgreSQL), which, unlike sqlx's session lock,
/// cannot stay behind on a pooled connection after an error. Versions this binary does not
/// know are tolerated, as before: during a rolling upgrade a process of the previous
/// release may start after a newer one migrated.
pub(super) fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.set_locking(false);
    m.set_ignore_missing(true);
    m
}

/// Records the versions a `schema_version` table says were applied in `_sqlx_migrations`
/// (with this binary's checksums: the files hold the very SQL the old migrator ran), unless
/// they are there already. Returns how many it recorded; 0 on databases without the table.
pub(super) async fn adopt_legacy(
    conn: &mut AnyConnection,
    backend: Backend,
    m: &Migrator,
) -> Result<usize, MigrateError> {
    let exists = match backend {
        Backend::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'"
        }
    };
    let n: i64 = sqlx::query_scalar(exists).fetch_one(&mut *conn).await?;
    if n == 0 {
        return Ok(0);
    }
    let legacy: Option<i64> = sqlx::query_scalar("SELECT MAX(version) AS v FROM schema_version")
        .fetch_one(&mut *conn)
        .await?;
    let legacy = legacy.unwrap_or(0);
    conn.ensure_migrations_table().await?;
    let applied: HashSet<i64> =
        conn.list_applied_migrations().await?.into_iter().map(|a| a.version).collect();
    let mut adopted = 0;
    for mig in m.iter().filter(|x| x.version <= legacy && !applied.contains(&x.version)) {
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, -1)")
            .bind(mig.version)
            .bind(mig.description.as_ref())
            .bind(mig.checksum.as_ref())
            .execute(&mut *conn)
            .await?;
        adopted += 1;
    }
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sqlx::migrate!` reads the folder when this crate compiles; a file added later is
    /// not embedded until the crate is rebuilt for another reason.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sql"))
            .count();
        let m = migrator();
        assert_eq!(
            files,
            m.iter().count(),
            "{} holds a migration this build did not embed: touch src/db/schema.rs and rebuild",
            dir.display()
        );
        // Versions 1, 2, … without gaps: the version is the `schemaVersion` of /srv/v1/initialize.
        for (i, mig) in m.iter().enumerate() {
            assert_eq!(mig.version, i as i64 + 1, "{}", mig.description);
            assert!(!mig.no_tx, "migration {} must run in the migrating transaction", mig.version);
        }
    }
}
