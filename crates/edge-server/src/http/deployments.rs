//! Deployments (`/be/v1/deployments`): CDN origins with write-only secrets, probed on
//! create, deleted with a purge of what was published to them.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Reply, Success};
use crate::caller::Caller;
use crate::domain::deployments::change::DeploymentChange;
use crate::domain::deployments::origins::{DownloadAuth, DownloadAuthIn, Origin, OriginIn};
use crate::domain::deployments::{self as deployments_domain, DeploymentIn};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::deployments::{self as store, Deployment};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/be/v1/deployments",
            get(list_deployments).post(post_deployment).patch(patch_deployment),
        )
        .route("/be/v1/deployments/{name}", get(get_deployment).delete(delete_deployment))
        .route("/be/v1/deployments/{name}/probe", post(probe_deployment))
}

/// A probe that passed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReply {
    /// Always `success`.
    status: Success,
    /// The object written and deleted on the origin: `<originPrefix>/.rockit-probe`.
    probed: String,
    /// How long the write and the delete took, in milliseconds.
    ms: u64,
}

/// Probe a deployment
///
/// Checks now that the Edge can write to and delete from the deployment's origin, as it
/// does when a deployment is created or its origin changes: writes and deletes
/// `<originPrefix>/.rockit-probe`. Nothing else changes (not `updated`, not `status`). A
/// failed probe is 400 `invalid-param` with the cause in `details.probe`.
#[utoipa::path(post, path = "/be/v1/deployments/{name}/probe", tag = "deployments",
    responses((status = 200, description = "The probe passed", body = ProbeReply)),
    extensions(("x-rockit-auth" = json!("deployments:U"))))]
async fn probe_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<ProbeReply>> {
    let t0 = std::time::Instant::now();
    let probed = deployments_domain::probe_now(&st, &c, &name).await?;
    Ok(Reply(ProbeReply { status: Success, probed, ms: t0.elapsed().as_millis() as u64 }))
}

/// A deployment: a CDN origin that apps publish their builds to. Secrets show as
/// `********`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// Unique in the organization.
    name: String,
    /// Free text; null when not set.
    label: Option<String>,
    /// The directory inside the origin that everything goes under (`''`: its top).
    origin_prefix: String,
    /// Where the files go.
    // JSON: the stored fields as they are, with `type` and the masked secret added.
    #[schema(value_type = Origin)]
    origin: Value,
    /// How the CDN signs download URLs; null: downloads are not signed.
    #[schema(value_type = Option<DownloadAuth>)]
    download_auth: Value,
    /// The URL that serves the origin to players; null when not set.
    public_url: Option<String>,
    /// The apps that name this deployment in their `deployments`.
    apps: Vec<String>,
    /// The outcome of the last publish to it: `ok` or `error`.
    #[schema(value_type = DeploymentStatus)]
    status: String,
    /// What the last publish said (when and, on error, why); null before the first.
    message: Option<String>,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
}

impl DeploymentView {
    /// The deployment as the API shows it; `apps` are the apps registered to it.
    fn of(d: &Deployment, apps: &[String]) -> DeploymentView {
        let mut origin = d.origin.clone();
        origin["type"] = json!(d.kind);
        if let Some(f) = Deployment::secret_field(&d.kind) {
            origin[f] = json!(MASK);
        }
        let mut download_auth = d.download_auth.clone();
        if download_auth.is_object() {
            let f = if download_auth["type"] == "akamai" { "key" } else { "secret" };
            download_auth[f] = json!(MASK);
        }
        DeploymentView {
            name: d.name.clone(),
            label: d.label.clone(),
            origin_prefix: d.prefix.clone(),
            origin,
            download_auth,
            public_url: d.public_url.clone(),
            apps: apps.to_vec(),
            status: d.status.clone(),
            message: d.message.clone(),
            created: rfc3339(d.created),
            updated: rfc3339(d.updated),
        }
    }
}

/// What answers show in place of a secret.
const MASK: &str = "********";

/// The outcome of the last publish to a deployment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // describes `DeploymentView::status`, a string
enum DeploymentStatus {
    /// The last publish succeeded (or none happened yet).
    Ok,
    /// The last publish failed; `message` says why.
    Error,
}

/// One deployment.
#[derive(Serialize, ToSchema)]
pub struct DeploymentReply {
    /// Always `success`.
    status: Success,
    /// The deployment (projected to `fields[]` when given).
    #[schema(value_type = DeploymentView)]
    deployment: Value,
}

impl DeploymentReply {
    fn new(deployment: Value) -> Reply<DeploymentReply> {
        Reply(DeploymentReply { status: Success, deployment })
    }
}

page!(
    /// A page of deployments.
    DeploymentPage,
    "deployments",
    DeploymentView
);

/// Create a deployment (probed)
///
/// Unless `probe` is false, a test file is written to the origin and read back first; a
/// failed probe is 400 with the cause in `details.probe`. A deployment of the same name is
/// 409 `item-exists`. An `fs` origin must lie inside the configured `fs_origin_root` and
/// apart from every other organization's directories.
#[utoipa::path(post, path = "/be/v1/deployments", tag = "deployments", request_body = DeploymentIn,
    responses((status = 200, description = "The new deployment", body = DeploymentReply)),
    extensions(("x-rockit-auth" = json!("deployments:C"))))]
async fn post_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<DeploymentIn>,
) -> ApiResult<Reply<DeploymentReply>> {
    let d = deployments_domain::create(&st, &c, &b).await?;
    Ok(DeploymentReply::new(projected(&DeploymentView::of(&d, &[]), None)?))
}

