//! Updates: a cache that holds an older build of the app completely is brought to the image
//! being opened by whichever costs fewer bytes to download — the chunks the cache lacks
//! (content addressing: chunks the builds share are never fetched again), or the patch the
//! Edge published from that older build (applied to the older tree rebuilt from the cache,
//! then the newer build's missing chunks cut from the result, each checked against its
//! BLAKE3 before it enters the cache).
//!
//! A patch is looked for beside the image on the same origin, at
//! `<prefix>/pat/<org>/<app>/<to NNNN>/<from NNNN>/` for an image at
//! `<prefix>/dxf/<org>/<app>/<NNNN>/<dxfName>/` (the published layout). An image served by
//! the Edge's own depot has no patches beside it: the missing chunks are fetched. A patch
//! that cannot be fetched or applied is not an error — the chunks are fetched instead, and
//! [`Update::note`] says why.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::http::{Meter, Origin};
use crate::image::Image;
use edge_engine::reader::{verify_index, verify_manifest, Source};
use edge_engine::tree::Kind;
use edge_engine::Hash;
use reqwest::blocking::Client;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

/// Largest `patch.json` accepted.
const MAX_PATCH_JSON: u64 = 4 << 20;

/// How the cache got (or gets) the chunks of a newer build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMethod {
    /// The chunks the cache lacks are downloaded (by the stream and by reads).
    Chunks,
    /// The published patch was downloaded and applied; nothing else is missing.
    Patch,
}

impl UpdateMethod {
    /// `chunks` or `patch`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateMethod::Chunks => "chunks",
            UpdateMethod::Patch => "patch",
        }
    }
}

/// What an update from an older cached build chose, and why.
#[derive(Debug, Clone)]
pub struct Update {
    /// The build the cache held completely.
    pub from_build: u64,
    /// The build being opened.
    pub to_build: u64,
    /// What was chosen.
    pub method: UpdateMethod,
    /// Stored bytes of the chunks the cache lacked.
    pub chunk_bytes: u64,
    /// Bytes of the published patch (its packs and patch.json), when one was found.
    pub patch_bytes: Option<u64>,
    /// Why the patch was not used, when it was cheaper but failed (fetched chunks instead).
    pub note: Option<String>,
}

impl Update {
    /// `{"fromBuild","toBuild","method","chunkBytes","patchBytes","note"?}` for `--json` output.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"fromBuild": self.from_build, "toBuild": self.to_build, "method": self.method.as_str(),
                                       "chunkBytes": self.chunk_bytes, "patchBytes": self.patch_bytes});
        if let Some(n) = &self.note {
            v["note"] = Value::from(n.as_str());
        }
        v
    }

    /// One line for people: what was chosen and what the other way would have cost.
    pub fn describe(&self) -> String {
        let other = match (self.method, self.patch_bytes) {
            (UpdateMethod::Patch, _) => format!("instead of {} bytes of chunks", self.chunk_bytes),
            (UpdateMethod::Chunks, Some(p)) => {
                format!("{} bytes; the patch is {p} bytes", self.chunk_bytes)
            }
            (UpdateMethod::Chunks, None) => {
                format!(
                    "{} bytes; no patch from build {} is published beside the image",
                    self.chunk_bytes, self.from_build
                )
            }
        };
        let how = match self.method {
            UpdateMethod::Patch => {
                format!("by its patch ({} bytes, {other})", self.patch_bytes.unwrap_or(0))
            }
            UpdateMethod::Chunks => format!("by the chunks it lacked ({other})"),
        };
        let note = self.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
        format!("updated from build {} to build {} {how}{note}", self.from_build, self.to_build)
    }
}

