//! The event-delivery benchmark: N events fanned out to R local webhook receivers through
//! a real in-process server; reports delivered throughput and end-to-end latency (event
//! written → receiver got it).

use crate::http::post_json;
use axum::http::StatusCode;
use edge_server::store::tasks;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Arrivals = Arc<Mutex<Vec<(String, i64)>>>;

async fn receiver(arrivals: Arrivals) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let a = arrivals.clone();
            async move {
                let now = edge_server::util::now_ms();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    a.lock()
                        .expect("arrivals")
                        .push((v["deliveryId"].as_str().unwrap_or("").to_string(), now));
                }
                StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await.expect("serve") });
    format!("http://{addr}/hook")
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the benchmark and prints the figures.
pub async fn run(
    events: usize,
    receivers: usize,
    database_url: Option<String>,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rockit-bench-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = edge_server::config::Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        ..Default::default()
    };
    cfg.allow_private_sources = true;
    cfg.log_format = "text".into();
    cfg.admin_secret_b64 = Some(edge_server::util::b64(&[1u8; 32]));
    cfg.data_key_b64 = Some(edge_server::util::b64(&[2u8; 32]));
    cfg.database_url = database_url;
    let running = edge_server::server::start(cfg).await.map_err(|e| e.to_string())?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let admin = edge_server::crypto::jwt_sign(&json!({"username": "bench"}), &[1u8; 32]);
    let org = post_json(
        http.post(format!("{base}/adm/v1/orgs")).header("x-rockit-admin-token", &admin),
        json!({"name": "EvOrg", "label": "Ev", "username": "ev_admin", "email": "a@b.io", "firstname": "A", "surname": "B"}),
    )
    .await?;
    let login = post_json(
        http.post(format!("{base}/be/v1/login")),
        json!({"username": "ev_admin", "password": org["adminPW"], "orgName": "EvOrg"}),
    )
    .await?;
    let tok = login["accessToken"].as_str().ok_or("login failed")?.to_string();
    let arrivals: Arrivals = Arc::default();
    for i in 0..receivers {
        let url = receiver(arrivals.clone()).await;
        let r = http
            .post(format!("{base}/be/v1/subscriptions"))
            .bearer_auth(&tok)
            .json(&json!({"name": format!("r{i}"), "type": "webhook", "url": url}))
            .send()
            .await;
        r.map_err(|e| e.to_string())?.error_for_status().map_err(|e| e.to_string())?;
    }
    let st = running.state.clone();
    let org_id = sqlx::query("SELECT id FROM orgs WHERE name = 'EvOrg'")
        .fetch_one(st.db.pool())
        .await
        .map(|r| edge_server::ids::OrgId::new(edge_server::db::s(&r, "id")))
        .map_err(|e| e.to_string())?;
    let t0 = edge_server::util::now_ms();
    // Each enqueue writes one task and its `submit` event (fanned out to every receiver),
    // through the same code path the pipeline uses. They never run (no app, far run_after).
    for i in 0..events {
        let mut tx = st.db.tx().await.map_err(|e| e.to_string())?;
        tasks::enqueue(
            &mut tx,
            tasks::NewTask {
                org_id: Some(org_id.clone()),
                org_name: Some("EvOrg".into()),
                app_name: Some("Game".into()),
                build_name: Some(format!("b{i}")),
                run_after: i64::MAX,
                ..tasks::NewTask::of(tasks::DltarParams::upload(None))
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    let t_written = edge_server::util::now_ms();
    let want = events * receivers;
    for _ in 0..1200 {
        if arrivals.lock().expect("arrivals").len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = arrivals.lock().expect("arrivals").clone();
    let created: HashMap<String, i64> =
        sqlx::query("SELECT d.id, o.created FROM deliveries d JOIN outbox o ON o.id = d.event_id")
            .fetch_all(st.db.pool())
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (edge_server::db::s(r, "id"), edge_server::db::i(r, "created")))
            .collect();
    let mut lat: Vec<i64> =
        got.iter().filter_map(|(d, at)| created.get(d).map(|c| at - c)).collect();
    lat.sort();
    let last = got.iter().map(|g| g.1).max().unwrap_or(t0);
    println!(
        "events written: {events} in {:.2} s ({} deliveries to {receivers} receivers)",
        (t_written - t0) as f64 / 1000.0,
        want
    );
    println!("delivered: {} of {want}", got.len());
    if !lat.is_empty() {
        println!(
            "throughput: {:.0} deliveries/s (first event written → last delivery)",
            got.len() as f64 / ((last - t0).max(1) as f64 / 1000.0)
        );
        println!(
            "latency event written → received: p50 {} ms, p99 {} ms, max {} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
