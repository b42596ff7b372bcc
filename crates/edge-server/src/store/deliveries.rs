//! Deliveries: one row per (event, subscription), written by `events::emit`, served by the
//! dispatcher under short leases (so several processes never send the same one), and the
//! subscription's delivery counters that go with each outcome.
//!
//! Reads and leases run one statement at a time on the pool (the dispatcher holds no
//! connection while it sends); the recording of an outcome takes a transaction's `Conn`.

use super::Conn;
use crate::db::Db;
use crate::util::now_ms;

/// How long a leased delivery is reserved for the process that leased it.
const LEASE_MS: i64 = 60_000;

/// `$start, $start+1, …` for `n` parameters.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|k| format!("${k}")).collect::<Vec<_>>().join(", ")
}

/// Ids of the head (oldest pending) delivery of up to 500 subscriptions' queues: one pass
/// over the `(status, subscription_id, id)` index. (A correlated subquery per pending row
/// cost O(backlog) lookups on every poll, just when a burst made the backlog long.)
pub async fn heads(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(id) AS id FROM deliveries WHERE status = 'pending' GROUP BY subscription_id LIMIT 500")
        .fetch_all(db.pool())
        .await
}

/// When a queue head may be sent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Head {
    pub id: String,
    pub subscription_id: String,
    /// Not before this time (epoch ms; later after a failed attempt).
    pub next_at: i64,
    /// Leased by some process until this time.
    pub lease_until: Option<i64>,
}

/// The [`Head`]s of deliveries `ids` (primary-key lookups).
pub async fn heads_by_id(db: &Db, ids: &[String]) -> Result<Vec<Head>, sqlx::Error> {
    let sql = format!(
        "SELECT id, subscription_id, next_at, lease_until FROM deliveries WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query_as(&sql);
    for id in ids {
        q = q.bind(id);
    }
    q.fetch_all(db.pool()).await
}

/// Leases one pending delivery whose lease is free at `now`; false when another process
/// took it first.
pub async fn lease(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let got = sqlx::query(
        "UPDATE deliveries SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
    )
    .bind(now + LEASE_MS)
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(got.rows_affected() == 1)
}

/// The first `n` pending deliveries of one subscription's queue, in order: (id, next_at).
pub async fn queue_head(
    db: &Db,
    subscription: &str,
    n: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT id, next_at FROM deliveries WHERE subscription_id = $1 AND status = 'pending' ORDER BY id LIMIT $2")
        .bind(subscription)
        .bind(n)
        .fetch_all(db.pool())
        .await
}

/// Leases the pending deliveries `ids` whose leases are free at `now`; returns how many
/// it got (fewer than asked when another process holds some).
pub async fn lease_all(db: &Db, ids: &[String], now: i64) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "UPDATE deliveries SET lease_until = $1 WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < $2) AND id IN ({})",
        placeholders(3, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(now + LEASE_MS).bind(now);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// A pending delivery with its event's body and its subscription, all a send needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub id: String,
    /// Attempts made so far (the index into the backoff schedule).
    pub attempts: i64,
    /// When the event was written (deliveries expire 24 h after it).
    pub created: i64,
    pub subscription_id: String,
    /// The event document (JSON text).
    pub body: String,
    /// `webhook` or `slack`.
    pub kind: String,
    pub url: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_token_sealed: Option<String>,
    pub secret_sealed: String,
    /// The subscription's name.
    pub name: String,
    /// 1 while the subscription is enabled (booleans are 0/1).
    pub enabled: i64,
}

impl Pending {
    /// True while the subscription is enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled == 1
    }
}

const PENDING_SQL: &str = "SELECT d.id, d.attempts, d.created, d.subscription_id, o.body, s.kind, s.url, s.slack_channel, \
    s.slack_token_sealed, s.secret_sealed, s.name, s.enabled FROM deliveries d JOIN outbox o ON o.id = d.event_id \
    JOIN subscriptions s ON s.id = d.subscription_id WHERE d.status = 'pending' AND d.id";

/// The deliveries `ids` that are still pending, in no particular order.
pub async fn pending(db: &Db, ids: &[String]) -> Result<Vec<Pending>, sqlx::Error> {
    let sql = format!("{PENDING_SQL} IN ({})", placeholders(1, ids.len()));
    let mut q = sqlx::query_as(&sql);
    for id in ids {
        q = q.bind(id);
    }
    q.fetch_all(db.pool()).await
}

/// Delivery `id` when it is still pending.
pub async fn pending_one(db: &Db, id: &str) -> Result<Option<Pending>, sqlx::Error> {
    sqlx::query_as(&format!("{PENDING_SQL} = $1")).bind(id).fetch_optional(db.pool()).await
}

