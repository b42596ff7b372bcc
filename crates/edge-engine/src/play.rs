//! The launcher simulator behind `rockit play`: a published image read as a launcher reads
//! it (manifest, then the index it pins; with `stream`, every pack too, hashes checked), a
//! play trace replayed against the stream order at a bandwidth, and the formats.md figures:
//! time-to-play, preload, acceleration, and the stalls a launcher starting earlier meets.

use crate::reader::Source;
use crate::seq::Trace;
use crate::Hash;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, Read};

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// Download bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Start the game once this many bytes arrived instead of at the computed time-to-play
    /// (stalls are counted when it is too early).
    pub start_after: Option<u64>,
    /// Read every pack through the source and check its hash (as a launcher would).
    pub stream: bool,
    /// With `stream`: pace the download at `bytes_per_s` in real time, as a launcher on
    /// that line would see it (the figures stay those of the model).
    pub realtime: bool,
}

/// What a play gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayReport {
    /// Seconds from the first byte to the game's start (formats.md `S`).
    pub time_to_play_s: f64,
    /// `S · B`.
    pub preload_bytes: u64,
    /// Bytes of all packs.
    pub total_bytes: u64,
    /// `total_bytes / B`.
    pub full_download_s: f64,
    /// `full_download_s / S` (None when S is 0).
    pub acceleration: Option<f64>,
    /// When started at `start_after`: events that had to wait, and the seconds waited.
    pub stalls: u64,
    pub stall_seconds: f64,
    /// Trace events, and those that touched the image.
    pub events: usize,
    pub events_mapped: usize,
    /// Pack bytes read and verified (`stream`).
    pub verified_bytes: u64,
    /// Wall-clock seconds the streaming took (`stream`).
    pub stream_seconds: f64,
    /// The launcher runtime's way (`rockit run`): the game starts after the manifest's
    /// preload for this bandwidth (or `start_after`), and a read whose chunks have not
    /// streamed in yet fetches them at once while the stream waits. Seconds the game
    /// waits in all, the start included: its time-to-play is this plus its own time.
    pub on_demand_seconds: f64,
    /// Reads that had to fetch their chunks at once that way.
    pub on_demand_fetches: u64,
}

fn bad(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

fn read_all(src: &dyn Source, name: &str) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    src.open(name)?.read_to_end(&mut v)?;
    Ok(v)
}

