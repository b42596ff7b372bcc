//! The operator's Commit Export (`POST /adm/v1/commit`): a bundle made to hold in an
//! organization, created from it when it does not exist.

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Admin;
use crate::http::extract::JsonBody;
use crate::http::reply::{Reply, Success};
use crate::ids::OrgId;
use crate::names::Name;
use crate::orgconf::apply::{apply, passwords_for, CreatedSecret};
use crate::orgconf::items::read;
use crate::orgconf::plan::make_plan;
use crate::orgconf::schema::Bundle;
use crate::orgconf::seal::BundleKey;
use crate::orgconf::service::all_resources;
use crate::orgconf::{parse_bundle, Items};
use crate::state::AppState;
use crate::store::orgs;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// The Commit Export body: the organization and the bundle to make it hold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AdminCommitIn {
    /// The organization: created when it does not exist, else restored into.
    org_name: String,
    /// The bundle.
    #[schema(value_type = Bundle)]
    bundle: Value,
    /// The label of an organization created (default: its name).
    label: Option<String>,
    /// The organization's private key (PEM, base64), to open the bundle's secrets with;
    /// a new organization keeps it as its key. Default: the existing organization's key.
    org_priv_pem_b64: Option<String>,
    /// The password of an encrypted `orgPrivPemB64`.
    #[serde(rename = "orgPrivPW")]
    org_priv_pw: Option<String>,
}

/// What a Commit Export did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCommitReply {
    /// Always `success`.
    status: Success,
    /// The organization.
    org_name: String,
    /// True when this call created the organization.
    created: bool,
    /// How many items were created or updated.
    applied: usize,
    /// The credentials of what was created, shown this once.
    secrets: Vec<CreatedSecret>,
    /// Only when the organization was created: the initial password of its administrator
    /// (the bundle's first person holding `Administrators`).
    #[serde(rename = "adminPW", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    admin_pw: Option<String>,
}

/// The person a new organization is created with: the first (by username) person of the
/// bundle holding `Administrators`.
fn bundle_admin(items: &Items) -> ApiResult<Value> {
    items
        .get("users")
        .into_iter()
        .flatten()
        .filter(|u| u["type"] != "machine" && u["email"].is_string())
        .find(|u| u["roles"].as_array().is_some_and(|r| r.iter().any(|r| r == crate::store::roles::ADMINISTRATORS)))
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid("bundle", "the bundle holds no person with the Administrators role to administer the new organization")
        })
}

/// Commit Export: create or restore an organization from a bundle
///
/// Without the organization, it is created with the bundle's first person holding
/// `Administrators` as its administrator (400 when there is none), then everything else
/// is applied; all or nothing (a failure deletes what this call created). With it, the
/// bundle is applied as the operator would (no permission checks).
#[utoipa::path(post, path = "/adm/v1/commit", tag = "admin", request_body = AdminCommitIn,
    responses((status = 200, description = "Applied", body = AdminCommitReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn admin_commit(
    a: Admin,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<AdminCommitIn>,
) -> ApiResult<Reply<AdminCommitReply>> {
    let name = Name::parse("orgName", &b.org_name)?;
    let (items, _) = parse_bundle(&b.bundle)?;
    let given_key = match &b.org_priv_pem_b64 {
        Some(pem) => {
            let (pem, pw) = (pem.clone(), b.org_priv_pw.clone());
            let k = tokio::task::spawn_blocking(move || {
                crate::orgkey::parse_org_key(&pem, pw.as_deref())
            })
            .await
            .map_err(ApiError::internal)??;
            use rsa::pkcs8::DecodePrivateKey;
            Some(BundleKey::new(
                rsa::RsaPrivateKey::from_pkcs8_der(&k.pkcs8_der).map_err(ApiError::internal)?,
            )?)
        }
        None if b.org_priv_pw.is_some() => {
            return Err(ApiError::invalid("orgPrivPW", "orgPrivPW given without orgPrivPemB64"))
        }
        None => None,
    };
    let existing = orgs::by_name(&mut *st.db.conn().await?, name.as_str()).await?;
    let mut admin_pw = None;
    let created = existing.is_none();
    if created {
        let admin = bundle_admin(&items)?;
        // Everything else is checked before the organization exists: a bad bundle creates nothing.
        let mut rest = items.clone();
        if let Some(u) = rest.get_mut("users") {
            u.retain(|u| u["username"] != admin["username"]);
        }
        make_plan(
            &st,
            &mut *st.db.conn().await?,
            &OrgId::default(),
            false,
            &rest,
            &Items::new(),
            given_key.as_ref(),
        )
        .await?;
        let body = crate::domain::orgs::OrgIn {
            name: name.to_string(),
            label: b.label.clone().unwrap_or_else(|| name.to_string()),
            username: admin["username"].as_str().unwrap_or("").to_string(),
            email: admin["email"].as_str().unwrap_or("").to_string(),
            firstname: admin["firstname"].as_str().unwrap_or("").to_string(),
            surname: admin["surname"].as_str().unwrap_or("").to_string(),
            dxorglnk: None,
            org_priv_pem_b64: b.org_priv_pem_b64.clone(),
            org_priv_pw: b.org_priv_pw.clone(),
        };
        let out = crate::domain::orgs::create_org(&st, body).await?;
        admin_pw = out.get("adminPW").and_then(Value::as_str).map(String::from);
    }
    let org = orgs::by_name(&mut *st.db.conn().await?, name.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("organization vanished"))?;
    let res = apply_as_operator(&st, &org.id, org.operator, &items, given_key).await;
    let done = match res {
        Ok(d) => d,
        Err(e) => {
            if created {
                // All or nothing: the organization this call created goes again.
                let mut tx = st.db.tx().await?;
                orgs::delete(&mut tx, &org.id).await?;
                tx.commit().await?;
            }
            return Err(e);
        }
    };
    crate::domain::audit::audit(&st, &a.username, "org.commit", name.as_str()).await?;
    Ok(Reply(AdminCommitReply {
        status: Success,
        org_name: name.to_string(),
        created,
        applied: done.applied,
        secrets: done.secrets,
        admin_pw,
    }))
}

async fn apply_as_operator(
    st: &AppState,
    org_id: &OrgId,
    operator: bool,
    items: &Items,
    given_key: Option<BundleKey>,
) -> ApiResult<crate::orgconf::apply::Applied> {
    // A first plan, only read, names the people to create: their passwords are hashed
    // before the write lock is taken.
    let passwords = {
        let mut conn = st.db.conn().await?;
        let own = match &given_key {
            Some(_) => None,
            None => BundleKey::of_org(st, &mut conn, org_id).await?,
        };
        let current = read(st, &mut conn, org_id, operator, &all_resources()).await?;
        let steps = make_plan(
            st,
            &mut conn,
            org_id,
            operator,
            items,
            &current,
            given_key.as_ref().or(own.as_ref()),
        )
        .await?;
        drop(conn);
        passwords_for(st, &steps).await?
    };
    let mut tx = st.db.tx().await?;
    let key = match given_key {
        Some(k) => Some(k),
        None => BundleKey::of_org(st, &mut tx, org_id).await?,
    };
    let current = read(st, &mut tx, org_id, operator, &all_resources()).await?;
    let steps = make_plan(st, &mut tx, org_id, operator, items, &current, key.as_ref()).await?;
    let done = apply(st, &mut tx, org_id, operator, &steps, passwords).await?;
    tx.commit().await?;
    Ok(done)
}
