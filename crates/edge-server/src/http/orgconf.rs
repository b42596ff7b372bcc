//! Organization configuration (config-export.md): `POST /be/v1/export`, `/be/v1/import`,
//! `/be/v1/commit`, and the operator's Commit Export `POST /adm/v1/commit`.

use super::extract::{JsonBody, OptJsonBody};
use super::reply::{OptionalPostBodies, Reply, Success};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::orgconf::apply::CreatedSecret;
use crate::orgconf::items::read;
use crate::orgconf::plan::{authorize, make_plan, PlanEntry, Step};
use crate::orgconf::schema::{Bundle, BundleResource};
use crate::orgconf::seal::BundleKey;
use crate::orgconf::{
    apply::{apply, passwords_for},
    fingerprint, items_sha256, map_secrets, parse_bundle, resource_of, Items, FORMAT, RESOURCES,
    VERSION,
};
use crate::perms::R;
use crate::state::AppState;
use crate::store::{imports, orgs, Conn};
use crate::util::{new_id, now_ms, rfc3339};
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

// The operator's Commit Export.
#[path = "orgconf_admin.rs"]
mod admin;
use admin::admin_commit;

/// How long a staged import can be committed.
const IMPORT_TTL_MS: i64 = 3_600_000;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/export", post(export))
        .route("/be/v1/import", post(import))
        .route("/be/v1/commit", post(commit))
        .route("/adm/v1/commit", post(admin_commit))
}

fn all_resources() -> Vec<&'static str> {
    RESOURCES.iter().map(|(n, _)| *n).collect()
}

/// The Export body (optional: no body exports every resource the caller may read).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExportIn {
    /// The resources to export (each needs Read); absent: every resource the caller may
    /// read.
    #[schema(value_type = Option<Vec<BundleResource>>)]
    include: Option<Vec<String>>,
}

/// An export: the bundle and what identifies it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// A fresh id of this export (`exp…`).
    export_id: String,
    /// When it was made (RFC 3339; the bundle's `created`).
    created: String,
    /// Hex SHA-256 of the bundle's items (canonical JSON, every secret shown as
    /// `********`): equal for two exports of the same configuration.
    sha256: String,
    /// The bundle's size as JSON, in bytes.
    size_bytes: usize,
    /// The bundle, to keep and import elsewhere.
    #[schema(value_type = Bundle)]
    bundle: Value,
    /// True when the organization has no key: every secret was left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    secrets_omitted: Option<bool>,
}

/// The Export answer.
#[derive(Serialize, ToSchema)]
pub struct ExportReply {
    /// Always `success`.
    status: Success,
    /// The export.
    export: Export,
}

/// Export the organization's configuration as a bundle
///
/// Roles (but `Administrators`), deployments, apps, users, subscriptions, each as the
/// fields its POST takes. Secrets are encrypted to the organization's key; an
/// organization without a key exports without them (`secretsOmitted`). Nothing is
/// stored: the bundle is the answer.
#[utoipa::path(post, path = "/be/v1/export", tag = "config", request_body = ExportIn,
    responses((status = 200, description = "The export", body = ExportReply)),
    extensions(("x-rockit-auth" = json!("R on every resource exported"))))]
async fn export(
    c: Caller,
    State(st): State<Arc<AppState>>,
    OptJsonBody(b): OptJsonBody<ExportIn>,
) -> ApiResult<Reply<ExportReply>> {
    let which: Vec<&'static str> = match b.and_then(|b| b.include) {
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
    let items = read(&st, &mut conn, &c.org_id, c.operator, &which).await?;
    let key = BundleKey::of_org(&st, &mut conn, &c.org_id).await?;
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
    let export = Export {
        export_id: new_id("exp"),
        created,
        sha256: sha,
        size_bytes,
        bundle,
        secrets_omitted: omitted.then_some(true),
    };
    tracing::info!(org = %c.org_name, resources = ?which, "configuration exported");
    Ok(Reply(ExportReply { status: Success, export }))
}

/// The Import body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportIn {
    /// The bundle to stage.
    #[schema(value_type = Bundle)]
    bundle: Value,
}

/// A staged import: what committing it would do.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReply {
    /// Always `success`.
    status: Success,
    /// The staged import, for `POST /be/v1/commit` (`imp…`).
    import_id: String,
    /// Until when it can be committed (RFC 3339; an hour).
    expires: String,
    /// Every item of the bundle, in the order a commit applies them.
    plan: Vec<PlanEntry>,
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

