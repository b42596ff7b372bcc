//! The vocabulary of a version-2 patch stream, shared by the writer (`patch.rs`) and the
//! reader (`patch_apply.rs`): record and op codes, varints, and the two digests that let
//! `apply` prove it rebuilt the right tree. The byte layout is in `docs/FORMAT.md`
//! ("Patch stream").

use std::io::{self, Read, Write};

/// First bytes of the decoded stream: tells a version-2 stream from anything else.
pub const MAGIC: &[u8; 4] = b"RKP2";

/// Record codes (one varint each).
pub mod rec {
    /// End of records; the `to` digest follows.
    pub const END: u64 = 0;
    /// `from` entry `i` is not carried into `to`.
    pub const REMOVE: u64 = 1;
    /// A directory of `to` that `from` lacks or has with another mode: path, mode.
    pub const DIR: u64 = 2;
    /// A directory of `from`'s table that `to` does not list: path.
    pub const RMDIR: u64 = 3;
    /// A symbolic link of `to` that is not carried: path, target.
    pub const LINK: u64 = 4;
    /// `from` entry `i` replaced by a regular file at the same path: i, size delta, ops.
    pub const FILE_AT: u64 = 5;
    /// A regular file at a path `from` has no file or link at: path, mode, size, ops.
    pub const FILE_NEW: u64 = 6;
}

/// Op kinds: the low two bits of an op's first varint (the rest is its argument).
pub mod op {
    /// Copy `arg` bytes from the current source file; a zigzag offset delta follows.
    pub const COPY: u64 = 0;
    /// `arg` literal bytes follow.
    pub const INSERT: u64 = 1;
    /// The current source becomes `from` entry `arg`; its expected offset becomes 0.
    pub const SRC: u64 = 2;
}

/// Writes an unsigned LEB128 varint.
pub fn put_varint(w: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = b;
            n += 1;
            break;
        }
        buf[n] = b | 0x80;
        n += 1;
    }
    w.write_all(&buf[..n])
}

/// Reads an unsigned LEB128 varint (at most 10 bytes).
pub fn get_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        if shift == 63 && b[0] > 1 {
            break;
        }
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "varint too long"))
}

/// Zigzag: small negative and positive numbers both become small varints.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Reverses [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes a string: its byte length as a varint, then the bytes.
pub fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    put_varint(w, s.len() as u64)?;
    w.write_all(s.as_bytes())
}

/// Reads a string written by [`put_str`]; at most `max` bytes.
pub fn get_str(r: &mut impl Read, max: usize) -> io::Result<String> {
    let n = get_varint(r)?;
    if n > max as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("string of {n} bytes is too long"),
        ));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "string is not UTF-8"))
}

/// What the digests say about one file or symlink.
pub enum Item<'a> {
    /// A regular file: mode, size and (for the `to` digest) the BLAKE3 of its content.
    File { mode: u32, size: u64, content: Option<[u8; 32]> },
    /// A symbolic link and its target.
    Link(&'a str),
}

/// Feeds one entry into a digest. Entries go in byte-wise path order; the `from` digest
/// leaves out modes and content (it is checked from a directory listing before anything
/// is read), the `to` digest has both.
pub fn digest_item(h: &mut blake3::Hasher, path: &str, item: &Item<'_>) {
    h.update(path.as_bytes());
    h.update(&[0]);
    match item {
        Item::File { mode, size, content } => {
            h.update(b"f");
            if let Some(c) = content {
                h.update(&(mode & 0o7777).to_le_bytes());
                h.update(&size.to_le_bytes());
                h.update(c);
            } else {
                h.update(&size.to_le_bytes());
            }
        }
        Item::Link(t) => {
            h.update(b"l");
            h.update(t.as_bytes());
            h.update(&[0]);
        }
    }
}

/// Longest path or link target a reader accepts.
pub const MAX_PATH: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v).unwrap();
            assert_eq!(get_varint(&mut &b[..]).unwrap(), v);
        }
        let mut b = Vec::new();
        put_varint(&mut b, 300).unwrap();
        assert_eq!(b, [0xac, 0x02]);
        for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!((zigzag(0), zigzag(-1), zigzag(1), zigzag(-2)), (0, 1, 2, 3));
        assert!(get_varint(&mut &[0xff; 11][..]).is_err());
    }
}
