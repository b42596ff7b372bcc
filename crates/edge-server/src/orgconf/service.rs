//! The operations on an organization's configuration that the API and the console share:
//! export a bundle, stage a bundle's plan, commit a staged plan, with their checks.

use super::apply::{apply, passwords_for, Applied};
use super::items::read;
use super::plan::{authorize, make_plan, PlanEntry, Step};
use super::seal::BundleKey;
use super::{
    fingerprint, items_sha256, map_secrets, parse_bundle, resource_of, Items, FORMAT, RESOURCES,
    VERSION,
};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::perms::R;
use crate::state::AppState;
use crate::store::{imports, orgs, Conn};
use crate::util::{now_ms, rfc3339};
use serde_json::{json, Value};

/// How long a staged import can be committed.
pub const IMPORT_TTL_MS: i64 = 3_600_000;

/// Every resource a bundle may hold, by name.
pub fn all_resources() -> Vec<&'static str> {
    RESOURCES.iter().map(|(n, _)| *n).collect()
}

/// An export made.
pub struct Exported {
    /// When it was made (RFC 3339).
    pub created: String,
    /// SHA-256 of its items in clear.
    pub sha256: String,
    /// Bytes of the bundle as JSON.
    pub size_bytes: usize,
    /// The bundle.
    pub bundle: Value,
    /// True when secrets were left out (the organization has no key to seal them with).
    pub secrets_omitted: bool,
}

/// Exports the caller's organization: the resources named in `include` (each needs Read,
/// 403; an unknown one is 400), or every resource the caller can read. Secrets are sealed
/// with the organization's key, or left out without one.
pub async fn export(
    st: &AppState,
    c: &Caller,
    include: Option<Vec<String>>,
) -> ApiResult<Exported> {
    let which: Vec<&'static str> = match include {
        Some(list) => {
            let mut out = Vec::new();
            for n in &list {
                let (name, _) = RESOURCES.iter().find(|(r, _)| r == n).ok_or_else(|| {
                    ApiError::invalid(
                        "include",
                        format!("unknown resource '{n}' (one of {})", all_resources().join(", ")),
                    )
                })?;
                if !out.contains(name) {
                    out.push(*name);
                }
            }
            for n in &out {
                c.require(resource_of(n).unwrap_or(crate::perms::Resource::Orgs), R)?;
            }
            out
        }
        None => RESOURCES.iter().filter(|(_, r)| c.perms.has(*r, R)).map(|(n, _)| *n).collect(),
    };
    let mut conn = st.db.conn().await?;
    let items = read(st, &mut conn, &c.org_id, c.operator, &which).await?;
    let key = BundleKey::of_org(st, &mut conn, &c.org_id).await?;
    drop(conn);
    let sha = items_sha256(&items);
    let mut omitted = false;
    let mut wire = Items::new();
    for (res, list) in &items {
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            let mut v = item.clone();
            map_secrets(res, &mut v, |secret| match &key {
                Some(k) => k.seal(secret.as_str().unwrap_or("")).map(Some),
                None => {
                    omitted = true;
                    Ok(None)
                }
            })?;
            out.push(v);
        }
        wire.insert(res.clone(), out);
    }
    let created = rfc3339(now_ms());
    let mut bundle = json!({"format": FORMAT, "version": VERSION, "orgName": c.org_name, "created": created, "items": wire});
    if omitted {
        bundle["secretsOmitted"] = json!(true);
    }
    let size_bytes = bundle.to_string().len();
    tracing::info!(org = %c.org_name, resources = ?which, "configuration exported");
    Ok(Exported { created, sha256: sha, size_bytes, bundle, secrets_omitted: omitted })
}

/// The plan of `bundle` for the caller's org, checked and authorized, with the org's
/// current fingerprint.
async fn plan_for(
    st: &AppState,
    c: &mut Conn,
    caller: &Caller,
    bundle: &Value,
) -> ApiResult<(Vec<Step>, String)> {
    let (items, _) = parse_bundle(bundle)?;
    let current = read(st, c, &caller.org_id, caller.operator, &all_resources()).await?;
    let key = BundleKey::of_org(st, c, &caller.org_id).await?;
    let steps =
        make_plan(st, c, &caller.org_id, caller.operator, &items, &current, key.as_ref()).await?;
    authorize(c, caller, &steps, &current).await?;
    Ok((steps, fingerprint(&current)))
}

