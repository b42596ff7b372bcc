//! Schema migrations (`sqlx::migrate!` over `crates/edge-server/migrations/`): databases made
//! by the migrator of earlier releases — versions in a `schema_version` table, no
//! `_sqlx_migrations` — upgrade in place with their data, on both backends, and several
//! migrators at once agree.

use crate::common::*;
use crate::edge_test;
use edge_server::db::Db;
use reqwest::Method;
use serde_json::json;

/// The migration files in version order, as the server embeds them.
fn migration_files() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

/// The migrator of the releases before sqlx's, as it was: one transaction, each version's
/// SQL split on `;` and run statement by statement, the version recorded in
/// `schema_version` — here up to version `upto`.
async fn legacy_migrate(db: &Db, upto: usize) {
    let mut tx = db.tx().await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (i, m) in migration_files().iter().take(upto).enumerate() {
        for stmt in m.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(stmt).execute(&mut *tx).await.unwrap();
        }
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn versions(db: &Db, table: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!("SELECT version FROM {table} ORDER BY version"))
        .fetch_all(db.pool())
        .await
        .unwrap()
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

// A database of the previous release, with an organization, its admin and an app: the
// server of today starts on it, and everything is there.
edge_test!(an_old_database_upgrades_in_place, |b| async move {
    let latest = migration_files().len() as i64;
    let dir = TempDir::new("migr");
    let cfg = test_config(b, &dir).await;
    let mut s = Srv::start_cfg(b, cfg.clone(), dir).await;
    let (tok, pw) = s.org_admin("OldCo").await;
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "OldGame", "label": "Old Game"})))
        .await
        .ok();
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, TempDir::new("migr-old"));
    drop(s);

    // What the previous release's migrator leaves: the same schema, its own bookkeeping.
    let db = Db::connect(&cfg.database_url()).await.unwrap();
    sqlx::query("DROP TABLE _sqlx_migrations").execute(db.pool()).await.unwrap();
    sqlx::query("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .unwrap();
    for v in 1..=latest {
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(v)
            .execute(db.pool())
            .await
            .unwrap();
    }
    db.close().await;

    let s = Srv::start_cfg(b, cfg.clone(), dir).await;
    let tok = s.token("OldCo_admin", &pw, "OldCo").await;
    let apps = s.be(&tok, Method::GET, "/be/v1/apps", None).await;
    assert!(apps.ok().to_string().contains("OldGame"), "{}", apps.body);
    let r = s.adm(Method::POST, "/srv/v1/initialize", None).await;
    assert_eq!(r.ok()["schemaVersion"], latest);

    let db = Db::connect(&cfg.database_url()).await.unwrap();
    assert_eq!(versions(&db, "_sqlx_migrations").await, (1..=latest).collect::<Vec<_>>());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE").await,
        latest
    );
    // The old record stays as it was, so the previous release still finds its schema current.
    assert_eq!(versions(&db, "schema_version").await, (1..=latest).collect::<Vec<_>>());
    db.close().await;
});

// A database the old migrator brought to version 3: today's migrator records 1–3 as
// applied, runs the later ones, and the rows of before keep their values.
edge_test!(an_older_database_gets_the_later_migrations, |b| async move {
    let latest = migration_files().len() as i64;
    let dir = TempDir::new("migr3");
    let cfg = test_config(b, &dir).await;
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let db = Db::connect(&cfg.database_url()).await.unwrap();
    legacy_migrate(&db, 3).await;
    sqlx::query("INSERT INTO login_failures (key, at) VALUES ('user:a|1.2.3.4', 1000)")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO uploads (token_hash, task_name, org_id, app_id, expires, state, created) VALUES ('h', 't', 'o', 'a', 5, 'waiting', 1)",
    )
    .execute(db.pool())
    .await
    .unwrap();

    assert_eq!(db.migrate().await.unwrap(), latest);
    assert_eq!(versions(&db, "_sqlx_migrations").await, (1..=latest).collect::<Vec<_>>());
    assert_eq!(versions(&db, "schema_version").await, vec![1, 2, 3]);
    // Version 4's tables and version 5's columns are there; the old rows are intact.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM imports").await, 0);
    let row: (String, i64, i64, Option<String>) =
        sqlx::query_as("SELECT key, at, pending, attempt FROM login_failures")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(row, ("user:a|1.2.3.4".to_string(), 1000, 0, None));
    let row: (String, i64, Option<String>) =
        sqlx::query_as("SELECT state, expires, receiver FROM uploads")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(row, ("waiting".to_string(), 5, None));
    // Idempotent: a second start changes nothing.
    assert_eq!(db.migrate().await.unwrap(), latest);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, latest);
    db.close().await;

    // And the server starts on it.
    let s = Srv::start_cfg(b, cfg, dir).await;
    let r = s.adm(Method::POST, "/srv/v1/initialize", None).await;
    assert_eq!(r.ok()["schemaVersion"], latest);
});

// Processes starting together on one old database: each migrates (or finds the work
// done), none fails, every version is applied once.
edge_test!(concurrent_migrators_agree, |b| async move {
    let latest = migration_files().len() as i64;
    let dir = TempDir::new("migrc");
    let cfg = test_config(b, &dir).await;
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let url = cfg.database_url();
    let db = Db::connect(&url).await.unwrap();
    legacy_migrate(&db, 2).await;
    let mut dbs = Vec::new();
    for _ in 0..4 {
        dbs.push(Db::connect(&url).await.unwrap());
    }
    let got = futures_join_all(dbs.iter().map(|d| d.migrate()).collect()).await;
    for r in got {
        assert_eq!(r.unwrap(), latest);
    }
    assert_eq!(versions(&db, "_sqlx_migrations").await, (1..=latest).collect::<Vec<_>>());
    for d in dbs {
        d.close().await;
    }
    db.close().await;
});
