//! Apps (`/be/v1/apps`, resource `apps`): registration and settings. The build pipeline
//! fields (`builds`, `patches`, `processing`, …) are filled by the delivery pipeline.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Reply, Success};
use crate::caller::Caller;
use crate::domain::apps::change::AppChange;
use crate::domain::apps::{self as apps_domain, AppDetail, AppIn};
use crate::error::ApiResult;
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::apps::{self, KeptBuild, KeptPatch};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/apps", get(list_apps).post(post_app).patch(patch_app))
        .route("/be/v1/apps/{name}", get(get_app).delete(delete_app))
        .route("/be/v1/apps/{name}/client-key", axum::routing::post(rotate_client_key))
}

/// An app: its settings, the builds and patches it keeps, and the state of its pipeline.
// Also `Deserialize`: the list keeps these in the read cache as JSON.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// Unique in the organization.
    name: String,
    /// Free text.
    label: String,
    /// How many builds the app keeps.
    max_builds: i64,
    /// The deployments it publishes to, by name (empty: every deployment of the organization).
    #[schema(value_type = Vec<String>)]
    deployments: Value,
    /// The id of the current build; null before the first one is published.
    i_cur_build: Option<i64>,
    /// The image directory of the current build; null before the first one.
    dxf_name: Option<String>,
    /// The name of the current build; null before the first one.
    build_name: Option<String>,
    /// The builds it keeps (current and retained), oldest first.
    builds: Vec<AppBuild>,
    /// The patches it keeps, from older builds to the current one, by older build.
    patches: Vec<BuildPatch>,
    /// True while a pipeline is running for the app (an upload waiting for its archive
    /// does not count).
    processing: bool,
    /// True while one of its builds is being published to the deployments.
    exporting: bool,
    /// True when the app is locked after a failed publish: imports are refused (409
    /// `app-locked`) until the task named in `errorTask` is retried successfully.
    error: bool,
    /// The task whose publish failed, while `error` is true; else null.
    error_task: Option<String>,
    /// Bytes of its kept images and patches together.
    size_bytes: i64,
    /// The key launchers open play sessions with; only for callers holding `keys: Read`
    /// (null when it cannot be read).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::extract::double_option"
    )]
    #[schema(value_type = Option<String>, required = false)]
    client_key: Option<Option<String>>,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
}

/// A build an app keeps.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppBuild {
    /// Its id, counting up from 1 per app.
    build_id: i64,
    /// The name given at import (or made up from the id).
    build_name: String,
    /// The directory of its image; null while it has none.
    dxf_name: Option<String>,
    /// Bytes of its image.
    size_bytes: i64,
    /// When it was imported (RFC 3339).
    created: String,
}

impl AppBuild {
    fn of(b: &KeptBuild) -> AppBuild {
        AppBuild {
            build_id: b.build_id,
            build_name: b.build_name.clone(),
            dxf_name: b.dxf_name.clone(),
            size_bytes: b.image_bytes,
            created: rfc3339(b.created),
        }
    }
}

/// A patch an app keeps: what a launcher downloads to go from an older build to the
/// current one.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildPatch {
    /// The build it starts from.
    from_build_id: i64,
    /// The build it leads to.
    to_build_id: i64,
    /// Bytes of the patch.
    size_bytes: i64,
}

impl BuildPatch {
    fn of(p: &KeptPatch) -> BuildPatch {
        BuildPatch {
            from_build_id: p.from_build,
            to_build_id: p.to_build,
            size_bytes: p.size_bytes,
        }
    }
}

