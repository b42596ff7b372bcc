//! Prometheus metrics, written by hand in the text exposition format 0.0.4.
//!
//! One [`Metrics`] registry per server (in [`AppState`]): plain atomics for single
//! figures, small mutex-guarded maps for labelled ones. Label values are route templates,
//! methods, status codes, task types and outcomes — never tenant names (admin.md). Queue
//! depth is read from the database at scrape time. Names are listed in docs/OPERATIONS.md.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the HTTP latency buckets, seconds.
const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the task duration buckets, seconds.
const TASK_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Task types, so that every queue series exists even when empty.
const TASK_TYPES: &[&str] =
    &["dltar", "mkraw", "mkdxf", "mkpat", "deploy", "mkseq", "purge", "hello"];

/// A histogram with fixed buckets (counts per bucket, not cumulative; summed when written).
#[derive(Clone, Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

impl Hist {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(k) = bounds.iter().position(|b| v <= *b) {
            self.counts[k] += 1;
        }
        self.sum += v;
        self.n += 1;
    }

    fn merge(&mut self, o: &Hist) {
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum += o.sum;
        self.n += o.n;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut acc = 0;
        for (k, b) in bounds.iter().enumerate() {
            acc += self.counts.get(k).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {acc}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.n);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.n);
    }
}

