//! Test harness: starts a real server with a fresh database and data directory.

#![allow(dead_code)]

use edge_server::config::Config;
use edge_server::server::{start, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares a test twice: on SQLite, and on PostgreSQL when `EDGE_TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! edge_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let f = $body;
                f($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg() {
                if std::env::var("EDGE_TEST_DATABASE_URL").is_err() {
                    eprintln!("EDGE_TEST_DATABASE_URL not set: PostgreSQL run skipped");
                    return;
                }
                let f = $body;
                f($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "edge-test-{tag}-{}",
            edge_server::util::hex(&edge_server::util::random_bytes(8))
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response: status, headers and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, printing the body when it differs; returns the body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        assert_eq!(self.body["status"], "success", "body: {}", self.body);
        &self.body
    }
    /// Asserts an error status and code.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["status"], "failed", "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        &self.body
    }
}

/// A running server under test.
pub struct Srv {
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    pub dir: TempDir,
    pub backend: Backend,
    running: Option<Running>,
}

/// The tests' HTTP client: no idle connection reuse, so a connection the server closed after
/// an early answer (413, refused upload) is never picked up by the next request.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("reqwest client")
}

/// A fresh PostgreSQL schema for one test: a URL whose connections use it.
async fn pg_schema(base_url: &str) -> String {
    use sqlx::Executor;
    let schema = format!("t_{}", edge_server::util::hex(&edge_server::util::random_bytes(6)));
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(base_url).await.expect("connect to EDGE_TEST_DATABASE_URL");
    pool.execute(format!("CREATE SCHEMA {schema}").as_str()).await.unwrap();
    pool.close().await;
    let sep = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{sep}options=-c%20search_path%3D{schema}")
}

/// The configuration every test server starts from.
pub async fn test_config(backend: Backend, dir: &TempDir) -> Config {
    let mut cfg =
        Config { listen: "127.0.0.1:0".into(), data_dir: dir.0.join("data"), ..Config::default() };
    cfg.admin_secret_b64 = Some(edge_server::util::b64(&[7u8; 32]));
    cfg.data_key_b64 = Some(edge_server::util::b64(&[9u8; 32]));
    cfg.worker_poll_ms = 50;
    // Settling recompresses every test's chunks at level 19 after its tasks: only the tests
    // of settling turn it on.
    cfg.settle_level = 0;
    cfg.log_format = "text".into();
    if backend == Backend::Postgres {
        let base = std::env::var("EDGE_TEST_DATABASE_URL").expect("EDGE_TEST_DATABASE_URL");
        cfg.database_url = Some(pg_schema(&base).await);
    }
    cfg
}

impl Srv {
    /// Starts a server with the default test configuration.
    pub async fn start(backend: Backend) -> Srv {
        Srv::start_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` adjusted the configuration.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Srv {
        let dir = TempDir::new("srv");
        let mut cfg = test_config(backend, &dir).await;
        tweak(&mut cfg);
        Srv::start_cfg(backend, cfg, dir).await
    }

    /// Starts a server with an exact configuration in `dir`.
    pub async fn start_cfg(backend: Backend, cfg: Config, dir: TempDir) -> Srv {
        let key = edge_server::util::b64_decode(cfg.admin_secret_b64.as_deref().unwrap()).unwrap();
        let running = start(cfg).await.expect("server starts");
        let admin = edge_server::crypto::jwt_sign(&json!({"username": "tester"}), &key);
        Srv {
            base: format!("http://{}", running.addr),
            http: test_client(),
            admin,
            dir,
            backend,
            running: Some(running),
        }
    }

    /// A client for a server running elsewhere (a child process), with the test admin token.
    pub fn external(base: &str, backend: Backend) -> Srv {
        let admin = edge_server::crypto::jwt_sign(&json!({"username": "tester"}), &[7u8; 32]);
        Srv {
            base: base.to_string(),
            http: test_client(),
            admin,
            dir: TempDir::new("ext"),
            backend,
            running: None,
        }
    }

    /// Stops the server (draining), keeping its data directory.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// The database URL of the running server.
    pub fn db_url(&self) -> String {
        self.running
            .as_ref()
            .map(|r| r.state.cfg.database_url())
            .expect("a running in-process server")
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// Sends a request with optional JSON body and extra headers.
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, headers, body }
    }

    /// A request with the admin token.
    pub async fn adm(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let t = self.admin.clone();
        self.req(method, path, &[("x-rockit-admin-token", &t)], body).await
    }

    /// A request with an access token or API key under `Authorization: Bearer`.
    pub async fn be(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let h = format!("Bearer {token}");
        self.req(method, path, &[("authorization", &h)], body).await
    }

    /// Creates an organization through the admin API; returns the admin's password.
    pub async fn create_org(&self, name: &str, admin: &str) -> String {
        let r = self
            .adm(
                Method::POST,
                "/adm/v1/orgs",
                Some(json!({"name": name, "label": format!("{name} label"), "username": admin, "email": format!("{admin}@example.com"), "firstname": "Ada", "surname": "Admin"})),
            )
            .await;
        r.ok()["adminPW"].as_str().expect("adminPW").to_string()
    }

    /// One-step login; returns the whole answer.
    pub async fn login(&self, user: &str, pw: &str, org: &str) -> Value {
        let r = self
            .req(
                Method::POST,
                "/be/v1/login",
                &[],
                Some(json!({"username": user, "password": pw, "orgName": org})),
            )
            .await;
        r.ok().clone()
    }

    /// One-step login; returns the access token.
    pub async fn token(&self, user: &str, pw: &str, org: &str) -> String {
        self.login(user, pw, org).await["accessToken"].as_str().unwrap().to_string()
    }

    /// A new org with its admin logged in: (admin access token, admin password).
    pub async fn org_admin(&self, org: &str) -> (String, String) {
        let admin = format!("{org}_admin");
        let pw = self.create_org(org, &admin).await;
        (self.token(&admin, &pw, org).await, pw)
    }

    /// Polls an admin task until it leaves submitted/running (10 s at most).
    pub async fn wait_admin_task(&self, name: &str) -> Value {
        for _ in 0..200 {
            let r = self.adm(Method::GET, &format!("/adm/v1/tasks/{name}"), None).await;
            let t = r.ok()["task"].clone();
            if t["status"] != "submitted" && t["status"] != "running" {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("task {name} did not finish");
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        // The runtime ends with the test; the listener and worker die with it.
        self.running.take();
    }
}

/// Runs futures concurrently (no extra crate: spawn-free join on one task).
pub async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}
