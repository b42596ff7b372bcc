//! Setting an organization up for CI from the `rockit` CLI (the real binary against a real
//! server): roles with permissions by letter, persons and machine users, API keys shown
//! once, subscriptions with their secret, trainings, a deployment probe; tasks in pipeline
//! order with a sequencing run; and the small faults of issue 17 — a broken pipe, a server
//! given without a scheme, a server that is down, and the server's log format.

use crate::cli::ps;
use crate::cli_publish::Cli;
use crate::common::*;
use crate::edge_test;
use crate::game::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The lines after `head` in `out` (the one-time secret printed under its heading).
fn line_after<'a>(out: &'a str, head: &str) -> &'a str {
    let mut lines = out.lines();
    lines.by_ref().find(|l| l.starts_with(head)).unwrap_or_else(|| panic!("{head:?} in {out}"));
    lines.next().unwrap_or_else(|| panic!("a line after {head:?} in {out}"))
}

edge_test!(cli_setup_roles_users_and_keys, |b| async move {
    let s = Srv::start(b).await;
    let pw = s.create_org("SetCo", "set_admin").await;
    let cli = Cli::new();
    cli.login(&s, "set_admin", &pw, &[]).await.ok();

    // Roles, permissions by letter.
    let r = cli
        .json(&[
            "roles",
            "create",
            "--name",
            "Publishers",
            "--label",
            "Release managers",
            "--perm",
            "apps=RU",
            "--perm",
            "tasks=rx",
        ])
        .await;
    assert_eq!(
        (r["permissions"]["apps"].clone(), r["permissions"]["tasks"].clone()),
        (json!(6), json!(18)),
        "{r}"
    );
    assert_eq!(r["permissions"]["deployments"], 0);
    let table = cli.run(&["roles", "list"]).await.ok().to_string();
    assert!(table.contains("apps=RU,") && table.contains("tasks=RX"), "{table}");
    assert!(table.contains("tasks=CRUDX"), "Administrators: {table}");
    let shown = cli.run(&["roles", "show", "Publishers"]).await.ok().to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("apps") && l.ends_with("RU    Read, Update")),
        "{shown}"
    );
    for (perm, why) in [
        ("apps=CRQ", "unknown permission letter 'Q'"),
        ("nope=R", "unknown resource \"nope\""),
        ("trainings=D", "trainings has no D permission (it takes R Read, U Update)"),
        ("apps", "expected RESOURCE=LETTERS"),
    ] {
        let r = cli.run(&["roles", "create", "--name", "Bad", "--perm", perm]).await;
        assert_eq!(r.code, 2, "a usage error: {r:?}");
        assert!(r.stderr.contains(why), "{perm}: {r:?}");
    }
    let r =
        cli.json(&["roles", "modify", "Publishers", "--perm", "deployments=R", "--no-label"]).await;
    assert_eq!(
        (r["permissions"]["apps"].clone(), r["permissions"]["deployments"].clone()),
        (json!(6), json!(2)),
        "{r}"
    );
    assert!(r["label"].is_null(), "{r}");
    let out = cli
        .run(&["roles", "modify", "Publishers", "--perm", "deployments="])
        .await
        .ok()
        .to_string();
    assert_eq!(out.trim(), "changed role Publishers");
    assert_eq!(cli.json(&["roles", "show", "Publishers"]).await["permissions"]["deployments"], 0);
    let line = cli
        .run(&["roles", "modify", "Administrators", "--perm", "apps=R"])
        .await
        .failed()
        .to_string();
    assert!(line.starts_with("rockit: item-protected: "), "{line}");

    // A person: the initial password is shown once, and works.
    let out = cli
        .run(&[
            "users",
            "create",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--firstname",
            "Alice",
            "--surname",
            "Doe",
            "--role",
            "Publishers",
        ])
        .await
        .ok()
        .to_string();
    assert!(out.starts_with("created user alice (roles Publishers)\n"), "{out}");
    let alice_pw = line_after(&out, "initial password (shown only once").to_string();
    let alice = Cli::new();
    alice.login(&s, "alice", &alice_pw, &[]).await.ok();
    assert_eq!(alice.json(&["apps", "list"]).await, json!([]));
    let line = alice.run(&["apps", "create", "--name", "NotAllowed"]).await.failed().to_string();
    assert!(line.starts_with("rockit: forbidden: "), "{line}");
    let line = cli
        .run(&["users", "create", "--username", "bob", "--email", "bob@example.com"])
        .await
        .failed()
        .to_string();
    assert!(line.contains("a person needs --email, --firstname and --surname"), "{line}");

    // A machine user for CI: its API key is shown once, and acts with the role's rights.
    let m = cli
        .json(&[
            "users",
            "create",
            "--type",
            "machine",
            "--username",
            "ci_bot",
            "--label",
            "CI",
            "--role",
            "Publishers",
        ])
        .await;
    assert_eq!(m["user"]["type"], "machine");
    assert_eq!(m["user"]["roles"], json!(["Publishers"]));
    let key1 = m["apiKey"].as_str().unwrap().to_string();
    assert!(key1.starts_with("rk_"), "{m}");
    let ci =
        |key: &str| Cli::new().with_env("ROCKIT_SERVER", &s.base).with_env("ROCKIT_API_KEY", key);
    assert_eq!(ci(&key1).json(&["apps", "list"]).await, json!([]));
    let table = cli.run(&["users", "list", "--type", "machine"]).await.ok().to_string();
    assert!(
        table.contains("ci_bot") && table.contains("Publishers") && table.contains("CI"),
        "{table}"
    );
    // Reset credentials: a new key, the old one revoked.
    let out = cli.run(&["users", "modify", "ci_bot", "--reset-credentials"]).await.ok().to_string();
    assert!(
        out.starts_with("changed user ci_bot\nnew API key (shown only once; store it now):\nrk_"),
        "{out}"
    );
    let key2 = line_after(&out, "new API key").to_string();
    assert!(ci(&key1).run(&["apps", "list"]).await.failed().starts_with("rockit: unauthorized: "));
    assert_eq!(ci(&key2).json(&["apps", "list"]).await, json!([]));
    // A person's reset: a new password.
    let r = cli.json(&["users", "modify", "alice", "--reset-credentials", "--title", "Dr"]).await;
    assert_eq!(r["user"]["title"], "Dr");
    let new_pw = r["newPW"].as_str().unwrap().to_string();
    assert_ne!(new_pw, alice_pw);
    Cli::new().login(&s, "alice", &new_pw, &[]).await.ok();
    let r = cli.json(&["users", "modify", "alice", "--no-roles"]).await;
    assert_eq!(r["user"]["roles"], json!([]));
    assert!(r.get("newPW").is_none());

    // API keys: created for the machine user, listed, revoked.
    let out = cli
        .run(&[
            "apikeys",
            "create",
            "--user",
            "ci_bot",
            "--label",
            "release pipeline",
            "--expires-in",
            "30d",
        ])
        .await
        .ok()
        .to_string();
    assert!(
        out.starts_with("created API key ") && out.contains(" for ci_bot in SetCo (expires 20"),
        "{out}"
    );
    let key3 = line_after(&out, "API key (shown only once").to_string();
    assert_eq!(ci(&key3).json(&["apps", "list"]).await, json!([]));
    let keys = cli.json(&["apikeys", "list", "--user", "ci_bot"]).await;
    let k = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "release pipeline")
        .expect("the new key is listed")
        .clone();
    let id = k["keyId"].as_str().unwrap().to_string();
    assert!(key3.starts_with(&format!("rk_{id}_")), "{key3} vs {k}");
    assert!(k["expires"].is_string());
    let table = cli.run(&["apikeys", "list"]).await.ok().to_string();
    assert!(table.starts_with("KEY ID") && table.contains("release pipeline"), "{table}");
    let own = cli.json(&["apikeys", "create"]).await;
    assert_eq!(own["key"]["username"], "set_admin");
    assert!(own["apiKey"].as_str().unwrap().starts_with("rk_"));
    let out = cli.run(&["apikeys", "delete", &id]).await.ok().to_string();
    assert_eq!(out.trim(), format!("{id}: API key revoked"));
    assert!(ci(&key3).run(&["apps", "list"]).await.failed().starts_with("rockit: unauthorized: "));
    let line = cli.run(&["apikeys", "create", "--expires-in", "3w"]).await;
    assert_eq!(line.code, 2, "{line:?}");

    // Deleting: a role in use needs --force; users go.
    let line = cli.run(&["roles", "delete", "Publishers"]).await.failed().to_string();
    assert!(line.starts_with("rockit: item-in-use: "), "{line}");
    assert_eq!(
        cli.run(&["roles", "delete", "Publishers", "--force"]).await.ok().trim(),
        "Publishers: role deleted"
    );
    assert_eq!(cli.json(&["users", "show", "ci_bot"]).await["roles"], json!([]));
    assert_eq!(cli.run(&["users", "delete", "alice"]).await.ok().trim(), "alice: user deleted");
    let del = cli.json(&["users", "delete", "ci_bot"]).await;
    assert_eq!(del, json!({"message": "user deleted"}));
    assert_eq!(cli.json(&["users", "list"]).await.as_array().unwrap().len(), 1);
});

