//! Operations: Prometheus `/metrics` (admin token on the main listener, open on
//! `metrics_listen`), the periodic maintenance sweep under its instance-wide lease, and
//! upload expiries extended by the length of a maintenance.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use edge_server::config::Role;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The sum of the samples of `name` whose labels include every pair of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, lab) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            (n == name && labels.iter().all(|(k, v)| lab.contains(&format!("{k}=\"{v}\""))))
                .then(|| v.parse::<f64>().unwrap())
        })
        .sum()
}

/// True when some sample of `name` exists.
fn has(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
}

/// Scrapes `/metrics` on the main listener with the admin token.
pub async fn scrape(s: &Srv) -> String {
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .header("x-rockit-admin-token", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

/// Regular files below `dir` (0 when it is missing).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn setup_app(s: &Srv, org: &str, app: &str, max_builds: u32) -> String {
    let (tok, _) = s.org_admin(org).await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}})),
    )
    .await
    .ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": app, "label": app, "maxBuilds": max_builds})),
    )
    .await
    .ok();
    tok
}

edge_test!(metrics_count_requests_tasks_and_queue, |b| async move {
    let s = Srv::start(b).await;
    // The main listener wants the admin token.
    let r = s.req(Method::GET, "/metrics", &[], None).await;
    r.err(401, "unauthorized");
    let before = scrape(&s).await;
    assert!(has(&before, "edge_build_info"), "{before}");
    assert_eq!(metric(&before, "edge_http_requests_total", &[("route", "/healthz")]), 0.0);
    for _ in 0..3 {
        s.req(Method::GET, "/healthz", &[], None).await;
    }
    s.req(Method::GET, "/no/such/path", &[], None).await;
    s.req(Method::POST, "/healthz", &[], None).await;
    let m = scrape(&s).await;
    assert_eq!(
        metric(
            &m,
            "edge_http_requests_total",
            &[("route", "/healthz"), ("method", "GET"), ("status", "200")]
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "edge_http_requests_total",
            &[("route", "/healthz"), ("method", "POST"), ("status", "405")]
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "edge_http_requests_total", &[("route", "unmatched"), ("status", "404")]),
        1.0,
        "{m}"
    );
    // The unauthenticated scrape counted too, under its route template.
    assert_eq!(
        metric(&m, "edge_http_requests_total", &[("route", "/metrics"), ("status", "401")]),
        1.0,
        "{m}"
    );
    let inf = [("route", "/healthz"), ("method", "GET"), ("class", "2xx"), ("le", "+Inf")];
    assert_eq!(metric(&m, "edge_http_request_duration_seconds_bucket", &inf), 3.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "edge_http_request_duration_seconds_count",
            &[("route", "/healthz"), ("class", "2xx")]
        ),
        3.0
    );

    // Queue depth, read from the database: an import waiting for its upload.
    let tok = setup_app(&s, "MetricsCo", "SecretGame", 5).await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": "SecretGame", "buildName": "b0"})),
        )
        .await;
    r.ok();
    let m = scrape(&s).await;
    for t in ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"] {
        assert_eq!(
            metric(&m, "edge_task_queue", &[("status", "submitted"), ("type", t)]),
            1.0,
            "{t}: {m}"
        );
    }
    assert_eq!(metric(&m, "edge_task_queue", &[("status", "running")]), 0.0);
    // Route templates, never tenant names.
    assert!(
        metric(
            &m,
            "edge_http_requests_total",
            &[("route", "/be/v1/builds"), ("method", "POST"), ("status", "200")]
        ) == 1.0
    );
    assert!(!m.contains("MetricsCo") && !m.contains("SecretGame"), "{m}");

    // Task outcomes and durations after a test task.
    let r = s
        .adm(Method::POST, "/srv/v1/hello", Some(json!({"message": "m", "maintenance": false})))
        .await;
    assert_eq!(s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await["status"], "done");
    let m = scrape(&s).await;
    assert_eq!(
        metric(&m, "edge_tasks_total", &[("type", "hello"), ("outcome", "succeeded")]),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "edge_task_duration_seconds_count", &[("type", "hello")]), 1.0, "{m}");

    // A whole import: bytes in (the archive mkraw read) and out (what deploy published).
    let work = TempDir::new("metrics");
    let (_, tar1) = make_build(&work.0, "v1", &game_v1());
    let imp = upload(&s, &tok, "SecretGame", "1.0", &tar1).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    let m = scrape(&s).await;
    assert_eq!(
        metric(&m, "edge_ingested_bytes_total", &[]),
        std::fs::metadata(&tar1).unwrap().len() as f64,
        "{m}"
    );
    assert!(metric(&m, "edge_published_bytes_total", &[]) > 1_000_000.0, "{m}");
    for t in ["mkraw", "mkdxf", "mkpat", "deploy"] {
        assert_eq!(
            metric(&m, "edge_tasks_total", &[("type", t), ("outcome", "succeeded")]),
            1.0,
            "{t}: {m}"
        );
    }
    assert_eq!(
        metric(&m, "edge_task_queue", &[("status", "submitted"), ("type", "deploy")]),
        1.0,
        "b0 still waits: {m}"
    );
    assert!(has(&m, "edge_event_deliveries_total"));
});

