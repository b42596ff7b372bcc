//! Organizations: validation of a new organization (its key decrypted), creating it with its
//! role and administrator in one transaction, and deleting it with a purge.

use crate::error::{ApiError, ApiResult};
use crate::names::{email, text, Name};
use crate::state::AppState;
use crate::store::orgs;
use serde::Deserialize;
use serde_json::{json, Value};

/// The Create Organization body: the organization and its first administrator, who gets
/// the `Administrators` role. An existing person of that username is linked (and keeps
/// their password); otherwise a person is created with a random initial password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgIn {
    /// Unique in the instance: 2 to 50 letters, digits or `_`.
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    pub name: String,
    /// Display name, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub label: String,
    /// The administrator's username: 2 to 50 letters, digits or `_` (not a machine
    /// user's).
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    pub username: String,
    /// The administrator's e-mail address (always checked; used only when the person is
    /// created).
    #[schema(
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
    /// The administrator's first name, 1 to 100 characters (used only when the person is
    /// created).
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub firstname: String,
    /// The administrator's surname, 1 to 100 characters (used only when the person is
    /// created).
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub surname: String,
    /// The organization's link to its DX tenant, opaque, at most 4096 bytes.
    #[schema(max_length = 4096)]
    pub dxorglnk: Option<String>,
    /// The organization's RSA private key (at least 2048 bits): base64 of its PEM
    /// (PKCS#1 or PKCS#8, plain or encrypted). Stored sealed; only its public half and
    /// fingerprint are ever shown.
    pub org_priv_pem_b64: Option<String>,
    /// The passphrase of an encrypted `orgPrivPemB64` (only with it).
    #[serde(rename = "orgPrivPW")]
    pub org_priv_pw: Option<String>,
}

/// A Create Organization body that passed validation.
pub struct ValidOrg {
    name: Name,
    label: String,
    username: Name,
    email: String,
    first: String,
    sur: String,
    dxorglnk: Option<String>,
    key: Option<(String, Option<String>, String, String)>,
}

/// Validates the body and creates the organization atomically; answers with `adminPW`.
pub async fn create_org(st: &AppState, b: OrgIn) -> ApiResult<Value> {
    let v = validate_org(st, b).await?;
    insert_org(st, v).await
}

/// Checks every field of the body (the 400s, which come before the 403 in the contract's
/// order) and decrypts the key.
pub async fn validate_org(st: &AppState, b: OrgIn) -> ApiResult<ValidOrg> {
    let name = Name::parse("name", &b.name)?;
    let label = text("label", &b.label, 1, 200)?;
    let username = Name::parse("username", &b.username)?;
    let mail = email("email", &b.email)?;
    let first = text("firstname", &b.firstname, 1, 100)?;
    let sur = text("surname", &b.surname, 1, 100)?;
    if b.dxorglnk.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(ApiError::invalid("dxorglnk", "dxorglnk must be at most 4096 characters"));
    }
    let key = match b.org_priv_pem_b64.clone() {
        Some(pem) => {
            let pw = b.org_priv_pw.clone();
            let k = tokio::task::spawn_blocking(move || {
                crate::orgkey::parse_org_key(&pem, pw.as_deref())
            })
            .await
            .map_err(ApiError::internal)??;
            let pw_sealed = b.org_priv_pw.as_ref().map(|p| st.data_key.seal(p.as_bytes()));
            Some((st.data_key.seal(&k.pkcs8_der), pw_sealed, k.public_pem, k.fingerprint))
        }
        None if b.org_priv_pw.is_some() => {
            return Err(ApiError::invalid("orgPrivPW", "orgPrivPW given without orgPrivPemB64"))
        }
        None => None,
    };
    Ok(ValidOrg { name, label, username, email: mail, first, sur, dxorglnk: b.dxorglnk, key })
}

/// Creates an organization for `c`, a member of the operator organization with `orgs:
/// Create` (else 403, after the body is checked: 400); answers with `adminPW` when a
/// person was created.
pub async fn create_by(st: &AppState, c: &crate::caller::Caller, b: OrgIn) -> ApiResult<Value> {
    let v = validate_org(st, b).await?;
    super::operator::require_operator(c, crate::perms::C)?;
    insert_org(st, v).await
}

/// Creates a validated organization with its role and administrator in one transaction.
pub async fn insert_org(st: &AppState, v: ValidOrg) -> ApiResult<Value> {
    let ValidOrg { name, label, username, email: mail, first, sur, dxorglnk, key } = v;
    let plain = crate::crypto::random_password();
    let hash = st.passwords.hash(plain.clone()).await?;
    let mut tx = st.db.tx().await?;
    let created = orgs::create(
        &mut tx,
        orgs::NewOrg {
            name: name.to_string(),
            label,
            operator: false,
            dxorglnk,
            key,
            host: None,
            description: None,
        },
        Some(orgs::NewAdmin {
            username: username.as_str(),
            email: Some(&mail),
            firstname: Some(&first),
            surname: Some(&sur),
        }),
        Some((plain, hash)),
    )
    .await;
    let created = match created {
        Ok(c) => c,
        Err(orgs::CreateError::MachineUser) => {
            return Err(ApiError::conflict(
                "item-exists",
                format!("username '{username}' belongs to a machine user"),
            ))
        }
        Err(orgs::CreateError::Db(e)) => return Err(map_create_conflict(e, &name)),
    };
    tx.commit().await.map_err(|e| map_create_conflict(e, &name))?;
    tracing::info!(org = %name, "organization created");
    let mut out = json!({"message": "organization created"});
    if let Some(pw) = created.admin_pw {
        out["adminPW"] = json!(pw);
    }
    Ok(out)
}

pub(crate) fn map_create_conflict(e: sqlx::Error, name: &Name) -> ApiError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            let what = if d.message().contains("username")
                || d.constraint().is_some_and(|c| c.contains("username"))
            {
                "username"
            } else {
                "organization name"
            };
            ApiError::conflict("item-exists", format!("{what} already exists"))
                .detail("field", if what == "username" { "username" } else { "name" })
        }
        _ => ApiError::from(e).detail("org", name.as_str()),
    }
}

/// Deletes an organization (`?prune=true` also purges its published files through a
/// `purge` task). The operator organization is protected.
pub async fn delete_org(st: &AppState, name: &str, prune: bool) -> ApiResult<Value> {
    let mut tx = st.db.tx().await?;
    let org = orgs::by_name(&mut tx, name)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", name))?;
    if org.operator {
        return Err(ApiError::conflict(
            "item-protected",
            "the operator organization cannot be deleted",
        ));
    }
    // The purge snapshot records exactly what was published for the org, so a re-created
    // org of the same name is never touched.
    let task =
        crate::domain::purge::enqueue_for_org(st, &mut tx, &org.id, &org.name, prune).await?;
    orgs::delete(&mut tx, &org.id).await?;
    tx.commit().await?;
    tracing::info!(org = %name, prune, "organization deleted");
    let mut out = json!({"message": "organization deleted"});
    if let Some(t) = task {
        out["taskName"] = json!(t);
    }
    Ok(out)
}
