//! Streaming tar ingest: validates every entry (delivery.md, `mkraw`), cuts file contents
//! into content-defined chunks, stores new chunks, and returns the build's [`Tree`]. Each
//! entry's name is checked as it is read; the tree as a whole (links, and what lies under
//! them) once the archive is through, against the rules of [`crate::safepath`].

use crate::safepath::{self, Item};
use crate::store::ChunkStore;
use crate::tree::{ChunkInfo, ChunkRef, Entry, Kind, Tree};
use crate::{Hash, Params};
use std::collections::HashMap;
use std::io::{self, Read};

/// Name used for problems with the archive as a whole.
pub const ARCHIVE: &str = "native-build.tar";

/// An entry (or the archive) that the pipeline refuses: the `fileReadFailed` exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The entry's path, or [`ARCHIVE`].
    pub filename: String,
    /// What was expected (`tar`, `regular file`, `relative path`).
    pub type_expected: String,
    /// What was found (`gzip`, `character device`, `truncated`, …).
    pub type_detected: String,
}

/// Why ingest stopped.
#[derive(Debug)]
pub enum IngestError {
    /// Bad input: reported to the publisher.
    Rejected(Rejected),
    /// The Edge's own failure (disk full, …).
    Io(io::Error),
}

impl From<io::Error> for IngestError {
    fn from(e: io::Error) -> Self {
        IngestError::Io(e)
    }
}

fn reject(filename: &str, expected: &str, detected: &str) -> IngestError {
    IngestError::Rejected(Rejected {
        filename: filename.into(),
        type_expected: expected.into(),
        type_detected: detected.into(),
    })
}

/// What ingest produced.
pub struct Ingested {
    /// The build.
    pub tree: Tree,
    /// Zero-length files present (the `empty-file` warning).
    pub empty_files: usize,
    /// Chunks that were not in the store before.
    pub new_chunks: usize,
    /// Bytes of archive read.
    pub bytes_read: u64,
}

/// Names the format of a file from its first bytes.
pub fn detect(head: &[u8]) -> &'static str {
    if head.is_empty() {
        "empty"
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        "zip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        "7z"
    } else if head.len() >= 512 && (&head[257..262] == b"ustar" || tar_checksum_ok(&head[..512])) {
        "tar"
    } else {
        "unknown"
    }
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let field = std::str::from_utf8(&h[148..156]).unwrap_or("");
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
        .sum();
    sum == want && h.iter().any(|b| *b != 0)
}

/// Counts bytes and remembers the last 512 read, to tell a proper end-of-archive marker
/// from an archive cut at an entry boundary.
struct Counting<R> {
    inner: R,
    total: u64,
    tail: Vec<u8>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if n >= 512 {
            self.tail.clear();
            self.tail.extend_from_slice(&buf[n - 512..n]);
        } else {
            self.tail.extend_from_slice(&buf[..n]);
            let excess = self.tail.len().saturating_sub(512);
            self.tail.drain(..excess);
        }
        Ok(n)
    }
}

/// Compresses and stores chunks on worker threads while the reader goes on cutting and
/// hashing: the bounded queue keeps memory at a few chunks.
/// New chunks are written as one batch ([`ChunkStore::put_batched`]), made durable and
/// named when the archive is through, removed when it is refused.
struct Storer {
    tx: Option<std::sync::mpsc::SyncSender<(Hash, Vec<u8>)>>,
    rx: std::sync::mpsc::Receiver<io::Result<(Hash, u64, bool, bool)>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    store: ChunkStore,
    batch: String,
    /// Results already taken from `rx` (by `finish`).
    done: Vec<(Hash, u64, bool, bool)>,
}

/// Distinguishes the batches of concurrent ingests in one process.
static BATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type Job = (Hash, Vec<u8>);