/// Stage a bundle: a validated plan, nothing changed
///
/// Every item is checked as its resource's POST would check it (400 names the item in
/// `details.item`, `<resource>/<name>`), against the caller's organization. Items the
/// organization has and the bundle lacks are left alone. The caller needs Create and
/// Update on every resource the plan changes, and can grant nothing it does not hold
/// (403). 409 `item-exists`: a user to create exists outside the organization, or as
/// another type of user.
#[utoipa::path(post, path = "/be/v1/import", tag = "config", request_body = ImportIn,
    responses((status = 200, description = "The staged plan", body = ImportReply)),
    extensions(("x-rockit-auth" = json!("C+U on every resource touched"))))]
async fn import(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<ImportIn>,
) -> ApiResult<Reply<ImportReply>> {
    // Planning only reads (and may resolve webhook hosts): no write lock is held for it.
    // What changes before the commit is caught there by the fingerprint taken here.
    let mut conn = st.db.conn().await?;
    let (steps, base) = plan_for(&st, &mut conn, &c, &b.bundle).await?;
    drop(conn);
    let (id, now) = (new_id("imp"), now_ms());
    // Expired staged imports are removed by the maintenance sweep.
    let staged = imports::NewImport {
        id: &id,
        org: &c.org_id,
        user: &c.user_id,
        bundle: b.bundle.to_string(),
        base: &base,
        created: now,
        expires: now + IMPORT_TTL_MS,
    };
    imports::insert(&mut *st.db.conn().await?, staged).await?;
    let plan = steps.iter().map(Step::entry).collect();
    Ok(Reply(ImportReply {
        status: Success,
        import_id: id,
        expires: rfc3339(now + IMPORT_TTL_MS),
        plan,
    }))
}

/// The Commit body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CommitIn {
    /// The staged import (`importId` of `POST /be/v1/import`).
    import_id: String,
}

/// What a commit did.
#[derive(Serialize, ToSchema)]
pub struct CommitReply {
    /// Always `success`.
    status: Success,
    /// How many items were created or updated.
    applied: usize,
    /// The credentials of what was created, shown this once.
    secrets: Vec<CreatedSecret>,
}

/// Apply a staged import, all or nothing
///
/// The plan is made again and applied in one transaction. 404: no such import, or it
/// expired; 403: another caller staged it; 409 `invalid-state`: the organization's
/// configuration changed since the import was staged (import again).
#[utoipa::path(post, path = "/be/v1/commit", tag = "config", request_body = CommitIn,
    responses((status = 200, description = "Applied", body = CommitReply)),
    extensions(("x-rockit-auth" = json!("the caller that staged it"))))]
async fn commit(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<CommitIn>,
) -> ApiResult<Reply<CommitReply>> {
    // The people the plan creates get their password hashes first, before the write lock
    // is taken; the plan is made again under it (and must match the staged one).
    let staged = imports::bundle_of(
        &mut *st.db.conn().await?,
        &c.org_id,
        &c.user_id,
        &b.import_id,
        now_ms(),
    )
    .await?;
    let passwords = match staged.and_then(|b| serde_json::from_str::<Value>(&b).ok()) {
        Some(bundle) => {
            let planned = plan_for(&st, &mut *st.db.conn().await?, &c, &bundle).await;
            match planned {
                Ok((steps, _)) => passwords_for(&st, &steps).await?,
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
    let row = imports::get(&mut tx, &c.org_id, &b.import_id)
        .await?
        .filter(|r| r.expires > now_ms())
        .ok_or_else(|| ApiError::not_found("import", &b.import_id))?;
    if row.user_id != c.user_id {
        return Err(ApiError::forbidden("only the caller that staged this import may commit it"));
    }
    let bundle: Value = serde_json::from_str(&row.bundle).map_err(ApiError::internal)?;
    let (steps, base) = plan_for(&st, &mut tx, &c, &bundle).await?;
    if base != row.base {
        return Err(ApiError::conflict(
            "invalid-state",
            "the configuration changed since the plan was made; import again",
        ));
    }
    let done = apply(&st, &mut tx, &c.org_id, c.operator, &steps, passwords).await?;
    imports::delete(&mut tx, &b.import_id).await?;
    tx.commit().await?;
    tracing::info!(org = %c.org_name, applied = done.applied, "configuration committed");
    Ok(Reply(CommitReply { status: Success, applied: done.applied, secrets: done.secrets }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(export, import, commit, admin::admin_commit), modifiers(&OPTIONAL_BODIES))]
pub struct Api;

/// The export body may be left out.
const OPTIONAL_BODIES: OptionalPostBodies = OptionalPostBodies(&["/be/v1/export"]);
