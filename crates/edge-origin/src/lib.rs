//! Publishing targets ("origins") of rockit-edge behind one type, [`Origin`]: a directory
//! on the Edge host, any S3-compatible store, or Akamai NetStorage (delivery.md,
//! "Deployments"). Object keys come from [`keys`]; every network request goes through the
//! address guard of [`net`].
//!
//! Writes are idempotent (a re-run publish overwrites with the same bytes) and deletes of
//! missing objects succeed, so callers can retry whole jobs. Retrying single requests is
//! left to the caller's job queue.

mod error;
mod fs;
mod http;
pub mod keys;
pub mod net;
mod netstorage;
mod read;
mod s3;
pub mod sigv4;

pub use error::{ErrorKind, OriginError};
pub use read::Download;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how to publish. Secrets are redacted from `Debug`.
#[derive(Clone)]
pub enum OriginConfig {
    /// A directory on the Edge host; `root` is absolute and already validated by the caller.
    Fs {
        /// The directory keys are relative to (created if missing).
        root: PathBuf,
    },
    /// Any S3-compatible store.
    S3 {
        /// `host[:port]` (https), or a full `http(s)://host[:port]` URL; without the bucket.
        endpoint: String,
        /// Signing region, e.g. `eu-central-1`.
        region: String,
        /// The bucket.
        bucket: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
        path_style: bool,
    },
    /// The Akamai NetStorage HTTP API.
    NetStorage {
        /// Upload host (`example-nsu.akamaihd.net`, https), or a full `http(s)://host[:port]` URL.
        host: String,
        /// Upload account key name.
        key_name: String,
        /// Upload account key.
        key: String,
        /// CP code, the first path segment.
        cp_code: String,
        /// Optional directory below the CP code.
        base_path: Option<String>,
    },
}

impl fmt::Debug for OriginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginConfig::Fs { root } => f.debug_struct("Fs").field("root", root).finish(),
            OriginConfig::S3 {
                endpoint,
                region,
                bucket,
                access_key_id,
                secret_access_key: _,
                path_style,
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("region", region)
                .field("bucket", bucket)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &Secret::REDACTED)
                .field("path_style", path_style)
                .finish(),
            OriginConfig::NetStorage { host, key_name, key: _, cp_code, base_path } => f
                .debug_struct("NetStorage")
                .field("host", host)
                .field("key_name", key_name)
                .field("key", &Secret::REDACTED)
                .field("cp_code", cp_code)
                .field("base_path", base_path)
                .finish(),
        }
    }
}

/// Instance-wide settings for origins.
#[derive(Clone, Debug)]
pub struct OriginOptions {
    /// Allow private, loopback and link-local targets (tests, closed networks).
    pub allow_private: bool,
    /// Bound on connecting and on each wait for data (not on a whole transfer).
    pub timeout: Duration,
}

impl Default for OriginOptions {
    fn default() -> OriginOptions {
        OriginOptions { allow_private: false, timeout: Duration::from_secs(60) }
    }
}

/// A publishing target. Cheap to clone (clones share one HTTP client).
#[derive(Clone, Debug)]
pub struct Origin {
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Fs(fs::FsOrigin),
    S3(s3::S3Origin),
    NetStorage(netstorage::NsOrigin),
}

impl Origin {
    /// Checks the configuration's shape (endpoint, bucket, paths) without contacting the
    /// store; use [`Origin::probe`] for that.
    pub fn new(cfg: OriginConfig, opts: OriginOptions) -> Result<Origin, OriginError> {
        let target = match cfg {
            OriginConfig::Fs { root } => Target::Fs(fs::FsOrigin::new(root)?),
            OriginConfig::S3 {
                endpoint,
                region,
                bucket,
                access_key_id,
                secret_access_key,
                path_style,
            } => Target::S3(s3::S3Origin::new(
                s3::S3Config {
                    endpoint,
                    region,
                    bucket,
                    access_key_id,
                    secret_access_key: Secret(secret_access_key),
                    path_style,
                },
                &opts,
            )?),
            OriginConfig::NetStorage { host, key_name, key, cp_code, base_path } => {
                Target::NetStorage(netstorage::NsOrigin::new(
                    netstorage::NsConfig { host, key_name, key: Secret(key), cp_code, base_path },
                    &opts,
                )?)
            }
        };
        Ok(Origin { target })
    }

