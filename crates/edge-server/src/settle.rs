//! The settling thread: when the machine has time, it compresses the chunks of every app's
//! store again at `settle_level` ([`edge_engine::settle`]), so that the images written
//! afterwards are smaller. It works one chunk at a time (a few tenths of a second each),
//! and before each looks at how busy the machine was over the last quarter of a second: it
//! goes on only while this process runs no pipeline step and ingests no upload, and the
//! rest of the machine left at least `settle_idle_percent` of the CPU time unused. An
//! import that starts meanwhile has the machine back after the chunk in hand.
//! It looks for work when a `deploy` ended (an import's chunks are published), at start and
//! every ten minutes. Only with a depot on local disk: with an S3 depot the bucket holds
//! the chunks, and each process has a copy of its own.

use crate::state::AppState;
use edge_engine::settle::{Settled, Settler};
use edge_engine::store::ChunkStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the stores are looked at without a poke.
const RESCAN: Duration = Duration::from_secs(600);

/// The CPU time of the machine is looked at over windows this long.
const WINDOW: Duration = Duration::from_millis(250);

/// Pipeline steps and upload ingests this process runs now.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Held while this process runs a pipeline step or ingests an upload: settling waits until
/// none is held, whatever the CPU figures say (a step waiting for its disk or its peers
/// leaves the CPU idle, and takes it back a moment later).
pub struct Busy(());

/// Marks this process busy until the guard is dropped.
pub fn busy() -> Busy {
    BUSY.fetch_add(1, Ordering::SeqCst);
    Busy(())
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the thread when settling is on (`settle_level` > 0) and the depot is local; it
/// ends within a second of `stop` flipping. The handle's task ends when the thread has.
pub fn spawn(
    st: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if st.cfg.settle_level <= 0 {
        return None;
    }
    if st.depot.is_shared() {
        tracing::info!("settling is off: the depot is an S3 bucket");
        return None;
    }
    let thread = std::thread::Builder::new()
        .name("settle".into())
        .spawn(move || run(&st, &stop))
        .map_err(|e| tracing::warn!(error = %e, "the settling thread did not start"))
        .ok()?;
    Some(tokio::spawn(async move {
        while !thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }))
}

fn run(st: &AppState, stop: &watch::Receiver<bool>) {
    let mut last_pass: Option<Instant> = None;
    let mut idle = IdleMeter::new(st.cfg.settle_idle_percent);
    loop {
        let poked = st.settle.wait(Duration::from_secs(1));
        if *stop.borrow() {
            return;
        }
        if !poked && last_pass.is_some_and(|t| t.elapsed() < RESCAN) {
            continue;
        }
        last_pass = Some(Instant::now());
        if let Err(e) = pass(st, stop, &mut idle) {
            tracing::warn!(error = %e, "settling chunks failed");
        }
    }
}

/// Settles what every store has pending; returns early at stop.
fn pass(st: &AppState, stop: &watch::Receiver<bool>, idle: &mut IdleMeter) -> std::io::Result<()> {
    let root = st.depot.local("chunks");
    let Ok(apps) = std::fs::read_dir(&root) else { return Ok(()) };
    let mut work = Vec::new();
    for app in apps.flatten() {
        if !app.file_type()?.is_dir() || app.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let store = ChunkStore::open(&app.path())?;
        let settler = Settler::open(&store, st.cfg.settle_level)?;
        if let Err(e) = settler.clean() {
            tracing::warn!(error = %e, "removing what a crash left behind failed");
        }
        let pending = settler.pending()?;
        if !pending.is_empty() {
            work.push((settler, pending, app.path()));
        }
    }
    let m = &st.metrics;
    m.settle_pending.store(work.iter().map(|w| w.1.len() as u64).sum(), Ordering::Relaxed);
    for (mut settler, pending, dir) in work {
        for h in pending {
            while !idle.idle() {
                if *stop.borrow() {
                    return Ok(());
                }
                std::thread::sleep(2 * WINDOW);
            }
            if *stop.borrow() {
                return Ok(());
            }
            match settler.settle(&h) {
                Ok(Settled::Smaller { before, after }) => {
                    m.settle_smaller.fetch_add(1, Ordering::Relaxed);
                    m.settle_saved_bytes.fetch_add(before - after, Ordering::Relaxed);
                }
                Ok(Settled::Kept) => {
                    m.settle_kept.fetch_add(1, Ordering::Relaxed);
                }
                // The app was deleted meanwhile: its store went with it.
                Err(_) if !dir.is_dir() => break,
                Err(e) => {
                    m.settle_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(chunk = %h.hex(), error = %e, "a chunk could not be settled");
                }
            }
            m.settle_pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
    m.settle_pending.store(0, Ordering::Relaxed);
    Ok(())
}

/// Tells whether this process runs no step and the rest of the machine left enough CPU
/// time unused over the last [`WINDOW`] or so: from `/proc/stat`, less this thread's own time (`/proc/thread-self/stat`). Where
/// those cannot be read, the machine counts as idle.
struct IdleMeter {
    percent: u32,
    /// (when, the machine's busy and total ticks, this thread's ticks) at the last look.
    last: Option<(Instant, u64, u64, u64)>,
    verdict: bool,
}

impl IdleMeter {
    fn new(percent: u32) -> IdleMeter {
        IdleMeter { percent, last: None, verdict: true }
    }

    fn idle(&mut self) -> bool {
        if self.percent == 0 {
            return true;
        }
        if BUSY.load(Ordering::SeqCst) > 0 {
            // A fresh window once the work is done.
            self.last = None;
            return false;
        }
        let Some((busy, total, own)) = ticks() else { return true };
        let now = Instant::now();
        match self.last {
            Some((t, _, _, _)) if now.duration_since(t) < WINDOW => self.verdict,
            Some((_, b0, t0, o0)) => {
                let (total_d, others) =
                    (total.saturating_sub(t0), busy.saturating_sub(b0).saturating_sub(own - o0));
                self.verdict = total_d == 0
                    || others * 100 <= total_d * u64::from(100 - self.percent.min(100));
                self.last = Some((now, busy, total, own));
                self.verdict
            }
            None => {
                // No window yet: measure one before the first chunk.
                self.last = Some((now, busy, total, own));
                self.verdict = false;
                false
            }
        }
    }
}

/// (busy, total) ticks of the whole machine and this thread's ticks.
fn ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if cpu.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    let total: u64 = cpu.iter().sum();
    let busy = total - cpu[3] - cpu[4];
    let own = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let own = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some((busy, total, own))
}