edge_test!(cli_setup_subscriptions_trainings_and_probe, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let pw = s.create_org("SubCo", "sub_admin").await;
    let cli = Cli::new();
    cli.login(&s, "sub_admin", &pw, &[]).await.ok();

    // Subscriptions: the signing secret is shown once.
    let out = cli
        .run(&[
            "subscriptions",
            "create",
            "--name",
            "hook",
            "--url",
            "http://127.0.0.1:9/hook",
            "--event",
            "end",
            "--event",
            "error",
            "--task-type",
            "deploy",
        ])
        .await
        .ok()
        .to_string();
    assert!(
        out.starts_with("created subscription hook (webhook http://127.0.0.1:9/hook)\n"),
        "{out}"
    );
    assert!(line_after(&out, "signing secret (shown only once").len() >= 32, "{out}");
    let sub = cli.json(&["subscriptions", "show", "hook"]).await;
    assert_eq!(sub["filter"], json!({"types": ["deploy"], "events": ["end", "error"], "apps": []}));
    assert!(sub.get("secret").is_none());
    let j = cli
        .json(&["subscriptions", "create", "--name", "all", "--url", "http://127.0.0.1:9/all"])
        .await;
    assert_eq!(j["subscription"]["name"], "all");
    assert!(j["secret"].as_str().unwrap().len() >= 32, "{j}");
    let line = cli
        .run(&[
            "subscriptions",
            "create",
            "--name",
            "xx",
            "--event",
            "nope",
            "--url",
            "http://127.0.0.1:9/xx",
        ])
        .await
        .failed()
        .to_string();
    assert!(line.starts_with("rockit: invalid-param: unknown event 'nope'"), "{line}");
    let line = cli.run(&["subscriptions", "create", "--name", "yy"]).await.failed().to_string();
    assert_eq!(line, "rockit: a webhook needs --url");
    let line = cli
        .run(&[
            "subscriptions",
            "create",
            "--name",
            "zz",
            "--type",
            "slack",
            "--slack-channel",
            "#rel",
        ])
        .await
        .failed()
        .to_string();
    assert_eq!(line, "rockit: slack needs --slack-token or $ROCKIT_SLACK_TOKEN");
    let subs = cli.json(&["subscriptions", "list"]).await;
    assert_eq!(subs.as_array().unwrap().len(), 2);
    assert!(cli.run(&["subscriptions", "delete", "all"]).await.ok().contains("unsubscribed"));

    // Trainings.
    cli.json(&["apps", "create", "--name", "Game"]).await;
    let out = cli.run(&["trainings", "set", "Game", "--reliable", "20"]).await.ok().to_string();
    assert_eq!(out.trim(), "Game: mkseq runs after 20 new traces (0 so far)");
    let t = cli.json(&["trainings", "show", "Game"]).await;
    assert_eq!((t["nTracesReliable"].clone(), t["nTraces"].clone()), (json!(20), json!(0)), "{t}");
    let shown = cli.run(&["trainings", "show", "Game"]).await.ok().to_string();
    assert!(
        shown.contains("mkseq after        20 new traces")
            && shown.contains("no traces of the published image yet"),
        "{shown}"
    );
    let table = cli.run(&["trainings", "list"]).await.ok().to_string();
    assert!(
        table.starts_with("APP") && table.lines().nth(1).unwrap().starts_with("Game"),
        "{table}"
    );
    assert_eq!(cli.json(&["trainings", "list", "--app", "gam"]).await.as_array().unwrap().len(), 1);
    let line = cli.run(&["trainings", "set", "Game", "--reliable", "0"]).await.failed().to_string();
    assert!(line.starts_with("rockit: invalid-param: "), "{line}");
    let line = cli.run(&["trainings", "show", "Nope"]).await.failed().to_string();
    assert!(line.starts_with("rockit: not-found: "), "{line}");

    // A deployment probed again on demand; a broken origin fails the probe.
    cli.json(&[
        "deployments",
        "create",
        "--name",
        "disk",
        "--type",
        "fs",
        "--path",
        "disk",
        "--prefix",
        "cdn",
    ])
    .await;
    let before = cli.json(&["deployments", "show", "disk"]).await;
    let out = cli.run(&["deployments", "probe", "disk"]).await.ok().to_string();
    assert_eq!(out.trim(), "disk: probe passed (fs disk, prefix cdn)");
    let probe = cli.json(&["deployments", "probe", "disk"]).await;
    assert_eq!(probe["probed"], "cdn/.rockit-probe", "{probe}");
    assert!(probe["ms"].is_u64(), "{probe}");
    // A probe changes nothing: not even the deployment's `updated` time.
    assert_eq!(cli.json(&["deployments", "show", "disk"]).await, before);
    assert!(!s.data_dir().join("origins/disk/cdn/.rockit-probe").exists());
    let root = s.data_dir().join("origins/disk");
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let line = cli.run(&["deployments", "probe", "disk"]).await.failed().to_string();
    assert!(line.starts_with("rockit: invalid-param: "), "{line}");
    let line = cli.run(&["deployments", "probe", "nope"]).await.failed().to_string();
    assert!(line.starts_with("rockit: not-found: "), "{line}");
});

