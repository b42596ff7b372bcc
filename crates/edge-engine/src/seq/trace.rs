//! The `rockit-trace` v1 document (formats spec "Trace"): which bytes of which files a game
//! read during one play session, and when.
//!
//! ```json
//! {"format":"rockit-trace","version":1,"appName":"MyGame","buildId":3,"dxfName":"dxf-1f3a9c0b",
//!  "paths":["bin/game.exe","data/level1.pak"],
//!  "events":[[0,0,0,65536],[120,1,1048576,262144]]}
//! ```
//!
//! [`parse_trace`] validates everything a launcher can get wrong and says what, where, in
//! words a launcher developer can act on. Offsets beyond a file's size are *not* errors
//! (the trace may come from another build): [`accesses`](super::accesses) drops them.

use serde::de::{self, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::{BufReader, Read};

/// The document's `format`.
pub const FORMAT: &str = "rockit-trace";
/// The only version understood.
pub const VERSION: u64 = 1;
/// Most events a trace may hold.
pub const MAX_EVENTS: usize = 2_000_000;
/// Most paths a trace may list (ours, beyond the contract: bounds the parsed structure).
pub const MAX_PATHS: usize = 1_000_000;
/// Most path text a trace may hold, bytes of UTF-8 summed over `paths` (ours, beyond the
/// contract: bounds the parsed structure).
pub const MAX_PATH_BYTES: usize = 64 << 20;
/// Longest path, in characters.
pub const MAX_PATH_CHARS: usize = 4096;
/// Longest single JSON token (a string with its escapes, or a number) read from a stream:
/// the JSON reader gathers a string or a number whole before looking at it, so this bounds
/// that buffer. A path of [`MAX_PATH_CHARS`] characters is at most 48 KiB even with every
/// character escaped.
pub const MAX_TOKEN_BYTES: usize = 1 << 20;
/// Deepest nesting of arrays and objects (a trace needs 3): values of unknown fields are
/// skipped with one byte of bookkeeping per open level.
pub const MAX_DEPTH: usize = 64;

/// One validated play-session trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The app the session played.
    pub app_name: String,
    /// The build the session played.
    pub build_id: u64,
    /// The image the launcher streamed, when it says.
    pub dxf_name: Option<String>,
    /// Files read, relative to the game directory, `/`-separated, unique.
    pub paths: Vec<String>,
    /// `[ms since game start, index into paths, offset, length]`, in time order.
    pub events: Vec<[u64; 4]>,
}

/// Why a trace was refused: a message for the launcher's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// What is wrong and where (`events[12]: path index 7 out of range (2 paths)`).
    pub message: String,
}

