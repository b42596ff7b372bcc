//! Reading published images and patches: `unpack` rebuilds a build's tree from its image,
//! `apply` (in `patch_apply.rs`) rebuilds the newer tree from an older tree and a patch.
//! Every byte is checked against the hashes the manifest pins.

pub use crate::patch_apply::apply;

use crate::ingest::normalize;
use crate::safepath;
use crate::tree::Kind;
use crate::{io_ctx, Hash};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where an image or patch is read from (a directory, or an HTTP base URL in the CLI).
pub trait Source {
    /// Opens one file of the image or patch for streaming.
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>>;
}

/// A local directory.
pub struct DirSource(pub PathBuf);

impl Source for DirSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        let p = self.0.join(name);
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            fs::File::open(&p).map_err(|e| io_ctx(p.display(), e))?,
        )))
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub(crate) fn read_all(src: &dyn Source, name: &str) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    src.open(name)?.read_to_end(&mut v)?;
    Ok(v)
}

/// What an unpack or apply produced.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files written.
    pub files: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Bytes read from packs.
    pub pack_bytes: u64,
}

/// An output directory the tools may write: absent, or empty.
pub(crate) fn prepare_out(out: &Path) -> io::Result<()> {
    if out.exists() {
        if fs::read_dir(out)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not empty", out.display()),
            ));
        }
    } else {
        fs::create_dir_all(out)?;
    }
    Ok(())
}

struct FileRow {
    path: String,
    kind: String,
    mode: u32,
    size: u64,
    target: Option<String>,
    chunks: Vec<usize>,
}

/// Checks the tree a file table describes against [`crate::safepath`] before anything is
/// created (`what` names the table in the message). Entries of an unknown type are never
/// created, so they are not part of the tree.
pub(crate) fn check_listing<'a>(
    what: &str,
    listing: impl IntoIterator<Item = safepath::Item<'a>>,
) -> io::Result<()> {
    safepath::check(listing).map_err(|r| bad(format!("{what} refused: {r}")))
}

fn kind_of(kind: &str) -> Option<Kind> {
    match kind {
        "file" => Some(Kind::File),
        "dir" => Some(Kind::Dir),
        "symlink" => Some(Kind::Symlink),
        _ => None,
    }
}

fn files_of(index: &Value) -> io::Result<Vec<FileRow>> {
    let mut out = Vec::new();
    for f in index["files"].as_array().ok_or_else(|| bad("index without files"))? {
        let raw = f["path"].as_str().ok_or_else(|| bad("file without path"))?;
        let path = match normalize(raw) {
            Ok(Some(p)) if p == raw => p,
            _ => return Err(bad(format!("unsafe path in index: {raw}"))),
        };
        let chunks = f["chunks"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_u64().map(|c| c as usize)).collect())
            .unwrap_or_default();
        out.push(FileRow {
            path,
            kind: f["type"].as_str().unwrap_or("file").to_string(),
            mode: f["mode"].as_u64().unwrap_or(0o644) as u32,
            size: f["size"].as_u64().unwrap_or(0),
            target: f["target"].as_str().map(String::from),
            chunks,
        });
    }
    Ok(out)
}

/// Creates directories and empty files of the right size; returns, for each chunk index,
/// the places (file, offset) its bytes go.
fn lay_out(
    out: &Path,
    files: &[FileRow],
    raw_len: &[u64],
) -> io::Result<HashMap<usize, Vec<(usize, u64)>>> {
    let mut places: HashMap<usize, Vec<(usize, u64)>> = HashMap::new();
    for (fi, f) in files.iter().enumerate() {
        let p = out.join(&f.path);
        match f.kind.as_str() {
            "dir" => fs::create_dir_all(&p)?,
            "file" => {
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)?;
                }
                let file = fs::File::create(&p).map_err(|e| io_ctx(p.display(), e))?;
                file.set_len(f.size)?;
                let mut off = 0;
                for &c in &f.chunks {
                    let len = *raw_len.get(c).ok_or_else(|| bad("chunk index out of range"))?;
                    places.entry(c).or_default().push((fi, off));
                    off += len;
                }
                if off != f.size {
                    return Err(bad(format!("chunks of {} do not add up to its size", f.path)));
                }
            }
            _ => {}
        }
    }
    Ok(places)
}

/// Open output files by file index (chunks of a file mostly arrive in a row).
#[derive(Default)]
struct Handles(HashMap<usize, fs::File>);

