//! The console benchmark: an organization of APPS apps holding BUILDS kept builds and TASKS
//! finished tasks in all, every console page fetched N times by a signed-in browser's
//! cookies through a real in-process server; prints each page's latency (p50, p95, max).
//! The rows are written straight into the database (the pipeline would take hours to make
//! them); the pages read them as they read any.

use crate::http::post_json;
use serde_json::json;
use std::time::Instant;

/// What to make and how often to fetch.
pub struct Opts {
    pub apps: usize,
    pub builds: usize,
    pub tasks: usize,
    pub rounds: usize,
    pub database_url: Option<String>,
    /// Leave the data directory behind.
    pub keep: bool,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs the benchmark and prints the figures.
pub async fn run(o: Opts) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rockit-bench-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = edge_server::config::Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        ..Default::default()
    };
    cfg.log_format = "text".into();
    cfg.admin_secret_b64 = Some(edge_server::util::b64(&[1u8; 32]));
    cfg.data_key_b64 = Some(edge_server::util::b64(&[2u8; 32]));
    cfg.database_url = o.database_url.clone();
    let running = edge_server::server::start(cfg).await.map_err(err)?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(err)?;
    let admin = edge_server::crypto::jwt_sign(&json!({"username": "bench"}), &[1u8; 32]);
    let org = post_json(
        http.post(format!("{base}/adm/v1/orgs")).header("x-rockit-admin-token", &admin),
        json!({"name": "ConsoleOrg", "label": "Console", "username": "console_admin", "email": "a@b.io", "firstname": "A", "surname": "B"}),
    )
    .await?;
    let pw = org["adminPW"].as_str().ok_or("no adminPW")?.to_string();
    let login = post_json(
        http.post(format!("{base}/be/v1/login")),
        json!({"username": "console_admin", "password": pw, "orgName": "ConsoleOrg"}),
    )
    .await?;
    let tok = login["accessToken"].as_str().ok_or("login failed")?.to_string();
    for a in 0..o.apps {
        http.post(format!("{base}/be/v1/apps"))
            .bearer_auth(&tok)
            .json(&json!({"name": format!("App{a:02}"), "label": format!("App {a}"), "maxBuilds": 100}))
            .send()
            .await
            .map_err(err)?
            .error_for_status()
            .map_err(err)?;
    }
    let t0 = Instant::now();
    seed(&running.state, &o).await?;
    eprintln!(
        "seeded {} builds and {} tasks in {:.1} s",
        o.builds,
        o.tasks,
        t0.elapsed().as_secs_f64()
    );

    // Signed in as a browser is: the sign-in form, then its cookies.
    let r = http
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=console_admin&password={}", urlencode(&pw)))
        .send()
        .await
        .map_err(err)?;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(String::from))
        .filter(|c| !c.ends_with('='))
        .collect();
    if cookies.is_empty() {
        return Err(format!("sign-in failed: {}", r.status()));
    }
    let cookie = cookies.join("; ");
    let pages = [
        "/console/",
        "/console/apps/App00",
        "/console/apps/App00/pipeline",
        "/console/apps/App00/training",
        "/console/deployments",
        "/console/people",
        "/console/org",
    ];
    println!(
        "machine: {} cores; {} apps, {} kept builds, {} tasks; {} fetches per page",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.apps,
        o.builds,
        o.tasks,
        o.rounds
    );
    println!("{:<32} {:>8} {:>8} {:>8} {:>9}", "page", "p50 ms", "p95 ms", "max ms", "bytes");
    for p in pages {
        let mut ms = Vec::with_capacity(o.rounds);
        let mut size = 0;
        for _ in 0..o.rounds {
            let t = Instant::now();
            let r = http
                .get(format!("{base}{p}"))
                .header("cookie", &cookie)
                .send()
                .await
                .map_err(err)?;
            let status = r.status();
            let body = r.bytes().await.map_err(err)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                return Err(format!("{p}: {status}"));
            }
            size = body.len();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        println!("{p:<32} {:>8.1} {:>8.1} {:>8.1} {size:>9}", at(0.5), at(0.95), at(1.0));
    }
    running.shutdown().await;
    if o.keep {
        eprintln!("data kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Writes the builds (spread over the apps, the newest of each current) and the finished
/// tasks (groups of five pipeline steps) straight into the database.
async fn seed(st: &edge_server::state::AppState, o: &Opts) -> Result<(), String> {
    let pool = st.db.pool();
    let apps: Vec<(String, String)> = sqlx::query("SELECT id, name FROM apps ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| (edge_server::db::s(r, "id"), edge_server::db::s(r, "name")))
        .collect();
    let org: String = sqlx::query("SELECT org_id FROM apps LIMIT 1")
        .fetch_one(pool)
        .await
        .map(|r| edge_server::db::s(&r, "org_id"))
        .map_err(err)?;
    let now = edge_server::util::now_ms();
    let per_app = o.builds.div_ceil(apps.len().max(1));
    let mut tx = pool.begin().await.map_err(err)?;
    for (id, _) in &apps {
        for b in 1..=per_app {
            let status = if b == per_app { "current" } else { "retained" };
            sqlx::query("INSERT INTO builds (app_id, build_id, org_id, build_name, dxf_name, size_bytes, image_bytes, content_hash, tree_path, task_group, status, created) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)")
                .bind(id).bind(b as i64).bind(&org).bind(format!("1.{b}")).bind(format!("dxf{b}"))
                .bind(2_000_000_000i64).bind(1_500_000_000i64).bind(format!("h{b}")).bind("t").bind(format!("g{b}"))
                .bind(status).bind(now - (per_app - b) as i64 * 60_000)
                .execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query(
            "UPDATE apps SET i_cur_build = $1, build_name = $2, dxf_name = $3 WHERE id = $4",
        )
        .bind(per_app as i64)
        .bind(format!("1.{per_app}"))
        .bind(format!("dxf{per_app}"))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    let kinds = ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"];
    for t in 0..o.tasks {
        let (g, step) = (t / kinds.len(), t % kinds.len());
        let (app_id, app_name) = &apps[g % apps.len()];
        let created = now - (o.tasks - t) as i64 * 1000;
        sqlx::query("INSERT INTO tasks (name, org_id, org_name, type, task_group, app_id, app_name, build_name, build_id, status, progress, created, started, ended, attempts, params, step) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'done',1,$10,$10,$10,1,'{}',$11)")
            .bind(format!("t_bench{t:06}")).bind(&org).bind("ConsoleOrg").bind(kinds[step]).bind(format!("g_bench{g:05}"))
            .bind(app_id).bind(app_name).bind(format!("1.{g}")).bind(g as i64).bind(created).bind(step as i64 + 1)
            .execute(&mut *tx).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(())
}