/// Plays `trace` on the image at `src`.
pub fn play(src: &dyn Source, trace: &Trace, o: &PlayOptions) -> io::Result<PlayReport> {
    if o.bytes_per_s.is_nan() || o.bytes_per_s <= 0.0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the bandwidth must be positive"));
    }
    let manifest: Value = serde_json::from_slice(&read_all(src, "manifest.json")?)
        .map_err(|e| bad(format!("manifest.json: {e}")))?;
    if manifest["format"] != "rockit-dxf" {
        return Err(bad("manifest.json is not a rockit-dxf manifest"));
    }
    let pin = &manifest["index"];
    let index_name = pin["name"].as_str().unwrap_or("index.json");
    let index_bytes = read_all(src, index_name)?;
    if Hash::of(&index_bytes).hex() != pin["blake3"].as_str().unwrap_or("") {
        return Err(bad(format!("{index_name} does not match its hash")));
    }
    let index: Value =
        serde_json::from_slice(&index_bytes).map_err(|e| bad(format!("{index_name}: {e}")))?;
    let rows = index["chunks"].as_array().ok_or_else(|| bad("index without chunks"))?;
    // Where each chunk's stored form ends in the stream, and its raw length.
    let mut ends = Vec::with_capacity(rows.len());
    let mut raw = Vec::with_capacity(rows.len());
    let mut at = 0u64;
    for r in rows {
        at += r[2].as_u64().ok_or_else(|| bad("chunk row without stored size"))?;
        ends.push(at);
        raw.push(r[1].as_u64().ok_or_else(|| bad("chunk row without raw size"))?);
    }
    let total = at;
    // Each file's chunks with their raw start offsets.
    let mut files: HashMap<&str, Vec<(u64, u64, usize)>> = HashMap::new();
    for f in index["files"].as_array().ok_or_else(|| bad("index without files"))? {
        if f["type"] != "file" {
            continue;
        }
        let mut off = 0;
        let mut list = Vec::new();
        for c in f["chunks"].as_array().into_iter().flatten() {
            let c = c
                .as_u64()
                .map(|c| c as usize)
                .filter(|c| *c < raw.len())
                .ok_or_else(|| bad("chunk number out of range"))?;
            list.push((off, off + raw[c], c));
            off += raw[c];
        }
        files.insert(f["path"].as_str().unwrap_or(""), list);
    }
    let b = o.bytes_per_s;
    // Each event's deadline: the stream offset its last needed byte arrives with, and when;
    // and the chunks it reads (for the on-demand replay).
    let mut needs: Vec<(f64, f64)> = Vec::with_capacity(trace.events.len());
    let mut reads: Vec<(f64, Vec<usize>)> = Vec::with_capacity(trace.events.len());
    for e in &trace.events {
        let [t, p, off, len] = *e;
        let Some(list) = trace.paths.get(p as usize).and_then(|p| files.get(p.as_str())) else {
            continue;
        };
        let first = list.partition_point(|&(_, end, _)| end <= off);
        let chunks: Vec<usize> = list[first..]
            .iter()
            .take_while(|&&(start, _, _)| start < off.saturating_add(len))
            .map(|&(_, _, c)| c)
            .collect();
        if let Some(n) = chunks.iter().map(|&c| ends[c]).max() {
            needs.push((t as f64 / 1000.0, n as f64 / b));
            reads.push((t as f64 / 1000.0, chunks));
        }
    }
    let s = needs.iter().map(|(t, avail)| avail - t).fold(0.0f64, f64::max);
    let mut rep = PlayReport {
        time_to_play_s: s,
        preload_bytes: (s * b).round() as u64,
        total_bytes: total,
        full_download_s: total as f64 / b,
        acceleration: (s > 0.0).then(|| total as f64 / b / s),
        events: trace.events.len(),
        events_mapped: needs.len(),
        ..PlayReport::default()
    };
    let start = o.start_after.unwrap_or_else(|| manifest_preload(&manifest, b));
    (rep.on_demand_seconds, rep.on_demand_fetches) = on_demand(&ends, &reads, start, b);
    if let Some(p) = o.start_after {
        // The game starts when `p` bytes arrived; each wait pushes the rest of the play back.
        let mut late = 0.0f64;
        let start = p.min(total) as f64 / b;
        for (t, avail) in &needs {
            let now = start + t + late;
            if *avail > now + 1e-9 {
                rep.stalls += 1;
                rep.stall_seconds += avail - now;
                late += avail - now;
            }
        }
    }
    if o.stream {
        let t0 = std::time::Instant::now();
        rep.verified_bytes = verify_packs(src, &manifest, o.realtime.then_some(b))?;
        rep.stream_seconds = t0.elapsed().as_secs_f64();
    }
    Ok(rep)
}

/// The manifest's preload figure for the bandwidth nearest `b` (bytes/s), as the runtime
/// picks it; 0 without figures (an image not learned from traces).
fn manifest_preload(manifest: &Value, b: f64) -> u64 {
    let want = b * 8.0 / 1e6;
    let mut best: Option<(f64, u64)> = None;
    for (k, v) in manifest["preload"].as_object().into_iter().flatten() {
        let (Ok(mbit), Some(bytes)) = (k.parse::<f64>(), v.as_u64()) else { continue };
        let d = (mbit.max(1e-3) / want.max(1e-3)).ln().abs();
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, bytes));
        }
    }
    best.map_or(0, |b| b.1)
}