impl AppView {
    /// The app with its builds and patches; `show_key` adds its client key.
    fn of(st: &AppState, d: &AppDetail, show_key: bool) -> AppView {
        let (r, builds, patches) = (&d.app, &d.builds, &d.patches);
        let size: i64 = builds.iter().map(|b| b.image_bytes).sum::<i64>()
            + patches.iter().map(|p| p.size_bytes).sum::<i64>();
        let client_key = show_key.then(|| {
            r.client_key_sealed
                .as_deref()
                .and_then(|k| st.data_key.open(k))
                .and_then(|b| String::from_utf8(b).ok())
        });
        AppView {
            name: r.name.clone(),
            label: r.label.clone(),
            max_builds: r.max_builds,
            // Stored as JSON text; text that does not parse reads as no deployment, as it always has.
            deployments: serde_json::from_str(&r.deployments).unwrap_or(json!([])),
            i_cur_build: r.i_cur_build,
            dxf_name: r.dxf_name.clone(),
            build_name: r.build_name.clone(),
            builds: builds.iter().map(AppBuild::of).collect(),
            patches: patches.iter().map(BuildPatch::of).collect(),
            processing: r.active > 0,
            exporting: r.exporting > 0,
            error: r.error == 1,
            error_task: r.error_task.clone(),
            size_bytes: size,
            client_key,
            created: rfc3339(r.created),
            updated: rfc3339(r.updated),
        }
    }
}

/// One app.
#[derive(Serialize, ToSchema)]
pub struct AppReply {
    /// Always `success`.
    status: Success,
    /// The app (projected to `fields[]` when given).
    #[schema(value_type = AppView)]
    app: Value,
}

impl AppReply {
    fn new(app: Value) -> Reply<AppReply> {
        Reply(AppReply { status: Success, app })
    }
}

page!(
    /// A page of apps.
    AppPage,
    "apps",
    AppView
);

/// Create an app
///
/// The app gets a fresh client key (shown to callers holding `keys: Read`). Every
/// deployment named must exist (400 otherwise); an app of the same name is 409
/// `item-exists`.
#[utoipa::path(post, path = "/be/v1/apps", tag = "apps", request_body = AppIn,
    responses((status = 200, description = "The new app", body = AppReply)),
    extensions(("x-rockit-auth" = json!("apps:C"))))]
async fn post_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<AppIn>,
) -> ApiResult<Reply<AppReply>> {
    let d = apps_domain::create(&st, &c, &b).await?;
    let v = AppView::of(&st, &d, c.perms.has(Resource::Keys, R));
    Ok(AppReply::new(projected(&v, None)?))
}

const APP_LIST: ListSpec = ListSpec {
    filters: &["name", "error"],
    order_fields: &["name", "created", "updated", "label"],
    default_order: ("name", false),
    unique: "name",
};

/// List apps
///
/// Order by `name`, `created`, `updated` or `label`. Launchers and CI may poll it: between
/// writes it is served from memory.
#[utoipa::path(get, path = "/be/v1/apps", tag = "apps",
    params(ListParams,
        ("name" = Option<String>, Query, description = "Only apps whose name contains this (any case)"),
        ("error" = Option<bool>, Query, description = "Only apps locked after a failed publish (`true`) or only the others (`false`); `1` and `0` also do")),
    responses((status = 200, description = "A page of apps", body = AppPage)),
    extensions(("x-rockit-auth" = json!("apps:R"))))]
async fn list_apps(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<AppPage>> {
    let q = ListQuery::parse(raw.as_deref(), &APP_LIST)?;
    let error = q.bool_filter("error")?;
    c.require(Resource::Apps, R)?;
    let show_key = c.perms.has(Resource::Keys, R);
    // Launchers and CI poll this list; between writes it is served from memory.
    let epoch = crate::db::WRITE_EPOCH.load(std::sync::atomic::Ordering::SeqCst);
    let cache_key = format!("apps:{}:{show_key}", c.org_id);
    let cached = st
        .read_cache_get(&cache_key, epoch)
        .and_then(|v| serde_json::from_value::<Vec<AppView>>(v).ok());
    let all = match cached {
        Some(all) => all,
        None => {
            let mut conn = st.db.conn().await?;
            let rows = apps::list(&mut conn, &c.org_id).await?;
            let mut all = Vec::new();
            for r in rows {
                let d = apps_domain::detail(&mut conn, r).await?;
                all.push(AppView::of(&st, &d, show_key));
            }
            if let Ok(v) = serde_json::to_value(&all) {
                st.read_cache_put(cache_key, &v, epoch);
            }
            all
        }
    };
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items = all
        .into_iter()
        .filter(|a| needle.as_ref().is_none_or(|n| a.name.to_lowercase().contains(n)))
        .filter(|a| error.is_none_or(|e| a.error == e))
        .collect();
    q.page_of(items)
}

/// One app with builds and patches
#[utoipa::path(get, path = "/be/v1/apps/{name}", tag = "apps", params(FieldsParam),
    responses((status = 200, description = "The app", body = AppReply)),
    extensions(("x-rockit-auth" = json!("apps:R"))))]
