//! The `fs` origin: a directory on the Edge host (served by nginx, or the embedded default).
//!
//! Writes go to a temporary file beside the target, are synced, then renamed over it, so a
//! reader sees the old object or the new one, never a partial one. Deletes remove emptied
//! parent directories up to (not including) the root. Keys are checked by the caller
//! ([`crate::keys::valid_key`]) and joined segment by segment, so they cannot leave the root.

use crate::{ErrorKind, OriginError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writes in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Attempts at a write whose directory vanished under it (a concurrent delete pruned it).
const WRITE_ATTEMPTS: usize = 3;

#[derive(Clone, Debug)]
pub(crate) struct FsOrigin {
    pub(crate) root: PathBuf,
}

enum Content {
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl FsOrigin {
    pub(crate) fn new(root: PathBuf) -> Result<FsOrigin, OriginError> {
        if !root.is_absolute() {
            return Err(OriginError::invalid(format!(
                "fs origin root {} is not absolute",
                root.display()
            )));
        }
        Ok(FsOrigin { root })
    }

    pub(crate) fn path_of(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.split('/'));
        p
    }

    pub(crate) async fn put_file(&self, key: &str, src: &Path) -> Result<(), OriginError> {
        let dst = self.path_of(key);
        let src = src.to_path_buf();
        blocking(move || write_atomic(&dst, &Content::File(src))).await
    }

    pub(crate) async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<(), OriginError> {
        let dst = self.path_of(key);
        blocking(move || write_atomic(&dst, &Content::Bytes(data))).await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, OriginError> {
        let path = self.path_of(key);
        blocking(move || match fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OriginError::io(&format!("cannot read {}", path.display()), &e)),
        })
        .await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), OriginError> {
        let path = self.path_of(key);
        let root = self.root.clone();
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(OriginError::io(&format!("cannot delete {}", path.display()), &e))
                }
            }
            prune_empty_dirs(&root, &path);
            Ok(())
        })
        .await
    }
}