/// Replays `reads` (game time in seconds, chunks) the runtime's way on one link of `b`
/// bytes/s: the stream fills chunks in stream order (`ends`: where each ends) and the game
/// starts once `start` bytes arrived; a read that lacks chunks fetches them at once, the
/// game and the stream waiting meanwhile. Returns the seconds the game waited in all (the
/// start included) and how many reads fetched.
fn on_demand(ends: &[u64], reads: &[(f64, Vec<usize>)], start: u64, b: f64) -> (f64, u64) {
    let size = |c: usize| ends[c] - if c == 0 { 0 } else { ends[c - 1] };
    let mut present = vec![false; ends.len()];
    // The stream: the next chunk it fills, and the bytes of it already in.
    let (mut next, mut part) = (0usize, 0f64);
    let mut stream = |present: &mut Vec<bool>, mut budget: f64| {
        while next < ends.len() && budget > 0.0 {
            if present[next] {
                (next, part) = (next + 1, 0.0);
                continue;
            }
            let left = size(next) as f64 - part;
            if budget >= left {
                budget -= left;
                present[next] = true;
                (next, part) = (next + 1, 0.0);
            } else {
                part += budget;
                budget = 0.0;
            }
        }
    };
    let start_s = start.min(ends.last().copied().unwrap_or(0)) as f64 / b;
    stream(&mut present, start as f64);
    let (mut waited, mut fetches, mut last) = (start_s, 0u64, start_s);
    for (t, chunks) in reads {
        let now = start_s + t + (waited - start_s);
        stream(&mut present, (now - last).max(0.0) * b);
        let missing: u64 = chunks.iter().filter(|&&c| !present[c]).map(|&c| size(c)).sum();
        let mut at = now;
        if missing > 0 {
            fetches += 1;
            let wait = missing as f64 / b;
            waited += wait;
            at += wait;
            for &c in chunks {
                present[c] = true;
            }
        }
        last = at;
    }
    (waited, fetches)
}

/// Reads every pack the manifest lists and checks its size and hash; with `pace`, no
/// faster than that many bytes per second.
fn verify_packs(src: &dyn Source, manifest: &Value, pace: Option<f64>) -> io::Result<u64> {
    let mut total = 0;
    let t0 = std::time::Instant::now();
    for p in manifest["packs"].as_array().ok_or_else(|| bad("manifest without packs"))? {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.contains('/') && !n.starts_with('.'))
            .ok_or_else(|| bad("unsafe pack name"))?;
        let mut r = src.open(name)?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            n += k as u64;
            if let Some(b) = pace {
                let due = std::time::Duration::from_secs_f64((total + n) as f64 / b);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        if Some(n) != p["sizeBytes"].as_u64()
            || Hash(*h.finalize().as_bytes()).hex() != p["blake3"].as_str().unwrap_or("")
        {
            return Err(bad(format!("{name} does not match its hash")));
        }
        total += n;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::on_demand;

    #[test]
    fn on_demand_fetches_what_has_not_streamed_in() {
        // Chunks of 100, 200 and 300 bytes; 100 bytes/s.
        let ends = [100, 300, 600];
        // The last chunk read at once: fetched, 3 s.
        assert_eq!(on_demand(&ends, &[(0.0, vec![2])], 0, 100.0), (3.0, 1));
        // The first fetched (1 s); by the second read (5 s of play later) the stream has
        // brought the rest: no more waiting.
        assert_eq!(on_demand(&ends, &[(0.0, vec![0]), (5.0, vec![2])], 0, 100.0), (1.0, 1));
        // One second of play is not enough for the 500 bytes: the second read fetches.
        assert_eq!(on_demand(&ends, &[(0.0, vec![0]), (1.0, vec![2])], 0, 100.0), (4.0, 2));
        // A preload of 300 bytes (3 s) holds the first two chunks; the third is fetched.
        assert_eq!(on_demand(&ends, &[(0.0, vec![1]), (0.0, vec![2])], 300, 100.0), (6.0, 1));
    }
}
