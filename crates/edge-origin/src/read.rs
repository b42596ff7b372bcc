//! Reading back from an origin: sizes, listings and streamed (ranged) downloads. The Edge's
//! own depot needs these (an `fs` directory or an S3 bucket); NetStorage origins are only
//! ever written to, so they answer [`ErrorKind::Invalid`].

use crate::{check_key, ErrorKind, Origin, OriginError, Target};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// An object being downloaded: its bytes arrive in pieces from [`Download::chunk`].
pub struct Download {
    inner: Inner,
}

enum Inner {
    Http(reqwest::Response),
    File { file: tokio::fs::File, left: u64 },
}

impl Download {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, OriginError> {
        match &mut self.inner {
            Inner::Http(r) => r.chunk().await.map_err(|e| crate::net::request_error(&e)),
            Inner::File { file, left } => {
                if *left == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0u8; (*left).min(256 << 10) as usize];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| OriginError::io("cannot read the object", &e))?;
                if n == 0 {
                    return Err(OriginError::new(
                        ErrorKind::Io,
                        "the object ended early (changed while read)",
                    ));
                }
                buf.truncate(n);
                *left -= n as u64;
                Ok(Some(buf.into()))
            }
        }
    }
}

fn unsupported() -> OriginError {
    OriginError::invalid("NetStorage origins are written to, not read back")
}

impl Origin {
    /// The size of `key`; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => match tokio::fs::metadata(o.path_of(key)).await {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(OriginError::io(&format!("cannot read {key}"), &e)),
            },
            Target::S3(o) => o.head(key).await,
            Target::NetStorage(_) => Err(unsupported()),
        }
    }

    /// Every object whose key starts with `prefix`, with its size (unordered).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, OriginError> {
        if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains('\\') {
            return Err(OriginError::invalid(format!("invalid listing prefix {prefix:?}")));
        }
        match &self.target {
            Target::Fs(o) => {
                // The directory part of the prefix is walked; the rest filters names.
                let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let (root, start, prefix) = (o.root.clone(), o.path_of(dir), prefix.to_string());
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    walk(&root, &start, &mut out)
                        .map_err(|e| OriginError::io(&format!("cannot list {prefix}"), &e))?;
                    out.retain(|(k, _)| k.starts_with(&prefix));
                    Ok(out)
                })
                .await
                .map_err(|e| OriginError::new(ErrorKind::Io, e.to_string()))?
            }
            Target::S3(o) => o.list(prefix).await,
            Target::NetStorage(_) => Err(unsupported()),
        }
    }

    /// Opens `key` for a streamed read, whole or the inclusive byte range `range` (which
    /// the caller has checked against the size); `None` when there is no such object.
    pub async fn open(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Download>, OriginError> {
        check_key(key)?;
        match &self.target {
            Target::Fs(o) => {
                let mut file = match tokio::fs::File::open(o.path_of(key)).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(OriginError::io(&format!("cannot read {key}"), &e)),
                };
                let len = file
                    .metadata()
                    .await
                    .map_err(|e| OriginError::io(&format!("cannot read {key}"), &e))?
                    .len();
                let (start, left) = match range {
                    Some((a, b)) => (a, (b.min(len.saturating_sub(1)) + 1).saturating_sub(a)),
                    None => (0, len),
                };
                file.seek(io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| OriginError::io(&format!("cannot read {key}"), &e))?;
                Ok(Some(Download { inner: Inner::File { file, left } }))
            }
            Target::S3(o) => {
                Ok(o.open(key, range).await?.map(|r| Download { inner: Inner::Http(r) }))
            }
            Target::NetStorage(_) => Err(unsupported()),
        }
    }

    /// Downloads `key` into the file `dest` (written beside it, then renamed, so `dest` is
    /// whole or absent); false when there is no such object.
    pub async fn get_to_file(&self, key: &str, dest: &Path) -> Result<bool, OriginError> {
        let Some(mut d) = self.open(key, None).await? else { return Ok(false) };
        let io_err =
            |e: io::Error| OriginError::io(&format!("cannot write {}", dest.display()), &e);
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io_err)?;
        }
        let tmp = tmp_beside(dest);
        let res = async {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
            while let Some(b) = d.chunk().await? {
                f.write_all(&b).await.map_err(io_err)?;
            }
            f.flush().await.map_err(io_err)?;
            drop(f);
            tokio::fs::rename(&tmp, dest).await.map_err(io_err)
        }
        .await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res.map(|()| true)
    }
}

/// A temporary name beside `dest`, unique within the process.
fn tmp_beside(dest: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = dest.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.dl{}-{n}", std::process::id()))
}

/// Files under `dir` as keys relative to `root` (`/`-separated), skipping temporary
/// (dot) files; a missing directory is empty.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(root, &e.path(), out)?;
        } else if ft.is_file() {
            let rel = e
                .path()
                .strip_prefix(root)
                .map_err(|_| io::Error::other("outside the root"))?
                .to_path_buf();
            let key = rel.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join("/");
            out.push((key, e.metadata()?.len()));
        }
    }
    Ok(())
}
