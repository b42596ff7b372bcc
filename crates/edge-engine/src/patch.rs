//! The patch writer: from an older build to a newer one, carrying the newer build's index,
//! the chunks the older build lacks, and byte-level deltas where they are smaller. A
//! launcher holding the older tree rebuilds the newer one from its files and the patch.

use crate::image::{file_table, write_atomic, PackWriter, VERSION};
use crate::similar::Anchors;
use crate::store::ChunkStore;
use crate::tree::{Kind, Tree};
use crate::{io_ctx, Hash, Params};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

/// What the patch says about its two ends.
#[derive(Debug, Clone)]
pub struct PatchMeta {
    pub org_name: String,
    pub app_name: String,
    pub from_build_id: u64,
    pub to_build_id: u64,
    pub from_dxf_name: String,
    pub to_dxf_name: String,
    /// RFC 3339 creation time.
    pub created: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct PatchSummary {
    /// Files in publishing order (patch.json last).
    pub files: Vec<String>,
    /// Bytes of every file of the patch.
    pub size_bytes: u64,
    /// Chunks reused from the older build.
    pub reused: usize,
    /// Chunks sent whole.
    pub sent: usize,
    /// Chunks sent as deltas against the older build.
    pub deltas: usize,
}

/// zstd level of the probe that tells whether a same-place base is worth level 19.
const PROBE_LEVEL: i32 = 3;

/// zstd level of deltas against moved content.
const MOVED_LEVEL: i32 = 9;

/// Bytes of older content taken on each side of a similar place, for a delta base.
const SLACK: u64 = 16 << 10;

/// Largest delta base a reader accepts (two ranges of the largest chunk and their slack).
pub const MAX_BASE_BYTES: u64 = 64 << 20;

/// The patch index's file name (zstd-compressed JSON).
pub const INDEX_NAME: &str = "index.json.zst";

/// Largest decoded patch index a reader accepts.
pub const MAX_INDEX_BYTES: usize = 1 << 30;

/// zstd level of patch chunks: patches are sent to every player, so they are worth it.
const PATCH_LEVEL: i32 = 19;

/// Where each chunk of `tree` first occurs: (path, offset).
fn locations(tree: &Tree) -> HashMap<Hash, (String, u64)> {
    let mut m = HashMap::new();
    for e in tree.entries.iter().filter(|e| e.kind == Kind::File) {
        let mut off = 0u64;
        for c in &e.chunks {
            m.entry(c.h).or_insert_with(|| (e.path.clone(), off));
            off += u64::from(c.len);
        }
    }
    m
}

/// Reads `len` bytes of the older build's file `path` at `off` from the chunk store.
fn from_bytes(from: &Tree, store: &ChunkStore, path: &str, off: u64, len: u64) -> io::Result<Vec<u8>> {
    let e = from.entries.iter().find(|e| e.path == path && e.kind == Kind::File).ok_or_else(|| io::Error::other("base file missing"))?;
    let mut out = Vec::with_capacity(len as usize);
    let mut pos = 0u64;
    for c in &e.chunks {
        let (start, end) = (pos, pos + u64::from(c.len));
        pos = end;
        if end <= off || start >= off + len {
            continue;
        }
        let raw = store.get_raw(&c.h, c.len as usize)?;
        let a = off.saturating_sub(start) as usize;
        let b = ((off + len).min(end) - start) as usize;
        out.extend_from_slice(&raw[a..b]);
    }
    Ok(out)
}

/// zstd-compresses `raw` with `prefix` referenced as raw content (never parsed as a
/// formatted dictionary, whatever its first bytes).
pub fn compress_with_prefix(raw: &[u8], prefix: &[u8]) -> io::Result<Vec<u8>> {
    compress_with_prefix_at(raw, prefix, PATCH_LEVEL)
}

/// [`compress_with_prefix`] at a given zstd level.
pub fn compress_with_prefix_at(raw: &[u8], prefix: &[u8], level: i32) -> io::Result<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let err = |c: usize| io::Error::other(zstd::zstd_safe::get_error_name(c));
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(err)?;
    cctx.ref_prefix(prefix).map_err(err)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut out, raw).map_err(err)?;
    Ok(out)
}

/// Reverses [`compress_with_prefix`].
pub fn decompress_with_prefix(data: &[u8], prefix: &[u8], raw_len: usize) -> io::Result<Vec<u8>> {
    use zstd::zstd_safe::DCtx;
    let err = |c: usize| io::Error::new(io::ErrorKind::InvalidData, zstd::zstd_safe::get_error_name(c));
    let mut dctx = DCtx::create();
    dctx.ref_prefix(prefix).map_err(err)?;
    let mut out = Vec::with_capacity(raw_len);
    dctx.decompress(&mut out, data).map_err(err)?;
    Ok(out)
}

