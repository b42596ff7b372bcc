//! Subscriptions (webhooks and Slack) of an organization, with their delivery statistics.

use super::Conn;
use crate::ids::OrgId;
use crate::util::now_ms;

/// A subscription row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subscription {
    pub id: String,
    pub org_id: OrgId,
    pub name: String,
    /// `webhook` or `slack`.
    pub kind: String,
    pub url: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_token_sealed: Option<String>,
    pub secret_sealed: String,
    /// JSON `{"types","events","apps"}`.
    pub filter: String,
    /// 1 while deliveries are attempted.
    pub enabled: i64,
    pub delivered: i64,
    pub failed: i64,
    pub last_delivery: Option<i64>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const COLS: &str = "id, org_id, name, kind, url, slack_channel, slack_token_sealed, secret_sealed, filter, enabled, delivered, failed, \
    last_delivery, last_status, last_error, created, updated";

/// Subscription `id`.
pub async fn by_id(c: &mut Conn, id: &str) -> Result<Option<Subscription>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await
}

/// `org`'s subscription `name`.
pub async fn by_name(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE org_id = $1 AND name = $2"))
        .bind(org)
        .bind(name)
        .fetch_optional(c)
        .await
}

/// Every subscription of `org`.
pub async fn list(c: &mut Conn, org: &OrgId) -> Result<Vec<Subscription>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM subscriptions WHERE org_id = $1"))
        .bind(org)
        .fetch_all(c)
        .await
}

/// True when `org` has a subscription `name`.
pub async fn exists(c: &mut Conn, org: &OrgId, name: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM subscriptions WHERE org_id = $1 AND name = $2")
        .bind(org)
        .bind(name)
        .fetch_optional(c)
        .await?
        .is_some())
}

/// A new, enabled subscription (secrets already sealed).
pub struct NewSubscription<'a> {
    pub id: &'a str,
    pub org: &'a OrgId,
    pub name: &'a str,
    pub kind: &'a str,
    pub url: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub slack_token_sealed: Option<String>,
    pub secret_sealed: String,
    pub filter_json: String,
}

/// Inserts a new subscription.
pub async fn insert(c: &mut Conn, s: NewSubscription<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriptions (id, org_id, name, kind, url, slack_channel, slack_token_sealed, secret_sealed, filter, enabled, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(s.id)
    .bind(s.org)
    .bind(s.name)
    .bind(s.kind)
    .bind(s.url)
    .bind(s.channel)
    .bind(s.slack_token_sealed)
    .bind(s.secret_sealed)
    .bind(s.filter_json)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(())
}

/// Replaces the target and filter of `org`'s subscription `name`; false when it is gone.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
    kind: &str,
    url: Option<&str>,
    channel: Option<&str>,
    slack_token_sealed: Option<String>,
    filter_json: String,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE subscriptions SET kind = $1, url = $2, slack_channel = $3, slack_token_sealed = $4, filter = $5, updated = $6 \
         WHERE org_id = $7 AND name = $8",
    )
    .bind(kind)
    .bind(url)
    .bind(channel)
    .bind(slack_token_sealed)
    .bind(filter_json)
    .bind(now_ms())
    .bind(org)
    .bind(name)
    .execute(c)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a subscription with its queued deliveries (unsubscribe).
pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}