/// A game whose boot files are read first by every player.
fn seq_game() -> BTreeMap<String, Vec<u8>> {
    let mut g = BTreeMap::new();
    g.insert("a_music/tracks.pak".into(), noise(1, 3_000_000));
    g.insert("b_levels/level1.pak".into(), noise(2, 1_000_000));
    g.insert("z_boot/game.exe".into(), noise(4, 500_000));
    g.insert("z_boot/boot.dat".into(), text(5, 200_000));
    g
}

/// A player's session on build 1: boot at once, the level later.
fn seq_trace(jitter: u64) -> Value {
    json!({"format": "rockit-trace", "version": 1, "appName": "Game", "buildId": 1,
           "paths": ["z_boot/game.exe", "z_boot/boot.dat", "b_levels/level1.pak"],
           "events": [[0, 0, 0, 500_000], [50 + jitter, 1, 0, 200_000], [20_000 + jitter, 2, 0, 1_000_000]]})
}

edge_test!(cli_tasks_in_pipeline_order_with_a_sequencing_run, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.chunk_avg_bytes = 64 << 10;
        c.pack_limit_bytes = 1 << 20;
    })
    .await;
    let (tok, pw) = s.org_admin("SeqCo").await;
    let cli = Cli::new();
    cli.login(&s, "SeqCo_admin", &pw, &[]).await.ok();
    cli.json(&["deployments", "create", "--name", "site", "--type", "fs", "--path", "site"]).await;
    cli.json(&["apps", "create", "--name", "Game"]).await;
    let work = TempDir::new("seq");
    let dir = work.0.join("v1");
    for (p, d) in seq_game() {
        std::fs::create_dir_all(dir.join(&p).parent().unwrap()).unwrap();
        std::fs::write(dir.join(&p), d).unwrap();
    }
    cli.run(&["push", ps(&dir), "--app", "Game", "--build-name", "1.0"]).await.ok();

    // Three players' traces, then a sequencing run.
    let mut files = Vec::new();
    for k in 0..3u64 {
        let f = work.0.join(format!("trace-{k}.json"));
        std::fs::write(&f, serde_json::to_vec(&seq_trace(k * 7)).unwrap()).unwrap();
        files.push(f);
    }
    let mut args = vec!["trace", "send"];
    args.extend(files.iter().map(|f| ps(f)));
    args.extend(["--app", "Game"]);
    cli.run(&args).await.ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "traces", "appName": "Game"})),
        )
        .await;
    let seq = r.ok()["taskName"].as_str().unwrap().to_string();
    let watched = cli
        .run(&["tasks", "watch", "--app", "Game", "--until-idle", "--interval", "0.2"])
        .await
        .ok()
        .to_string();
    let t = cli.json(&["tasks", "show", &seq]).await;
    assert_eq!(t["status"], "done", "{t}\n{watched}");
    assert!(
        t["result"]["preload100Before"].is_u64() && t["result"]["preload100After"].is_u64(),
        "{t}"
    );
    // The watch may start after mkseq ended (then it shows the deploy, or nothing at all);
    // when it saw mkseq end, its line carries the preload change.
    let mkseq_lines: Vec<&str> =
        watched.lines().filter(|l| l.contains(" mkseq ") && l.contains(" done")).collect();
    assert!(mkseq_lines.iter().all(|l| l.contains("preload ") && l.contains(" → ")), "{watched}");

    // The list: the sequencing run first (most recent), mkseq before its deploy, with the
    // build it sequenced and the preload before → after; then the import in pipeline order.
    let table = cli.run(&["tasks", "list", "--app", "Game"]).await.ok().to_string();
    let rows: Vec<&str> = table.lines().collect();
    let types: Vec<&str> = rows[1..].iter().map(|r| r.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(types, ["mkseq", "deploy", "dltar", "mkraw", "mkdxf", "mkpat", "deploy"], "{table}");
    let mkseq = rows[1];
    assert!(mkseq.contains("1.0 (build 1)") || mkseq.contains(" build 1 "), "{table}");
    let (before, after) = (
        t["result"]["preload100Before"].as_u64().unwrap(),
        t["result"]["preload100After"].as_u64().unwrap(),
    );
    let mib = |n: u64| {
        if n < 1024 {
            format!("{n} B")
        } else if n < 1 << 20 {
            format!("{:.1} KiB", n as f64 / 1024.0)
        } else {
            format!("{:.1} MiB", n as f64 / 1048576.0)
        }
    };
    assert!(mkseq.contains(&format!("preload {} → {}", mib(before), mib(after))), "{table}");
    // --json stays the server's list (most recent first).
    let j = cli.json(&["tasks", "list", "--app", "Game"]).await;
    assert_eq!(j.as_array().unwrap().len(), 7);

    // Idle: said so.
    let out = cli.run(&["tasks", "watch", "--app", "Game", "--until-idle"]).await.ok().to_string();
    assert_eq!(
        out.trim(),
        "nothing running (no task of apps matching \"Game\" is queued or running)"
    );
    let out = cli.run(&["tasks", "watch", "--until-idle", "--json"]).await.ok().to_string();
    assert_eq!(out, "", "no JSON line when nothing runs");
});