/// Marks deliveries `ids` sent (and their leases released).
pub async fn mark_done_all(c: &mut Conn, ids: &[&String]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE deliveries SET status = 'done', attempts = attempts + 1, lease_until = NULL WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(c).await?;
    Ok(())
}

/// Counts `n` deliveries sent to a subscription, as of now.
pub async fn count_delivered(c: &mut Conn, subscription: &str, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET delivered = delivered + $1, last_delivery = $2, last_status = 'ok', last_error = NULL WHERE id = $3",
    )
    .bind(n)
    .bind(now_ms())
    .bind(subscription)
    .execute(c)
    .await?;
    Ok(())
}

/// Marks one delivery sent (and its lease released).
pub async fn mark_done(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET status = 'done', attempts = attempts + 1, lease_until = NULL WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Counts one delivery sent to a subscription, as of now.
pub async fn count_one_delivered(c: &mut Conn, subscription: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET delivered = delivered + 1, last_delivery = $1, last_status = 'ok', last_error = NULL WHERE id = $2",
    )
    .bind(now_ms())
    .bind(subscription)
    .execute(c)
    .await?;
    Ok(())
}

/// Releases the leases of a subscription's pending deliveries due at `now`, keeping their
/// place in line (what a stopped batch did not attempt).
pub async fn release(db: &Db, subscription: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE subscription_id = $1 AND status = 'pending' AND next_at <= $2")
        .bind(subscription)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Disables a subscription its receiver refused for good, with the reason, as of now.
pub async fn disable_subscription(
    c: &mut Conn,
    subscription: &str,
    why: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET enabled = 0, last_status = 'failed', last_error = $1, last_delivery = $2 WHERE id = $3")
        .bind(why)
        .bind(now_ms())
        .bind(subscription)
        .execute(c)
        .await?;
    Ok(())
}

/// Drops every pending delivery of a subscription; returns how many.
pub async fn drop_queue(c: &mut Conn, subscription: &str) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE deliveries SET status = 'dropped', lease_until = NULL WHERE subscription_id = $1 AND status = 'pending'")
        .bind(subscription)
        .execute(c)
        .await?;
    Ok(r.rows_affected())
}

/// Counts `n` deliveries of a subscription failed (dropped).
pub async fn count_failed(c: &mut Conn, subscription: &str, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET failed = failed + $1 WHERE id = $2")
        .bind(n)
        .bind(subscription)
        .execute(c)
        .await?;
    Ok(())
}

/// Schedules the next attempt of a delivery at `next_at`, releasing its lease.
pub async fn schedule_retry(
    c: &mut Conn,
    id: &str,
    next_at: i64,
    why: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET attempts = attempts + 1, next_at = $1, lease_until = NULL, last_error = $2 WHERE id = $3")
        .bind(next_at)
        .bind(why)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Records a failed attempt on the subscription (its delivery will be retried), as of now.
pub async fn note_failure(c: &mut Conn, subscription: &str, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET last_status = 'failed', last_error = $1, last_delivery = $2 WHERE id = $3")
        .bind(why)
        .bind(now_ms())
        .bind(subscription)
        .execute(c)
        .await?;
    Ok(())
}

/// Drops one delivery (too old, retries exhausted, or its subscription disabled).
pub async fn drop_one(c: &mut Conn, id: &str, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET status = 'dropped', lease_until = NULL, last_error = $1 WHERE id = $2")
        .bind(why)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Counts one dropped delivery on its subscription, with the reason.
pub async fn count_dropped(c: &mut Conn, subscription: &str, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET failed = failed + 1, last_status = 'failed', last_error = $1 WHERE id = $2")
        .bind(why)
        .bind(subscription)
        .execute(c)
        .await?;
    Ok(())
}

/// A delivery as the console lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recent {
    pub status: String,
    pub attempts: i64,
    pub created: i64,
    pub last_error: Option<String>,
    pub event: String,
    pub task_type: String,
    pub app_name: Option<String>,
}

/// The newest `limit` deliveries of subscription `subscription`, newest first.
pub async fn recent(
    c: &mut Conn,
    subscription: &str,
    limit: i64,
) -> Result<Vec<Recent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.status, d.attempts, d.created, d.last_error, o.event, o.task_type, o.app_name \
         FROM deliveries d JOIN outbox o ON o.id = d.event_id WHERE d.subscription_id = $1 \
         ORDER BY d.created DESC, d.id DESC LIMIT $2",
    )
    .bind(subscription)
    .bind(limit)
    .fetch_all(c)
    .await
}
