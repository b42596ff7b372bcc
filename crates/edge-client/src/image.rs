//! The image being played: its verified manifest and index, and the lookups a reader needs
//! (a path's entry, the chunks under a byte range of a file, each chunk's place in the
//! stream).

use crate::error::{Error, Result};
use edge_engine::reader::{ChunkRow, IndexEntry, VerifiedIndex, VerifiedManifest};
use edge_engine::tree::Kind;
use std::collections::HashMap;

/// Largest raw or stored chunk the runtime accepts (the Edge cuts at most 1 MiB; an index
/// claiming more is refused rather than allocated).
pub const MAX_CHUNK: u64 = 64 << 20;

/// A verified image: what the file system shows and where each byte comes from.
#[derive(Debug)]
pub struct Image {
    manifest: VerifiedManifest,
    entries: Vec<IndexEntry>,
    chunks: Vec<ChunkRow>,
    /// Per entry: the end (exclusive) of each of its chunks in the file, raw bytes.
    ends: Vec<Vec<u64>>,
    /// Per chunk: where it ends in the stream (the packs back to back), stored bytes.
    stream_end: Vec<u64>,
    by_path: HashMap<String, usize>,
}

impl Image {
    pub(crate) fn new(manifest: VerifiedManifest, index: VerifiedIndex) -> Result<Image> {
        let mut pack_start = Vec::with_capacity(manifest.packs.len());
        let mut at = 0u64;
        for p in &manifest.packs {
            pack_start.push(at);
            at = at.saturating_add(p.size);
        }
        let mut stream_end = Vec::with_capacity(index.chunks.len());
        for (i, c) in index.chunks.iter().enumerate() {
            if c.raw > MAX_CHUNK
                || c.stored > MAX_CHUNK
                || c.raw == 0
                || (!c.z && c.stored != c.raw)
            {
                return Err(Error::refused(format!(
                    "index.json: chunk {i} has sizes a reader cannot accept (raw {}, stored {})",
                    c.raw, c.stored
                )));
            }
            stream_end.push(pack_start[c.pack - 1] + c.off + c.stored);
        }
        let mut ends = Vec::with_capacity(index.files.len());
        let mut by_path = HashMap::with_capacity(index.files.len());
        for (i, e) in index.files.iter().enumerate() {
            let mut at = 0u64;
            ends.push(
                e.chunks
                    .iter()
                    .map(|&c| {
                        at += index.chunks[c].raw;
                        at
                    })
                    .collect(),
            );
            by_path.insert(e.path.clone(), i);
        }
        Ok(Image {
            manifest,
            entries: index.files,
            chunks: index.chunks,
            ends,
            stream_end,
            by_path,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &VerifiedManifest {
        &self.manifest
    }

    /// The image's name.
    pub fn dxf_name(&self) -> &str {
        &self.manifest.dxf_name
    }

    /// The build's entries (files, directories, links) in archive order; a file's number
    /// here is what [`crate::Runtime::read`] takes.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The number of the entry at `path` (normal form: `bin/game.exe`).
    pub fn lookup(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// The chunk table in stream order.
    pub fn chunks(&self) -> &[ChunkRow] {
        &self.chunks
    }

    /// Bytes of the whole stream (all packs).
    pub fn stream_bytes(&self) -> u64 {
        self.manifest.packs.iter().map(|p| p.size).sum()
    }

    /// Where chunk `c` ends in the stream.
    pub(crate) fn stream_end(&self, c: usize) -> u64 {
        self.stream_end[c]
    }

    /// The preload the manifest gives for the bandwidth nearest `bytes_per_s` (100 Mbit/s
    /// without a cap); 0 when the image has no figures.
    pub fn preload_bytes(&self, bytes_per_s: Option<u64>) -> u64 {
        let want = bytes_per_s.map(|b| b as f64 * 8.0 / 1e6).unwrap_or(100.0).max(1e-3);
        let mut best: Option<(f64, u64)> = None;
        if let Some(m) = self.manifest.preload.as_object() {
            for (k, v) in m {
                let (Ok(mbit), Some(bytes)) = (k.parse::<f64>(), v.as_u64()) else { continue };
                let d = (mbit.max(1e-3) / want).ln().abs();
                if best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, bytes));
                }
            }
        }
        best.map(|b| b.1).unwrap_or(0)
    }

    /// The chunks under bytes `[offset, offset + len)` of file `file` (clipped to its
    /// size): `(position in the file's chunk list, chunk number, the chunk's start in the
    /// file)`.
    pub(crate) fn chunks_under(
        &self,
        file: usize,
        offset: u64,
        len: u64,
    ) -> Vec<(usize, usize, u64)> {
        let e = &self.entries[file];
        let end = offset.saturating_add(len).min(e.size);
        if offset >= end {
            return Vec::new();
        }
        let ends = &self.ends[file];
        let first = ends.partition_point(|&x| x <= offset);
        let mut out = Vec::new();
        for (k, &c) in e.chunks.iter().enumerate().skip(first) {
            let start = if k == 0 { 0 } else { ends[k - 1] };
            if start >= end {
                break;
            }
            out.push((k, c, start));
        }
        out
    }

    /// The regular files in load order: by where their first chunk is in the stream (what
    /// the game reads first comes first), empty files first, ties in archive order.
    pub fn load_order(&self) -> Vec<usize> {
        let mut files: Vec<usize> =
            (0..self.entries.len()).filter(|&i| self.entries[i].kind == Kind::File).collect();
        files.sort_by_key(|&i| (self.entries[i].chunks.first().map_or(0, |&c| c + 1), i));
        files
    }

    /// The entry `file` when it is a regular file.
    pub(crate) fn file(&self, file: usize) -> Result<&IndexEntry> {
        match self.entries.get(file) {
            Some(e) if e.kind == Kind::File => Ok(e),
            Some(e) => Err(Error::new(
                crate::ErrorKind::Invalid,
                format!("{} is not a regular file", e.path),
            )),
            None => Err(Error::new(
                crate::ErrorKind::NotFound,
                format!("no file number {file} in the image"),
            )),
        }
    }
}