    /// The origin type as in the deployment object: `fs`, `s3` or `netstorage`.
    pub fn type_name(&self) -> &'static str {
        match self.target {
            Target::Fs(_) => "fs",
            Target::S3(_) => "s3",
            Target::NetStorage(_) => "netstorage",
        }
    }

    /// Uploads a local file to `key`, streaming it (never loaded whole); replaces any object there.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => o.put_file(key, path).await,
            Target::S3(o) => o.put_file(key, path).await,
            Target::NetStorage(o) => o.put_file(key, path).await,
        }
    }

    /// Uploads `data` to `key`; replaces any object there.
    pub async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<(), OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => o.put_bytes(key, data).await,
            Target::S3(o) => o.put_bytes(key, data).await,
            Target::NetStorage(o) => o.put_bytes(key, data).await,
        }
    }

    /// Downloads `key`; `None` when there is no such object. Meant for small objects (manifests).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => o.get(key).await,
            Target::S3(o) => o.get(key).await,
            Target::NetStorage(o) => o.get(key).await,
        }
    }

    /// Removes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => o.delete(key).await,
            Target::S3(o) => o.delete(key).await,
            Target::NetStorage(o) => o.delete(key).await,
        }
    }

    /// Checks that the origin takes writes under `prefix`: writes, then deletes,
    /// `<prefix>/.rockit-probe` (`.rockit-probe` when `prefix` is empty).
    pub async fn probe(&self, prefix: &str) -> Result<(), OriginError> {
        if !keys::valid_prefix(prefix) {
            return Err(OriginError::invalid(format!("invalid origin prefix {prefix:?}")));
        }
        let key = keys::probe_key(prefix);
        self.put_bytes(&key, b"rockit-edge probe\n".to_vec()).await?;
        self.delete(&key).await
    }
}

fn check_key(key: &str) -> Result<(), OriginError> {
    if keys::valid_key(key) {
        Ok(())
    } else {
        Err(OriginError::invalid(format!("invalid object key {key:?}")))
    }
}

/// A value that must never reach a log: `Debug` and `Display` print `********`. Shared
/// with the server (`edge_server::crypto::Secret`): origin credentials, the admin key.
#[derive(Clone, Default)]
pub struct Secret<T = String>(pub T);

impl Secret {
    /// What `Debug` and `Display` print instead of the value.
    pub const REDACTED: &'static str = "********";
}

impl<T> Secret<T> {
    /// The value, for the one place that uses it (signing, sealing).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let s3 = OriginConfig::S3 {
            endpoint: "s3.eu-central-1.amazonaws.com".into(),
            region: "eu-central-1".into(),
            bucket: "b".into(),
            access_key_id: "AKIA1".into(),
            secret_access_key: "very-secret".into(),
            path_style: false,
        };
        let ns = OriginConfig::NetStorage {
            host: "x-nsu.akamaihd.net".into(),
            key_name: "k".into(),
            key: "very-secret".into(),
            cp_code: "123".into(),
            base_path: None,
        };
        for cfg in [s3, ns] {
            let shown = format!("{cfg:?}");
            assert!(!shown.contains("very-secret") && shown.contains("********"), "{shown}");
            let origin = Origin::new(cfg, OriginOptions::default()).unwrap();
            let shown = format!("{origin:?}");
            assert!(!shown.contains("very-secret"), "{shown}");
        }
    }

    #[tokio::test]
    async fn bad_keys_and_prefixes_are_refused_before_any_io() {
        let origin = Origin::new(
            OriginConfig::Fs { root: std::env::temp_dir().join("edge-origin-never-created") },
            OriginOptions::default(),
        )
        .unwrap();
        for key in ["../x", "/etc/passwd", "a\\b", "a/../../b", ""] {
            assert_eq!(origin.get(key).await.unwrap_err().kind, ErrorKind::Invalid, "{key}");
            assert_eq!(
                origin.put_bytes(key, vec![]).await.unwrap_err().kind,
                ErrorKind::Invalid,
                "{key}"
            );
            assert_eq!(origin.delete(key).await.unwrap_err().kind, ErrorKind::Invalid, "{key}");
        }
        assert_eq!(origin.probe("/abs").await.unwrap_err().kind, ErrorKind::Invalid);
        assert_eq!(origin.probe("a/..").await.unwrap_err().kind, ErrorKind::Invalid);
    }
}