/// The registry of one server.
pub struct Metrics {
    started: f64,
    /// (route template, method, status) → latency histogram (its count is the request count).
    http: Mutex<HashMap<(String, String, u16), Hist>>,
    /// (task type, outcome) → count.
    task_outcomes: Mutex<HashMap<(String, &'static str), u64>>,
    /// task type → run duration.
    task_durations: Mutex<HashMap<String, Hist>>,
    /// (kind, outcome) → count of event deliveries.
    deliveries: Mutex<HashMap<(&'static str, &'static str), u64>>,
    /// Build archive bytes read by `mkraw`.
    pub ingested_bytes: AtomicU64,
    /// Bytes uploaded to origins and the depot by `deploy`.
    pub published_bytes: AtomicU64,
    /// Maintenance sweeps run by this process.
    pub sweeps: AtomicU64,
    /// End of this process's last sweep (epoch ms, 0 = none).
    pub sweep_last_ms: AtomicU64,
    /// What the sweeps of this process removed, by kind.
    sweep_items: Mutex<BTreeMap<&'static str, u64>>,
    /// Trace uploads refused, by reason ([`TRACE_REFUSALS`]).
    trace_refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Trace uploads waiting for an intake permit now.
    trace_intake_waiting: AtomicU64,
    /// Trace uploads that had to wait for an intake permit.
    trace_intake_waits: AtomicU64,
    /// Chunks the settling thread stored smaller.
    pub settle_smaller: AtomicU64,
    /// Chunks it looked at and left as they were.
    pub settle_kept: AtomicU64,
    /// Chunks it could not settle.
    pub settle_failed: AtomicU64,
    /// Stored bytes it saved.
    pub settle_saved_bytes: AtomicU64,
    /// Chunks its current pass has still to look at.
    pub settle_pending: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `"done"` → `succeeded`, `"error"` → `failed`; other statuses stay as they are.
pub fn outcome_of(status: &str) -> &'static str {
    match status {
        "done" => "succeeded",
        "error" => "failed",
        "expired" => "expired",
        "canceled" => "canceled",
        _ => "other",
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric of one sample without labels: its header and its value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
}

impl Metrics {
    /// An empty registry; the process start time is now.
    pub fn new() -> Metrics {
        Metrics {
            started: crate::util::now_ms() as f64 / 1000.0,
            http: Mutex::default(),
            task_outcomes: Mutex::default(),
            task_durations: Mutex::default(),
            deliveries: Mutex::default(),
            ingested_bytes: AtomicU64::new(0),
            published_bytes: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            sweep_last_ms: AtomicU64::new(0),
            sweep_items: Mutex::default(),
            trace_refusals: Mutex::default(),
            trace_intake_waiting: AtomicU64::new(0),
            trace_intake_waits: AtomicU64::new(0),
            settle_smaller: AtomicU64::new(0),
            settle_kept: AtomicU64::new(0),
            settle_failed: AtomicU64::new(0),
            settle_saved_bytes: AtomicU64::new(0),
            settle_pending: AtomicU64::new(0),
        }
    }

    /// Counts one refused trace upload by its answer's status (401 is not counted: no
    /// session, no trace).
    pub fn trace_refused(&self, status: u16) {
        let reason = match status {
            400 => "invalid",
            409 => "duplicate",
            413 => "too_large",
            415 => "unsupported_encoding",
            503 => "busy",
            401 => return,
            _ => "other",
        };
        if let Ok(mut m) = self.trace_refusals.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// A trace upload starts (`1`) or stops (`-1`) waiting for an intake permit.
    pub fn trace_intake_waiting(&self, delta: i32) {
        if delta > 0 {
            self.trace_intake_waits.fetch_add(1, Ordering::Relaxed);
            self.trace_intake_waiting.fetch_add(1, Ordering::Relaxed);
        } else {
            self.trace_intake_waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts one answered request (`route`: the matched template, or `unmatched`).
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.http.lock() {
            m.entry((route.to_string(), method.to_string(), status))
                .or_default()
                .observe(HTTP_BUCKETS, seconds);
        }
    }

    /// Counts one task run that ended with `outcome`, and how long it ran.
    pub fn task_ended(&self, kind: &str, outcome: &'static str, seconds: Option<f64>) {
        if let Ok(mut m) = self.task_outcomes.lock() {
            *m.entry((kind.to_string(), outcome)).or_default() += 1;
        }
        if let Some(s) = seconds {
            if let Ok(mut m) = self.task_durations.lock() {
                m.entry(kind.to_string()).or_default().observe(TASK_BUCKETS, s);
            }
        }
    }

    /// Counts one event delivery attempt (`kind`: webhook or slack; `outcome`: delivered,
    /// retried or failed).
    pub fn delivery(&self, kind: &str, outcome: &'static str) {
        let kind = if kind == "slack" { "slack" } else { "webhook" };
        if let Ok(mut m) = self.deliveries.lock() {
            *m.entry((kind, outcome)).or_default() += 1;
        }
    }

    /// Records one finished maintenance sweep and what it removed.
    pub fn sweep_done(&self, items: &[(&'static str, u64)]) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.sweep_last_ms.store(crate::util::now_ms().max(0) as u64, Ordering::Relaxed);
        if let Ok(mut m) = self.sweep_items.lock() {
            for (k, n) in items {
                *m.entry(*k).or_default() += n;
            }
        }
    }

    /// The text exposition of this registry, with `queue` (status, type, count) from the
    /// database.
    pub fn render(&self, queue: &[(String, String, i64)]) -> String {
        let mut out = String::with_capacity(8192);
        header(&mut out, "edge_build_info", "gauge", "Version of this server (always 1).");
        let _ = writeln!(out, "edge_build_info{{version=\"{}\"}} 1", crate::version::EDGE_VERSION);
        header(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {}", self.started);

        let http = self.http.lock().map(|m| m.clone()).unwrap_or_default();
        let mut keys: Vec<_> = http.keys().cloned().collect();
        keys.sort();
        header(
            &mut out,
            "edge_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status code.",
        );
        for k in &keys {
            let _ = writeln!(
                out,
                "edge_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
                esc(&k.0),
                esc(&k.1),
                k.2,
                http[k].n
            );
        }
        let mut by_class: BTreeMap<(String, String, String), Hist> = BTreeMap::new();
        for (k, h) in &http {
            by_class
                .entry((k.0.clone(), k.1.clone(), format!("{}xx", k.2 / 100)))
                .or_default()
                .merge(h);
        }
        header(
            &mut out,
            "edge_http_request_duration_seconds",
            "histogram",
            "HTTP request latency, by route template, method and status class.",
        );
        for ((route, method, class), h) in &by_class {
            let labels =
                format!("route=\"{}\",method=\"{}\",class=\"{class}\"", esc(route), esc(method));
            h.write(&mut out, "edge_http_request_duration_seconds", &labels, HTTP_BUCKETS);
        }

        let outcomes: BTreeMap<_, _> =
            self.task_outcomes.lock().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        header(
            &mut out,
            "edge_tasks_total",
            "counter",
            "Task runs ended by this process, by type and outcome.",
        );
        for ((kind, outcome), n) in &outcomes {
            let _ = writeln!(
                out,
                "edge_tasks_total{{type=\"{}\",outcome=\"{outcome}\"}} {n}",
                esc(kind)
            );
        }
        let durations: BTreeMap<_, _> =
            self.task_durations.lock().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        header(
            &mut out,
            "edge_task_duration_seconds",
            "histogram",
            "How long task runs took in this process, by type.",
        );
        for (kind, h) in &durations {
            h.write(
                &mut out,
                "edge_task_duration_seconds",
                &format!("type=\"{}\"", esc(kind)),
                TASK_BUCKETS,
            );
        }
        header(
            &mut out,
            "edge_task_queue",
            "gauge",
            "Tasks submitted or running (the whole instance, read from the database).",
        );
        for status in ["submitted", "running"] {
            let mut types: Vec<&str> = TASK_TYPES.to_vec();
            for (s, t, _) in queue {
                if s == status && !types.contains(&t.as_str()) {
                    types.push(t);
                }
            }
            for t in types {
                let n: i64 =
                    queue.iter().filter(|(s, k, _)| s == status && k == t).map(|q| q.2).sum();
                let _ =
                    writeln!(out, "edge_task_queue{{status=\"{status}\",type=\"{}\"}} {n}", esc(t));
            }
        }

        header(
            &mut out,
            "edge_ingested_bytes_total",
            "counter",
            "Build archive bytes read by mkraw in this process.",
        );
        let _ = writeln!(
            out,
            "edge_ingested_bytes_total {}",
            self.ingested_bytes.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "edge_published_bytes_total",
            "counter",
            "Bytes uploaded to origins and the depot by deploy in this process.",
        );
        let _ = writeln!(
            out,
            "edge_published_bytes_total {}",
            self.published_bytes.load(Ordering::Relaxed)
        );

        let deliveries = self.deliveries.lock().map(|m| m.clone()).unwrap_or_default();
        header(
            &mut out,
            "edge_event_deliveries_total",
            "counter",
            "Webhook and Slack delivery attempts, by kind and outcome (delivered, retried, failed).",
        );
        for kind in ["webhook", "slack"] {
            for outcome in ["delivered", "retried", "failed"] {
                let n = deliveries.get(&(kind, outcome)).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "edge_event_deliveries_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }

        header(&mut out, "edge_sweeps_total", "counter", "Maintenance sweeps run by this process.");
        let _ = writeln!(out, "edge_sweeps_total {}", self.sweeps.load(Ordering::Relaxed));
        header(
            &mut out,
            "edge_sweep_last_timestamp_seconds",
            "gauge",
            "End of this process's last sweep (0: none yet).",
        );
        let _ = writeln!(
            out,
            "edge_sweep_last_timestamp_seconds {}",
            self.sweep_last_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let items = self.sweep_items.lock().map(|m| m.clone()).unwrap_or_default();
        header(
            &mut out,
            "edge_sweep_removed_total",
            "counter",
            "What this process's sweeps removed, by kind.",
        );
        for kind in SWEEP_KINDS {
            let _ = writeln!(
                out,
                "edge_sweep_removed_total{{kind=\"{kind}\"}} {}",
                items.get(kind).copied().unwrap_or(0)
            );
        }

        let refusals = self.trace_refusals.lock().map(|m| m.clone()).unwrap_or_default();
        header(
            &mut out,
            "edge_traces_refused_total",
            "counter",
            "Trace uploads refused by this process, by reason.",
        );
        for reason in TRACE_REFUSALS {
            let _ = writeln!(
                out,
                "edge_traces_refused_total{{reason=\"{reason}\"}} {}",
                refusals.get(reason).copied().unwrap_or(0)
            );
        }
        single(
            &mut out,
            "edge_trace_intake_waiting",
            "gauge",
            "Trace uploads waiting for an intake permit now.",
            &self.trace_intake_waiting,
        );
        single(
            &mut out,
            "edge_trace_intake_waits_total",
            "counter",
            "Trace uploads that had to wait for an intake permit.",
            &self.trace_intake_waits,
        );
        self.render_settle(&mut out);
        out
    }

    fn render_settle(&self, out: &mut String) {
        header(
            out,
            "edge_settle_chunks_total",
            "counter",
            "Stored chunks the settling thread looked at, by outcome (smaller, kept, failed).",
        );
        for (outcome, n) in [
            ("smaller", &self.settle_smaller),
            ("kept", &self.settle_kept),
            ("failed", &self.settle_failed),
        ] {
            let _ = writeln!(
                out,
                "edge_settle_chunks_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        single(
            out,
            "edge_settle_saved_bytes_total",
            "counter",
            "Stored bytes the settling thread saved.",
            &self.settle_saved_bytes,
        );
        single(
            out,
            "edge_settle_pending_chunks",
            "gauge",
            "Chunks the settling thread's current pass has still to look at.",
            &self.settle_pending,
        );
    }
}

/// Why trace uploads are refused: 400, 409, 413, 415, 503 (`busy`: no intake permit in
/// time), anything else.
pub const TRACE_REFUSALS: &[&str] =
    &["invalid", "duplicate", "too_large", "unsupported_encoding", "busy", "other"];

/// The kinds a sweep reports.
pub const SWEEP_KINDS: &[&str] =
    &["expired_uploads", "removed_files", "session_rows", "login_counter_rows"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_shape() {
        let m = Metrics::new();
        m.http_request("/be/v1/apps/{name}", "GET", 200, 0.003);
        m.http_request("/be/v1/apps/{name}", "GET", 404, 0.02);
        m.task_ended("hello", "succeeded", Some(0.2));
        let text = m.render(&[("submitted".into(), "dltar".into(), 3)]);
        assert!(text.contains("edge_http_requests_total{route=\"/be/v1/apps/{name}\",method=\"GET\",status=\"200\"} 1\n"));
        assert!(text.contains(
            "edge_http_request_duration_seconds_bucket{route=\"/be/v1/apps/{name}\",method=\"GET\",class=\"4xx\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "edge_http_request_duration_seconds_bucket{route=\"/be/v1/apps/{name}\",method=\"GET\",class=\"2xx\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains("edge_tasks_total{type=\"hello\",outcome=\"succeeded\"} 1\n"));
        assert!(text.contains("edge_task_duration_seconds_bucket{type=\"hello\",le=\"0.5\"} 1\n"));
        assert!(text.contains("edge_task_queue{status=\"submitted\",type=\"dltar\"} 3\n"));
        assert!(text.contains("edge_task_queue{status=\"running\",type=\"deploy\"} 0\n"));
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
