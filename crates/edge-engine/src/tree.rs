//! The description of one build: its files in tar order, each with its chunks. Kept in the
//! depot as JSON; images and patches are written from it.

use crate::Hash;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link inside the tree.
    Symlink,
}

/// One chunk of a file: its hash and raw length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Content hash.
    pub h: Hash,
    /// Raw length in bytes.
    pub len: u32,
}

/// One entry of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the game directory, `/`-separated, no leading `./`.
    pub path: String,
    /// Entry kind.
    pub kind: Kind,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The file's chunks in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
}

/// Stored size of a chunk in the app's chunk store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// Raw length.
    pub raw: u32,
    /// Stored length.
    pub stored: u64,
    /// Stored compressed.
    pub z: bool,
}

/// A whole build.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Entries in archive order.
    pub entries: Vec<Entry>,
    /// Stored sizes of every chunk the entries use.
    pub chunks: HashMap<Hash, ChunkInfo>,
}

impl Tree {
    /// Sum of file sizes.
    pub fn size_bytes(&self) -> u64 {
        self.entries.iter().filter(|e| e.kind == Kind::File).map(|e| e.size).sum()
    }
    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.entries.iter().filter(|e| e.kind == Kind::File).count()
    }
    /// The distinct chunks in first-use (archive) order.
    pub fn chunk_order(&self) -> Vec<Hash> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for e in &self.entries {
            for c in &e.chunks {
                if seen.insert(c.h) {
                    out.push(c.h);
                }
            }
        }
        out
    }
    /// Brings the stored sizes up to date with `store`: settling ([`crate::settle`]) may
    /// have stored chunks smaller since the tree was written, and the pack layout and the
    /// preload figures are worked out from these sizes. Chunks not in `store` keep theirs.
    pub fn refresh_stored(&mut self, store: &crate::store::ChunkStore) {
        for (h, info) in self.chunks.iter_mut() {
            if let Some((stored, z)) = store.info(h) {
                info.stored = stored;
                info.z = z;
            }
        }
    }
    /// A hash of the content (paths, kinds, modes, targets, chunk hashes): equal trees
    /// have equal content hashes whatever their archive order.
    pub fn content_hash(&self) -> Hash {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = blake3::Hasher::new();
        for e in entries {
            h.update(e.path.as_bytes());
            h.update(&[0, e.kind as u8]);
            h.update(&e.mode.to_le_bytes());
            h.update(&e.size.to_le_bytes());
            h.update(e.target.as_deref().unwrap_or("").as_bytes());
            h.update(&[0]);
            for c in &e.chunks {
                h.update(&c.h.0);
            }
        }
        Hash(*h.finalize().as_bytes())
    }
}
