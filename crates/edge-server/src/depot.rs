//! The depot: the Edge's working data (uploaded tars, chunk stores, build trees, staged
//! images and patches, play traces) and its published copy of every image.
//!
//! Every piece has a key (`uploads/<group>.tar`, `chunks/<app id>/<xx>/<hash>`, …) that is
//! also its path under the data directory. On the embedded default the data directory *is*
//! the depot. With an S3 depot (`depot_s3_*`, for several processes) the bucket holds the
//! truth and the data directory is this process's cache: a step pulls what it reads
//! ([`Depot::fetch`], [`Depot::pull_dir`], [`Depot::pull_chunks`]) and pushes what it wrote
//! before it commits ([`Depot::push`], [`Depot::push_dir`], [`Depot::push_chunks`]), so the
//! next step can run in any process. Everything pushed is immutable under its key, or
//! written under a key of the run that made it (staging is per worker), so a cached copy
//! is never stale. Per-app keys use the app's id (never its name): a re-created app of the
//! same name starts clean.

use crate::config::{Config, ConfigError};
use crate::error::{from_causes, About, AboutExt};
use crate::ids::AppId;
use edge_engine::Hash;
use edge_origin::{Origin, OriginConfig, OriginError, OriginOptions};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Uploads and downloads run this many at once (chunks are many and small).
const PARALLEL: usize = 16;

/// The depot of this process.
pub struct Depot {
    root: PathBuf,
    remote: Option<Remote>,
    /// The published copy, for reading it back (launchers, `mkseq`).
    published: Origin,
    /// Key prefix of the published copy on `published` (`""` or `"…/depot/"`).
    published_prefix: String,
}

/// An S3 bucket (and key prefix) holding the depot.
struct Remote {
    origin: Origin,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    /// The S3 settings, for the published copy's publishing target.
    spec: serde_json::Value,
    secret: String,
}

/// Why the depot failed; each shows as the message it always had (task exceptions and
/// logs carry it).
#[derive(Debug)]
pub enum DepotError {
    /// The bucket (or the published copy) failed: `depot: <why>`.
    Store(OriginError),
    /// Something the caller needs is not in the bucket: `<what> is missing from the depot`.
    Missing(String),
    /// A file or directory of this process's copy: `<path or key>: <why>`.
    Local(About<std::io::Error>),
    /// The data directory is not there: `data directory <path> is missing`.
    NoDataDir(PathBuf),
    /// The published copy's origin cannot be made (the data directory as an `fs` origin).
    Published(OriginError),
    /// The S3 depot's settings are incomplete or wrong.
    Settings(ConfigError),
    /// A transfer task panicked or was cancelled.
    Join(tokio::task::JoinError),
}

impl fmt::Display for DepotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepotError::Store(e) => write!(f, "depot: {e}"),
            DepotError::Missing(what) => write!(f, "{what} is missing from the depot"),
            DepotError::Local(e) => e.fmt(f),
            DepotError::NoDataDir(p) => write!(f, "data directory {} is missing", p.display()),
            DepotError::Published(e) => e.fmt(f),
            DepotError::Settings(e) => e.fmt(f),
            DepotError::Join(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DepotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DepotError::Store(e) | DepotError::Published(e) => Some(e),
            DepotError::Local(e) => Some(e),
            DepotError::Settings(e) => Some(e),
            DepotError::Join(e) => Some(e),
            DepotError::Missing(_) | DepotError::NoDataDir(_) => None,
        }
    }
}

from_causes!(DepotError { OriginError => Store, About<std::io::Error> => Local });

/// The uploaded or downloaded tar of an import (one per task group).
pub fn upload_key(group: &str) -> String {
    format!("uploads/{group}.tar")
}

/// The chunk store of an app (a directory).
pub fn chunks_key(app_id: &AppId) -> String {
    format!("chunks/{app_id}")
}

/// The build tree (JSON) an import's `mkraw` wrote.
pub fn tree_key(app_id: &AppId, group: &str) -> String {
    format!("trees/{app_id}/{group}.json")
}

/// Where a task group's image and patches are staged before publishing, per worker
/// (`owner`): a run whose lease was taken over can never mix its files into the winner's.
pub fn staging_key(app_id: &AppId, group: &str, owner: &str) -> String {
    format!("staging/{app_id}/{group}/{owner}")
}

/// Everything staged for a group, whoever wrote it.
pub fn group_staging_key(app_id: &AppId, group: &str) -> String {
    format!("staging/{app_id}/{group}")
}

