//! The DxF image writer: packs of stored chunks in sequence order, the index, the manifest
//! (written last) and its signature. See `docs/FORMAT.md`.

use crate::store::ChunkStore;
use crate::tree::{Kind, Tree};
use crate::{io_ctx, Hash, Params};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Signs the manifest bytes (the org key's RSA PKCS#1 v1.5 SHA-256).
pub type Signer<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// Format version written into manifests and indexes.
pub const VERSION: u32 = 1;

/// What the manifest says about the build besides its content.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    pub org_name: String,
    pub app_name: String,
    pub build_id: u64,
    pub build_name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Traces the sequence was learned from.
    pub traces: u64,
    /// Sequence generation (0 = archive order).
    pub generation: u64,
    /// Preload figures (`{"10":B,"100":B,"1000":B}`) or null.
    pub preload: Value,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The image's name.
    pub dxf_name: String,
    /// Files in publishing order: packs, index, signature, manifest last.
    pub files: Vec<String>,
    /// Bytes of all packs.
    pub pack_bytes: u64,
    /// Bytes of every file of the image.
    pub total_bytes: u64,
}

/// The final chunk order: the sequence's chunks that the tree has, then the rest in
/// archive order.
pub fn stream_order(tree: &Tree, sequence: &[Hash]) -> Vec<Hash> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tree.chunks.len());
    for h in sequence.iter().chain(tree.chunk_order().iter()) {
        if tree.chunks.contains_key(h) && seen.insert(*h) {
            out.push(*h);
        }
    }
    out
}

/// `dxf-` + 16 hex digits of a hash over the content and the order.
pub fn dxf_name(tree: &Tree, order: &[Hash]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&tree.content_hash().0);
    for c in order {
        h.update(&c.0);
    }
    format!("dxf-{}", &Hash(*h.finalize().as_bytes()).hex()[..16])
}

/// Writes `name` in `dir` atomically (temp file, then rename).
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, data).map_err(|e| io_ctx(tmp.display(), e))?;
    fs::rename(&tmp, dir.join(name)).map_err(|e| io_ctx(dir.join(name).display(), e))
}

/// True when `add` more bytes go into a new pack rather than the current one of `len`
/// bytes: a pack is closed before it would pass `limit`, unless it is still empty (a chunk
/// larger than the limit gets a pack of its own).
fn starts_new_pack(len: u64, add: u64, limit: u64) -> bool {
    len > 0 && len + add > limit
}

/// Where the packs of an image of `tree` with chunks in `order` will end: for each pack,
/// the stored bytes of all packs up to and including it (the last is the bytes of every
/// pack), by the stored sizes the tree records. Lets a caller tell which pack the bytes
/// counted by [`write_image`] are in, and how many packs there will be.
pub fn pack_ends(tree: &Tree, order: &[Hash], limit: u64) -> Vec<u64> {
    let (mut ends, mut len, mut total) = (Vec::new(), 0u64, 0u64);
    for info in order.iter().filter_map(|h| tree.chunks.get(h)) {
        if starts_new_pack(len, info.stored, limit) {
            ends.push(total);
            len = 0;
        }
        len += info.stored;
        total += info.stored;
    }
    if len > 0 {
        ends.push(total);
    }
    ends
}

/// A pack being filled.
pub(crate) struct PackWriter<'a> {
    dir: &'a Path,
    limit: u64,
    pub(crate) packs: Vec<(String, u64, Hash)>,
    cur: Option<(io::BufWriter<fs::File>, blake3::Hasher, u64)>,
}

impl<'a> PackWriter<'a> {
    pub(crate) fn new(dir: &'a Path, limit: u64) -> Self {
        PackWriter { dir, limit, packs: Vec::new(), cur: None }
    }
    fn name(n: usize) -> String {
        format!("pack-{n:04}.bin")
    }
    /// Appends stored bytes; returns (pack number, offset).
    pub(crate) fn append(&mut self, data: &[u8]) -> io::Result<(usize, u64)> {
        if let Some((_, _, len)) = &self.cur {
            if starts_new_pack(*len, data.len() as u64, self.limit) {
                self.close()?;
            }
        }
        if self.cur.is_none() {
            let n = self.packs.len() + 1;
            let p = self.dir.join(format!(".{}.tmp", Self::name(n)));
            let f = io::BufWriter::with_capacity(
                1 << 20,
                fs::File::create(&p).map_err(|e| io_ctx(p.display(), e))?,
            );
            self.cur = Some((f, blake3::Hasher::new(), 0));
        }
        let (f, h, len) = self.cur.as_mut().expect("open pack");
        let off = *len;
        f.write_all(data)?;
        h.update(data);
        *len += data.len() as u64;
        Ok((self.packs.len() + 1, off))
    }
    /// Finishes the current pack.
    pub(crate) fn close(&mut self) -> io::Result<()> {
        if let Some((mut f, h, len)) = self.cur.take() {
            f.flush()?;
            // No fsync per pack: a crashed step is re-run from the chunk store, and the
            // manifest (written last) only appears after every pack is complete.
            drop(f);
            let n = self.packs.len() + 1;
            let name = Self::name(n);
            fs::rename(self.dir.join(format!(".{name}.tmp")), self.dir.join(&name))?;
            self.packs.push((name, len, Hash(*h.finalize().as_bytes())));
        }
        Ok(())
    }
    pub(crate) fn json(&self) -> Value {
        Value::Array(
            self.packs
                .iter()
                .map(|(n, s, h)| json!({"name": n, "sizeBytes": s, "blake3": h.hex()}))
                .collect(),
        )
    }
}

