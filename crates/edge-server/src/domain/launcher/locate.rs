//! Where a launcher finds the image of a session: the first of the app's deployments (its
//! list order, by name when the list is empty) with a `publicUrl` that holds the image,
//! with a download token when the deployment signs downloads; else the depot through this
//! server.

use crate::dlauth;
use crate::error::{ApiError, ApiResult};
use crate::ids::BuildId;
use crate::state::AppState;
use crate::store::{deployments, launcher, Conn};
use crate::util::now_ms;

/// Where an image is.
pub(crate) struct Location {
    /// The image's manifest.
    pub manifest_url: String,
    /// The query to add to every URL of the image (a CDN download token), when the
    /// deployment serving it has download authentication.
    pub download_query: Option<String>,
}

/// Locates the image `dxf` of build `build` of `app` (of the organization called `org`).
pub(crate) async fn locate(
    st: &AppState,
    c: &mut Conn,
    app: &launcher::LauncherApp,
    org: &str,
    build: BuildId,
    dxf: &str,
) -> ApiResult<Location> {
    let (app_id, app_name) = (&app.id, &app.name);
    let listed: Vec<String> = serde_json::from_str(&app.deployments).unwrap_or_default();
    let mut deps = deployments::list(c, &app.org_id).await?;
    if listed.is_empty() {
        deps.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        deps = listed.iter().filter_map(|n| deps.iter().find(|d| &d.name == n).cloned()).collect();
    }
    for d in deps {
        let Some(base) = &d.public_url else { continue };
        let dir = edge_origin::keys::dxf_dir(&d.prefix, org, app_name, build.get() as u64, dxf);
        let manifest_key = format!("{dir}/manifest.json");
        if !launcher::holds(c, app_id, &d.id, &manifest_key).await? {
            continue;
        }
        let manifest_url = format!("{base}/{manifest_key}");
        let download_query = download_token(st, &d, base, &dir)?;
        return Ok(Location { manifest_url, download_query });
    }
    let manifest_url = format!(
        "{}/client/v1/depot/{org}/{app_name}/{}/{dxf}/manifest.json",
        st.public_url,
        edge_origin::keys::build_dir_name(build.get() as u64)
    );
    Ok(Location { manifest_url, download_query: None })
}

/// The download token of deployment `d` for the image directory `dir` under its public
/// URL `base`, valid for its `window` from now; none when it does not sign downloads.
fn download_token(
    st: &AppState,
    d: &deployments::Deployment,
    base: &str,
    dir: &str,
) -> ApiResult<Option<String>> {
    let (Some(kind), Some(sealed)) = (d.download_auth["type"].as_str(), &d.download_secret_sealed)
    else {
        return Ok(None);
    };
    let secret = st
        .data_key
        .open(sealed)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::internal("download secret unreadable"))?;
    let window = d.download_auth["window"].as_i64().unwrap_or(3600);
    // The URL path of the image directory on the CDN, for the token's scope.
    let dir_path = reqwest::Url::parse(&format!("{base}/{dir}/"))
        .map(|u| u.path().to_string())
        .map_err(ApiError::internal)?;
    let now_s = now_ms() / 1000;
    Ok(Some(match kind {
        "akamai" => dlauth::akamai(&secret, &format!("{dir_path}*"), now_s, window)
            .ok_or_else(|| ApiError::internal("akamai key is not hex"))?,
        _ => dlauth::gcore(&secret, &dir_path, now_s + window),
    }))
}