/// A play trace (zstd-compressed `rockit-trace`).
pub fn trace_key(app_id: &AppId, trace_id: &str) -> String {
    format!("traces/{app_id}/{trace_id}.json.zst")
}

/// Every per-app directory (removed when the app goes).
pub fn app_keys(app_id: &AppId) -> Vec<String> {
    ["chunks", "trees", "staging", "traces"].iter().map(|d| format!("{d}/{app_id}")).collect()
}

impl Depot {
    /// The depot the configuration names: S3 when `depot_s3_bucket` is set, else the data
    /// directory. Checks the settings' shape, not the bucket (see [`Depot::ready`]).
    pub fn new(cfg: &Config) -> Result<Depot, DepotError> {
        let root = std::path::absolute(&cfg.data_dir)
            .about(|| format!("data directory {}", cfg.data_dir.display()))?;
        let Some(bucket) = cfg.depot_s3_bucket.clone() else {
            let published = Origin::new(
                OriginConfig::Fs { root: root.join("depot") },
                OriginOptions::default(),
            )
            .map_err(DepotError::Published)?;
            return Ok(Depot { root, remote: None, published, published_prefix: String::new() });
        };
        let crate::config::DepotS3 { endpoint, access_key_id, secret_access_key: secret, .. } =
            cfg.depot_s3().map_err(DepotError::Settings)?.ok_or_else(|| {
                DepotError::Settings(ConfigError::from("depot_s3_bucket is set but not complete"))
            })?;
        let origin = Origin::new(
            OriginConfig::S3 {
                endpoint: endpoint.clone(),
                region: cfg.depot_s3_region.clone(),
                bucket: bucket.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret.clone(),
                path_style: cfg.depot_s3_path_style,
            },
            // The operator configured this store: private addresses are its normal place.
            OriginOptions { allow_private: true, timeout: std::time::Duration::from_secs(60) },
        )?;
        let prefix = if cfg.depot_s3_prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", cfg.depot_s3_prefix)
        };
        let spec = serde_json::json!({"endpoint": endpoint, "region": cfg.depot_s3_region, "bucket": bucket,
            "accessKeyId": access_key_id, "pathStyle": cfg.depot_s3_path_style});
        let published_prefix = format!("{prefix}depot/");
        Ok(Depot {
            root,
            published: origin.clone(),
            published_prefix,
            remote: Some(Remote { origin, prefix, spec, secret }),
        })
    }

    /// True when the depot is an S3 bucket shared by several processes.
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// The local path of `key` (the depot itself, or this process's cached copy).
    pub fn local(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.split('/'));
        p
    }

    /// Where the published copy of every image lives: an `fs` origin in the data directory,
    /// or the bucket under `<prefix>/depot`. Returns (kind, origin fields, key prefix, secret).
    pub fn published(&self) -> (&'static str, serde_json::Value, String, Option<String>) {
        match &self.remote {
            None => (
                "fs",
                serde_json::json!({"path": self.root.join("depot").display().to_string()}),
                String::new(),
                None,
            ),
            Some(r) => ("s3", r.spec.clone(), format!("{}depot", r.prefix), Some(r.secret.clone())),
        }
    }

    /// Reads a (small) published object, `rel` relative to the published layout's root
    /// (`dxf/<org>/…`); `None` when it is not there.
    pub async fn read_published(&self, rel: &str) -> Result<Option<Vec<u8>>, DepotError> {
        Ok(self.published.get(&format!("{}{rel}", self.published_prefix)).await?)
    }

    /// The size of a published object; `None` when it is not there.
    pub async fn published_size(&self, rel: &str) -> Result<Option<u64>, DepotError> {
        Ok(self.published.head(&format!("{}{rel}", self.published_prefix)).await?)
    }

    /// Opens a published object for a streamed read, whole or an inclusive byte range.
    pub async fn open_published(
        &self,
        rel: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<edge_origin::Download>, DepotError> {
        Ok(self.published.open(&format!("{}{rel}", self.published_prefix), range).await?)
    }

    /// A local directory holding the published image directory `rel` (`dxf/<org>/…/<dxf>`):
    /// the published copy itself on a local depot; on a bucket, its files downloaded under
    /// the key `scratch` (missing or differently sized ones only). `None` when the depot
    /// holds no such image.
    pub async fn published_dir(
        &self,
        rel: &str,
        scratch: &str,
    ) -> Result<Option<PathBuf>, DepotError> {
        if self.remote.is_none() {
            let dir = self.root.join("depot").join(rel);
            return Ok(tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()).then_some(dir));
        }
        let prefix = format!("{}{rel}/", self.published_prefix);
        let objects = self.published.list(&prefix).await?;
        if objects.is_empty() {
            return Ok(None);
        }
        let dir = self.local(scratch);
        for (key, size) in objects {
            let path = dir.join(&key[prefix.len()..]);
            if tokio::fs::metadata(&path).await.map(|m| m.len()).ok() != Some(size)
                && !self.published.get_to_file(&key, &path).await?
            {
                return Err(DepotError::Missing(key));
            }
        }
        Ok(Some(dir))
    }

    /// Checks that the depot answers: the data directory exists, or the bucket lists.
    pub async fn ready(&self) -> Result<(), DepotError> {
        match &self.remote {
            None => match tokio::fs::metadata(&self.root).await {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(DepotError::NoDataDir(self.root.clone())),
            },
            Some(r) => Ok(r.origin.head(&format!("{}.rockit-ready", r.prefix)).await.map(drop)?),
        }
    }

    /// Sends the local file of `key` to the bucket (nothing to do on a local depot).
    pub async fn push(&self, key: &str) -> Result<(), DepotError> {
        let Some(r) = &self.remote else { return Ok(()) };
        Ok(r.origin.put_file(&format!("{}{key}", r.prefix), &self.local(key)).await?)
    }

    /// The local path of `key`, downloaded first when only the bucket has it. A missing
    /// object is an error naming `what`.
    pub async fn fetch(&self, key: &str, what: &str) -> Result<PathBuf, DepotError> {
        let path = self.local(key);
        if let Some(r) = &self.remote {
            if tokio::fs::metadata(&path).await.is_err() {
                let found = r.origin.get_to_file(&format!("{}{key}", r.prefix), &path).await?;
                if !found {
                    return Err(DepotError::Missing(what.to_string()));
                }
            }
        }
        Ok(path)
    }

    /// Sends every file under the local directory `dir` (a key), in name order with
    /// `last` (a file name, e.g. the manifest) after all others.
    pub async fn push_dir(&self, dir: &str, last: &str) -> Result<(), DepotError> {
        if self.remote.is_none() {
            return Ok(());
        }
        let mut files = Vec::new();
        list_local(&self.local(dir), dir, &mut files).about(|| dir)?;
        // An earlier run's files that this one did not write go first (the directory is a
        // mirror of the local one, never a mix).
        if let Some(r) = &self.remote {
            let local: HashSet<String> = files.iter().map(|k| format!("{}{k}", r.prefix)).collect();
            let stale: Vec<String> = r
                .origin
                .list(&format!("{}{dir}/", r.prefix))
                .await?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| !local.contains(k))
                .collect();
            for k in stale {
                r.origin.delete(&k).await?;
            }
        }
        files.sort_by_key(|k| (k.rsplit('/').next() == Some(last), k.clone()));
        for k in files {
            self.push(&k).await?;
        }
        Ok(())
    }

    /// Makes the local directory `dir` (a key) hold what the bucket holds under it:
    /// missing or differently sized files are downloaded. True when the bucket had any.
    pub async fn pull_dir(&self, dir: &str) -> Result<bool, DepotError> {
        let Some(r) = &self.remote else {
            return Ok(tokio::fs::metadata(self.local(dir)).await.is_ok());
        };
        let objects = r.origin.list(&format!("{}{dir}/", r.prefix)).await?;
        let mut want = Vec::new();
        let mut remote = HashSet::new();
        for (k, size) in &objects {
            let key = k[r.prefix.len()..].to_string();
            let have = tokio::fs::metadata(self.local(&key)).await.map(|m| m.len()).ok();
            if have != Some(*size) {
                want.push(key.clone());
            }
            remote.insert(key);
        }
        // Local files the bucket does not have are not part of what was staged.
        let mut local = Vec::new();
        let _ = list_local(&self.local(dir), dir, &mut local);
        for k in local.iter().filter(|k| !remote.contains(*k)) {
            let _ = tokio::fs::remove_file(self.local(k)).await;
        }
        self.download_all(want).await?;
        Ok(!objects.is_empty())
    }

    /// Removes `key` here and in the bucket.
    pub async fn remove(&self, key: &str) -> Result<(), DepotError> {
        let _ = tokio::fs::remove_file(self.local(key)).await;
        match &self.remote {
            None => Ok(()),
            Some(r) => Ok(r.origin.delete(&format!("{}{key}", r.prefix)).await?),
        }
    }

    /// Removes the directory `dir` (a key) and everything under it, here and in the bucket.
    pub async fn remove_dir(&self, dir: &str) -> Result<(), DepotError> {
        let local = self.local(dir);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(local)).await;
        let Some(r) = &self.remote else { return Ok(()) };
        let objects = r.origin.list(&format!("{}{dir}/", r.prefix)).await?;
        let keys: Vec<String> = objects.into_iter().map(|(k, _)| k).collect();
        let origin = r.origin.clone();
        run_parallel(keys, move |k| {
            let o = origin.clone();
            async move { Ok(o.delete(&k).await?) }
        })
        .await
    }

    /// Sends the chunks of `hashes` the bucket lacks (after an ingest): one listing of the
    /// app's chunks, then only the missing ones, so a re-run sends nothing twice.
    pub async fn push_chunks(&self, app_id: &AppId, hashes: &[Hash]) -> Result<usize, DepotError> {
        let Some(r) = &self.remote else { return Ok(0) };
        let dir = chunks_key(app_id);
        let have: HashSet<String> = r
            .origin
            .list(&format!("{}{dir}/", r.prefix))
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.rsplit('/').next().map(String::from))
            .collect();
        let mut seen = HashSet::new();
        let missing: Vec<String> = hashes
            .iter()
            .map(Hash::hex)
            .filter(|h| !have.contains(h) && seen.insert(h.clone()))
            .map(|h| chunk_key(&dir, &h))
            .collect();
        let n = missing.len();
        let (origin, prefix, root) = (r.origin.clone(), r.prefix.clone(), self.root.clone());
        run_parallel(missing, move |k| {
            let (o, path) = (origin.clone(), local_of(&root, &k));
            let key = format!("{prefix}{k}");
            async move { Ok(o.put_file(&key, &path).await?) }
        })
        .await?;
        Ok(n)
    }

    /// Downloads the chunks of `hashes` this process has not cached (before reading them).
    pub async fn pull_chunks(&self, app_id: &AppId, hashes: &[Hash]) -> Result<usize, DepotError> {
        if self.remote.is_none() {
            return Ok(0);
        }
        let dir = chunks_key(app_id);
        let mut seen = HashSet::new();
        let want: Vec<String> = hashes
            .iter()
            .map(Hash::hex)
            .filter(|h| seen.insert(h.clone()))
            .map(|h| chunk_key(&dir, &h))
            .filter(|k| !self.local(k).is_file())
            .collect();
        let n = want.len();
        self.download_all(want).await?;
        Ok(n)
    }

    async fn download_all(&self, keys: Vec<String>) -> Result<(), DepotError> {
        let Some(r) = &self.remote else { return Ok(()) };
        let (origin, prefix, root) = (r.origin.clone(), r.prefix.clone(), self.root.clone());
        run_parallel(keys, move |k| {
            let (o, path) = (origin.clone(), local_of(&root, &k));
            let key = format!("{prefix}{k}");
            async move {
                match o.get_to_file(&key, &path).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(DepotError::Missing(k)),
                    Err(e) => Err(DepotError::Store(e)),
                }
            }
        })
        .await
    }
}