/// Brings the cache to `image` when the cache holds an older build of the same app
/// completely: `None` when nothing is missing or no older build is cached.
pub(crate) fn update(
    cache: &Cache,
    origin: &Origin,
    http: &Client,
    image: &Image,
    pem: Option<&str>,
    meter: &Meter,
) -> Option<Update> {
    let chunk_bytes = missing_bytes(cache, image);
    if chunk_bytes == 0 {
        return None;
    }
    let older = newest_older(cache, image, pem)?;
    let m = image.manifest();
    let mut up = Update {
        from_build: older.manifest().build_id,
        to_build: m.build_id,
        method: UpdateMethod::Chunks,
        chunk_bytes,
        patch_bytes: None,
        note: None,
    };
    let Some(pat) = patch_origin(origin, older.manifest().build_id, m.build_id) else {
        return Some(up);
    };
    let Ok(doc) = pat.fetch(http, "patch.json", MAX_PATCH_JSON, meter) else { return Some(up) };
    let Some(size) = patch_size(&doc) else { return Some(up) };
    up.patch_bytes = Some(size);
    if size >= chunk_bytes {
        return Some(up);
    }
    match apply_patch(cache, &older, image, &pat, http, meter, doc) {
        Ok(()) => up.method = UpdateMethod::Patch,
        Err(e) => {
            up.note = Some(format!("the patch from build {} was not applied: {e}", up.from_build))
        }
    }
    Some(up)
}

/// Stored bytes of the image's chunks that the cache lacks (each distinct chunk once).
fn missing_bytes(cache: &Cache, image: &Image) -> u64 {
    let mut seen = HashSet::new();
    image
        .chunks()
        .iter()
        .filter(|c| seen.insert(c.hash) && !cache.has(&c.hash, c.raw))
        .map(|c| c.stored)
        .sum()
}

/// The newest older build of the same app whose image the cache kept and holds every
/// chunk of, its manifest verified again (with the organization's key when it has one).
fn newest_older(cache: &Cache, image: &Image, pem: Option<&str>) -> Option<Image> {
    let m = image.manifest();
    let mut best: Option<Image> = None;
    for e in fs::read_dir(cache.root().join("images")).ok()?.flatten() {
        let dxf = e.file_name().to_string_lossy().into_owned();
        let Some(bytes) = cache.meta(&dxf, "manifest.json") else { continue };
        let sig = cache.meta(&dxf, "manifest.sig");
        let Ok(om) = verify_manifest(&bytes, sig.as_deref(), pem) else { continue };
        if om.org_name != m.org_name
            || om.app_name != m.app_name
            || om.build_id >= m.build_id
            || om.dxf_name != dxf
        {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.manifest().build_id >= om.build_id) {
            continue;
        }
        let (iname, isize, ihash) = om.index.clone();
        let Some(ib) =
            cache.meta(&dxf, &iname).filter(|b| b.len() as u64 == isize && Hash::of(b) == ihash)
        else {
            continue;
        };
        let Ok(index) = verify_index(&om, &ib) else { continue };
        let Ok(older) = Image::new(om, index) else { continue };
        if older.chunks().iter().all(|c| cache.has(&c.hash, c.raw)) {
            best = Some(older);
        }
    }
    best
}

/// Where the patch `from → to` is published beside the image's origin, when the image sits
/// in the published layout.
fn patch_origin(origin: &Origin, from: u64, to: u64) -> Option<Origin> {
    let path = origin.base_path();
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let n = segs.len();
    if n < 6 || segs[n - 5] != "dxf" || segs[n - 2] != format!("{to:04}") {
        return None;
    }
    let (prefix, org, app) = (segs[..n - 5].join("/"), segs[n - 4], segs[n - 3]);
    Some(origin.sibling(&format!("{prefix}/pat/{org}/{app}/{to:04}/{from:04}/")))
}

/// The bytes a patch costs: its packs and patch.json.
fn patch_size(doc: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(doc).ok()?;
    let packs = v["packs"].as_array()?;
    packs
        .iter()
        .try_fold(doc.len() as u64, |sum, p| p["sizeBytes"].as_u64().map(|s| sum.saturating_add(s)))
}

/// The patch's files from its origin; `patch.json` is the copy already fetched.
struct PatchSource<'a> {
    origin: &'a Origin,
    http: &'a Client,
    meter: &'a Meter,
    doc: Vec<u8>,
}

