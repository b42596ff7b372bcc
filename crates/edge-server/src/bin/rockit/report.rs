//! What the CLI tells the user: sizes and rates in human units, and a progress line on
//! stderr when stderr is a terminal (never in pipes or logs).

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether a progress line is on the terminal and must be cleared before other output.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// `1.5 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `12.3 MiB/s` for `n` bytes in `d`.
pub fn rate(n: u64, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-3);
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

/// Removes the progress line, if one is shown.
pub fn clear_progress() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let mut e = std::io::stderr();
        let _ = write!(e, "\r\x1b[K");
        let _ = e.flush();
    }
}

/// A throttled "read X of Y" line.
pub struct Progress {
    enabled: bool,
    start: Instant,
    last: Cell<Option<Instant>>,
}

impl Progress {
    /// Enabled when stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: Cell::new(None),
        }
    }

    /// Reports `done` of `total` bytes (total 0: unknown), at most five times a second.
    pub fn tick(&self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last.get().is_some_and(|l| now - l < Duration::from_millis(200)) {
            return;
        }
        self.last.set(Some(now));
        let of = if total > 0 {
            format!(" of {} ({:.0} %)", bytes(total), done as f64 * 100.0 / total as f64)
        } else {
            String::new()
        };
        let mut e = std::io::stderr();
        let _ = write!(e, "\r\x1b[Kread {}{of}, {}", bytes(done), rate(done, now - self.start));
        let _ = e.flush();
        SHOWN.store(true, Ordering::Relaxed);
    }
}

/// `1:05` or `1:02:03` for a number of seconds.
pub fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// A progress bar for an upload: bytes sent, rate, ETA; on stderr at most five times a
/// second. Shown when stderr is a terminal, or when forced.
pub struct Bar {
    enabled: bool,
    total: u64,
    start: Instant,
    last: Option<Instant>,
}

impl Bar {
    pub fn new(total: u64, force: bool) -> Bar {
        Bar {
            enabled: force || std::io::stderr().is_terminal(),
            total,
            start: Instant::now(),
            last: None,
        }
    }

    pub fn tick(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|l| now - l < Duration::from_millis(200)) && done < self.total {
            return;
        }
        self.last = Some(now);
        let el = (now - self.start).as_secs_f64().max(1e-3);
        let pct = if self.total > 0 { done as f64 * 100.0 / self.total as f64 } else { 100.0 };
        let width = 24usize;
        let full = ((pct / 100.0) * width as f64) as usize;
        let bar: String = (0..width).map(|i| if i < full { '#' } else { '-' }).collect();
        let rate = done as f64 / el;
        let eta = if rate > 0.0 && done < self.total {
            clock(((self.total - done) as f64 / rate) as u64)
        } else {
            "0:00".into()
        };
        let mut e = std::io::stderr();
        let _ = write!(
            e,
            "\r\x1b[Kuploading [{bar}] {:>3.0} %  {} of {}  {}/s  ETA {eta}",
            pct,
            bytes(done),
            bytes(self.total),
            bytes(rate as u64)
        );
        let _ = e.flush();
        SHOWN.store(true, Ordering::Relaxed);
    }
}

/// Server text made fit for a progress line that `\r` rewrites: control characters (a
/// newline would leave the old line behind, an escape could move the cursor) become
/// spaces, and it is cut at 79 characters, since a line that wraps is not rewritten whole.
pub fn one_line(text: &str) -> String {
    const WIDTH: usize = 79;
    let clean: String =
        text.trim_end().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() <= WIDTH {
        return clean;
    }
    let mut cut: String = clean.chars().take(WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// Notes that something wrote a progress line (cleared by [`clear_progress`]).
pub fn mark_shown() {
    SHOWN.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn progress_lines_stay_one_line() {
        assert_eq!(one_line("mkpat running 42 %\n\x1b[2J"), "mkpat running 42 %  [2J");
        let long = "é".repeat(100);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 79);
        assert!(cut.ends_with('…'));
    }
}
