//! Where an image or patch comes from (a directory or an http(s) base URL), wrapped so the
//! CLI can count the bytes read, show progress, and look at the manifest afterwards.

use crate::fail::Fail;
use crate::http::HttpSource;
use crate::report::Progress;
use edge_engine::reader::{DirSource, Source};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::path::PathBuf;

/// What is being read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A DxF image (`manifest.json`).
    Image,
    /// A patch (`patch.json`).
    Patch,
}

impl What {
    /// The file that describes it.
    pub fn manifest(self) -> &'static str {
        match self {
            What::Image => "manifest.json",
            What::Patch => "patch.json",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            What::Image => "DxF image",
            What::Patch => "patch",
        }
    }
    fn other(self) -> What {
        match self {
            What::Image => What::Patch,
            What::Patch => What::Image,
        }
    }
}

/// True when `loc` names an http(s) URL rather than a directory.
pub fn is_url(loc: &str) -> bool {
    let l = loc.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// Opens `loc` (a directory or an http(s) base URL) as the source of `what`.
pub fn open(loc: &str, what: What) -> Result<Tracked, Fail> {
    let inner: Box<dyn Source> = if is_url(loc) {
        Box::new(HttpSource::new(loc)?)
    } else {
        if loc.contains("://") {
            return Err(Fail::new(format!(
                "{loc}: only directories and http(s) URLs are supported"
            )));
        }
        let dir = PathBuf::from(loc);
        if !dir.exists() {
            return Err(Fail::new(format!(
                "{} directory {} does not exist",
                what.noun(),
                dir.display()
            )));
        }
        if !dir.is_dir() {
            return Err(Fail::new(format!("{} is not a directory", dir.display())));
        }
        if !dir.join(what.manifest()).is_file() {
            let hint = if dir.join(what.other().manifest()).is_file() {
                format!(" (it holds a {})", what.other().noun())
            } else {
                String::new()
            };
            return Err(Fail::new(format!(
                "{} is not a {}: no {}{hint}",
                dir.display(),
                what.noun(),
                what.manifest()
            )));
        }
        Box::new(DirSource(dir))
    };
    Ok(Tracked {
        inner,
        manifest_name: what.manifest(),
        manifest: RefCell::new(None),
        index: RefCell::new(None),
        read: Cell::new(0),
        total: Cell::new(0),
        streaming: RefCell::new(None),
        progress: Progress::new(),
    })
}

/// A source that counts what is read, keeps copies of the manifest and (images) the index,
/// and knows which pack is being streamed, so a failure can name where it happened.
pub struct Tracked {
    inner: Box<dyn Source>,
    manifest_name: &'static str,
    manifest: RefCell<Option<Vec<u8>>>,
    index: RefCell<Option<Vec<u8>>>,
    read: Cell<u64>,
    total: Cell<u64>,
    /// The file being streamed and the bytes read of it, until its end was reached.
    streaming: RefCell<Option<(String, u64)>>,
    progress: Progress,
}

impl Tracked {
    /// Bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    /// The manifest as read by the engine (`Null` when it was never read or is not JSON).
    pub fn manifest(&self) -> Value {
        json_of(&self.manifest.borrow())
    }

    /// An engine failure as the user sees it: when it happened inside a pack and does not
    /// say where, the chunk being read or decoded (images) or the pack and byte (patches,
    /// whose packs are one stream) is named.
    pub fn explain(&self, e: io::Error) -> Fail {
        let msg = e.to_string();
        let Some((pack, pos)) = self.streaming.borrow().clone() else { return Fail::new(msg) };
        if msg.contains(&pack) {
            return Fail::new(msg);
        }
        match self.chunk_at(&pack, pos) {
            Some((h, off)) if !msg.contains(&h) => {
                Fail::new(format!("chunk {h} ({pack} at offset {off}): {msg}"))
            }
            Some(_) => Fail::new(msg),
            None => Fail::new(format!("{pack} (read up to byte {pos}): {msg}")),
        }
    }

    /// The image chunk of pack `name` that ends at or runs across byte `pos`: (hash, offset).
    fn chunk_at(&self, name: &str, pos: u64) -> Option<(String, u64)> {
        let n =
            self.manifest()["packs"].as_array()?.iter().position(|p| p["name"] == name)? as u64 + 1;
        let index = json_of(&self.index.borrow());
        index["chunks"].as_array()?.iter().find_map(|c| {
            // Image rows are `[hash, raw, stored, z, pack, off]`.
            let a = c.as_array()?;
            let (h, stored, pack, off) = (
                a.first()?.as_str()?,
                a.get(2)?.as_u64()?,
                a.get(4)?.as_u64()?,
                a.get(5)?.as_u64()?,
            );
            (pack == n && off < pos && pos <= off + stored).then(|| (h.to_string(), off))
        })
    }

    fn add(&self, n: usize) {
        self.read.set(self.read.get() + n as u64);
        self.progress.tick(self.read.get(), self.total.get());
    }
}

/// A kept copy as JSON.
fn json_of(b: &Option<Vec<u8>>) -> Value {
    b.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null)
}

impl Source for Tracked {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        let mut r = self.inner.open(name)?;
        let slot = if name == self.manifest_name {
            &self.manifest
        } else if name == "index.json" {
            &self.index
        } else {
            *self.streaming.borrow_mut() = Some((name.to_string(), 0));
            return Ok(Box::new(Counting { inner: r, src: self, name: name.to_string() }));
        };
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        self.add(bytes.len());
        if name == self.manifest_name {
            // Everything the manifest pins, packs and (images) index, plus the manifest itself.
            if let Ok(m) = serde_json::from_slice::<Value>(&bytes) {
                let packs: u64 = m["packs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p["sizeBytes"].as_u64()).sum())
                    .unwrap_or(0);
                self.total.set(
                    packs + m["index"]["sizeBytes"].as_u64().unwrap_or(0) + bytes.len() as u64,
                );
            }
        }
        *slot.borrow_mut() = Some(bytes.clone());
        Ok(Box::new(io::Cursor::new(bytes)))
    }
}

/// Counts the bytes of a streamed file; its end clears [`Tracked::streaming`].
struct Counting<'a> {
    inner: Box<dyn Read + 'a>,
    src: &'a Tracked,
    name: String,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut st = self.src.streaming.borrow_mut();
        match st.as_mut() {
            Some((name, pos)) if *name == self.name => {
                if n == 0 && !buf.is_empty() {
                    *st = None;
                } else {
                    *pos += n as u64;
                }
            }
            _ => {}
        }
        drop(st);
        self.src.add(n);
        Ok(n)
    }
}
