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
use std::collections::HashMap;
use std::fmt;

/// The document's `format`.
pub const FORMAT: &str = "rockit-trace";
/// The only version understood.
pub const VERSION: u64 = 1;
/// Most events a trace may hold.
pub const MAX_EVENTS: usize = 2_000_000;
/// Longest path, in characters.
pub const MAX_PATH_CHARS: usize = 4096;

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
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| TraceError::new(json_message(&e)))?;
    wire.validate()
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
    paths: Option<Vec<String>>,
    events: Option<Events>,
}

impl Wire {
    fn validate(self) -> Result<Trace, TraceError> {
        match self.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => return Err(TraceError::new(format!("format is {other:?}, expected {FORMAT:?}"))),
            None => return Err(TraceError::new(format!("missing field `format` (expected {FORMAT:?})"))),
        }
        match self.version {
            Some(VERSION) => {}
            Some(v) => return Err(TraceError::new(format!("version {v} is not supported (this server reads version {VERSION})"))),
            None => return Err(TraceError::new(format!("missing field `version` (expected {VERSION})"))),
        }
        let app_name = self.app_name.ok_or_else(|| TraceError::new("missing field `appName`"))?;
        if app_name.is_empty() {
            return Err(TraceError::new("appName is empty"));
        }
        let build_id = self.build_id.ok_or_else(|| TraceError::new("missing field `buildId`"))?;
        let paths = self.paths.ok_or_else(|| TraceError::new("missing field `paths`"))?;
        let events = self.events.ok_or_else(|| TraceError::new("missing field `events`"))?.0;
        validate_paths(&paths)?;
        validate_events(&events, paths.len())?;
        Ok(Trace { app_name, build_id, dxf_name: self.dxf_name, paths, events })
    }
}

fn validate_paths(paths: &[String]) -> Result<(), TraceError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        if let Some(why) = path_problem(p) {
            return Err(TraceError::new(format!(
                "paths[{i}] {:?}: {why} (paths are relative to the game directory and `/`-separated, e.g. \"bin/game.exe\")",
                shorten(p)
            )));
        }
        if let Some(j) = seen.insert(p, i) {
            return Err(TraceError::new(format!("paths[{i}] {:?} repeats paths[{j}] (list each file once)", shorten(p))));
        }
    }
    Ok(())
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
        return Err(TraceError::new(format!("{} events: at most {MAX_EVENTS} are accepted", events.len())));
    }
    let mut last = 0u64;
    for (i, &[t, p, off, len]) in events.iter().enumerate() {
        if p >= n_paths as u64 {
            return Err(TraceError::new(format!("events[{i}]: path index {p} out of range (the trace lists {n_paths} paths)")));
        }
        if t < last {
            return Err(TraceError::new(format!(
                "events[{i}]: time {t} ms is before the previous event's {last} ms (events must be in time order)"
            )));
        }
        if len == 0 {
            return Err(TraceError::new(format!("events[{i}]: length is 0 (record only reads of at least one byte)")));
        }
        if off.checked_add(len).is_none() {
            return Err(TraceError::new(format!("events[{i}]: offset + length overflows 64 bits")));
        }
        last = t;
    }
    Ok(())
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
                    return Err(de::Error::custom(format!("more than {MAX_EVENTS} events: split the session or sample it")));
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
            *o = seq
                .next_element_seed(FieldSeed(self.0, k))?
                .ok_or_else(|| de::Error::custom(format!("events[{}]: {k} numbers, expected 4 [ms, pathIndex, offset, length]", self.0)))?;
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("events[{}]: more than 4 numbers, expected [ms, pathIndex, offset, length]", self.0)));
        }
        Ok(out)
    }
}

struct FieldSeed(usize, usize);

impl FieldSeed {
    fn err<E: de::Error>(&self, got: impl fmt::Display) -> E {
        E::custom(format!("events[{}][{}] ({}) must be a non-negative integer, got {got}", self.0, self.1, FIELDS[self.1]))
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
