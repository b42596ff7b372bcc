//! Publishing targets: a deployment's stored origin (secrets sealed) turned into an
//! `edge_origin::Origin`, and the Edge's own depot. A [`TargetSpec`] is serializable so
//! purge tasks can carry (sealed) what they must delete even after the deployment is gone.

use crate::error::{ApiError, ApiResult};
use crate::ids::DeploymentId;
use crate::state::AppState;
use edge_origin::{Origin, OriginConfig, OriginOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// A target with everything needed to reach it (secrets included: seal before storing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetSpec {
    /// Deployment id, or the empty one for the depot.
    pub deployment_id: DeploymentId,
    /// Deployment name (for messages), or "depot".
    pub name: String,
    /// Key prefix on the origin.
    pub prefix: String,
    /// `fs`, `s3`, `netstorage`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Non-secret origin fields as stored (`path` resolved absolute for fs).
    pub origin: Value,
    /// The origin's secret, if any.
    pub secret: Option<String>,
}

impl TargetSpec {
    /// The depot target: an fs origin at `<data dir>/depot`, or the depot's bucket under
    /// `<prefix>/depot`.
    pub fn depot(st: &AppState) -> TargetSpec {
        let (kind, origin, prefix, secret) = st.depot.published();
        TargetSpec {
            deployment_id: DeploymentId::default(),
            name: "depot".into(),
            prefix,
            kind: kind.into(),
            origin,
            secret,
        }
    }

    /// Connects (lazily) to the origin.
    pub fn origin(&self, st: &AppState) -> Result<Origin, edge_origin::OriginError> {
        let s = |k: &str| self.origin[k].as_str().unwrap_or("").to_string();
        let cfg = match self.kind.as_str() {
            "fs" => OriginConfig::Fs { root: PathBuf::from(s("path")) },
            "s3" => OriginConfig::S3 {
                endpoint: s("endpoint"),
                region: s("region"),
                bucket: s("bucket"),
                access_key_id: s("accessKeyId"),
                secret_access_key: self.secret.clone().unwrap_or_default(),
                path_style: self.origin["pathStyle"].as_bool().unwrap_or(false),
            },
            _ => OriginConfig::NetStorage {
                host: s("host"),
                key_name: s("keyName"),
                key: self.secret.clone().unwrap_or_default(),
                cp_code: s("cpCode"),
                base_path: self.origin["basePath"].as_str().map(String::from),
            },
        };
        let opts = OriginOptions {
            allow_private: st.cfg.allow_private_sources
                || self.kind == "fs"
                || self.deployment_id.as_str().is_empty(),
            timeout: std::time::Duration::from_secs(60),
        };
        Origin::new(cfg, opts)
    }
}

/// The root `fs` origins must stay inside.
pub fn fs_root(st: &AppState) -> PathBuf {
    st.cfg.fs_origin_root.clone().unwrap_or_else(|| st.cfg.data_dir.join("origins"))
}

/// Resolves an `fs` origin path (absolute, or relative to the root) and its key prefix
/// without creating anything (validation has no side effects): refuses `..`, anything
/// outside the root, and a path whose existing part resolves — through symlinks —
/// outside it. Returns the real origin directory (the part that does not exist yet is
/// made by the first write, under a directory already known to be inside).
pub fn resolve_fs_path(st: &AppState, path: &str, prefix: &str) -> ApiResult<PathBuf> {
    let bad = |m: &str| ApiError::invalid("origin.path", m.to_string());
    if path.is_empty() || Path::new(path).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad("origin.path must lie inside the configured fs_origin_root, without '..'"));
    }
    // The root is the operator's (configuration, not a request): it may be created.
    let root = fs_root(st);
    std::fs::create_dir_all(&root).map_err(ApiError::internal)?;
    let root = root.canonicalize().map_err(ApiError::internal)?;
    let p = Path::new(path);
    let full = if p.is_absolute() { p.to_path_buf() } else { root.join(p) };
    if !full.starts_with(&root) {
        return Err(bad("origin.path must lie inside the configured fs_origin_root"));
    }
    let outside = || {
        ApiError::invalid(
            "origin.path",
            "origin.path (symlinks resolved) must lie inside the configured fs_origin_root",
        )
    };
    let real = real_path(&full).ok_or_else(|| bad("origin.path cannot be resolved"))?;
    let real_final =
        real_path(&full.join(prefix)).ok_or_else(|| bad("origin.path cannot be resolved"))?;
    if !real.starts_with(&root) || !real_final.starts_with(&root) {
        return Err(outside());
    }
    Ok(real)
}

/// `p` with its deepest existing ancestor resolved (symlinks followed) and the missing
/// rest appended; `None` when that ancestor cannot be resolved (a dangling link) or the
/// rest holds `..`.
fn real_path(p: &Path) -> Option<PathBuf> {
    let mut existing = p;
    let mut rest = Vec::new();
    // `symlink_metadata`: a dangling symlink exists (and then fails to resolve).
    while existing.symlink_metadata().is_err() {
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?;
    }
    let mut real = existing.canonicalize().ok()?;
    if !real.is_dir() {
        return None;
    }
    for c in rest.iter().rev() {
        real.push(c);
    }
    Some(real)
}