/// Removes the empty directories above `path`, stopping below `root` or at the first
/// directory that is not empty (or cannot be removed).
fn prune_empty_dirs(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn write_atomic(dst: &Path, content: &Content) -> Result<(), OriginError> {
    let what = || format!("cannot write {}", dst.display());
    let (Some(dir), Some(name)) = (dst.parent(), dst.file_name()) else {
        return Err(OriginError::invalid(format!("{}: no file name", what())));
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tmp = dir.join(format!(
            ".{}.{}-{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match write_tmp_then_rename(dir, &tmp, dst, content) {
            Ok(()) => return Ok(()),
            // The directory was pruned by a concurrent delete between creating it and
            // writing into it: create it again.
            Err(WriteError::Dst(e))
                if e.kind() == io::ErrorKind::NotFound && attempt < WRITE_ATTEMPTS =>
            {
                continue
            }
            Err(WriteError::Dst(e)) => {
                let _ = fs::remove_file(&tmp);
                return Err(OriginError::io(&what(), &e));
            }
            Err(WriteError::Src(path, e)) => {
                let _ = fs::remove_file(&tmp);
                return Err(OriginError::io(&format!("cannot read {}", path.display()), &e));
            }
        }
    }
}

/// Which side of a copy failed: the local source, or the origin directory.
enum WriteError {
    Src(PathBuf, io::Error),
    Dst(io::Error),
}

fn write_tmp_then_rename(
    dir: &Path,
    tmp: &Path,
    dst: &Path,
    content: &Content,
) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(WriteError::Dst)?;
    // Published files are immutable (always replaced by rename, never written in place), so
    // on the same file system a hard link publishes without copying a byte.
    if let Content::File(src) = content {
        if fs::hard_link(src, tmp).is_ok() {
            let r = fs::rename(tmp, dst).map_err(WriteError::Dst);
            // When `dst` already is this very file, rename leaves `tmp` in place (POSIX).
            let _ = fs::remove_file(tmp);
            return r;
        }
    }
    // Open the source first: a missing source must not leave a temporary file behind.
    let mut source = match content {
        Content::File(src) => Some(File::open(src).map_err(|e| WriteError::Src(src.clone(), e))?),
        Content::Bytes(_) => None,
    };
    let mut out =
        OpenOptions::new().write(true).create_new(true).open(tmp).map_err(WriteError::Dst)?;
    let written = match (content, source.as_mut()) {
        (Content::File(src), Some(file)) => copy(file, &mut out).map_err(|side| match side {
            Side::Src(e) => WriteError::Src(src.clone(), e),
            Side::Dst(e) => WriteError::Dst(e),
        }),
        (Content::Bytes(data), _) => out.write_all(data).map_err(WriteError::Dst),
        (Content::File(_), None) => unreachable!("the source was opened above"),
    };
    let result = written.and_then(|()| out.sync_all().map_err(WriteError::Dst)).and_then(|()| {
        drop(out);
        fs::rename(tmp, dst).map_err(WriteError::Dst)
    });
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// A failed copy, by side.
enum Side {
    Src(io::Error),
    Dst(io::Error),
}

/// Copies with a bounded buffer, telling a failed read from a failed write.
fn copy(src: &mut File, dst: &mut File) -> Result<(), Side> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Side::Src(e)),
        };
        dst.write_all(&buf[..n]).map_err(Side::Dst)?;
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OriginError> + Send + 'static,
) -> Result<T, OriginError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        OriginError::new(ErrorKind::Io, format!("file operation did not finish: {e}"))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, OriginConfig, OriginOptions};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "edge-origin-{tag}-{}-{}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn origin(root: &Path) -> Origin {
        Origin::new(OriginConfig::Fs { root: root.to_path_buf() }, OriginOptions::default())
            .unwrap()
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn write_read_overwrite_delete() {
        let tmp = TempDir::new("rw");
        let root = tmp.0.join("origin");
        let o = origin(&root);
        let key = crate::keys::join(
            &crate::keys::dxf_dir("rockit", "Org", "App", 3, "dxf-0123456789abcdef"),
            "pack-0001.bin",
        );

        let src = tmp.0.join("src.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        o.put_file(&key, &src).await.unwrap();
        assert_eq!(
            fs::read(root.join("rockit/dxf/Org/App/0003/dxf-0123456789abcdef/pack-0001.bin"))
                .unwrap(),
            data
        );
        assert_eq!(o.get(&key).await.unwrap().unwrap(), data);

        // Idempotent: the same write again, then an overwrite; no temporary file is left.
        o.put_file(&key, &src).await.unwrap();
        o.put_bytes(&key, b"new".to_vec()).await.unwrap();
        assert_eq!(o.get(&key).await.unwrap().unwrap(), b"new");
        assert_eq!(files_under(&root).len(), 1, "{:?}", files_under(&root));

        let sibling = crate::keys::join(
            &crate::keys::dxf_dir("rockit", "Org", "App", 4, "dxf-x"),
            "manifest.json",
        );
        o.put_bytes(&sibling, b"{}".to_vec()).await.unwrap();

        o.delete(&key).await.unwrap();
        assert_eq!(o.get(&key).await.unwrap(), None);
        // Emptied directories are pruned up to the first non-empty one; the root stays.
        assert!(!root.join("rockit/dxf/Org/App/0003").exists());
        assert!(root.join("rockit/dxf/Org/App/0004/dxf-x/manifest.json").exists());
        o.delete(&key).await.unwrap();
        o.delete(&sibling).await.unwrap();
        assert!(root.is_dir());
        assert!(fs::read_dir(&root).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn probe_leaves_nothing() {
        let tmp = TempDir::new("probe");
        let o = origin(&tmp.0);
        o.probe("").await.unwrap();
        o.probe("rockit/eu").await.unwrap();
        assert!(fs::read_dir(&tmp.0).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn a_missing_source_is_an_io_error_and_leaves_nothing() {
        let tmp = TempDir::new("missing");
        let o = origin(&tmp.0);
        let err = o.put_file("a/b.bin", &tmp.0.join("nope")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.contains("cannot read"), "{err}");
        assert!(files_under(&tmp.0).is_empty(), "{:?}", files_under(&tmp.0));
    }

    #[tokio::test]
    async fn keys_never_escape_the_root() {
        let tmp = TempDir::new("escape");
        let root = tmp.0.join("root");
        fs::create_dir_all(&root).unwrap();
        fs::write(tmp.0.join("outside.txt"), b"keep").unwrap();
        let o = origin(&root);
        for key in [
            "../outside.txt",
            "a/../../outside.txt",
            "/etc/passwd",
            "..\\outside.txt",
            "a\\..\\..\\outside.txt",
            "./x",
            "a//b",
        ] {
            assert_eq!(
                o.put_bytes(key, b"x".to_vec()).await.unwrap_err().kind,
                ErrorKind::Invalid,
                "{key}"
            );
            assert_eq!(o.get(key).await.unwrap_err().kind, ErrorKind::Invalid, "{key}");
            assert_eq!(o.delete(key).await.unwrap_err().kind, ErrorKind::Invalid, "{key}");
        }
        assert_eq!(fs::read(tmp.0.join("outside.txt")).unwrap(), b"keep");
        assert!(fs::read_dir(&root).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn concurrent_writes_of_one_key_are_atomic() {
        let tmp = TempDir::new("race");
        let o = origin(&tmp.0);
        let a = vec![b'a'; 200_000];
        let b = vec![b'b'; 200_000];
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (o, data) = (o.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
            tasks.push(tokio::spawn(async move { o.put_bytes("k/x.bin", data).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let got = o.get("k/x.bin").await.unwrap().unwrap();
        assert!(got == a || got == b);
        assert_eq!(files_under(&tmp.0).len(), 1);
    }

    #[test]
    fn relative_roots_are_refused() {
        let err = Origin::new(
            OriginConfig::Fs { root: PathBuf::from("relative/dir") },
            OriginOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
    }
}