impl Source for PatchSource<'_> {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        if name == "patch.json" {
            return Ok(Box::new(io::Cursor::new(self.doc.clone())));
        }
        let body = self
            .origin
            .stream(self.http, name, self.meter)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Box::new(body))
    }
}

/// Rebuilds the older tree from the cache, applies the patch, and stores the newer build's
/// missing chunks cut from the result. Works under the cache's `tmp/`, emptied after.
fn apply_patch(
    cache: &Cache,
    older: &Image,
    image: &Image,
    pat: &Origin,
    http: &Client,
    meter: &Meter,
    doc: Vec<u8>,
) -> Result<()> {
    let work = cache.root().join("tmp").join(format!("update-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let (from, to) = (work.join("from"), work.join("to"));
    let result = (|| {
        materialize(cache, older, &from)?;
        let src = PatchSource { origin: pat, http, meter, doc };
        edge_engine::reader::apply(&src, &from, &to)
            .map_err(|e| Error::io("applying the patch", e))?;
        store_missing(cache, image, &to)
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

/// Writes the older build's files and links under `dir` from verified cached chunks.
fn materialize(cache: &Cache, img: &Image, dir: &Path) -> Result<()> {
    let io_err = |p: &Path, e: io::Error| Error::io(p.display(), e);
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    for e in img.entries() {
        let p = dir.join(&e.path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|er| io_err(parent, er))?;
        }
        match e.kind {
            Kind::Dir => fs::create_dir_all(&p).map_err(|er| io_err(&p, er))?,
            Kind::Symlink => {
                let target = e.target.as_deref().unwrap_or("");
                std::os::unix::fs::symlink(target, &p).map_err(|er| io_err(&p, er))?;
            }
            Kind::File => {
                let mut f = io::BufWriter::new(fs::File::create(&p).map_err(|er| io_err(&p, er))?);
                for &c in &e.chunks {
                    let row = &img.chunks()[c];
                    let data = cache.load_verified(&row.hash, row.raw)?.ok_or_else(|| {
                        Error::refused(format!(
                            "cached chunk {} of {} failed its hash",
                            row.hash.hex(),
                            e.path
                        ))
                    })?;
                    f.write_all(&data).map_err(|er| io_err(&p, er))?;
                }
                f.flush().map_err(|er| io_err(&p, er))?;
            }
        }
    }
    Ok(())
}

/// Cuts every chunk of `image` the cache lacks out of the rebuilt tree under `dir`, checks
/// it against its hash, and stores it.
fn store_missing(cache: &Cache, image: &Image, dir: &Path) -> Result<()> {
    let mut place: HashMap<usize, (usize, u64)> = HashMap::new();
    for (i, e) in image.entries().iter().enumerate() {
        let mut at = 0u64;
        for &c in &e.chunks {
            place.entry(c).or_insert((i, at));
            at += image.chunks()[c].raw;
        }
    }
    let mut open: Option<(usize, fs::File)> = None;
    let mut order: Vec<(&usize, &(usize, u64))> = place.iter().collect();
    order.sort_by_key(|(_, (f, at))| (*f, *at));
    for (&c, &(file, at)) in order {
        let row = &image.chunks()[c];
        if cache.has(&row.hash, row.raw) {
            continue;
        }
        let p = dir.join(&image.entries()[file].path);
        if open.as_ref().is_none_or(|(f, _)| *f != file) {
            open = Some((file, fs::File::open(&p).map_err(|e| Error::io(p.display(), e))?));
        }
        let Some((_, f)) = open.as_ref() else { continue };
        let mut buf = vec![0u8; row.raw as usize];
        std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, at)
            .map_err(|e| Error::io(p.display(), e))?;
        if Hash::of(&buf) != row.hash {
            return Err(Error::refused(format!(
                "{} rebuilt by the patch does not match the image's chunk hash",
                image.entries()[file].path
            )));
        }
        cache.put(&row.hash, &buf)?;
    }
    Ok(())
}
