//! Recording reads as a `rockit-trace` (docs/SEQUENCE.md): each read is an event
//! `[ms since start, path index, offset, length]`; a read that continues (or overlaps) the
//! last event of the same file within [`MERGE_MS`] of that event's start is merged into it,
//! so a file read in pieces — a kernel splitting a large read, `tar` reading 10 KiB
//! records — is one event, while a file streamed over minutes (music, a movie) stays a
//! run of events at the times its pieces were needed.

use edge_engine::seq::{Trace, MAX_EVENTS};
use std::collections::HashMap;

/// Reads of one file within this many milliseconds of an event's start, continuing it,
/// are merged into it.
pub const MERGE_MS: u64 = 100;

/// The reads of one session.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    paths: Vec<String>,
    /// Entry number → path index.
    index: HashMap<usize, usize>,
    events: Vec<[u64; 4]>,
    /// Path index → its newest event.
    last: HashMap<usize, usize>,
    /// Reads not recorded because the trace is full.
    pub(crate) dropped: u64,
}

impl Recorder {
    /// Records a read of `len` bytes at `offset` of entry `file` (`path`), `ms` after start.
    pub(crate) fn record(&mut self, file: usize, path: &str, offset: u64, len: u64, ms: u64) {
        if len == 0 {
            return;
        }
        let end = offset.saturating_add(len);
        let pi = *self.index.entry(file).or_insert_with(|| {
            self.paths.push(path.to_string());
            self.paths.len() - 1
        });
        if let Some(&ei) = self.last.get(&pi) {
            let e = &mut self.events[ei];
            let e_end = e[2] + e[3];
            if ms <= e[0] + MERGE_MS && offset <= e_end && end >= e[2] {
                let start = e[2].min(offset);
                e[3] = e_end.max(end) - start;
                e[2] = start;
                return;
            }
        }
        if self.events.len() >= MAX_EVENTS {
            self.dropped += 1;
            return;
        }
        // Times never go backwards in the trace, whatever the clock reads.
        let ms = self.events.last().map_or(ms, |l| ms.max(l[0]));
        self.events.push([ms, pi as u64, offset, end - offset]);
        self.last.insert(pi, self.events.len() - 1);
    }

    /// The trace so far.
    pub(crate) fn trace(&self, app: &str, build_id: u64, dxf: &str) -> Trace {
        // Only paths some event names (all of them: a path is added with its first event,
        // unless the trace was full).
        let mut used = vec![false; self.paths.len()];
        for e in &self.events {
            used[e[1] as usize] = true;
        }
        let mut map = vec![0u64; self.paths.len()];
        let mut paths = Vec::new();
        for (i, p) in self.paths.iter().enumerate() {
            if used[i] {
                map[i] = paths.len() as u64;
                paths.push(p.clone());
            }
        }
        Trace {
            app_name: app.to_string(),
            build_id,
            dxf_name: Some(dxf.to_string()),
            paths,
            events: self.events.iter().map(|e| [e[0], map[e[1] as usize], e[2], e[3]]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_reads_merge_within_the_window_only() {
        let mut r = Recorder::default();
        r.record(3, "a.pak", 0, 100, 0);
        r.record(3, "a.pak", 100, 50, 10); // continues: merged
        r.record(7, "b.pak", 0, 10, 20); // another file in between
        r.record(3, "a.pak", 150, 50, 30); // still continues a.pak's event
        r.record(3, "a.pak", 120, 10, 40); // inside it: merged, nothing new
        r.record(3, "a.pak", 500, 10, 50); // a seek: new event
        r.record(3, "a.pak", 510, 10, 50 + MERGE_MS + 1); // contiguous but too late: new event
        r.record(7, "b.pak", 10, 0, 300); // empty: ignored
        let t = r.trace("App", 2, "dxf-x");
        assert_eq!(t.paths, ["a.pak", "b.pak"]);
        assert_eq!(
            t.events,
            vec![[0, 0, 0, 200], [20, 1, 0, 10], [50, 0, 500, 10], [151, 0, 510, 10]]
        );
        assert_eq!(t.build_id, 2);
        assert_eq!(t.dxf_name.as_deref(), Some("dxf-x"));
        t.validate().expect("a valid rockit-trace");
    }

    #[test]
    fn a_read_reaching_back_extends_the_event_backwards() {
        let mut r = Recorder::default();
        r.record(1, "f", 1000, 100, 5);
        r.record(1, "f", 900, 100, 6);
        assert_eq!(r.trace("A", 1, "d").events, vec![[5, 0, 900, 200]]);
    }
}