edge_test!(metrics_listen_serves_it_apart, |b| async move {
    let port = free_port();
    let s = Srv::start_with(b, |c| c.metrics_listen = Some(format!("127.0.0.1:{port}"))).await;
    s.req(Method::GET, "/healthz", &[], None).await;
    // The separate address: no authentication, nothing but /metrics.
    let r = s.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = r.text().await.unwrap();
    assert_eq!(
        metric(&m, "edge_http_requests_total", &[("route", "/healthz"), ("status", "200")]),
        1.0,
        "{m}"
    );
    let r = s.http.get(format!("http://127.0.0.1:{port}/be/v1/apps")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The main listener still wants the admin token (admin.md).
    s.req(Method::GET, "/metrics", &[], None).await.err(401, "unauthorized");
    assert!(has(&scrape(&s).await, "edge_task_queue"));

    // A worker-only process serves it next to its health checks.
    let w = Srv::start_with(b, |c| c.role = Role::Worker).await;
    w.req(Method::GET, "/metrics", &[], None).await.err(401, "unauthorized");
    let m = scrape(&w).await;
    assert!(has(&m, "edge_task_queue"), "{m}");
    w.req(Method::GET, "/be/v1/apps", &[], None).await.err(404, "not-found");
});

edge_test!(periodic_sweep_expires_uploads_and_removes_superseded_files, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.sweep_interval = 1;
        c.grace_period = 0;
        c.upload_ttl = 2;
    })
    .await;
    let tok = setup_app(&s, "SweepCo", "Game", 1).await;
    // An upload that never comes.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": "Game", "buildName": "never"})),
        )
        .await;
    let stale = r.ok()["taskName"].as_str().unwrap().to_string();
    // Two builds with maxBuilds 1: the first image leaves the window.
    let work = TempDir::new("sweep");
    let (_, tar1) = make_build(&work.0, "v1", &game_v1());
    let mut v2 = game_v1();
    v2.insert("data/new.pak".into(), noise(77, 300_000));
    let (_, tar2) = make_build(&work.0, "v2", &v2);
    let imp1 = upload(&s, &tok, "Game", "1", &tar1).await;
    assert!(wait_group(&s, &tok, imp1["taskGroup"].as_str().unwrap())
        .await
        .iter()
        .all(|t| t["status"] == "done"));
    let old = s.data_dir().join("origins/site/dxf/SweepCo/Game/0001");
    assert!(old.is_dir() && files_under(&old) > 0, "build 1 published");
    let imp2 = upload(&s, &tok, "Game", "2", &tar2).await;
    assert!(wait_group(&s, &tok, imp2["taskGroup"].as_str().unwrap())
        .await
        .iter()
        .all(|t| t["status"] == "done"));
    // (Not asserted here that build 1's files are still there: with a 1 s sweep and no
    // grace period, the sweep may already have removed them.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if files_under(&old) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the superseded image of build 1 was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.data_dir().join("origins/site/dxf/SweepCo/Game/0002").is_dir(),
        "the current build stays"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let t = loop {
        let t = s.be(&tok, Method::GET, &format!("/be/v1/tasks/{stale}"), None).await.ok()["task"]
            .clone();
        if t["status"] != "submitted" || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(t["status"], "expired", "{t}");
    assert_eq!(t["exception"]["httpDownloadFailed"]["exitCode"], 9);
    let m = scrape(&s).await;
    assert!(metric(&m, "edge_sweeps_total", &[]) >= 1.0, "{m}");
    assert!(metric(&m, "edge_sweep_removed_total", &[("kind", "removed_files")]) >= 2.0, "{m}");
    assert!(metric(&m, "edge_sweep_last_timestamp_seconds", &[]) > 1.0e9, "{m}");
    assert_eq!(
        metric(&m, "edge_tasks_total", &[("type", "dltar"), ("outcome", "expired")]),
        1.0,
        "{m}"
    );
    // Sweeps keep coming, one per interval.
    let n = metric(&m, "edge_sweeps_total", &[]);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let n2 = metric(&scrape(&s).await, "edge_sweeps_total", &[]);
    assert!(n2 >= n + 1.0 && n2 <= n + 4.0, "{n} then {n2}");
});