const DEP_LIST: ListSpec = ListSpec {
    filters: &["name", "error"],
    order_fields: &["name", "created", "updated"],
    default_order: ("name", false),
    unique: "name",
};

/// List deployments
///
/// Order by `name`, `created` or `updated`.
#[utoipa::path(get, path = "/be/v1/deployments", tag = "deployments",
    params(ListParams,
        ("name" = Option<String>, Query, description = "Only deployments whose name contains this (any case)"),
        ("error" = Option<bool>, Query, description = "Only deployments whose last publish failed (`true`) or only the others (`false`); `1` and `0` also do")),
    responses((status = 200, description = "A page of deployments", body = DeploymentPage)),
    extensions(("x-rockit-auth" = json!("deployments:R"))))]
async fn list_deployments(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<DeploymentPage>> {
    let q = ListQuery::parse(raw.as_deref(), &DEP_LIST)?;
    let error = q.bool_filter("error")?;
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let mut items = Vec::new();
    for d in store::list(&mut conn, &c.org_id).await? {
        if needle.as_ref().is_some_and(|n| !d.name.to_lowercase().contains(n))
            || error.is_some_and(|e| e != (d.status == "error"))
        {
            continue;
        }
        let apps = store::apps_using(&mut conn, &c.org_id, &d.name).await?;
        items.push(DeploymentView::of(&d, &apps));
    }
    q.page_of(items)
}

/// One deployment
#[utoipa::path(get, path = "/be/v1/deployments/{name}", tag = "deployments", params(FieldsParam),
    responses((status = 200, description = "The deployment", body = DeploymentReply)),
    extensions(("x-rockit-auth" = json!("deployments:R"))))]
async fn get_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<DeploymentReply>> {
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let d = store::get(&mut conn, &c.org_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", &name))?;
    let apps = store::apps_using(&mut conn, &c.org_id, &name).await?;
    Ok(DeploymentReply::new(projected(&DeploymentView::of(&d, &apps), raw.as_deref())?))
}

/// The Change Deployment body: the deployment by name, and what changes (absent fields
/// stay).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentPatch {
    /// The deployment to change.
    name: String,
    /// The new label (1 to 200 characters); `null` removes it.
    #[serde(default, deserialize_with = "super::extract::double_option")]
    #[schema(value_type = Option<String>, required = false, min_length = 1, max_length = 200)]
    label: Option<Option<String>>,
    /// The new directory inside the origin (see the create body).
    origin_prefix: Option<String>,
    /// The new origin, complete (its secret may be left out or sent as `********` to keep
    /// it while the type stays the same).
    #[schema(value_type = Option<OriginIn>)]
    origin: Option<Value>,
    /// The new download signing (its secret may be left out or sent as `********` to keep
    /// it while the type stays the same); `null` stops signing.
    #[serde(default, deserialize_with = "super::extract::double_option")]
    #[schema(value_type = Option<DownloadAuthIn>, required = false)]
    download_auth: Option<Option<Value>>,
    /// The new public URL; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::double_option")]
    #[schema(value_type = Option<String>, required = false)]
    public_url: Option<Option<String>>,
    /// Probe the origin when `origin` or `originPrefix` changes (default true).
    probe: Option<bool>,
}

/// Change a deployment
///
/// A change of `origin` or `originPrefix` is probed first unless `probe` is false (a
/// failed probe is 400 with the cause in `details.probe`). When the deployment changed
/// meanwhile (between reading and writing it) the answer is 409 `invalid-state`: send the
/// change again.
#[utoipa::path(patch, path = "/be/v1/deployments", tag = "deployments", request_body = DeploymentPatch,
    responses((status = 200, description = "The deployment as changed", body = DeploymentReply)),
    extensions(("x-rockit-auth" = json!("deployments:U"))))]
async fn patch_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<DeploymentPatch>,
) -> ApiResult<Reply<DeploymentReply>> {
    let change = DeploymentChange {
        name: b.name,
        label: b.label,
        origin_prefix: b.origin_prefix,
        origin: b.origin,
        download_auth: b.download_auth,
        public_url: b.public_url,
        probe: b.probe.unwrap_or(true),
    };
    let (d, apps) = deployments_domain::change::update(&st, &c, change).await?;
    Ok(DeploymentReply::new(projected(&DeploymentView::of(&d, &apps), None)?))
}

/// The answer to a deployment's deletion.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDeleted {
    /// Always `success`.
    status: Success,
    /// `deployment deleted`.
    message: String,
    /// The `purge` task that removes what was published to it.
    task_name: String,
}

/// Delete a deployment and purge its files
///
/// A deployment that apps name in their `deployments` is 409 `item-in-use`: change those
/// apps first. What was published to it is removed by the `purge` task named in the
/// answer.
#[utoipa::path(delete, path = "/be/v1/deployments/{name}", tag = "deployments",
    responses((status = 200, description = "Deleted; the purge is under way", body = DeploymentDeleted)),
    extensions(("x-rockit-auth" = json!("deployments:D"))))]
async fn delete_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<DeploymentDeleted>> {
    let task = deployments_domain::delete::delete(&st, &c, &name).await?;
    Ok(Reply(DeploymentDeleted {
        status: Success,
        message: "deployment deleted".into(),
        task_name: task.into_string(),
    }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_deployments,
    post_deployment,
    get_deployment,
    patch_deployment,
    delete_deployment,
    probe_deployment
))]
pub struct Api;
