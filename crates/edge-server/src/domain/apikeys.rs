//! API keys: whose keys a caller may create, see and revoke — one's own always, another
//! member's with `beUsers` bits and under the no-takeover rules of [`super::users`].

use super::users::{guard_target, TargetChange};
use crate::caller::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::names::text;
use crate::perms::{Resource, R, U};
use crate::store::apikeys::{self, ApiKey};
use crate::store::users;
use crate::util::now_ms;

/// The longest lifetime a key may be given: ten years, in seconds.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 86_400;

/// Creates a key for the caller, or with `username` for another member (which needs
/// `beUsers: Update`, 403, and passes the no-takeover rules, 403; unknown: 404). Returns the
/// key itself (`rk_<keyId>_<secret>`, never stored) and its record.
pub(crate) async fn create(
    db: &Db,
    c: &Caller,
    username: Option<&str>,
    label: Option<&str>,
    expires_in: Option<u64>,
) -> ApiResult<(String, ApiKey)> {
    let label = label.map(|l| text("label", l, 1, 200)).transpose()?;
    if expires_in == Some(0) || expires_in.is_some_and(|e| e > MAX_EXPIRES_IN) {
        return Err(ApiError::invalid("expiresIn", "expiresIn must be 1..315360000 seconds"));
    }
    let mut tx = db.tx().await?;
    let target = match username {
        None => c.user_id.clone(),
        Some(u) if u == c.username => c.user_id.clone(),
        Some(u) => {
            c.require(Resource::BeUsers, U)?;
            let t = users::member_by_username(&mut tx, &c.org_id, u)
                .await?
                .ok_or_else(|| ApiError::not_found("user", u))?;
            guard_target(&mut tx, c, &t, TargetChange::Credentials).await?;
            t.id
        }
    };
    let expires = expires_in.map(|e| now_ms() + e as i64 * 1000);
    let (key_id, key) =
        apikeys::create(&mut tx, &c.org_id, &target, label.as_deref(), expires).await?;
    let k = apikeys::by_id(&mut tx, &key_id)
        .await?
        .ok_or_else(|| ApiError::internal("key vanished"))?;
    tx.commit().await?;
    Ok((key, k))
}

/// The keys the caller may see: with `username` (exact) that member's (another member's
/// needs `beUsers: Read`, 403; unknown: 404); without it every key of the organization for
/// a caller with `beUsers: Read`, else the caller's own.
pub(crate) async fn list(db: &Db, c: &Caller, username: Option<&str>) -> ApiResult<Vec<ApiKey>> {
    let mut conn = db.conn().await?;
    let user = match username {
        Some(u) if u == c.username => Some(c.user_id.clone()),
        Some(u) => {
            c.require(Resource::BeUsers, R)?;
            Some(
                users::member_by_username(&mut conn, &c.org_id, u)
                    .await?
                    .ok_or_else(|| ApiError::not_found("user", u))?
                    .id,
            )
        }
        None if c.perms.has(Resource::BeUsers, R) => None,
        None => Some(c.user_id.clone()),
    };
    Ok(apikeys::list(&mut conn, &c.org_id, user.as_ref()).await?)
}

/// Revokes key `key_id` of the caller's organization (404 otherwise): the caller's own, or
/// another member's under the rules of [`create`] (403).
pub(crate) async fn revoke(db: &Db, c: &Caller, key_id: &str) -> ApiResult<()> {
    let mut tx = db.tx().await?;
    let k = apikeys::by_id(&mut tx, key_id)
        .await?
        .filter(|k| k.org_id == c.org_id)
        .ok_or_else(|| ApiError::not_found("API key", key_id))?;
    if k.user_id != c.user_id {
        c.require(Resource::BeUsers, U)?;
        let t = users::by_id(&mut tx, &k.user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("API key", key_id))?;
        guard_target(&mut tx, c, &t, TargetChange::Credentials).await?;
    }
    apikeys::delete(&mut tx, &c.org_id, key_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes the key the caller authenticated with (400 for any other credential); it stops
/// working at once.
pub(crate) async fn revoke_own(db: &Db, c: &Caller) -> ApiResult<()> {
    let key_id = c.key_id.clone().ok_or_else(|| {
        ApiError::bad_request("this request was not authenticated with an API key")
    })?;
    let mut tx = db.tx().await?;
    apikeys::delete(&mut tx, &c.org_id, &key_id).await?;
    tx.commit().await?;
    Ok(())
}
