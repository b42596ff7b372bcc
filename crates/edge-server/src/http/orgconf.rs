//! Organization configuration (config-export.md): `POST /be/v1/export`, `/be/v1/import`,
//! `/be/v1/commit`, and the operator's Commit Export `POST /adm/v1/commit`.

use super::auth::Admin;
use super::extract::{success, JsonBody, OptJsonBody};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::names::Name;
use crate::orgconf::items::read;
use crate::orgconf::plan::{authorize, make_plan, Step};
use crate::orgconf::seal::BundleKey;
use crate::orgconf::{
    apply::{apply, passwords_for},
    fingerprint, items_sha256, map_secrets, parse_bundle, resource_of, Items, FORMAT, RESOURCES, VERSION,
};
use crate::perms::R;
use crate::state::AppState;
use crate::store::{imports, orgs, Conn};
use crate::util::{new_id, now_ms, rfc3339};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportIn {
    include: Option<Vec<String>>,
}

async fn export(c: Caller, State(st): State<Arc<AppState>>, OptJsonBody(b): OptJsonBody<ExportIn>) -> ApiResult<Json<Value>> {
    let which: Vec<&'static str> = match b.and_then(|b| b.include) {
        Some(list) => {
            let mut out = Vec::new();
            for n in &list {
                let (name, _) = RESOURCES.iter().find(|(r, _)| r == n).ok_or_else(|| {
                    ApiError::invalid("include", format!("unknown resource '{n}' (one of {})", all_resources().join(", ")))
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
    let size = bundle.to_string().len();
    let mut export = json!({"exportId": new_id("exp"), "created": created, "sha256": sha, "sizeBytes": size, "bundle": bundle});
    if omitted {
        export["secretsOmitted"] = json!(true);
    }
    tracing::info!(org = %c.org_name, resources = ?which, "configuration exported");
    Ok(success(json!({"export": export})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportIn {
    bundle: Value,
}

/// The plan of `bundle` for the caller's org, checked and authorized, with the org's
/// current fingerprint.
async fn plan_for(st: &AppState, c: &mut Conn, caller: &Caller, bundle: &Value) -> ApiResult<(Vec<Step>, String)> {
    let (items, _) = parse_bundle(bundle)?;
    let current = read(st, c, &caller.org_id, caller.operator, &all_resources()).await?;
    let key = BundleKey::of_org(st, c, &caller.org_id).await?;
    let steps = make_plan(st, c, &caller.org_id, caller.operator, &items, &current, key.as_ref()).await?;
    authorize(c, caller, &steps, &current).await?;
    Ok((steps, fingerprint(&current)))
}

async fn import(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<ImportIn>) -> ApiResult<Json<Value>> {
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
    let plan: Vec<Value> = steps.iter().map(Step::to_json).collect();
    Ok(success(json!({"importId": id, "expires": rfc3339(now + IMPORT_TTL_MS), "plan": plan})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CommitIn {
    import_id: String,
}

async fn commit(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<CommitIn>) -> ApiResult<Json<Value>> {
    // The people the plan creates get their password hashes first, before the write lock
    // is taken; the plan is made again under it (and must match the staged one).
    let staged = imports::bundle_of(&mut *st.db.conn().await?, &c.org_id, &c.user_id, &b.import_id, now_ms()).await?;
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
        return Err(ApiError::conflict("invalid-state", "the configuration changed since the plan was made; import again"));
    }
    let done = apply(&st, &mut tx, &c.org_id, c.operator, &steps, passwords).await?;
    imports::delete(&mut tx, &b.import_id).await?;
    tx.commit().await?;
    tracing::info!(org = %c.org_name, applied = done.applied, "configuration committed");
    Ok(success(json!({"applied": done.applied, "secrets": done.secrets})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AdminCommitIn {
    org_name: String,
    bundle: Value,
    label: Option<String>,
    org_priv_pem_b64: Option<String>,
    #[serde(rename = "orgPrivPW")]
    org_priv_pw: Option<String>,
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

async fn admin_commit(a: Admin, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<AdminCommitIn>) -> ApiResult<Json<Value>> {
    let name = Name::parse("orgName", &b.org_name)?;
    let (items, _) = parse_bundle(&b.bundle)?;
    let given_key = match &b.org_priv_pem_b64 {
        Some(pem) => {
            let (pem, pw) = (pem.clone(), b.org_priv_pw.clone());
            let k = tokio::task::spawn_blocking(move || crate::orgkey::parse_org_key(&pem, pw.as_deref()))
                .await
                .map_err(ApiError::internal)??;
            use rsa::pkcs8::DecodePrivateKey;
            Some(BundleKey::new(rsa::RsaPrivateKey::from_pkcs8_der(&k.pkcs8_der).map_err(ApiError::internal)?)?)
        }
        None if b.org_priv_pw.is_some() => return Err(ApiError::invalid("orgPrivPW", "orgPrivPW given without orgPrivPemB64")),
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
        make_plan(&st, &mut *st.db.conn().await?, "", false, &rest, &Items::new(), given_key.as_ref()).await?;
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
        admin_pw = out.get("adminPW").cloned();
    }
    let org = orgs::by_name(&mut *st.db.conn().await?, name.as_str()).await?.ok_or_else(|| ApiError::internal("organization vanished"))?;
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
    let mut out = json!({"orgName": name.as_str(), "created": created, "applied": done.applied, "secrets": done.secrets});
    if let Some(pw) = admin_pw {
        out["adminPW"] = pw;
    }
    Ok(success(out))
}

async fn apply_as_operator(
    st: &AppState,
    org_id: &str,
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
        let steps = make_plan(st, &mut conn, org_id, operator, items, &current, given_key.as_ref().or(own.as_ref())).await?;
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
