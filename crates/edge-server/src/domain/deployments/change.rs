//! Changing a deployment: the fields given replace the stored ones (secrets kept where the
//! change leaves them out), a new reach is probed, and a change that landed meanwhile is
//! not overwritten.

use super::{
    check_fs_apart, parse_download_auth, parse_origin, parse_prefix, parse_public_url, probe,
    target_of,
};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::names::text;
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::deployments::{self as store, Deployment};
use serde_json::Value;

/// What a Change Deployment asks for; `None` fields stay as they are.
pub(crate) struct DeploymentChange {
    /// The deployment to change.
    pub name: String,
    /// The new label; `Some(None)` removes it.
    pub label: Option<Option<String>>,
    /// The new directory inside the origin.
    pub origin_prefix: Option<String>,
    /// The new origin, complete (its secret may be left out or sent as `********` to keep
    /// it while the type stays the same).
    pub origin: Option<Value>,
    /// The new download signing (its secret kept likewise); `Some(None)` stops signing.
    pub download_auth: Option<Option<Value>>,
    /// The new public URL; `Some(None)` removes it.
    pub public_url: Option<Option<String>>,
    /// Probe the origin when `origin` or `origin_prefix` changes it.
    pub probe: bool,
}

/// Changes a deployment of the caller's organization; returns it with the apps that name
/// it. Checks in the API's order: the label, prefix and URL (400), `deployments: Update`
/// (403), an unknown deployment (404), the origin and download signing (400), an `fs`
/// directory outside the root or another organization's (400), the probe of a new reach
/// (400 with `details.probe`), and a change that landed since it was read (409
/// `invalid-state`: send the change again).
pub(crate) async fn update(
    st: &AppState,
    c: &Caller,
    ch: DeploymentChange,
) -> ApiResult<(Deployment, Vec<String>)> {
    let label = match ch.label {
        Some(Some(l)) => Some(Some(text("label", &l, 1, 200)?)),
        Some(None) => Some(None),
        None => None,
    };
    let prefix = ch.origin_prefix.as_deref().map(|p| parse_prefix(Some(p))).transpose()?;
    let public_url = match &ch.public_url {
        Some(u) => Some(parse_public_url(u.as_deref())?),
        None => None,
    };
    c.require(Resource::Deployments, U)?;
    let mut d = store::get(&mut *st.db.conn().await?, &c.org_id, &ch.name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", &ch.name))?;
    let loaded_at = d.updated;
    let open = |s: &Option<String>| {
        s.as_ref().and_then(|s| st.data_key.open(s)).and_then(|b| String::from_utf8(b).ok())
    };
    let mut reach_changed = false;
    if let Some(o) = &ch.origin {
        let (kind, origin, secret) = parse_origin(o, Some((&d.kind, open(&d.secret_sealed))))?;
        d.kind = kind;
        d.origin = origin;
        d.secret_sealed = secret.map(|s| st.data_key.seal(s.as_bytes()));
        reach_changed = true;
    }
    match &ch.download_auth {
        Some(None) => {
            d.download_auth = Value::Null;
            d.download_secret_sealed = None;
        }
        Some(Some(v)) => {
            let keep_kind = d.download_auth["type"].as_str().unwrap_or("").to_string();
            let (v, s) =
                parse_download_auth(v, Some((&keep_kind, open(&d.download_secret_sealed))))?;
            d.download_auth = v;
            d.download_secret_sealed = Some(st.data_key.seal(s.as_bytes()));
        }
        None => {}
    }
    if let Some(l) = label {
        d.label = l;
    }
    if let Some(p) = prefix {
        reach_changed |= p != d.prefix;
        d.prefix = p;
    }
    if let Some(u) = public_url {
        d.public_url = u;
    }
    if d.kind == "fs" {
        target_of(st, &d)?;
    }
    if reach_changed {
        check_fs_apart(st, &mut *st.db.conn().await?, &d).await?;
    }
    if reach_changed && ch.probe {
        probe(st, &d).await?;
    }
    d.updated = crate::util::now_ms();
    let mut tx = st.db.tx().await?;
    // Read, probed and written without a lock held through the probe: a change that
    // landed meanwhile is not silently overwritten.
    let current = store::get(&mut tx, &c.org_id, &ch.name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", &ch.name))?;
    if current.updated != loaded_at {
        return Err(ApiError::conflict(
            "invalid-state",
            "the deployment changed meanwhile; send the change again",
        ));
    }
    check_fs_apart(st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    let apps = store::apps_using(&mut tx, &c.org_id, &d.name).await?;
    tx.commit().await?;
    Ok((d, apps))
}