async fn get_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<AppReply>> {
    let d = apps_domain::get(&st, &c, &name).await?;
    let v = AppView::of(&st, &d, c.perms.has(Resource::Keys, R));
    Ok(AppReply::new(projected(&v, raw.as_deref())?))
}

/// The Change App body: the app by name, and what changes (absent fields stay).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppPatch {
    /// The app to change.
    name: String,
    /// The new label, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    label: Option<String>,
    /// How many builds to keep, 1 to 100; lowering it removes the oldest builds at once.
    #[schema(minimum = 1, maximum = 100)]
    max_builds: Option<i64>,
    /// The deployments to publish to from now on, by name (empty: every deployment).
    deployments: Option<Vec<String>>,
}

/// Change an app
///
/// Lowering `maxBuilds` removes the oldest builds and their patches at once. Every
/// deployment named must exist (400 otherwise).
#[utoipa::path(patch, path = "/be/v1/apps", tag = "apps", request_body = AppPatch,
    responses((status = 200, description = "The app as changed", body = AppReply)),
    extensions(("x-rockit-auth" = json!("apps:U"))))]
async fn patch_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<AppPatch>,
) -> ApiResult<Reply<AppReply>> {
    let change = AppChange {
        name: b.name,
        label: b.label,
        max_builds: b.max_builds,
        deployments: b.deployments,
    };
    let d = apps_domain::change::update(&st, &c, change).await?;
    let v = AppView::of(&st, &d, c.perms.has(Resource::Keys, R));
    Ok(AppReply::new(projected(&v, None)?))
}

/// The answer to an app's deletion.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDeleted {
    /// Always `success`.
    status: Success,
    /// `app deleted`.
    message: String,
    /// The `purge` task that removes its files from the depot and the deployments.
    task_name: String,
}

/// Delete an app and purge its files
///
/// While a pipeline is running for the app the answer is 409 `invalid-state`, unless
/// `force=true`, which cancels it. Its published files are removed by the `purge` task
/// named in the answer.
#[utoipa::path(delete, path = "/be/v1/apps/{name}", tag = "apps",
    params(("force" = Option<bool>, Query, description = "Delete even while a pipeline runs, cancelling it")),
    responses((status = 200, description = "Deleted; the purge is under way", body = AppDeleted)),
    extensions(("x-rockit-auth" = json!("apps:D"))))]
async fn delete_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<AppDeleted>> {
    let force = super::extract::flag_query(raw.as_deref(), "force")?;
    let task = apps_domain::delete::delete(&st, &c, &name, force).await?;
    Ok(Reply(AppDeleted {
        status: Success,
        message: "app deleted".into(),
        task_name: task.into_string(),
    }))
}

/// The app's new client key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientKeyReply {
    /// Always `success`.
    status: Success,
    /// The new key (`ck_…`), for the `x-rockit-client-key` header of launchers.
    client_key: String,
}

/// Rotate the app's client key (the old one stops at once)
///
/// Play sessions opened with the old key keep their own tokens until they expire.
#[utoipa::path(post, path = "/be/v1/apps/{name}/client-key", tag = "apps",
    responses((status = 200, description = "The new key", body = ClientKeyReply)),
    extensions(("x-rockit-auth" = json!("keys:U"))))]
async fn rotate_client_key(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<ClientKeyReply>> {
    let key = apps_domain::client_key::rotate(&st, &c, &name).await?;
    Ok(Reply(ClientKeyReply { status: Success, client_key: key }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_apps, post_app, get_app, patch_app, delete_app, rotate_client_key))]
pub struct Api;