/// A staged import.
pub struct Staged {
    /// Its id, for [`commit`] (`imp…`).
    pub import_id: String,
    /// Until when it can be committed (UNIX ms).
    pub expires: i64,
    /// What committing does, item by item, in applying order.
    pub plan: Vec<PlanEntry>,
}

/// Stages `bundle` for the caller's organization: every item checked as its resource's
/// create would check it (400 naming the item), the caller needing Create and Update on
/// every resource the plan changes and granting nothing it does not hold (403). Nothing
/// changes until [`commit`].
pub async fn stage(st: &AppState, c: &Caller, bundle: Value) -> ApiResult<Staged> {
    // Planning only reads (and may resolve webhook hosts): no write lock is held for it.
    // What changes before the commit is caught there by the fingerprint taken here.
    let mut conn = st.db.conn().await?;
    let (steps, base) = plan_for(st, &mut conn, c, &bundle).await?;
    drop(conn);
    let (id, now) = (crate::util::new_id("imp"), now_ms());
    // Expired staged imports are removed by the maintenance sweep.
    let staged = imports::NewImport {
        id: &id,
        org: &c.org_id,
        user: &c.user_id,
        bundle: bundle.to_string(),
        base: &base,
        created: now,
        expires: now + IMPORT_TTL_MS,
    };
    imports::insert(&mut *st.db.conn().await?, staged).await?;
    Ok(Staged {
        import_id: id,
        expires: now + IMPORT_TTL_MS,
        plan: steps.iter().map(Step::entry).collect(),
    })
}

/// Applies the caller's staged import `import_id` in one transaction, the plan made again.
/// 404: no such import, or it expired; 403: another caller staged it; 409 `invalid-state`:
/// the organization's configuration changed since it was staged.
pub async fn commit(st: &AppState, c: &Caller, import_id: &str) -> ApiResult<Applied> {
    // The people the plan creates get their password hashes first, before the write lock
    // is taken; the plan is made again under it (and must match the staged one).
    let staged =
        imports::bundle_of(&mut *st.db.conn().await?, &c.org_id, &c.user_id, import_id, now_ms())
            .await?;
    let passwords = match staged.and_then(|b| serde_json::from_str::<Value>(&b).ok()) {
        Some(bundle) => {
            let planned = plan_for(st, &mut *st.db.conn().await?, c, &bundle).await;
            match planned {
                Ok((steps, _)) => passwords_for(st, &steps).await?,
                // The same error comes again below, in its place among the checks.
                Err(_) => Default::default(),
            }
        }
        None => Default::default(),
    };
    let mut tx = st.db.tx().await?;
    // One commit per organization at a time: the row lock (the write lock on SQLite) makes
    // the staleness check and the writes one step.
    orgs::lock(&mut tx, &c.org_id).await?;
    let row = imports::get(&mut tx, &c.org_id, import_id)
        .await?
        .filter(|r| r.expires > now_ms())
        .ok_or_else(|| ApiError::not_found("import", import_id))?;
    if row.user_id != c.user_id {
        return Err(ApiError::forbidden("only the caller that staged this import may commit it"));
    }
    let bundle: Value = serde_json::from_str(&row.bundle).map_err(ApiError::internal)?;
    let (steps, base) = plan_for(st, &mut tx, c, &bundle).await?;
    if base != row.base {
        return Err(ApiError::conflict(
            "invalid-state",
            "the configuration changed since the plan was made; import again",
        ));
    }
    let done = apply(st, &mut tx, &c.org_id, c.operator, &steps, passwords).await?;
    imports::delete(&mut tx, import_id).await?;
    tx.commit().await?;
    tracing::info!(org = %c.org_name, applied = done.applied, "configuration committed");
    Ok(done)
}
