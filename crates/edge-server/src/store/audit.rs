//! The audit log of operator actions.

use super::Conn;
use crate::util::{new_id, now_ms};

/// Records that `actor` did `action` on `target`.
pub async fn insert(
    c: &mut Conn,
    actor: &str,
    action: &str,
    target: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit (id, at, actor, action, target) VALUES ($1, $2, $3, $4, $5)")
        .bind(new_id("a"))
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(target)
        .execute(c)
        .await?;
    Ok(())
}
