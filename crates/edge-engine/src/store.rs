//! The chunk store of one app: each chunk once, named by its hash, zstd-compressed unless
//! that does not shrink it. One file per chunk, written atomically and durably: synced
//! before the rename that names it (one by one, or a whole batch at once).

use crate::{io_ctx, Hash};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How a chunk is stored: its bytes on disk and whether they are zstd-compressed.
pub struct Stored {
    /// Stored bytes (compressed or raw).
    pub data: Vec<u8>,
    /// True when `data` is a zstd frame.
    pub compressed: bool,
}

/// A directory of chunks: `<root>/<first two hex>/<hex>` holding one flag byte
/// (0 raw, 1 zstd) followed by the stored bytes.
#[derive(Clone)]
pub struct ChunkStore {
    root: PathBuf,
}

impl ChunkStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> io::Result<ChunkStore> {
        fs::create_dir_all(root).map_err(|e| io_ctx(root.display(), e))?;
        Ok(ChunkStore { root: root.to_path_buf() })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Calls `f` on every file of the store's two-hex-digit directories.
    fn each_file(&self, mut f: impl FnMut(fs::DirEntry) -> io::Result<()>) -> io::Result<()> {
        for d in fs::read_dir(&self.root).map_err(|e| io_ctx(self.root.display(), e))? {
            let d = d?;
            if d.file_name().len() != 2 || !d.file_type()?.is_dir() {
                continue;
            }
            for e in fs::read_dir(d.path())? {
                f(e?)?;
            }
        }
        Ok(())
    }

    /// Every stored chunk (temporary files and anything not named by a hash left out).
    pub fn hashes(&self) -> io::Result<Vec<Hash>> {
        let mut out = Vec::new();
        self.each_file(|e| {
            out.extend(e.file_name().to_str().and_then(Hash::from_hex));
            Ok(())
        })?;
        Ok(out)
    }