edge_test!(one_sweeper_per_interval_across_servers, |b| async move {
    let mut a = Srv::start_with(b, |c| c.sweep_interval = 3600).await;
    let url = a.db_url();
    let same_db = |interval: u64| {
        let url = url.clone();
        move |c: &mut edge_server::config::Config| {
            c.database_url = Some(url);
            c.sweep_interval = interval;
        }
    };
    let mut bb = Srv::start_with(b, same_db(3600)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sweeps = |m: &str| metric(m, "edge_sweeps_total", &[]);
    let (na, nb) = (sweeps(&scrape(&a).await), sweeps(&scrape(&bb).await));
    assert_eq!(na + nb, 1.0, "exactly one of two servers swept in the first interval: {na} + {nb}");
    // Stopped, not dropped: the first server's directory holds the SQLite file.
    bb.stop().await;
    a.stop().await;
    // Two servers racing with a short interval: together at most one sweep per interval.
    let t0 = Instant::now();
    let c = Srv::start_with(b, same_db(2)).await;
    let d = Srv::start_with(b, same_db(2)).await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let (nc, nd) = (sweeps(&scrape(&c).await), sweeps(&scrape(&d).await));
    let limit = (t0.elapsed().as_secs_f64() / 2.0).floor() + 1.0;
    assert!(nc + nd >= 2.0, "sweeps ran: {nc} + {nd}");
    assert!(
        nc + nd <= limit,
        "{nc} + {nd} sweeps in {:?}: more than one per interval",
        t0.elapsed()
    );
});

edge_test!(maintenance_extends_upload_expiry, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.upload_ttl = 4;
        c.sweep_interval = 0;
    })
    .await;
    let tok = setup_app(&s, "MaintCo", "Game", 5).await;
    let imp = |name: &'static str| {
        let (s, tok) = (&s, tok.clone());
        async move {
            let r = s
                .be(
                    &tok,
                    Method::POST,
                    "/be/v1/builds",
                    Some(json!({"appName": "Game", "buildName": name})),
                )
                .await;
            r.ok().clone()
        }
    };
    let work = TempDir::new("maint");
    let (_, tarp) = make_build(&work.0, "v1", &game_v1());
    let (kept, lapsing) = (imp("kept").await, imp("lapsing").await);
    let posted = Instant::now();
    s.adm(Method::PUT, "/adm/v1/maintenance", Some(json!({"enabled": true}))).await.ok();
    let on = Instant::now();
    // Past the original expiry, during maintenance: a sweep expires nothing.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let r = s
        .adm(Method::POST, "/srv/v1/hello", Some(json!({"message": "m", "maintenance": true})))
        .await;
    let t = s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await;
    assert_eq!(t["result"]["sweep"]["expiredUploads"], 0, "{t}");
    let task = |name: Value| {
        let s = &s;
        async move {
            s.adm(Method::GET, &format!("/adm/v1/tasks/{}", name.as_str().unwrap()), None)
                .await
                .ok()["task"]
                .clone()
        }
    };
    assert_eq!(task(kept["taskName"].clone()).await["status"], "submitted");
    s.adm(Method::PUT, "/adm/v1/maintenance", Some(json!({"enabled": false}))).await.ok();
    let length = on.elapsed();
    assert!(posted.elapsed() > Duration::from_millis(4500), "past the original expiry");
    assert_eq!(task(lapsing["taskName"].clone()).await["status"], "submitted");
    // The upload still goes in, ~2 s after its original expiry of 4 s.
    let r = s
        .http
        .put(kept["uploadUrl"].as_str().unwrap())
        .body(std::fs::read(&tarp).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the expiry was extended by the maintenance ({length:?})");
    let tasks = wait_group(&s, &tok, kept["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    // Extended, not endless: the other one lapses about 4 s + the maintenance after its POST.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = task(lapsing["taskName"].clone()).await;
        if t["status"] == "expired" {
            let at_least = length + Duration::from_millis(3500);
            assert!(
                posted.elapsed() >= at_least,
                "expired too early: {:?} < {at_least:?}",
                posted.elapsed()
            );
            break;
        }
        assert!(Instant::now() < deadline, "the extended upload never expired: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
});

edge_test!(configured_maintenance_ends_at_restart_and_extends_uploads, |b| async move {
    let mut s = Srv::start_with(b, |c| c.upload_ttl = 4).await;
    let tok = setup_app(&s, "RestartCo", "Game", 5).await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": "Game", "buildName": "kept"})),
        )
        .await;
    let imp = r.ok().clone();
    let posted = Instant::now();
    let work = TempDir::new("restart");
    let (_, tarp) = make_build(&work.0, "v1", &game_v1());
    let url = s.db_url();
    // Restart in maintenance (configured), past the upload's expiry, then without it.
    let restart = |s: &mut Srv, maintenance: bool| {
        let dir = std::mem::replace(&mut s.dir, TempDir::new("moved"));
        let url = url.clone();
        async move {
            let mut cfg = test_config(b, &dir).await;
            cfg.database_url = Some(url);
            cfg.upload_ttl = 4;
            cfg.maintenance = maintenance;
            Srv::start_cfg(b, cfg, dir).await
        }
    };
    s.stop().await;
    let mut m = restart(&mut s, true).await;
    m.req(Method::GET, "/be/v1/apps", &[], None).await.err(503, "maintenance");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // A second start with the configuration keeps the maintenance's start time.
    m.stop().await;
    let mut m = restart(&mut m, true).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    m.stop().await;
    let s2 = restart(&mut m, false).await;
    assert!(posted.elapsed() > Duration::from_secs(5), "past the original expiry");
    assert_eq!(
        s2.adm(Method::GET, "/adm/v1/maintenance", None).await.ok()["maintenance"]["enabled"],
        false
    );
    let path = imp["uploadUrl"].as_str().unwrap().split("/be/v1/").nth(1).unwrap().to_string();
    let r = s2
        .http
        .put(format!("{}/be/v1/{path}", s2.base))
        .body(std::fs::read(&tarp).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the upload's expiry moved by the maintenance's length");
    let tasks = wait_group(&s2, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
});