impl Storer {
    fn new(store: &ChunkStore, level: i32, workers: usize) -> Storer {
        let batch = format!(
            "b{}-{}",
            std::process::id(),
            BATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (tx, jobs) = std::sync::mpsc::sync_channel::<Job>(workers * 2);
        let (rtx, rx) = std::sync::mpsc::channel();
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        let handles = (0..workers)
            .map(|_| {
                let (jobs, rtx, store, batch) =
                    (jobs.clone(), rtx.clone(), store.clone(), batch.clone());
                std::thread::spawn(move || loop {
                    let job = match jobs.lock() {
                        Ok(j) => j.recv(),
                        Err(_) => return,
                    };
                    let Ok((h, data)) = job else { return };
                    let r = match store.info(&h) {
                        Some((stored, z)) => Ok((h, stored, z, true)),
                        None => store
                            .put_batched(&h, &data, level, &batch)
                            .map(|(stored, z)| (h, stored, z, false)),
                    };
                    if rtx.send(r).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Storer { tx: Some(tx), rx, handles, store: store.clone(), batch, done: Vec::new() }
    }

    fn put(&mut self, h: Hash, data: Vec<u8>) -> io::Result<()> {
        match &self.tx {
            Some(tx) => {
                tx.send((h, data)).map_err(|_| io::Error::other("chunk store workers stopped"))
            }
            None => Err(io::Error::other("chunk store closed")),
        }
    }

    /// Waits for every queued chunk and commits the batch; returns (hash, stored size,
    /// compressed, existed).
    fn finish(mut self) -> io::Result<Vec<(Hash, u64, bool, bool)>> {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        for r in self.rx.try_iter() {
            self.done.push(r?);
        }
        let new: Vec<Hash> = self.done.iter().filter(|d| !d.3).map(|d| d.0).collect();
        self.store.commit_batch(&new, &self.batch)?;
        Ok(std::mem::take(&mut self.done))
    }
}

impl Drop for Storer {
    /// An ingest that stopped early leaves no temporary chunks behind.
    fn drop(&mut self) {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        let mut staged: Vec<Hash> = self.done.iter().filter(|d| !d.3).map(|d| d.0).collect();
        staged.extend(self.rx.try_iter().flatten().filter(|d| !d.3).map(|d| d.0));
        self.store.discard_batch(&staged, &self.batch);
    }
}

/// Normalizes an archive path: strips `./`, empty and `.` components. `Ok(None)` for the
/// root itself; `Err` names why the path is refused.
pub fn normalize(raw: &str) -> Result<Option<String>, &'static str> {
    if raw.starts_with('/') {
        return Err("absolute path");
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("parent directory reference"),
            c => parts.push(c),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("/")) })
}

/// Checks a whole tree against [`crate::safepath`]: the first refused entry, as the
/// `fileReadFailed` it gives.
pub fn check_tree(tree: &Tree) -> Result<(), Rejected> {
    let listing = tree.entries.iter().map(|e| Item::new(&e.path, e.kind, e.target.as_deref()));
    safepath::check(listing).map_err(|r| Rejected {
        filename: r.path,
        type_expected: r.why.expected().into(),
        type_detected: r.why.detected().into(),
    })
}

/// Reads an uncompressed tar from `r`, validating and chunking it into `store`.
/// `progress` receives the file bytes processed so far.
pub fn ingest<R: Read>(
    mut r: R,
    store: &ChunkStore,
    p: &Params,
    progress: &mut dyn FnMut(u64),
) -> Result<Ingested, IngestError> {
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    head.truncate(got);
    let kind = detect(&head);
    if kind != "tar" {
        let kind = if got < 512 && kind == "unknown" && got > 0 { "truncated" } else { kind };
        return Err(reject(ARCHIVE, "tar", kind));
    }
    let counting = Counting { inner: io::Cursor::new(head).chain(r), total: 0, tail: Vec::new() };
    let mut archive = tar::Archive::new(counting);
    let mut tree = Tree::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut empty_files = 0;
    let mut new_chunks = 0;
    let mut all_bytes = 0u64;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);
    let mut storer = Storer::new(store, p.zstd_level, workers);
    let entries = archive.entries().map_err(|_| reject(ARCHIVE, "tar", "corrupt"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error(ARCHIVE, &e))?;
        let raw_path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| reject(ARCHIVE, "UTF-8 path", "invalid UTF-8 name"))?;
        let path = match normalize(&raw_path) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(why) => {
                let mut shown = raw_path.as_str();
                while let Some(rest) = shown.strip_prefix("./") {
                    shown = rest;
                }
                return Err(reject(shown, "relative path", why));
            }
        };
        // A name is refused whatever later entries do (they can only replace the entry).
        if let Err(why) = safepath::check_name(&path) {
            return Err(reject(&path, why.expected(), why.detected()));
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let et = header.entry_type();
        let e = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = header.size().map_err(|_| reject(&path, "regular file", "corrupt"))?;
                let mut chunks = Vec::new();
                let mut read = 0u64;
                if size == 0 {
                    empty_files += 1;
                } else {
                    let mut cdc = crate::cutter::Cutter::new(&mut entry, &p.chunk, Some(size));
                    while let Some(data) = cdc.next_chunk().map_err(|e| tar_io(&path, e))? {
                        let h = Hash::of(&data);
                        let len = data.len();
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            tree.chunks.entry(h)
                        {
                            // Sizes are filled in when the workers report back.
                            slot.insert(ChunkInfo { raw: len as u32, stored: 0, z: false });
                            storer.put(h, data)?;
                        }
                        chunks.push(ChunkRef { h, len: len as u32 });
                        read += len as u64;
                        all_bytes += len as u64;
                        progress(all_bytes);
                    }
                }
                if read != size {
                    return Err(reject(&path, "regular file", "truncated"));
                }
                Entry { path: path.clone(), kind: Kind::File, mode, size, target: None, chunks }
            }
            tar::EntryType::Directory => Entry {
                path: path.clone(),
                kind: Kind::Dir,
                mode,
                size: 0,
                target: None,
                chunks: vec![],
            },
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| reject(&path, "symbolic link", "link without target"))?;
                // Where it leads is checked on the whole tree: a later entry may replace
                // this link, or a link it goes through.
                Entry {
                    path: path.clone(),
                    kind: Kind::Symlink,
                    mode: 0o777,
                    size: 0,
                    target: Some(target),
                    chunks: vec![],
                }
            }
            other => return Err(reject(&path, "regular file", type_name(other))),
        };
        match index.get(&path) {
            Some(&i) => tree.entries[i] = e,
            None => {
                index.insert(path, tree.entries.len());
                tree.entries.push(e);
            }
        }
    }
    let inner = archive.into_inner();
    let ended =
        inner.tail.len() == 512 && inner.tail.iter().all(|b| *b == 0) && inner.total % 512 == 0;
    if !ended {
        return Err(reject(ARCHIVE, "tar", "truncated"));
    }
    // The tree as it ends (later entries replaced earlier ones): links resolved through
    // each other, nothing under a link or a file. Before the chunks are committed, so a
    // refused archive leaves none behind.
    check_tree(&tree).map_err(IngestError::Rejected)?;
    for (h, stored, z, existed) in storer.finish()? {
        if let Some(info) = tree.chunks.get_mut(&h) {
            info.stored = stored;
            info.z = z;
        }
        if !existed {
            new_chunks += 1;
        }
    }
    Ok(Ingested { tree, empty_files, new_chunks, bytes_read: inner.total })
}

fn tar_io(path: &str, e: io::Error) -> IngestError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        reject(path, "regular file", "truncated")
    } else {
        IngestError::Io(e)
    }
}

fn tar_error(path: &str, e: &io::Error) -> IngestError {
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("entire block")
        || msg.contains("unexpected EOF")
    {
        reject(path, "tar", "truncated")
    } else {
        reject(path, "tar", "corrupt")
    }
}

/// The contract's name for a refused entry type.
fn type_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::Link => "hard link",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "unknown entry type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn paths() {
        assert_eq!(normalize("./bin/a").unwrap().as_deref(), Some("bin/a"));
        assert_eq!(normalize("./").unwrap(), None);
        assert_eq!(normalize("a//b/./c/").unwrap().as_deref(), Some("a/b/c"));
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
    }
    #[test]
    fn detects() {
        assert_eq!(detect(&[]), "empty");
        assert_eq!(detect(&[0x1f, 0x8b, 8]), "gzip");
        assert_eq!(detect(b"PK\x03\x04xx"), "zip");
        assert_eq!(detect(b"hello"), "unknown");
    }
}