impl TraceError {
    fn new(message: impl Into<String>) -> TraceError {
        TraceError { message: message.into() }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TraceError {}

/// Parses and validates a `rockit-trace` document (already decompressed).
pub fn parse_trace(bytes: &[u8]) -> Result<Trace, TraceError> {
    read_trace(&mut &bytes[..])
}

/// Reads and validates a `rockit-trace` document from a stream (already decompressed) as it
/// arrives: the document is never held whole, and what is kept of it is bounded
/// ([`MAX_EVENTS`], [`MAX_PATHS`], [`MAX_PATH_BYTES`], [`MAX_TOKEN_BYTES`], [`MAX_DEPTH`]).
/// Reading stops at the first problem. An error of `r` itself ends the read as
/// `unreadable: …`; a caller that limits or decodes in `r` tells its own causes apart.
///
/// Not generic, so the JSON reader is compiled (and optimised) here once.
pub fn read_trace(r: &mut dyn Read) -> Result<Trace, TraceError> {
    let mut guard = Guard::new(r);
    let res: Result<Wire, _> =
        serde_json::from_reader(BufReader::with_capacity(64 << 10, &mut guard));
    match res {
        Ok(wire) => wire.validate(),
        Err(e) => Err(TraceError::new(guard.tripped.take().unwrap_or_else(|| json_message(&e)))),
    }
}

/// Whitespace kept of one run between tokens; the rest of a longer run is dropped before
/// the JSON reader sees it (same document, read at the guard's pace rather than byte by
/// byte by the parser). Positions in messages stay exact for indentation up to this.
const MAX_WHITESPACE_RUN: usize = 64;

/// Watches the bytes on their way to the JSON reader, as a lexer would: a token longer
/// than [`MAX_TOKEN_BYTES`] or nesting deeper than [`MAX_DEPTH`] ends the read (the bytes
/// before the offending one are still delivered, so an earlier syntax error wins); long
/// runs of whitespace between tokens are shortened ([`MAX_WHITESPACE_RUN`]).
struct Guard<'a> {
    inner: &'a mut dyn Read,
    in_string: bool,
    escaped: bool,
    /// Length of the token being read, and where it began (for the message).
    token: usize,
    token_at: u64,
    depth: usize,
    /// Length of the current run of whitespace between tokens.
    blank: usize,
    /// Bytes read so far (as the document has them).
    offset: u64,
    /// Why the read was ended, once it was.
    tripped: Option<String>,
}

impl<'a> Guard<'a> {
    fn new(inner: &'a mut dyn Read) -> Guard<'a> {
        Guard {
            inner,
            in_string: false,
            escaped: false,
            token: 0,
            token_at: 0,
            depth: 0,
            blank: 0,
            offset: 0,
            tripped: None,
        }
    }

    /// Scans `buf`, moving the bytes it keeps to its front: how many it kept, and whether
    /// it stopped at a byte over a limit (then nothing after it is kept).
    fn scan(&mut self, buf: &mut [u8]) -> (usize, bool) {
        let mut kept = 0;
        let mut k = 0;
        while k < buf.len() {
            // Runs first, a byte at a time only where the state may change.
            if self.in_string && !self.escaped {
                let run =
                    buf[k..].iter().position(|&b| b == b'"' || b == b'\\').unwrap_or(buf.len() - k);
                let room = MAX_TOKEN_BYTES - self.token;
                if run > room {
                    buf.copy_within(k..k + room, kept);
                    self.trip(
                        self.token_at,
                        format!("a string longer than {MAX_TOKEN_BYTES} bytes"),
                    );
                    return (kept + room, true);
                }
                buf.copy_within(k..k + run, kept);
                kept += run;
                self.token += run;
                k += run;
                if k == buf.len() {
                    break;
                }
            } else if !self.in_string && self.blank >= MAX_WHITESPACE_RUN {
                let run = buf[k..]
                    .iter()
                    .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(buf.len() - k);
                self.blank += run;
                k += run;
                if k == buf.len() {
                    break;
                }
            }
            let b = buf[k];
            k += 1;
            let at = self.offset + (k - 1) as u64;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    self.token = 0;
                }
                if self.in_string {
                    self.token += 1;
                    if self.token > MAX_TOKEN_BYTES {
                        self.trip(
                            self.token_at,
                            format!("a string longer than {MAX_TOKEN_BYTES} bytes"),
                        );
                        return (kept, true);
                    }
                }
            } else {
                match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {
                        self.token = 0;
                        self.blank += 1;
                        if self.blank > MAX_WHITESPACE_RUN {
                            continue;
                        }
                    }
                    b'"' => {
                        self.in_string = true;
                        self.token = 0;
                        self.token_at = at;
                    }
                    b'[' | b'{' => {
                        self.token = 0;
                        self.depth += 1;
                        if self.depth > MAX_DEPTH {
                            self.trip(
                                at,
                                format!("arrays and objects nested deeper than {MAX_DEPTH} levels"),
                            );
                            return (kept, true);
                        }
                    }
                    b']' | b'}' => {
                        self.token = 0;
                        self.depth = self.depth.saturating_sub(1);
                    }
                    b',' | b':' => self.token = 0,
                    _ => {
                        if self.token == 0 {
                            self.token_at = at;
                        }
                        self.token += 1;
                        if self.token > MAX_TOKEN_BYTES {
                            self.trip(
                                self.token_at,
                                format!("a number or literal longer than {MAX_TOKEN_BYTES} bytes"),
                            );
                            return (kept, true);
                        }
                    }
                }
                if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    self.blank = 0;
                }
            }
            buf[kept] = b;
            kept += 1;
        }
        (kept, false)
    }

    fn trip(&mut self, at: u64, what: String) {
        self.tripped = Some(format!("{what} at byte {at} (a trace has no such thing)"));
    }
}

impl Read for Guard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.tripped.is_some() {
                return Err(std::io::Error::other("the trace exceeds a limit"));
            }
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let (kept, stopped) = self.scan(&mut buf[..n]);
            self.offset += n as u64;
            // Only dropped whitespace: read on (0 would mean the end).
            if kept > 0 || stopped {
                return if kept > 0 {
                    Ok(kept)
                } else {
                    Err(std::io::Error::other("the trace exceeds a limit"))
                };
            }
        }
    }
}

/// serde_json's message, with its category where the position alone says little.
fn json_message(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Syntax => format!("not valid JSON: {e}"),
        serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
        serde_json::error::Category::Io => format!("unreadable: {e}"),
        serde_json::error::Category::Data => e.to_string(),
    }
}

impl Trace {
    /// The wire JSON (compact).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a trace always serializes")
    }

    /// Checks the fields of a trace built in code (what [`parse_trace`] checks).
    pub fn validate(&self) -> Result<(), TraceError> {
        validate_paths(&self.paths)?;
        validate_events(&self.events, self.paths.len())
    }
}