impl Handles {
    fn get(&mut self, out: &Path, files: &[FileRow], fi: usize) -> io::Result<&mut fs::File> {
        if !self.0.contains_key(&fi) {
            if self.0.len() >= 64 {
                self.0.clear();
            }
            let f = fs::OpenOptions::new().write(true).open(out.join(&files[fi].path))?;
            self.0.insert(fi, f);
        }
        Ok(self.0.get_mut(&fi).expect("just inserted"))
    }
}

fn write_places(
    h: &mut Handles,
    out: &Path,
    files: &[FileRow],
    places: Option<&Vec<(usize, u64)>>,
    data: &[u8],
) -> io::Result<u64> {
    let mut n = 0;
    for (fi, off) in places.into_iter().flatten() {
        let f = h.get(out, files, *fi)?;
        f.seek(SeekFrom::Start(*off))?;
        f.write_all(data)?;
        n += data.len() as u64;
    }
    Ok(n)
}

fn finish(out: &Path, files: &[FileRow]) -> io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    // Symlinks first, modes last: a read-only directory must not stop a link inside it.
    let mut ordered: Vec<&FileRow> = files.iter().filter(|f| f.kind == "symlink").collect();
    ordered.extend(files.iter().filter(|f| f.kind == "file"));
    ordered.extend(files.iter().filter(|f| f.kind == "dir").rev());
    for f in ordered {
        let p = out.join(&f.path);
        match f.kind.as_str() {
            "symlink" => {
                // Checked with the whole table before anything was created.
                let t = f.target.as_deref().ok_or_else(|| bad("symlink without target"))?;
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)?;
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(t, &p)?;
            }
            #[cfg(unix)]
            "file" | "dir" => fs::set_permissions(&p, fs::Permissions::from_mode(f.mode & 0o7777))?,
            _ => {}
        }
    }
    Ok(())
}

/// The index a manifest pins: its name, hash and size checked.
fn read_index(src: &dyn Source, manifest: &Value) -> io::Result<Value> {
    let pin = &manifest["index"];
    let name = pin["name"]
        .as_str()
        .filter(|n| !n.contains('/') && !n.starts_with('.'))
        .ok_or_else(|| bad("the manifest names no index"))?;
    let bytes = read_all(src, name)?;
    check_pinned(&bytes, pin, name)?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("{name}: {e}")))
}

fn check_pinned(bytes: &[u8], pin: &Value, what: &str) -> io::Result<()> {
    let want = pin["blake3"].as_str().ok_or_else(|| bad(format!("{what} not pinned")))?;
    if Hash::of(bytes).hex() != want || pin["sizeBytes"].as_u64() != Some(bytes.len() as u64) {
        return Err(bad(format!("{what} does not match its hash")));
    }
    Ok(())
}

/// Streams the packs named in `manifest`, calling `each(row index, stored bytes)` for
/// every row of `rows` that lives in a pack (rows give `pack` and `off`, in stream order),
/// and verifies each pack's hash.
fn stream_packs(
    src: &dyn Source,
    manifest: &Value,
    rows: &[(usize, usize, u64, u64)],
    mut each: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut total = 0;
    let mut consumed = 0usize;
    for (pi, pack) in manifest["packs"]
        .as_array()
        .ok_or_else(|| bad("manifest without packs"))?
        .iter()
        .enumerate()
    {
        let name = pack["name"].as_str().ok_or_else(|| bad("pack without name"))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(bad("unsafe pack name"));
        }
        let mut r = src.open(name)?;
        let mut h = blake3::Hasher::new();
        let mut pos = 0u64;
        for &(row, pack_no, off, stored) in rows.iter().filter(|r| r.1 == pi + 1) {
            if off != pos {
                return Err(bad(format!("{name}: chunks are not contiguous")));
            }
            let mut buf = vec![0u8; stored as usize];
            r.read_exact(&mut buf).map_err(|e| io_ctx(name, e))?;
            h.update(&buf);
            pos += stored;
            let _ = pack_no;
            consumed += 1;
            each(row, &buf)?;
        }
        // Bytes after the last chunk still count for the pack's hash; read them in bounded
        // pieces, and no further than the pack's pinned size allows.
        let limit = pack["sizeBytes"].as_u64().unwrap_or(0).saturating_sub(pos) + 1;
        let mut rest = Vec::new();
        r.take(limit).read_to_end(&mut rest)?;
        h.update(&rest);
        pos += rest.len() as u64;
        if Hash(*h.finalize().as_bytes()).hex() != pack["blake3"].as_str().unwrap_or("")
            || Some(pos) != pack["sizeBytes"].as_u64()
        {
            return Err(bad(format!("{name} does not match its hash")));
        }
        total += pos;
    }
    if consumed != rows.len() {
        return Err(bad(format!(
            "{} chunk(s) point at packs the manifest does not list",
            rows.len() - consumed
        )));
    }
    Ok(total)
}

