//! Settling a chunk store: compressing its chunks again at a higher level once the machine
//! has time for it.
//!
//! An import stores chunks at a fast level so that a build is published minutes sooner;
//! level 19 would make the compressible chunks about an eighth smaller, at a few minutes of
//! a core per gigabyte. Settling spends those minutes later, chunk by chunk, and every
//! image written afterwards (a new sequence learned from traces, the next build sharing the
//! chunks) carries the smaller bytes. A chunk's content and name never change, only how it
//! is stored, so an image already published is left as it is: its packs were copied when
//! it was written, and its `dxfName` keeps naming those bytes.
//!
//! Chunks the import stored raw (the probe found them incompressible: textures, audio)
//! are left alone: level 19 gains about 0.3 % on them for twice the time of the rest.

use crate::store::ChunkStore;
use crate::{io_ctx, Hash};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// What settling one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Stored again, smaller: the stored bytes before and after.
    Smaller {
        /// Stored bytes before.
        before: u64,
        /// Stored bytes after.
        after: u64,
    },
    /// Left as it was: raw, already as small, or gone meanwhile.
    Kept,
}

/// Settles the chunks of one store at one level, remembering which are done (in a file of
/// the store, `.settled-<level>`, so a restart does not start over).
pub struct Settler {
    store: ChunkStore,
    /// One compression context for every chunk: allocating level 19's tables anew for
    /// each would cost more page faults than some chunks cost to compress.
    zstd: zstd::bulk::Compressor<'static>,
    done: HashSet<Hash>,
    log: PathBuf,
}