    /// Removes what settling left behind in a crash: its temporary files (`.<hash>.settle…`)
    /// last written more than `older` ago (a live one lives for a moment). Returns how many.
    pub fn remove_stale_settle_files(&self, older: std::time::Duration) -> io::Result<usize> {
        let mut n = 0;
        self.each_file(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                && name.contains(".settle")
                && e.metadata()?.modified()?.elapsed().is_ok_and(|age| age > older)
            {
                fs::remove_file(e.path())?;
                n += 1;
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Stores the zstd frame `z` as chunk `h`, in place of its bytes, when the chunk is
    /// still stored (a chunk removed meanwhile stays removed); durable when it returns
    /// true. The caller has checked that `z` holds the chunk's content.
    pub fn replace(&self, h: &Hash, z: &[u8]) -> io::Result<bool> {
        let tmp = self.tmp_path(h, &format!("settle{}", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(|e| io_ctx(tmp.display(), e))?;
        f.write_all(&[1])?;
        f.write_all(z)?;
        f.sync_data()?;
        let p = self.path(h);
        if !p.is_file() {
            let _ = fs::remove_file(&tmp);
            return Ok(false);
        }
        fs::rename(&tmp, &p).map_err(|e| io_ctx(p.display(), e))?;
        Ok(true)
    }

    fn path(&self, h: &Hash) -> PathBuf {
        let hex = h.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// True when the chunk is stored.
    pub fn has(&self, h: &Hash) -> bool {
        self.path(h).is_file()
    }

    /// Stores a chunk (compressing it at `level` when that helps) unless present; returns
    /// the stored size and whether it is compressed. Durable when it returns.
    pub fn put(&self, h: &Hash, raw: &[u8], level: i32) -> io::Result<(u64, bool)> {
        if let Some(found) = self.info(h) {
            return Ok(found);
        }
        let tmp = self.tmp_path(h, &format!("tmp{}", std::process::id()));
        let out = self.write(&tmp, raw, level)?;
        // On disk before it has its name: after a crash a chunk is whole or absent, never a
        // named file of zeros that every later build would trust.
        fs::File::open(&tmp)?.sync_data()?;
        let p = self.path(h);
        fs::rename(&tmp, &p).map_err(|e| io_ctx(p.display(), e))?;
        Ok(out)
    }

    /// Like [`ChunkStore::put`] for a chunk that is not stored yet, but leaves it unsynced
    /// under a temporary name of `batch` (unique per writer): [`ChunkStore::commit_batch`]
    /// makes a whole batch durable and names it at once, so writing and the disk's
    /// write-back overlap instead of waiting for each chunk in turn.
    pub fn put_batched(
        &self,
        h: &Hash,
        raw: &[u8],
        level: i32,
        batch: &str,
    ) -> io::Result<(u64, bool)> {
        self.write(&self.tmp_path(h, batch), raw, level)
    }

    /// Syncs the batch's chunks `hashes` (several at once), then gives each its name.
    pub fn commit_batch(&self, hashes: &[Hash], batch: &str) -> io::Result<()> {
        let per = hashes.len().div_ceil(4).max(1);
        std::thread::scope(|scope| {
            let jobs: Vec<_> = hashes
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .try_for_each(|h| fs::File::open(self.tmp_path(h, batch))?.sync_data())
                    })
                })
                .collect();
            jobs.into_iter().try_for_each(|j| {
                j.join().unwrap_or_else(|_| Err(io::Error::other("sync thread panicked")))
            })
        })?;
        for h in hashes {
            let p = self.path(h);
            fs::rename(self.tmp_path(h, batch), &p).map_err(|e| io_ctx(p.display(), e))?;
        }
        Ok(())
    }

    /// Removes a batch's temporary chunks (a failed ingest).
    pub fn discard_batch(&self, hashes: &[Hash], batch: &str) {
        for h in hashes {
            let _ = fs::remove_file(self.tmp_path(h, batch));
        }
    }

    /// The stored size and compression flag of a stored chunk (one byte read); `None`
    /// when it is not stored.
    pub fn info(&self, h: &Hash) -> Option<(u64, bool)> {
        use std::io::Read;
        let mut f = fs::File::open(self.path(h)).ok()?;
        let len = f.metadata().ok()?.len();
        let mut flag = [0u8; 1];
        f.read_exact(&mut flag).ok()?;
        Some((len.saturating_sub(1), flag[0] == 1))
    }

    fn tmp_path(&self, h: &Hash, tag: &str) -> PathBuf {
        let hex = h.hex();
        self.root.join(&hex[..2]).join(format!(".{hex}.{tag}"))
    }

    /// Compresses (when that helps) and writes the flag byte and body to `tmp`.
    fn write(&self, tmp: &Path, raw: &[u8], level: i32) -> io::Result<(u64, bool)> {
        // Compressed assets (textures, audio, video) do not shrink: a fast level-1 probe of a
        // sample spares the full compression of chunks that would be stored raw anyway.
        const SAMPLE: usize = 16 << 10;
        let incompressible = raw.len() > 4 * SAMPLE
            && zstd::bulk::compress(&raw[..SAMPLE], 1)?.len() * 100 > SAMPLE * 98;
        let z = if incompressible { Vec::new() } else { zstd::bulk::compress(raw, level)? };
        let (flag, body) =
            if !incompressible && z.len() < raw.len() { (1u8, &z[..]) } else { (0u8, raw) };
        let dir = tmp.parent().expect("chunk path has a parent");
        fs::create_dir_all(dir).map_err(|e| io_ctx(dir.display(), e))?;
        let mut f = fs::File::create(tmp).map_err(|e| io_ctx(tmp.display(), e))?;
        f.write_all(&[flag])?;
        f.write_all(body)?;
        Ok((body.len() as u64, flag == 1))
    }

    /// Reads a chunk as stored.
    pub fn get_stored(&self, h: &Hash) -> io::Result<Stored> {
        let p = self.path(h);
        let mut data = fs::read(&p).map_err(|e| io_ctx(format!("chunk {}", h.hex()), e))?;
        if data.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunk {} is empty", h.hex()),
            ));
        }
        let compressed = data[0] == 1;
        data.remove(0);
        Ok(Stored { data, compressed })
    }

    /// Reads a chunk's raw bytes, verifying its hash.
    pub fn get_raw(&self, h: &Hash, raw_len: usize) -> io::Result<Vec<u8>> {
        let s = self.get_stored(h)?;
        let raw = if s.compressed { zstd::bulk::decompress(&s.data, raw_len)? } else { s.data };
        if Hash::of(&raw) != *h {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunk {} is corrupt", h.hex()),
            ));
        }
        Ok(raw)
    }

    /// Removes a chunk (used when an app's data is purged).
    pub fn remove(&self, h: &Hash) -> io::Result<()> {
        match fs::remove_file(self.path(h)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