/// The file table of the index: every entry with its chunks as indexes into the chunk
/// table.
pub(crate) fn file_table(tree: &Tree, pos: &HashMap<Hash, usize>) -> Value {
    Value::Array(
        tree.entries
            .iter()
            .map(|e| {
                let mut v = json!({"path": e.path, "type": e.kind, "mode": e.mode});
                if e.kind == Kind::File {
                    v["size"] = json!(e.size);
                    v["chunks"] = Value::Array(e.chunks.iter().map(|c| json!(pos[&c.h])).collect());
                }
                if let Some(t) = &e.target {
                    v["target"] = json!(t);
                }
                v
            })
            .collect(),
    )
}

/// Writes the image of `tree` into `dir` (created), chunks in `sequence` order first.
/// `sign` signs the manifest bytes (RSA PKCS#1 v1.5 SHA-256) when the org has a key.
/// `done` is added the stored bytes of each chunk as it goes into its pack, so another
/// thread can follow the work: the packs' bytes in all (see [`pack_ends`]).
#[allow(clippy::too_many_arguments)]
pub fn write_image(
    tree: &Tree,
    store: &ChunkStore,
    sequence: &[Hash],
    meta: &ImageMeta,
    dir: &Path,
    p: &Params,
    sign: Option<Signer<'_>>,
    done: &AtomicU64,
) -> io::Result<ImageSummary> {
    fs::create_dir_all(dir).map_err(|e| io_ctx(dir.display(), e))?;
    let order = stream_order(tree, sequence);
    let name = dxf_name(tree, &order);
    let mut packs = PackWriter::new(dir, p.pack_limit);
    let mut chunk_rows = Vec::with_capacity(order.len());
    let mut pos = HashMap::with_capacity(order.len());
    for (i, h) in order.iter().enumerate() {
        let s = store.get_stored(h)?;
        let (pack, off) = packs.append(&s.data)?;
        done.fetch_add(s.data.len() as u64, Ordering::Relaxed);
        let info = tree.chunks[h];
        chunk_rows.push(json!([
            h.hex(),
            info.raw,
            s.data.len(),
            u8::from(s.compressed),
            pack,
            off
        ]));
        pos.insert(*h, i);
    }
    packs.close()?;
    let index = json!({"format": "rockit-dxf-index", "version": VERSION, "chunks": chunk_rows, "files": file_table(tree, &pos)});
    let index_bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
    write_atomic(dir, "index.json", &index_bytes)?;
    let pack_bytes: u64 = packs.packs.iter().map(|p| p.1).sum();
    let manifest = json!({
        "format": "rockit-dxf", "version": VERSION, "orgName": meta.org_name, "appName": meta.app_name,
        "buildId": meta.build_id, "buildName": meta.build_name, "dxfName": name, "created": meta.created,
        "sizeBytes": tree.size_bytes(), "fileCount": tree.file_count(), "chunkCount": order.len(),
        "packs": packs.json(),
        "index": {"name": "index.json", "sizeBytes": index_bytes.len(), "blake3": Hash::of(&index_bytes).hex()},
        "sequence": {"traces": meta.traces, "generation": meta.generation},
        "preload": meta.preload,
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    let mut files: Vec<String> = packs.packs.iter().map(|p| p.0.clone()).collect();
    files.push("index.json".into());
    let mut total = pack_bytes + index_bytes.len() as u64 + manifest_bytes.len() as u64;
    match sign {
        Some(f) => {
            let sig = f(&manifest_bytes);
            total += sig.len() as u64;
            write_atomic(dir, "manifest.sig", &sig)?;
            files.push("manifest.sig".into());
        }
        None => {
            let _ = fs::remove_file(dir.join("manifest.sig"));
        }
    }
    write_atomic(dir, "manifest.json", &manifest_bytes)?;
    files.push("manifest.json".into());
    Ok(ImageSummary { dxf_name: name, files, pack_bytes, total_bytes: total })
}

/// Signs bytes with an RSA private key: PKCS#1 v1.5 over SHA-256.
pub fn rsa_sign(key: &rsa::RsaPrivateKey, data: &[u8]) -> Vec<u8> {
    use rsa::signature::{SignatureEncoding, Signer};
    let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    sk.sign(data).to_vec()
}

/// Verifies a manifest signature with a public key in PEM (SPKI).
pub fn rsa_verify(public_pem: &str, data: &[u8], sig: &[u8]) -> bool {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let Ok(pk) = rsa::RsaPublicKey::from_public_key_pem(public_pem) else { return false };
    let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else { return false };
    vk.verify(data, &sig).is_ok()
}
