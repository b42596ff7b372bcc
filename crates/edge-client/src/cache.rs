//! The local cache directory:
//!
//! ```text
//! <cache>/lock                      locked (flock) while a runtime uses the cache; holds its pid
//! <cache>/images/<dxfName>/         manifest.json, manifest.sig, index.json as they were verified
//! <cache>/chunks/<xx>/<64 hex>      the raw bytes of one chunk, named by its BLAKE3
//! <cache>/tmp/                      chunks being written (emptied at start)
//! ```
//!
//! A chunk is written to `tmp/` and renamed to its name only after its bytes matched their
//! hash, so its name is the record that it was verified; a kill -9 leaves at most a file in
//! `tmp/`. A name is still never trusted blindly: a chunk found on disk at start is hashed
//! again before its first byte is served (this catches a power loss that kept the name but
//! not the data, and any later damage), so no unverified byte is ever served. Chunks are
//! shared by every image played from the cache: a new build of the same app downloads only
//! the chunks it does not share with the old one.

use crate::error::{Error, ErrorKind, Result};
use edge_engine::Hash;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Chunk files kept open for reads. A program reading a file in pieces reads each chunk
/// several times in a row (128 KiB requests through the page cache, `tar`'s 10 KiB records
/// with direct I/O): one open file per chunk saves an open and a close per read, and keeps
/// the kernel's read-ahead state of that file, so a chunk not in the page cache is read
/// from the disk in large sequential requests instead of one small request per read.
const OPEN_CHUNKS: usize = 64;

/// The open chunk files, oldest first out.
#[derive(Debug, Default)]
struct OpenChunks {
    files: HashMap<Hash, Arc<File>>,
    order: VecDeque<Hash>,
}

/// An open, locked cache directory.
#[derive(Debug)]
pub(crate) struct Cache {
    root: PathBuf,
    /// Held for the runtime's life (or until [`Cache::unlock`]): the lock goes with it,
    /// and with the process.
    lock: Mutex<Option<File>>,
    seq: AtomicU64,
    /// Chunk files open for [`Cache::read_at`]. A chunk's name is only ever given to its
    /// verified bytes (a rename of a checked file), so an open file stays right for its hash
    /// even when the name is replaced by another copy of the same bytes.
    open: Mutex<OpenChunks>,
}

impl Cache {
    /// Opens (creating) and locks `root`. Another runtime holding it: [`ErrorKind::Locked`].
    pub(crate) fn open(root: &Path) -> Result<Cache> {
        fs::create_dir_all(root).map_err(|e| Error::io(root.display(), e))?;
        let lock_path = root.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(lock_path.display(), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let who =
                    holder.trim().parse::<u32>().map(|p| format!(" (pid {p})")).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Locked,
                    format!(
                        "the cache directory {} is in use by another rockit runtime{who}; give each runtime its own cache",
                        root.display()
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(lock_path.display(), e)),
        }
        let _ = lock.set_len(0);
        let _ = lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0);
        let tmp = root.join("tmp");
        let _ = fs::remove_dir_all(&tmp);
        for d in [tmp, root.join("chunks"), root.join("images")] {
            fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            lock: Mutex::new(Some(lock)),
            seq: AtomicU64::new(0),
            open: Mutex::new(OpenChunks::default()),
        })
    }

    /// Lets another runtime have the cache. Chunks still being written by this one land
    /// by atomic renames of verified bytes, which is safe beside another writer.
    pub(crate) fn unlock(&self) {
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where chunk `h` lives.
    pub(crate) fn chunk_path(&self, h: &Hash) -> PathBuf {
        let hex = h.hex();
        self.root.join("chunks").join(&hex[..2]).join(hex)
    }

    /// Whether a chunk of `raw` bytes is on disk (not yet checked).
    pub(crate) fn has(&self, h: &Hash, raw: u64) -> bool {
        fs::symlink_metadata(self.chunk_path(h))
            .map(|m| m.is_file() && m.len() == raw)
            .unwrap_or(false)
    }

    /// Reads a whole chunk and checks it against its hash; a chunk that does not match is
    /// removed (`Ok(None)`).
    pub(crate) fn load_verified(&self, h: &Hash, raw: u64) -> Result<Option<Vec<u8>>> {
        let p = self.chunk_path(h);
        let mut data = Vec::with_capacity(raw as usize);
        match File::open(&p).and_then(|f| f.take(raw + 1).read_to_end(&mut data)) {
            Ok(_) if data.len() as u64 == raw && Hash::of(&data) == *h => Ok(Some(data)),
            Ok(_) => {
                let _ = fs::remove_file(&p);
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    /// Stores a verified chunk: written under `tmp/`, then renamed to its name.
    pub(crate) fn put(&self, h: &Hash, raw: &[u8]) -> Result<()> {
        let dest = self.chunk_path(h);
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}",
            h.hex(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(raw)?;
            drop(f);
            if let Some(d) = dest.parent() {
                fs::create_dir_all(d)?;
            }
            fs::rename(&tmp, &dest)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(dest.display(), e)
        })
    }

    /// Bytes `[off, off + buf.len())` of a stored chunk.
    pub(crate) fn read_at(&self, h: &Hash, off: u64, buf: &mut [u8]) -> Result<()> {
        let io = |e| Error::io(format!("cache {}", self.chunk_path(h).display()), e);
        let f = self.open_chunk(h).map_err(io)?;
        f.read_exact_at(buf, off).map_err(|e| {
            // A damaged or vanished file is not kept: the next read opens the name again.
            let mut o = self.lock_open();
            o.files.remove(h);
            o.order.retain(|x| x != h);
            io(e)
        })
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, OpenChunks> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chunk's file, opened once and kept among the last [`OPEN_CHUNKS`] opened.
    fn open_chunk(&self, h: &Hash) -> std::io::Result<Arc<File>> {
        if let Some(f) = self.lock_open().files.get(h) {
            return Ok(f.clone());
        }
        // Opened without the lock held: other readers do not wait for this one's disk.
        let f = Arc::new(File::open(self.chunk_path(h))?);
        let mut o = self.lock_open();
        if o.files.insert(*h, f.clone()).is_none() {
            o.order.push_back(*h);
        }
        while o.order.len() > OPEN_CHUNKS {
            if let Some(old) = o.order.pop_front() {
                o.files.remove(&old);
            }
        }
        Ok(f)
    }

    /// Writes one of an image's verified metadata files (`images/<dxf>/<name>`).
    pub(crate) fn put_meta(&self, dxf: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join("images").join(dxf);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{dxf}.{name}.{}", self.seq.fetch_add(1, Ordering::Relaxed)));
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&dir)?;
            fs::write(&tmp, bytes)?;
            fs::rename(&tmp, dir.join(name))
        };
        write().map_err(|e| Error::io(dir.join(name).display(), e))
    }

    /// One of an image's kept metadata files, when present.
    pub(crate) fn meta(&self, dxf: &str, name: &str) -> Option<Vec<u8>> {
        if dxf.is_empty() || dxf.contains(['/', '\\']) || dxf.starts_with('.') {
            return None;
        }
        fs::read(self.root.join("images").join(dxf).join(name)).ok()
    }
}