impl Settler {
    /// Opens the settler of `store` at zstd `level`, reading which chunks are done.
    pub fn open(store: &ChunkStore, level: i32) -> io::Result<Settler> {
        let log = store.root().join(format!(".settled-{level}"));
        let mut done = HashSet::new();
        match fs::File::open(&log) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(|e| io_ctx(log.display(), e))?;
                // A torn last record (a crash while appending) is ignored: that chunk is
                // settled again, which changes nothing.
                for rec in bytes.chunks_exact(32) {
                    done.insert(Hash(rec.try_into().expect("32 bytes")));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_ctx(log.display(), e)),
        }
        let zstd = zstd::bulk::Compressor::new(level)?;
        Ok(Settler { store: store.clone(), zstd, done, log })
    }

    /// Removes the temporary files of settles cut off by a crash more than an hour ago.
    pub fn clean(&self) -> io::Result<usize> {
        self.store.remove_stale_settle_files(std::time::Duration::from_secs(3600))
    }

    /// The stored chunks not settled yet, in no particular order.
    pub fn pending(&self) -> io::Result<Vec<Hash>> {
        Ok(self.store.hashes()?.into_iter().filter(|h| !self.done.contains(h)).collect())
    }

    /// Settles one chunk: compresses its content at the level and stores that when it is
    /// smaller (atomically; a reader sees the old bytes or the new ones, both whole). The
    /// content is verified against the name first: a damaged chunk is not rewritten.
    /// A damaged chunk is an error, reported once: it counts as done.
    pub fn settle(&mut self, h: &Hash) -> io::Result<Settled> {
        let out = self.recompress(h);
        if matches!(&out, Err(e) if e.kind() != io::ErrorKind::InvalidData) {
            return out;
        }
        self.done.insert(*h);
        // Not synced: a record lost in a crash only means that chunk is settled again.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| f.write_all(&h.0))
            .map_err(|e| io_ctx(self.log.display(), e))?;
        out
    }

    fn recompress(&mut self, h: &Hash) -> io::Result<Settled> {
        let s = match self.store.get_stored(h) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Settled::Kept),
            Err(e) => return Err(e),
            Ok(s) if !s.compressed => return Ok(Settled::Kept),
            Ok(s) => s,
        };
        let corrupt =
            || io::Error::new(io::ErrorKind::InvalidData, format!("chunk {} is corrupt", h.hex()));
        let raw = zstd::stream::decode_all(&s.data[..]).map_err(|_| corrupt())?;
        if Hash::of(&raw) != *h {
            return Err(corrupt());
        }
        let z = self.zstd.compress(&raw)?;
        Ok(if z.len() < s.data.len() && self.store.replace(h, &z)? {
            Settled::Smaller { before: s.data.len() as u64, after: z.len() as u64 }
        } else {
            Settled::Kept
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        // Compressible, but with enough variety that level 19 beats level 1.
        let words = ["castle ", "dragon ", "sword ", "river ", "forest ", "potion ", "shield "];
        let mut x = seed;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
            out.extend_from_slice(format!("{} ", (x >> 40) % 1000).as_bytes());
        }
        out.truncate(n);
        out
    }

    #[test]
    fn settling_stores_smaller_bytes_of_the_same_content_once() {
        let dir = tempfile_dir("settle");
        let store = ChunkStore::open(&dir).unwrap();
        let a = text(300_000, 1);
        let ha = Hash::of(&a);
        store.put(&ha, &a, 1).unwrap();
        // Random bytes: the import's probe stores them raw.
        let mut x = 7u64;
        let b: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let hb = Hash::of(&b);
        assert!(!store.put(&hb, &b, 1).unwrap().1, "random bytes are stored raw");
        let before = store.info(&ha).unwrap().0;

        let mut s = Settler::open(&store, 19).unwrap();
        let mut pending = s.pending().unwrap();
        pending.sort();
        let mut want = vec![ha, hb];
        want.sort();
        assert_eq!(pending, want);
        match s.settle(&ha).unwrap() {
            Settled::Smaller { before: b0, after } => {
                assert_eq!(b0, before);
                assert!(after < before, "{after} < {before}");
                assert_eq!(store.info(&ha).unwrap(), (after, true));
            }
            Settled::Kept => panic!("level 19 beats level 1 on text"),
        }
        assert_eq!(s.settle(&hb).unwrap(), Settled::Kept);
        assert_eq!(store.get_raw(&ha, a.len()).unwrap(), a);
        assert_eq!(store.get_raw(&hb, b.len()).unwrap(), b);
        // Remembered across a reopen; a chunk gone meanwhile is not brought back.
        let s2 = Settler::open(&store, 19).unwrap();
        assert!(s2.pending().unwrap().is_empty());
        let c = text(100_000, 2);
        let hc = Hash::of(&c);
        store.put(&hc, &c, 1).unwrap();
        let mut s3 = Settler::open(&store, 19).unwrap();
        assert_eq!(s3.pending().unwrap(), vec![hc]);
        store.remove(&hc).unwrap();
        assert_eq!(s3.settle(&hc).unwrap(), Settled::Kept);
        assert!(!store.has(&hc));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_a_crash_left_behind_goes_after_an_hour() {
        let dir = tempfile_dir("settle-crash");
        let store = ChunkStore::open(&dir).unwrap();
        let a = text(100_000, 4);
        let h = Hash::of(&a);
        store.put(&h, &a, 1).unwrap();
        let sub = dir.join(&h.hex()[..2]);
        let old = sub.join(format!(".{}.settle1234", h.hex()));
        let new = sub.join(format!(".{}.settle5678", h.hex()));
        for p in [&old, &new] {
            fs::write(p, b"cut off").unwrap();
        }
        let two_hours = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours).unwrap();
        let s = Settler::open(&store, 19).unwrap();
        assert_eq!(s.clean().unwrap(), 1);
        assert!(!old.exists() && new.exists(), "only the old one goes");
        assert_eq!(store.get_raw(&h, a.len()).unwrap(), a, "the chunk stays");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_chunk_is_not_rewritten() {
        let dir = tempfile_dir("settle-bad");
        let store = ChunkStore::open(&dir).unwrap();
        let a = text(100_000, 3);
        let wrong = Hash::of(b"something else");
        // Stored under a name its content does not have.
        store.put(&wrong, &a, 1).unwrap();
        let before = fs::read(dir.join(&wrong.hex()[..2]).join(wrong.hex())).unwrap();
        let mut s = Settler::open(&store, 19).unwrap();
        let e = s.settle(&wrong).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        // Reported once, not at every pass.
        assert!(s.pending().unwrap().is_empty());
        let after = fs::read(dir.join(&wrong.hex()[..2]).join(wrong.hex())).unwrap();
        assert_eq!(before, after);
        let _ = fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }
}