/// The document as read: every field optional so that the checks run in a useful order
/// (`format` first) with our own messages.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    format: Option<String>,
    version: Option<u64>,
    app_name: Option<String>,
    build_id: Option<u64>,
    #[serde(default)]
    dxf_name: Option<String>,
    paths: Option<Paths>,
    events: Option<Events>,
}

impl Wire {
    fn validate(self) -> Result<Trace, TraceError> {
        match self.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(TraceError::new(format!("format is {other:?}, expected {FORMAT:?}")))
            }
            None => {
                return Err(TraceError::new(format!(
                    "missing field `format` (expected {FORMAT:?})"
                )))
            }
        }
        match self.version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(TraceError::new(format!(
                    "version {v} is not supported (this server reads version {VERSION})"
                )))
            }
            None => {
                return Err(TraceError::new(format!(
                    "missing field `version` (expected {VERSION})"
                )))
            }
        }
        let app_name = self.app_name.ok_or_else(|| TraceError::new("missing field `appName`"))?;
        if app_name.is_empty() {
            return Err(TraceError::new("appName is empty"));
        }
        let build_id = self.build_id.ok_or_else(|| TraceError::new("missing field `buildId`"))?;
        let paths = self.paths.ok_or_else(|| TraceError::new("missing field `paths`"))?.0;
        let events = self.events.ok_or_else(|| TraceError::new("missing field `events`"))?.0;
        validate_paths(&paths)?;
        validate_events(&events, paths.len())?;
        Ok(Trace { app_name, build_id, dxf_name: self.dxf_name, paths, events })
    }
}

fn too_many_paths() -> String {
    format!("more than {MAX_PATHS} paths: a trace may list at most {MAX_PATHS} files")
}

fn too_much_path_text() -> String {
    format!(
        "the paths add up to more than {} MiB: a trace may hold at most {} MiB of path text",
        MAX_PATH_BYTES >> 20,
        MAX_PATH_BYTES >> 20
    )
}

/// The first path at fault (in list order): a malformed path, or one that repeats an
/// earlier one. Repeats are found by sorting indices (4 bytes a path) rather than with a
/// map of every path.
fn validate_paths(paths: &[String]) -> Result<(), TraceError> {
    if paths.len() > MAX_PATHS {
        return Err(TraceError::new(too_many_paths()));
    }
    if paths.iter().map(String::len).sum::<usize>() > MAX_PATH_BYTES {
        return Err(TraceError::new(too_much_path_text()));
    }
    let problem = paths.iter().enumerate().find_map(|(i, p)| path_problem(p).map(|why| (i, why)));
    let limit = problem.map_or(paths.len(), |(i, _)| i + 1);
    let mut order: Vec<u32> = (0..limit as u32).collect();
    order.sort_unstable_by(|&a, &b| paths[a as usize].cmp(&paths[b as usize]).then(a.cmp(&b)));
    // In a run of equal paths the first index is the original, the second its first repeat.
    let mut repeat: Option<(usize, usize)> = None;
    let mut k = 0;
    while k < order.len() {
        let first = order[k] as usize;
        let mut end = k + 1;
        while end < order.len() && paths[order[end] as usize] == paths[first] {
            end += 1;
        }
        if end > k + 1 {
            let i = order[k + 1] as usize;
            if !matches!(repeat, Some((r, _)) if r <= i) {
                repeat = Some((i, first));
            }
        }
        k = end;
    }
    match (problem, repeat) {
        (Some((i, why)), r) if !matches!(r, Some((j, _)) if j < i) => Err(TraceError::new(format!(
            "paths[{i}] {:?}: {why} (paths are relative to the game directory and `/`-separated, e.g. \"bin/game.exe\")",
            shorten(&paths[i])
        ))),
        (_, Some((i, j))) => Err(TraceError::new(format!("paths[{i}] {:?} repeats paths[{j}] (list each file once)", shorten(&paths[i])))),
        _ => Ok(()),
    }
}

/// What is wrong with a trace path, if anything.
fn path_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("empty path");
    }
    if p.chars().count() > MAX_PATH_CHARS {
        return Some("longer than 4096 characters");
    }
    if p.contains('\0') {
        return Some("contains a NUL character");
    }
    if p.starts_with('/') {
        return Some("must not start with `/`");
    }
    if p.starts_with("./") || p == "." {
        return Some("must not start with `./`");
    }
    for c in p.split('/') {
        match c {
            "" => return Some("empty path component (`//` or a trailing `/`)"),
            "." => return Some("`.` component"),
            ".." => return Some("`..` component"),
            _ => {}
        }
    }
    None
}

fn shorten(p: &str) -> String {
    if p.chars().count() > 80 {
        let mut s: String = p.chars().take(77).collect();
        s.push_str("...");
        s
    } else {
        p.to_string()
    }
}

