//! Organization configuration (config-export.md): `POST /be/v1/export`, `/be/v1/import`,
//! `/be/v1/commit`, and the operator's Commit Export `POST /adm/v1/commit`.

use super::extract::{JsonBody, OptJsonBody};
use super::reply::{OptionalPostBodies, Reply, Success};
use crate::caller::Caller;
use crate::error::ApiResult;
use crate::orgconf::apply::CreatedSecret;
use crate::orgconf::plan::PlanEntry;
use crate::orgconf::schema::{Bundle, BundleResource};
use crate::orgconf::service;
use crate::state::AppState;
use crate::util::{new_id, rfc3339};
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

// The operator's Commit Export.
#[path = "orgconf_admin.rs"]
mod admin;
use admin::admin_commit;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/export", post(export))
        .route("/be/v1/import", post(import))
        .route("/be/v1/commit", post(commit))
        .route("/adm/v1/commit", post(admin_commit))
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
    let e = service::export(&st, &c, b.and_then(|b| b.include)).await?;
    let export = Export {
        export_id: new_id("exp"),
        created: e.created,
        sha256: e.sha256,
        size_bytes: e.size_bytes,
        bundle: e.bundle,
        secrets_omitted: e.secrets_omitted.then_some(true),
    };
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
    let staged = service::stage(&st, &c, b.bundle).await?;
    Ok(Reply(ImportReply {
        status: Success,
        import_id: staged.import_id,
        expires: rfc3339(staged.expires),
        plan: staged.plan,
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
    let done = service::commit(&st, &c, &b.import_id).await?;
    Ok(Reply(CommitReply { status: Success, applied: done.applied, secrets: done.secrets }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(export, import, commit, admin::admin_commit), modifiers(&OPTIONAL_BODIES))]
pub struct Api;

/// The export body may be left out.
const OPTIONAL_BODIES: OptionalPostBodies = OptionalPostBodies(&["/be/v1/export"]);