/// Unpacks a DxF image into `out` (absent or empty), verifying every hash and, given the
/// org's public key (PEM), the manifest signature. A file table that [`crate::safepath`]
/// refuses is refused before anything is created.
pub fn unpack(src: &dyn Source, out: &Path, public_pem: Option<&str>) -> io::Result<Stats> {
    let manifest_bytes = read_all(src, "manifest.json")?;
    if let Some(pem) = public_pem {
        let sig = read_all(src, "manifest.sig").map_err(|e| bad(format!("manifest.sig: {e}")))?;
        if !crate::image::rsa_verify(pem, &manifest_bytes, &sig) {
            return Err(bad("the manifest signature does not verify with the given key"));
        }
    }
    let manifest: Value =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if manifest["format"] != "rockit-dxf" {
        return Err(bad("not a rockit-dxf manifest"));
    }
    let index = read_index(src, &manifest)?;
    let chunks = index["chunks"].as_array().ok_or_else(|| bad("index without chunks"))?;
    let mut hashes = Vec::with_capacity(chunks.len());
    let mut raw_len = Vec::with_capacity(chunks.len());
    let mut rows = Vec::with_capacity(chunks.len());
    let mut z = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        let h = c[0].as_str().and_then(Hash::from_hex).ok_or_else(|| bad("bad chunk hash"))?;
        hashes.push(h);
        raw_len.push(c[1].as_u64().ok_or_else(|| bad("bad chunk size"))?);
        z.push(c[3].as_u64() == Some(1));
        rows.push((
            i,
            c[4].as_u64().unwrap_or(0) as usize,
            c[5].as_u64().unwrap_or(0),
            c[2].as_u64().unwrap_or(0),
        ));
    }
    let files = files_of(&index)?;
    check_listing(
        "the image's file table",
        files.iter().filter_map(|f| {
            kind_of(&f.kind).map(|k| safepath::Item::new(&f.path, k, f.target.as_deref()))
        }),
    )?;
    prepare_out(out)?;
    let places = lay_out(out, &files, &raw_len)?;
    let mut handles = Handles::default();
    let mut stats =
        Stats { files: files.iter().filter(|f| f.kind == "file").count(), ..Default::default() };
    stats.pack_bytes = stream_packs(src, &manifest, &rows, |i, stored| {
        let raw = if z[i] {
            zstd::bulk::decompress(stored, raw_len[i] as usize)
                .map_err(|e| bad(format!("chunk {} does not decompress: {e}", hashes[i].hex())))?
        } else {
            stored.to_vec()
        };
        if Hash::of(&raw) != hashes[i] {
            return Err(bad(format!("chunk {} does not match its hash", hashes[i].hex())));
        }
        stats.bytes += write_places(&mut handles, out, &files, places.get(&i), &raw)?;
        Ok(())
    })?;
    finish(out, &files)?;
    Ok(stats)
}

/// A pack an image's manifest pins: its file name, size and BLAKE3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackPin {
    /// File name in the image directory (`pack-0001.bin`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole pack.
    pub blake3: Hash,
}

/// An image's `manifest.json`, its signature checked (when a key was given) and its fields
/// read: what a launcher needs before it fetches the index ([`verify_manifest`]).
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    /// The exact bytes (the signature covers them).
    pub bytes: Vec<u8>,
    /// The whole document.
    pub value: Value,
    /// `dxfName`.
    pub dxf_name: String,
    /// `orgName`.
    pub org_name: String,
    /// `appName`.
    pub app_name: String,
    /// `buildId`.
    pub build_id: u64,
    /// `buildName`.
    pub build_name: String,
    /// `created` (RFC 3339).
    pub created: String,
    /// `sizeBytes`: the sum of the build's regular file sizes.
    pub size_bytes: u64,
    /// `fileCount`: the build's regular files.
    pub file_count: u64,
    /// The index's pin: (file name, size, BLAKE3).
    pub index: (String, u64, Hash),
    /// The packs in number order.
    pub packs: Vec<PackPin>,
    /// `preload`: bytes before start at 10, 100 and 1000 Mbit/s (`null` without traces).
    pub preload: Value,
    /// Whether a signature was checked.
    pub signed: bool,
}

