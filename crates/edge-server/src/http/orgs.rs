//! Organizations on the backend (`/be/v1/orgs`, `/be/v1/org`) and the shared Create /
//! Delete Organization logic used by the admin and Foundry routes.

use super::extract::{success, JsonBody};
use crate::caller::Caller;
use crate::domain::orgs::{delete_org, insert_org, validate_org, OrgIn};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, C, D, R};
use crate::state::AppState;
use crate::store::orgs;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/orgs", get(list_orgs).post(post_org))
        .route("/be/v1/orgs/{name}", get(get_org).delete(del_org))
        .route("/be/v1/org", get(own_org))
}

fn require_operator(c: &Caller, bits: u8) -> ApiResult<()> {
    if !c.operator {
        return Err(ApiError::forbidden("only the operator organization manages organizations"));
    }
    c.require(Resource::Orgs, bits)
}

async fn post_org(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<OrgIn>) -> ApiResult<Json<Value>> {
    let v = validate_org(&st, b).await?;
    require_operator(&c, C)?;
    Ok(success(insert_org(&st, v).await?))
}

async fn list_orgs(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    require_operator(&c, R)?;
    super::admin::org_list(&st, raw.as_deref()).await
}

async fn get_org(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    require_operator(&c, R)?;
    let mut conn = st.db.conn().await?;
    let o = orgs::by_name(&mut conn, &name).await?.ok_or_else(|| ApiError::not_found("organization", &name))?;
    Ok(success(json!({"org": o.to_json()})))
}

async fn del_org(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    require_operator(&c, D)?;
    let prune = super::extract::flag_query(raw.as_deref(), "prune")?;
    Ok(success(delete_org(&st, &name, prune).await?))
}

async fn own_org(c: Caller, State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let mut conn = st.db.conn().await?;
    let o = orgs::by_id(&mut conn, &c.org_id).await?.ok_or_else(|| ApiError::not_found("organization", &c.org_name))?;
    Ok(success(json!({"org": o.to_json()})))
}