edge_test!(cli_faults_broken_pipe_scheme_and_server_down, |b| async move {
    let mut s = Srv::start(b).await;
    let pw = s.create_org("PipeCo", "pipe_admin").await;
    let cli = Cli::new();
    cli.login(&s, "pipe_admin", &pw, &[]).await.ok();
    let bin = Path::new(env!("CARGO_BIN_EXE_rockit")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let home = cli.home.0.clone();
    let sh = move |script: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {script}"))
            .env("PATH", &path)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("xdg"))
            .env_remove("ROCKIT_SERVER")
            .env_remove("ROCKIT_API_KEY")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let sh2 = sh.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || sh2("rockit completions bash | head -1"))
            .await
            .unwrap();
    assert_eq!((code, out.lines().count(), err.as_str()), (Some(0), 1, ""), "{out}");
    // The reader is gone before anything is written: every write fails (EPIPE).
    for cmd in [
        "(sleep 0.3; rockit completions zsh) | true",
        "(sleep 0.3; rockit roles list) | true",
        "(sleep 0.3; rockit roles list --json) | head -c 1",
    ] {
        let sh2 = sh.clone();
        let (code, _, err) = tokio::task::spawn_blocking(move || sh2(cmd)).await.unwrap();
        assert_eq!((code, err.as_str()), (Some(0), ""), "{cmd}");
    }

    // A server without a scheme: a hint, not "relative URL without a base".
    let addr = s.base.trim_start_matches("http://").to_string();
    for server in [addr.as_str(), "localhost:8080"] {
        let line = cli.run(&["apps", "list", "--server", server]).await.failed().to_string();
        assert_eq!(line, format!("rockit: server \"{server}\": add http:// or https:// (for example --server http://{server}, or https://{server} behind TLS)"));
    }
    let r = Cli::new()
        .run_in(&["login", "--server", &addr, "--username", "pipe_admin", "--password-stdin"], &pw)
        .await;
    assert!(r.failed().contains("add http:// or https://"), "{r:?}");

    // The server down: one plain sentence.
    let base = s.base.clone();
    s.stop().await;
    let line = cli.run(&["roles", "list"]).await.failed().to_string();
    assert_eq!(line, format!("rockit: cannot connect to {base}: connection refused (is the server running, on that port?)"));
    let line = cli.run(&["push", "/nonexistent-dir", "--app", "X"]).await.failed().to_string();
    assert!(line.contains("/nonexistent-dir"), "local checks come first: {line}");
});