/// One row of an image's chunk table (`[hash, raw, stored, z, pack, off]`, docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRow {
    /// BLAKE3 of the raw bytes.
    pub hash: Hash,
    /// Raw length.
    pub raw: u64,
    /// Length of the stored form in the pack.
    pub stored: u64,
    /// The stored form is a zstd frame.
    pub z: bool,
    /// Pack number, from 1.
    pub pack: usize,
    /// Offset of the stored form in its pack.
    pub off: u64,
}

/// One entry of an image's file table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Path (normal form).
    pub path: String,
    /// File, directory or symbolic link.
    pub kind: Kind,
    /// Permission bits (`0o7777` mask); 511 for links.
    pub mode: u32,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Link target (links).
    pub target: Option<String>,
    /// Chunk numbers (rows of [`VerifiedIndex::chunks`]) in file order (files).
    pub chunks: Vec<usize>,
}

/// An image's `index.json`, checked against its manifest ([`verify_index`]).
#[derive(Debug, Clone)]
pub struct VerifiedIndex {
    /// The chunk table in stream order.
    pub chunks: Vec<ChunkRow>,
    /// The file table in archive order (entries of an unknown type left out, as `unpack`
    /// leaves them out).
    pub files: Vec<IndexEntry>,
}

fn field_str(v: &Value, key: &str) -> io::Result<String> {
    v[key]
        .as_str()
        .map(String::from)
        .ok_or_else(|| bad(format!("manifest.json: `{key}` missing or not a string")))
}

fn field_u64(v: &Value, key: &str) -> io::Result<u64> {
    v[key].as_u64().ok_or_else(|| bad(format!("manifest.json: `{key}` missing or not a number")))
}

fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
}

