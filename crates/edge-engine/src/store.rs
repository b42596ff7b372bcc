//! The chunk store of one app: each chunk once, named by its hash, zstd-compressed unless
//! that does not shrink it. One file per chunk, written atomically.

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

    fn path(&self, h: &Hash) -> PathBuf {
        let hex = h.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// True when the chunk is stored.
    pub fn has(&self, h: &Hash) -> bool {
        self.path(h).is_file()
    }

    /// Stores a chunk (compressing it at `level` when that helps) unless present; returns
    /// the stored size and whether it is compressed.
    pub fn put(&self, h: &Hash, raw: &[u8], level: i32) -> io::Result<(u64, bool)> {
        let p = self.path(h);
        if let Ok(m) = fs::metadata(&p) {
            let flag = fs::read(&p).map(|b| b.first().copied() == Some(1)).unwrap_or(false);
            return Ok((m.len().saturating_sub(1), flag));
        }
        // Compressed assets (textures, audio, video) do not shrink: a fast level-1 probe of a
        // sample spares the full compression of chunks that would be stored raw anyway.
        const SAMPLE: usize = 16 << 10;
        let incompressible = raw.len() > 4 * SAMPLE && zstd::bulk::compress(&raw[..SAMPLE], 1)?.len() * 100 > SAMPLE * 98;
        let z = if incompressible { Vec::new() } else { zstd::bulk::compress(raw, level)? };
        let (flag, body) = if !incompressible && z.len() < raw.len() { (1u8, &z[..]) } else { (0u8, raw) };
        let dir = p.parent().expect("chunk path has a parent");
        fs::create_dir_all(dir).map_err(|e| io_ctx(dir.display(), e))?;
        let tmp = dir.join(format!(".{}.tmp{}", h.hex(), std::process::id()));
        {
            let mut f = fs::File::create(&tmp).map_err(|e| io_ctx(tmp.display(), e))?;
            f.write_all(&[flag])?;
            f.write_all(body)?;
        }
        fs::rename(&tmp, &p).map_err(|e| io_ctx(p.display(), e))?;
        Ok((body.len() as u64, flag == 1))
    }

    /// Reads a chunk as stored.
    pub fn get_stored(&self, h: &Hash) -> io::Result<Stored> {
        let p = self.path(h);
        let mut data = fs::read(&p).map_err(|e| io_ctx(format!("chunk {}", h.hex()), e))?;
        if data.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("chunk {} is empty", h.hex())));
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
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("chunk {} is corrupt", h.hex())));
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