/// Writes the patch `from` → `to` into `dir` (created).
pub fn write_patch(from: &Tree, to: &Tree, store: &ChunkStore, meta: &PatchMeta, dir: &Path, p: &Params) -> io::Result<PatchSummary> {
    fs::create_dir_all(dir).map_err(|e| io_ctx(dir.display(), e))?;
    let have = locations(from);
    let from_files: HashMap<&str, u64> = from.entries.iter().filter(|e| e.kind == Kind::File).map(|e| (e.path.as_str(), e.size)).collect();
    let order = to.chunk_order();
    let to_locs = locations(to);
    let mut packs = PackWriter::new(dir, p.pack_limit);
    let mut rows = Vec::with_capacity(order.len());
    let mut pos = HashMap::with_capacity(order.len());
    let (mut reused, mut sent, mut deltas) = (0, 0, 0);
    let mut anchors: Option<Anchors> = None;
    for (i, h) in order.iter().enumerate() {
        pos.insert(*h, i);
        let info = to.chunks[h];
        if let Some((path, off)) = have.get(h) {
            reused += 1;
            rows.push(json!({"h": h.hex(), "raw": info.raw, "src": "from", "path": path, "off": off}));
            continue;
        }
        let raw = store.get_raw(h, info.raw as usize)?;
        // The whole chunk, compressed hard unless the store found it incompressible.
        let (mut body, mut codec) = if info.z {
            let z = zstd::bulk::compress(&raw, PATCH_LEVEL)?;
            if z.len() < raw.len() {
                (z, "zstd")
            } else {
                (raw.clone(), "raw")
            }
        } else {
            (raw.clone(), "raw")
        };
        // A delta against the same file's bytes around the same offset in the older build,
        // which is where an edit or an insertion left the old content.
        let mut base = Value::Null;
        let (path, off) = &to_locs[h];
        if let Some(&size) = from_files.get(path.as_str()) {
            let len = u64::from(info.raw);
            let start = off.saturating_sub(len);
            let end = (off + 2 * len).min(size);
            if end > start {
                let dict = from_bytes(from, store, path, start, end - start)?;
                // A fast probe first: level 19 over a three-chunk base is slow, and only
                // worth it when the base holds the chunk's content (an edit, an insertion).
                let probe = compress_with_prefix_at(&raw, &dict, PROBE_LEVEL)?;
                let d = if probe.len() <= raw.len() / 16 { compress_with_prefix(&raw, &dict)? } else { probe };
                if d.len() < body.len() {
                    body = d;
                    codec = "zstd-dict";
                    base = json!({"path": path, "off": start, "len": end - start});
                }
            }
        }
        // Content that moved (a reordered pack, data shifted between files) has no good
        // base at its own place: look for where its bytes sit in the older build.
        if body.len() > raw.len() / 16 {
            if anchors.is_none() {
                anchors = Some(Anchors::build(from, store)?);
            }
            let a = anchors.as_ref().expect("just built");
            let mut dict = Vec::new();
            let mut ranges = Vec::new();
            for (fi, start) in a.alignments(&raw, 4) {
                let (fpath, fsize) = &a.files[fi];
                let (s0, s1) = (start.saturating_sub(SLACK), (start + u64::from(info.raw) + SLACK).min(*fsize));
                if s1 > s0 {
                    dict.extend(from_bytes(from, store, fpath, s0, s1 - s0)?);
                    ranges.push(json!({"path": fpath, "off": s0, "len": s1 - s0}));
                }
            }
            if !ranges.is_empty() {
                // Moved content matches in long runs, which a fast level finds as well as
                // level 19 does, at a fraction of the time over a base of up to four ranges.
                let d = compress_with_prefix_at(&raw, &dict, MOVED_LEVEL)?;
                if d.len() < body.len() {
                    body = d;
                    codec = "zstd-dict";
                    base = if ranges.len() == 1 { ranges.swap_remove(0) } else { Value::Array(ranges) };
                }
            }
        }
        let (pack, poff) = packs.append(&body)?;
        let mut row = json!({"h": h.hex(), "raw": info.raw, "pack": pack, "off": poff, "stored": body.len(), "codec": codec});
        if codec == "zstd-dict" {
            row["base"] = base;
            deltas += 1;
        } else {
            sent += 1;
        }
        rows.push(row);
    }
    packs.close()?;
    let index = json!({"format": "rockit-patch-index", "version": VERSION, "chunks": rows, "files": file_table(to, &pos)});
    // The index travels zstd-compressed: its rows repeat paths and field names, and for a
    // small patch it is most of the bytes.
    let index_json = serde_json::to_vec(&index).map_err(io::Error::other)?;
    let index_bytes = zstd::bulk::compress(&index_json, PATCH_LEVEL)?;
    write_atomic(dir, INDEX_NAME, &index_bytes)?;
    let pack_bytes: u64 = packs.packs.iter().map(|p| p.1).sum();
    let size_bytes = pack_bytes + index_bytes.len() as u64;
    let manifest = json!({
        "format": "rockit-patch", "version": VERSION, "orgName": meta.org_name, "appName": meta.app_name,
        "fromBuildId": meta.from_build_id, "toBuildId": meta.to_build_id,
        "fromDxfName": meta.from_dxf_name, "toDxfName": meta.to_dxf_name, "created": meta.created,
        "sizeBytes": size_bytes, "toSizeBytes": to.size_bytes(), "chunkCount": order.len(),
        "reusedChunks": reused, "sentChunks": sent, "deltaChunks": deltas,
        "packs": packs.json(),
        "index": {"name": INDEX_NAME, "encoding": "zstd", "rawBytes": index_json.len(), "sizeBytes": index_bytes.len(), "blake3": Hash::of(&index_bytes).hex()},
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    write_atomic(dir, "patch.json", &manifest_bytes)?;
    let mut files: Vec<String> = packs.packs.iter().map(|p| p.0.clone()).collect();
    files.push(INDEX_NAME.into());
    files.push("patch.json".into());
    Ok(PatchSummary { files, size_bytes: size_bytes + manifest_bytes.len() as u64, reused, sent, deltas })
}