fn chunk_key(dir: &str, hex: &str) -> String {
    format!("{dir}/{}/{hex}", &hex[..2])
}

fn local_of(root: &Path, key: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(key.split('/'));
    p
}

/// Files under `dir` (whose key is `key`), as keys; temporary (dot) files skipped.
fn list_local(dir: &Path, key: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            list_local(&e.path(), &format!("{key}/{name}"), out)?;
        } else {
            out.push(format!("{key}/{name}"));
        }
    }
    Ok(())
}

/// Runs `f` on every item, [`PARALLEL`] at a time; the first error wins (the others
/// still finish: every operation here is idempotent).
async fn run_parallel<F, Fut>(items: Vec<String>, f: F) -> Result<(), DepotError>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), DepotError>> + Send + 'static,
{
    let queue = Arc::new(std::sync::Mutex::new(items));
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let (q, f) = (queue.clone(), f.clone());
        set.spawn(async move {
            loop {
                let next = q.lock().expect("depot queue").pop();
                let Some(k) = next else { return Ok(()) };
                f(k).await?;
            }
        });
    }
    let mut first = Ok(());
    while let Some(r) = set.join_next().await {
        let r = r.map_err(DepotError::Join).and_then(|r| r);
        if first.is_ok() {
            first = r;
        }
    }
    first
}