/// `rockit-edge serve` on a fresh data directory with stderr on a pipe; the lines it
/// logged until it announced its address (then it is stopped).
fn serve_piped(data: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rockit-edge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("EDGE_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for l in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        let done = l.contains("rockit-edge listening");
        lines.push(l);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// The same with stderr on a terminal (`script` gives it a pseudo-terminal); `None` when
/// `script` (util-linux) is missing. The server stops when the test creates `stop`.
fn serve_on_tty(data: &Path, env: &[(&str, &str)]) -> Option<Vec<String>> {
    Command::new("script").arg("--version").output().ok().filter(|o| o.status.success())?;
    let stop = data.with_extension("stop");
    let inner = format!(
        "'{}' serve --listen 127.0.0.1:0 --data-dir '{}' & p=$!; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; kill -TERM $p; wait $p",
        env!("CARGO_BIN_EXE_rockit-edge"),
        data.display(),
        stop.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .env_remove("EDGE_LOG_FORMAT")
        .env("SHELL", "/bin/sh")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut lines = Vec::new();
    for l in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        let done = l.contains("rockit-edge listening");
        lines.push(l.trim_end_matches('\r').to_string());
        if done {
            std::fs::write(&stop, b"").unwrap();
        }
    }
    let _ = child.wait();
    Some(lines)
}

#[test]
fn server_logs_text_on_a_terminal_and_json_otherwise() {
    let work = TempDir::new("logs");
    let json_line =
        |l: &String| serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"].is_string());

    // Piped (a service, a container): JSON lines.
    let piped = serve_piped(&work.0.join("a"), &[]);
    assert!(piped.last().is_some_and(|l| l.contains("rockit-edge listening")), "{piped:?}");
    assert!(piped.iter().all(json_line), "{piped:?}");
    // Text by setting, even on a pipe (and no colour codes there).
    let text = serve_piped(&work.0.join("b"), &[("EDGE_LOG_FORMAT", "text")]);
    assert!(
        text.last().is_some_and(|l| l.contains("rockit-edge listening") && l.contains(" INFO ")),
        "{text:?}"
    );
    assert!(text.iter().all(|l| !json_line(l) && !l.contains('\x1b')), "{text:?}");
    // A wrong value is refused with the setting named.
    let out = Command::new(env!("CARGO_BIN_EXE_rockit-edge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(work.0.join("c"))
        .env("EDGE_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("log_format must be auto, json or text, not 'yaml'"),
        "{out:?}"
    );

    // On a terminal (a first run by hand): human-readable lines; JSON when asked for.
    let Some(tty) = serve_on_tty(&work.0.join("d"), &[]) else {
        eprintln!("`script` is not installed: the terminal cases are skipped");
        return;
    };
    assert!(tty.iter().any(|l| l.contains("rockit-edge listening")), "{tty:?}");
    assert!(
        tty.iter().filter(|l| !l.trim().is_empty()).all(|l| !json_line(&l.to_string())),
        "{tty:?}"
    );
    let tty_json = serve_on_tty(&work.0.join("e"), &[("EDGE_LOG_FORMAT", "json")]).unwrap();
    let listening: Vec<&String> =
        tty_json.iter().filter(|l| l.contains("rockit-edge listening")).collect();
    assert!(listening.len() == 1 && json_line(listening[0]), "{tty_json:?}");
}

/// docs/CLI.md's CI recipe: the first ```sh block of "Setting up CI", run as written in bash
/// (`set -euo pipefail`) with the port of a real server in place of 8080, by an
/// administrator logged in with `rockit login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_md_ci_recipe_runs_as_written() {
    const DOC: &str = include_str!("../../../../docs/CLI.md");
    let section = &DOC[DOC.find("## Setting up CI").expect("the CI section")..];
    let start = section.find("```sh\n").expect("its sh block") + 6;
    let body = &section[start..start + section[start..].find("```").unwrap()];
    assert!(
        body.contains("rockit users create --type machine") && body.contains("rockit push"),
        "{body}"
    );
    let s = Srv::start(Backend::Sqlite).await;
    let pw = s.create_org("Studio", "alice").await;
    let cli = Cli::new();
    cli.login(&s, "alice", &pw, &[]).await.ok();
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let script = format!("set -euo pipefail\n{}", body.replace("8080", &port));
    let bin = Path::new(env!("CARGO_BIN_EXE_rockit")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let work = TempDir::new("ci-recipe");
    let (home, dir) = (cli.home.0.clone(), work.0.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env("PATH", path)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("xdg"))
            .env_remove("ROCKIT_SERVER")
            .env_remove("ROCKIT_API_KEY")
            .env_remove("ROCKIT_PROFILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the recipe failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(stdout.contains("published MyGame build 1"), "{stdout}");
    assert!(stdout.contains("current build  1 \"1.0."), "{stdout}");
    assert!(!work.0.join("ci_bot.json").exists());
    // The pipeline acted as the machine user, with the role's rights only.
    let users = cli.json(&["users", "show", "ci_bot"]).await;
    assert_eq!(users["roles"], json!(["Publishers"]));
}
