//! A zip archive sent as a tar (tarstream.rs): `rockit push game.zip` reads the zip's central
//! directory, turns its entries into tar members (the tar a directory of the same files
//! would give), checks them against the Edge's rules before anything is sent, and streams
//! each entry's data inflated on the fly, checked against its size and CRC-32.
//!
//! - Names are UTF-8 (or, when their bytes are not, CP437 as the zip format says); `./` and
//!   empty components are dropped; an absolute path, `..`, a backslash or a control
//!   character is refused, as are entries that are twice in the archive.
//! - Unix permission bits are kept when the zip was made on Unix (they are in its external
//!   attributes); otherwise files get 0644 and directories 0755. Symbolic links made on
//!   Unix become links. Directories the zip leaves implicit are added.
//! - Entries must be stored or deflated (what every common zip tool writes) and not
//!   encrypted; anything else is refused naming the entry.

use crate::fail::Fail;
use crate::tarstream::{Data, Kind, Member, Tree};
use edge_engine::safepath::shown;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use zip::{CompressionMethod, System, ZipArchive};

/// Where an entry's data lies in the zip file, and how to read and check it.
#[derive(Debug, Clone)]
pub struct ZipData {
    /// Offset of the entry's (compressed) data.
    offset: u64,
    /// Bytes of compressed data.
    compressed: u64,
    /// Deflated; else stored.
    deflated: bool,
    /// CRC-32 of the uncompressed bytes.
    crc: u32,
}

impl ZipData {
    /// The entry's `size` uncompressed bytes from the zip at `zip`.
    pub fn open(&self, zip: &Path, size: u64) -> io::Result<EntryReader> {
        let mut f = File::open(zip)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let raw = BufReader::with_capacity(1 << 16, f).take(self.compressed);
        let inner: Box<dyn Read + Send> = if self.deflated {
            Box::new(flate2::read::DeflateDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(EntryReader { inner, crc: flate2::Crc::new(), want: self.crc, size, read: 0 })
    }
}

/// An entry's bytes; fails when there are more than its size, or when its CRC-32 does not
/// match once all are read.
pub struct EntryReader {
    inner: Box<dyn Read + Send>,
    crc: flate2::Crc,
    want: u32,
    size: u64,
    read: u64,
}

impl Read for EntryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more data than the zip says (a damaged zip)",
            ));
        }
        if n > 0 && self.read == self.size && self.crc.sum() != self.want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the data does not match its CRC-32 (a damaged zip)",
            ));
        }
        Ok(n)
    }
}

/// Seconds since 1970 of a zip time (taken as UTC; 0 when invalid).
fn unix_time(d: zip::DateTime) -> u64 {
    if !d.is_valid() {
        return 0;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let (y, m, day) = (i64::from(d.year()), i64::from(d.month()), i64::from(d.day()));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + i64::from(d.hour()) * 3600
        + i64::from(d.minute()) * 60
        + i64::from(d.second());
    secs.max(0) as u64
}

/// Reads the zip at `path` into the members of a tar, checked; nothing is sent yet.
pub fn read(path: &Path) -> Result<Tree, Fail> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| Fail::new(format!("{name}: {e}")))?;
    let mut z = ZipArchive::new(BufReader::new(f))
        .map_err(|e| Fail::new(format!("{name}: not a readable zip ({e})")))?;
    let mut members: Vec<Member> = Vec::new();
    let mut links: Vec<(usize, ZipData, u64)> = Vec::new();
    for i in 0..z.len() {
        let e =
            z.by_index_raw(i).map_err(|e| Fail::new(format!("{name}: entry {}: {e}", i + 1)))?;
        let raw = match std::str::from_utf8(e.name_raw()) {
            Ok(s) => s.to_string(),
            Err(_) => e
                .name()
                .map_err(|x| Fail::new(format!("{name}: entry {}: {x}", i + 1)))?
                .into_owned(),
        };
        let refuse = |why: &str| Fail::new(format!("{}: {why}; the Edge refuses it", shown(&raw)));
        let path = match edge_engine::ingest::normalize(&raw) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(why) => return Err(refuse(why)),
        };
        if e.encrypted() {
            return Err(Fail::new(format!(
                "{name}: {}: encrypted; rockit cannot read encrypted zip entries",
                shown(&raw)
            )));
        }
        let deflated = match e.compression() {
            CompressionMethod::Stored => false,
            CompressionMethod::Deflated => true,
            m => {
                return Err(Fail::new(format!(
                    "{name}: {}: compressed with {m}; rockit reads stored and deflated zip entries only (make the zip with deflate)",
                    shown(&raw)
                )))
            }
        };
        let unix = e.system() == System::Unix && e.external_attributes() >> 16 != 0;
        let mode = e.unix_mode().filter(|_| unix);
        let mtime = e.last_modified().map(unix_time).unwrap_or(0);
        let is_link = mode.is_some_and(|m| m & 0o170000 == 0o120000);
        let offset = e
            .data_start()
            .ok_or_else(|| Fail::new(format!("{name}: {}: data not found", shown(&raw))))?;
        let data = ZipData { offset, compressed: e.compressed_size(), deflated, crc: e.crc32() };
        if e.is_dir() {
            let mode = mode.map(|m| m & 0o7777).unwrap_or(0o755);
            members.push(Member {
                rel: format!("{path}/"),
                kind: Kind::Dir,
                mode,
                mtime,
                size: 0,
                link: None,
                data: Data::Disk,
            });
        } else if is_link {
            if e.size() > 4096 {
                return Err(Fail::new(format!(
                    "{name}: {}: a link target over 4096 bytes",
                    shown(&raw)
                )));
            }
            links.push((members.len(), data, e.size()));
            members.push(Member {
                rel: path,
                kind: Kind::Symlink,
                mode: 0o777,
                mtime,
                size: 0,
                link: None,
                data: Data::Disk,
            });
        } else {
            let mode = mode.map(|m| m & 0o7777).unwrap_or(0o644);
            members.push(Member {
                rel: path,
                kind: Kind::File,
                mode,
                mtime,
                size: e.size(),
                link: None,
                data: Data::Zip(data),
            });
        }
    }
    for (i, d, size) in links {
        let mut target = String::new();
        d.open(path, size)
            .and_then(|mut r| r.read_to_string(&mut target))
            .map_err(|e| Fail::new(format!("{name}: {}: the link target: {e}", members[i].rel)))?;
        members[i].link = Some(target);
    }
    // Directories the zip leaves implicit.
    let have: BTreeSet<String> =
        members.iter().map(|m| m.rel.trim_end_matches('/').to_string()).collect();
    let mut implied = BTreeSet::new();
    for m in &members {
        let p = m.rel.trim_end_matches('/');
        for (k, _) in p.match_indices('/') {
            if !have.contains(&p[..k]) {
                implied.insert(p[..k].to_string());
            }
        }
    }
    for d in implied {
        members.push(Member {
            rel: format!("{d}/"),
            kind: Kind::Dir,
            mode: 0o755,
            mtime: 0,
            size: 0,
            link: None,
            data: Data::Disk,
        });
    }
    members.sort_by(|a, b| a.rel.cmp(&b.rel));
    Tree::assemble(path.to_path_buf(), members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_times_in_unix_seconds() {
        let d = zip::DateTime::from_date_and_time(2024, 2, 29, 12, 30, 10).unwrap();
        assert_eq!(unix_time(d), 1_709_209_810);
        let d = zip::DateTime::from_date_and_time(1980, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(unix_time(d), 315_532_800);
    }
}