/// Checks an image's `manifest.json` as a launcher must before trusting anything it pins:
/// with the organization's public key (PEM), `sig` must be present and verify over the
/// exact bytes; `format` must be `rockit-dxf` and `version` 1; the index and every pack
/// must be pinned by a plain file name, a size and a BLAKE3. For readers that fetch the
/// image's pieces themselves (a streaming launcher); [`unpack`] does the same checks as it
/// reads.
pub fn verify_manifest(
    bytes: &[u8],
    sig: Option<&[u8]>,
    public_pem: Option<&str>,
) -> io::Result<VerifiedManifest> {
    if let Some(pem) = public_pem {
        let sig =
            sig.ok_or_else(|| bad("manifest.sig is missing but the organization has a key"))?;
        if !crate::image::rsa_verify(pem, bytes, sig) {
            return Err(bad("the manifest signature does not verify with the organization's key"));
        }
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if value["format"] != "rockit-dxf" {
        return Err(bad("manifest.json: not a rockit-dxf manifest"));
    }
    if value["version"].as_u64() != Some(u64::from(crate::image::VERSION)) {
        return Err(bad(format!(
            "manifest.json: image version {} is not supported (this reader reads version 1)",
            value["version"]
        )));
    }
    let pin = |p: &Value, what: &str| -> io::Result<(String, u64, Hash)> {
        let name = p["name"]
            .as_str()
            .filter(|n| plain_name(n))
            .ok_or_else(|| bad(format!("manifest.json: {what} has no plain file name")))?;
        let size = p["sizeBytes"]
            .as_u64()
            .ok_or_else(|| bad(format!("manifest.json: {what} has no size")))?;
        let h = p["blake3"]
            .as_str()
            .and_then(Hash::from_hex)
            .ok_or_else(|| bad(format!("manifest.json: {what} has no BLAKE3")))?;
        Ok((name.to_string(), size, h))
    };
    let index = pin(&value["index"], "the index")?;
    let mut packs = Vec::new();
    for (i, p) in value["packs"]
        .as_array()
        .ok_or_else(|| bad("manifest.json: `packs` missing"))?
        .iter()
        .enumerate()
    {
        let (name, size, blake3) = pin(p, &format!("pack {}", i + 1))?;
        packs.push(PackPin { name, size, blake3 });
    }
    Ok(VerifiedManifest {
        bytes: bytes.to_vec(),
        dxf_name: field_str(&value, "dxfName")?,
        org_name: field_str(&value, "orgName")?,
        app_name: field_str(&value, "appName")?,
        build_id: field_u64(&value, "buildId")?,
        build_name: field_str(&value, "buildName")?,
        created: field_str(&value, "created")?,
        size_bytes: field_u64(&value, "sizeBytes")?,
        file_count: field_u64(&value, "fileCount")?,
        preload: value["preload"].clone(),
        index,
        packs,
        signed: public_pem.is_some(),
        value,
    })
}

/// Checks an image's `index.json` against its verified manifest, before any of its data is
/// used: the bytes must match the manifest's pin; every path must be in normal form and
/// the whole file table must pass [`crate::safepath::check`]; every chunk row must name a
/// pinned pack, rows of one pack must be contiguous from offset 0 and end within the
/// pack's size; every file's chunk numbers must exist and their raw lengths add up to its
/// size; the files must add up to the manifest's `sizeBytes` and `fileCount`. Chunk
/// content is checked by the reader against each row's hash as it arrives.
pub fn verify_index(manifest: &VerifiedManifest, bytes: &[u8]) -> io::Result<VerifiedIndex> {
    let (name, size, hash) = &manifest.index;
    if Hash::of(bytes) != *hash || bytes.len() as u64 != *size {
        return Err(bad(format!("{name} does not match its hash")));
    }
    let index: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("{name}: {e}")))?;
    if index["format"] != "rockit-dxf-index" {
        return Err(bad(format!("{name}: not a rockit-dxf index")));
    }
    let mut chunks = Vec::new();
    let mut ends = vec![0u64; manifest.packs.len()];
    for (i, c) in
        index["chunks"].as_array().ok_or_else(|| bad("index without chunks"))?.iter().enumerate()
    {
        let row = (|| {
            let a = c.as_array().filter(|a| a.len() == 6)?;
            let z = match a[3].as_u64()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            Some(ChunkRow {
                hash: a[0].as_str().and_then(Hash::from_hex)?,
                raw: a[1].as_u64()?,
                stored: a[2].as_u64()?,
                z,
                pack: usize::try_from(a[4].as_u64()?).ok()?,
                off: a[5].as_u64()?,
            })
        })()
        .ok_or_else(|| {
            bad(format!("{name}: chunk row {i} is not [hash, raw, stored, z, pack, off]"))
        })?;
        let end = ends.get_mut(row.pack.wrapping_sub(1)).ok_or_else(|| {
            bad(format!(
                "{name}: chunk {i} points at pack {}, which the manifest does not list",
                row.pack
            ))
        })?;
        if row.off != *end {
            return Err(bad(format!(
                "{name}: chunks of pack {} are not contiguous (chunk {i})",
                row.pack
            )));
        }
        *end = row
            .off
            .checked_add(row.stored)
            .ok_or_else(|| bad(format!("{name}: chunk {i} is too large")))?;
        if *end > manifest.packs[row.pack - 1].size {
            return Err(bad(format!(
                "{name}: chunk {i} ends beyond {}",
                manifest.packs[row.pack - 1].name
            )));
        }
        chunks.push(row);
    }
    let mut files = Vec::new();
    let (mut total, mut count) = (0u64, 0u64);
    for f in files_of(&index)? {
        let Some(kind) = kind_of(&f.kind) else { continue };
        if kind == Kind::File {
            let mut sum = 0u64;
            for &c in &f.chunks {
                let row = chunks
                    .get(c)
                    .ok_or_else(|| bad(format!("{}: chunk {c} out of range", f.path)))?;
                sum = sum
                    .checked_add(row.raw)
                    .ok_or_else(|| bad(format!("{}: size overflows", f.path)))?;
            }
            if sum != f.size {
                return Err(bad(format!("chunks of {} do not add up to its size", f.path)));
            }
            total = total.saturating_add(f.size);
            count += 1;
        }
        files.push(IndexEntry {
            path: f.path,
            kind,
            mode: f.mode & 0o7777,
            size: if kind == Kind::File { f.size } else { 0 },
            target: if kind == Kind::Symlink { f.target } else { None },
            chunks: if kind == Kind::File { f.chunks } else { Vec::new() },
        });
    }
    check_listing(
        "the image's file table",
        files.iter().map(|f| safepath::Item::new(&f.path, f.kind, f.target.as_deref())),
    )?;
    if total != manifest.size_bytes || count != manifest.file_count {
        return Err(bad(format!(
            "the index holds {count} files of {total} bytes, the manifest says {} files of {} bytes",
            manifest.file_count, manifest.size_bytes
        )));
    }
    Ok(VerifiedIndex { chunks, files })
}