fn validate_events(events: &[[u64; 4]], n_paths: usize) -> Result<(), TraceError> {
    if events.len() > MAX_EVENTS {
        return Err(TraceError::new(format!(
            "{} events: at most {MAX_EVENTS} are accepted",
            events.len()
        )));
    }
    let mut last = 0u64;
    for (i, &[t, p, off, len]) in events.iter().enumerate() {
        if p >= n_paths as u64 {
            return Err(TraceError::new(format!(
                "events[{i}]: path index {p} out of range (the trace lists {n_paths} paths)"
            )));
        }
        if t < last {
            return Err(TraceError::new(format!(
                "events[{i}]: time {t} ms is before the previous event's {last} ms (events must be in time order)"
            )));
        }
        if len == 0 {
            return Err(TraceError::new(format!(
                "events[{i}]: length is 0 (record only reads of at least one byte)"
            )));
        }
        if off.checked_add(len).is_none() {
            return Err(TraceError::new(format!("events[{i}]: offset + length overflows 64 bits")));
        }
        last = t;
    }
    Ok(())
}

/// The `paths` array, read stopping at [`MAX_PATHS`] + 1 paths or [`MAX_PATH_BYTES`] of
/// text without holding more.
struct Paths(Vec<String>);

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(PathsVisitor)
    }
}

struct PathsVisitor;

impl<'de> Visitor<'de> for PathsVisitor {
    type Value = Paths;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`paths` as an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Paths, A::Error> {
        let mut v: Vec<String> = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 12));
        let mut bytes = 0usize;
        loop {
            if v.len() == MAX_PATHS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(too_many_paths()));
                }
                break;
            }
            match seq.next_element::<String>()? {
                Some(p) => {
                    bytes += p.len();
                    if bytes > MAX_PATH_BYTES {
                        return Err(de::Error::custom(too_much_path_text()));
                    }
                    v.push(p);
                }
                None => break,
            }
        }
        Ok(Paths(v))
    }
}

/// The `events` array, read with messages naming the event and field at fault and
/// stopping at [`MAX_EVENTS`] + 1 without holding more.
struct Events(Vec<[u64; 4]>);

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(EventsVisitor)
    }
}

struct EventsVisitor;

impl<'de> Visitor<'de> for EventsVisitor {
    type Value = Events;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`events` as an array of [ms, pathIndex, offset, length]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Events, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        loop {
            if v.len() == MAX_EVENTS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "more than {MAX_EVENTS} events: split the session or sample it"
                    )));
                }
                break;
            }
            match seq.next_element_seed(EventSeed(v.len()))? {
                Some(e) => v.push(e),
                None => break,
            }
        }
        Ok(Events(v))
    }
}

const FIELDS: [&str; 4] = ["ms", "pathIndex", "offset", "length"];

struct EventSeed(usize);

impl<'de> DeserializeSeed<'de> for EventSeed {
    type Value = [u64; 4];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<[u64; 4], D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventSeed {
    type Value = [u64; 4];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "events[{}] as [ms, pathIndex, offset, length]", self.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u64; 4], A::Error> {
        let mut out = [0u64; 4];
        for (k, o) in out.iter_mut().enumerate() {
            *o = seq.next_element_seed(FieldSeed(self.0, k))?.ok_or_else(|| {
                de::Error::custom(format!(
                    "events[{}]: {k} numbers, expected 4 [ms, pathIndex, offset, length]",
                    self.0
                ))
            })?;
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!(
                "events[{}]: more than 4 numbers, expected [ms, pathIndex, offset, length]",
                self.0
            )));
        }
        Ok(out)
    }
}

struct FieldSeed(usize, usize);

impl FieldSeed {
    fn err<E: de::Error>(&self, got: impl fmt::Display) -> E {
        E::custom(format!(
            "events[{}][{}] ({}) must be a non-negative integer, got {got}",
            self.0, self.1, FIELDS[self.1]
        ))
    }
}

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_u64(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "events[{}][{}] ({}) as a non-negative integer", self.0, self.1, FIELDS[self.1])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| self.err(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        Err(self.err(v))
    }
}

/// The document as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOut<'a> {
    format: &'a str,
    version: u64,
    app_name: &'a str,
    build_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dxf_name: Option<&'a str>,
    paths: &'a [String],
    events: &'a [[u64; 4]],
}

impl Serialize for Trace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            format: FORMAT,
            version: VERSION,
            app_name: &self.app_name,
            build_id: self.build_id,
            dxf_name: self.dxf_name.as_deref(),
            paths: &self.paths,
            events: &self.events,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Trace {
    /// Reads and validates, like [`parse_trace`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Trace, D::Error> {
        Wire::deserialize(d)?.validate().map_err(de::Error::custom)
    }
}
