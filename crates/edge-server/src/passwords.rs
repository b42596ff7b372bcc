//! Password hashing and checking (Argon2id) off the async runtime, a bounded number at a
//! time. Each costs about 20 ms of CPU and 19 MiB of memory: run on the request threads
//! they would stall every other request, and run without bound a burst of logins would
//! take every core and as much memory as it likes. So they run on a fixed set of threads
//! of their own, each keeping its Argon2 working memory from one hash to the next
//! (allocated per hash, the freed blocks stayed with the allocator: 500 MiB after a burst
//! of logins on tokio's blocking pool, 290 MiB on fixed threads; 60 MiB this way).
//! Requests beyond the bound wait (in the async queue, holding nothing) for up to
//! [`WAIT`], then get 503 with `Retry-After`.

use crate::crypto::Argon2Memory;
use crate::error::{ApiError, ApiResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest wait for a slot before the request is turned away.
pub const WAIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce(&mut Argon2Memory) + Send>;

/// The bounded Argon2 workers of one process.
pub struct Passwords {
    slots: Semaphore,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Worker threads (and slots) in all.
    pub concurrency: usize,
    checks: AtomicU64,
}

impl Passwords {
    /// `concurrency` worker threads; 0 means one per core.
    pub fn new(concurrency: usize) -> Passwords {
        let n = if concurrency == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            concurrency
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                    let mut mem = Argon2Memory::default();
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut mem),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "a password worker thread could not start");
            }
        }
        Passwords {
            slots: Semaphore::new(n),
            jobs: Mutex::new(tx),
            concurrency: n,
            checks: AtomicU64::new(0),
        }
    }

    /// Password checks done by this process (a metric, and what the brute-force tests count).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Argon2Memory) -> T + Send + 'static,
    ) -> ApiResult<T> {
        // Holding a connection through ~20 ms of hashing (or the wait for a slot) starves
        // the pool under load.
        crate::db::assert_not_holding("password hashing");
        let _slot = match tokio::time::timeout(WAIT, self.slots.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "too many logins at once; try again",
                )
                .retry_after(1))
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |mem| {
            let _ = tx.send(f(mem));
        });
        self.jobs
            .lock()
            .map_err(|_| ApiError::internal("password workers poisoned"))?
            .send(job)
            .map_err(ApiError::internal)?;
        rx.await.map_err(|_| ApiError::internal("a password worker stopped"))
    }

    /// True when `pw` matches the PHC string `phc`.
    pub async fn verify(&self, pw: String, phc: String) -> ApiResult<bool> {
        let ok = self.run(move |mem| crate::crypto::verify_password_with(mem, &pw, &phc)).await?;
        self.checks.fetch_add(1, Ordering::Relaxed);
        Ok(ok)
    }

    /// A new PHC string for `pw`.
    pub async fn hash(&self, pw: String) -> ApiResult<String> {
        self.run(move |mem| crate::crypto::hash_password_with(mem, &pw)).await
    }
}
