//! The publisher side of the `rockit` CLI end to end: the real binary against a real server,
//! each test with a configuration directory of its own (HOME and XDG_CONFIG_HOME point into
//! a temporary directory). Login with a password (one org, a choice of org, profiles) and
//! with an API key; token files; automatic refresh; logout; pushing a directory and a tar
//! until published; resource commands; a failed publish, retry and acknowledge; error paths.

use crate::cli::{ps, Run};
use crate::common::*;
use crate::edge_test;
use crate::game::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The CLI with a home of its own.
pub(crate) struct Cli {
    pub(crate) home: TempDir,
    env: Vec<(String, String)>,
}

impl Cli {
    pub(crate) fn new() -> Cli {
        Cli { home: TempDir::new("cli-home"), env: Vec::new() }
    }

    /// Adds an environment variable to every run.
    pub(crate) fn with_env(mut self, k: &str, v: &str) -> Cli {
        self.env.push((k.into(), v.into()));
        self
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.home.0.join("xdg/rockit/config.toml")
    }

    pub(crate) fn config_text(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap_or_default()
    }

    /// Runs `rockit <args>` with `stdin` on its standard input.
    pub(crate) async fn run_in(&self, args: &[&str], stdin: &str) -> Run {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (home, env, stdin) = (self.home.0.clone(), self.env.clone(), stdin.to_string());
        let out = tokio::task::spawn_blocking(move || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rockit"));
            c.args(&args).env("HOME", &home).env("XDG_CONFIG_HOME", home.join("xdg"));
            for k in
                ["ROCKIT_SERVER", "ROCKIT_PROFILE", "ROCKIT_API_KEY", "ROCKIT_ORG", "ROCKIT_USER"]
            {
                c.env_remove(k);
            }
            for (k, v) in &env {
                c.env(k, v);
            }
            let mut child = c
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("rockit runs");
            let mut i = child.stdin.take().unwrap();
            let _ = i.write_all(stdin.as_bytes());
            drop(i);
            child.wait_with_output().expect("rockit ends")
        })
        .await
        .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        self.run_in(args, "").await
    }

    /// Runs with extra environment variables for this run only.
    pub(crate) async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Cli { home: TempDir(self.home.0.clone()), env: self.env.clone() };
        c.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let r = c.run(args).await;
        std::mem::forget(c.home); // borrowed, not owned: not removed here
        r
    }

    /// Runs with `--json` and parses stdout.
    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let r = self.run(&a).await;
        serde_json::from_str(r.ok()).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {r:?}"))
    }

    /// Logs in with a password on stdin.
    pub(crate) async fn login(&self, s: &Srv, user: &str, pw: &str, extra: &[&str]) -> Run {
        let mut a = vec!["login", "--server", &s.base, "--username", user, "--password-stdin"];
        a.extend_from_slice(extra);
        self.run_in(&a, &format!("{pw}\n")).await
    }
}

/// A failure: exit 1 and a last stderr line `rockit: …` (stdout may hold progress lines).
#[track_caller]
pub(crate) fn failed_line(r: &Run) -> String {
    assert_eq!(r.code, 1, "{r:?}");
    let line = r.stderr.lines().last().unwrap_or("").to_string();
    assert!(line.starts_with("rockit: "), "{r:?}");
    line
}

/// A profile's value in the config file (`key = "value"` or `key = 123`).
fn config_value(text: &str, profile: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with('[') {
            inside = l == format!("[profiles.{profile}]");
        } else if inside {
            if let Some(v) = l.strip_prefix(&format!("{key} = ")) {
                return Some(v.trim_matches('"').to_string());
            }
        }
    }
    None
}

/// Writes a game tree with a path over 100 bytes and a symlink target over 100 bytes (PAX).
fn long_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = game_v1();
    let deep = format!("data/{}/{}.pak", "d".repeat(60), "long-name-".repeat(8));
    files.insert(deep.clone(), text(5, 40_000));
    write_tree(dir, &files);
    let target = format!("../{deep}");
    std::os::unix::fs::symlink(&target, dir.join("bin/deep-link")).unwrap();
    std::fs::set_permissions(dir.join("bin/game.exe"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    files
}

edge_test!(cli_login_password_profiles_refresh_logout, |b| async move {
    let s = Srv::start(b).await;
    let pw = s.create_org("LogCo", "log_admin").await;
    let cli = Cli::new();

    // Wrong password: the API's error code.
    let line = cli.login(&s, "log_admin", "not-the-password", &[]).await.failed().to_string();
    assert_eq!(line, "rockit: unauthorized: wrong username or password");
    assert!(!cli.config().exists());

    // One org: chosen without asking.
    let text = cli.login(&s, "log_admin", &pw, &[]).await.ok().to_string();
    assert_eq!(
        text.trim(),
        format!("logged in to {} as log_admin in LogCo (profile default)", s.base)
    );
    let mode = std::fs::metadata(cli.config()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    let dmode =
        std::fs::metadata(cli.config().parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
    let cfg = cli.config_text();
    assert_eq!(config_value(&cfg, "default", "server").as_deref(), Some(s.base.as_str()));
    assert!(
        config_value(&cfg, "default", "access_token").is_some()
            && config_value(&cfg, "default", "refresh_token").is_some()
    );
    assert_eq!(cli.json(&["apps", "list"]).await, json!([]));

    // A second org for the same person: the choice must be made with --org.
    let r = s
        .adm(
            Method::POST,
            "/adm/v1/orgs",
            Some(json!({"name": "LogTwo", "label": "Two", "username": "log_admin", "email": "l@example.com", "firstname": "L", "surname": "A"})),
        )
        .await;
    assert!(r.ok().get("adminPW").is_none(), "the person is linked, not made");
    let line = cli.login(&s, "log_admin", &pw, &["--profile", "two"]).await.failed().to_string();
    assert_eq!(
        line,
        "rockit: log_admin belongs to several organizations (LogCo, LogTwo): choose one with --org"
    );
    let text = cli
        .login(&s, "log_admin", &pw, &["--profile", "two", "--org", "LogTwo"])
        .await
        .ok()
        .to_string();
    assert!(text.contains("in LogTwo (profile two)"), "{text}");
    let created = cli.json(&["--profile", "two", "apps", "create", "--name", "TwoGame"]).await;
    assert_eq!(created["name"], "TwoGame");
    assert_eq!(created["label"], "TwoGame");
    // Each profile acts in its own org; ROCKIT_PROFILE selects like --profile.
    assert_eq!(cli.json(&["apps", "list"]).await, json!([]));
    let r = cli.run_env(&["apps", "list", "--json"], &[("ROCKIT_PROFILE", "two")]).await;
    let apps: Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    let cfg = cli.config_text();
    assert_eq!(config_value(&cfg, "two", "org").as_deref(), Some("LogTwo"));
    assert_eq!(config_value(&cfg, "default", "org").as_deref(), Some("LogCo"));

    // An expired access token is refreshed before use (the expiry is known)...
    cli.login(&s, "log_admin", &pw, &["--org", "LogCo", "--access-ttl", "1"]).await.ok();
    let before = cli.config_text();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(cli.json(&["apps", "list"]).await, json!([]));
    let after = cli.config_text();
    let rt = |t: &str| config_value(t, "default", "refresh_token").unwrap();
    let at = |t: &str| config_value(t, "default", "access_token").unwrap();
    assert_ne!(rt(&before), rt(&after), "the rotated pair is saved");
    assert_ne!(at(&before), at(&after));
    assert_eq!(std::fs::metadata(cli.config()).unwrap().permissions().mode() & 0o777, 0o600);
    // ... and after a 401 when the client believed it valid.
    cli.login(&s, "log_admin", &pw, &["--org", "LogCo", "--access-ttl", "1"]).await.ok();
    let stale = cli.config_text();
    let exp = config_value(&stale, "default", "access_expires").unwrap();
    std::fs::write(
        cli.config(),
        stale.replace(&format!("access_expires = {exp}"), "access_expires = 99999999999"),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = s.be(&at(&stale), Method::GET, "/be/v1/apps", None).await;
    r.err(401, "unauthorized");
    assert_eq!(cli.json(&["apps", "list"]).await, json!([]));
    let fresh = cli.config_text();
    assert_ne!(rt(&fresh), rt(&stale));

    // Logout ends the session on the server and forgets the tokens.
    cli.login(&s, "log_admin", &pw, &["--org", "LogCo"]).await.ok();
    let access = at(&cli.config_text());
    let text = cli.run(&["logout"]).await.ok().to_string();
    assert_eq!(text.trim(), format!("logged out of {} (profile default)", s.base));
    s.be(&access, Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
    let cfg = cli.config_text();
    assert!(
        config_value(&cfg, "default", "access_token").is_none()
            && config_value(&cfg, "default", "refresh_token").is_none(),
        "{cfg}"
    );
    assert_eq!(config_value(&cfg, "default", "server").as_deref(), Some(s.base.as_str()));
    let line = cli.run(&["apps", "list"]).await.failed().to_string();
    assert_eq!(line, "rockit: not logged in (run rockit login)");
    let line = cli.run(&["logout"]).await.failed().to_string();
    assert!(line.contains("not logged in"), "{line}");
    // The other profile is untouched.
    assert_eq!(cli.json(&["--profile", "two", "apps", "list"]).await.as_array().unwrap().len(), 1);
    // A session ended elsewhere: the refresh fails too → not logged in.
    let two_access = config_value(&cli.config_text(), "two", "access_token").unwrap();
    s.be(&two_access, Method::POST, "/be/v1/logout", None).await.ok();
    let line = cli.run(&["--profile", "two", "apps", "list"]).await.failed().to_string();
    assert_eq!(line, "rockit: not logged in (run rockit login)");
    // No server known at all.
    let bare = Cli::new();
    let line = bare.run(&["apps", "list"]).await.failed().to_string();
    assert!(line.contains("no server"), "{line}");
});

edge_test!(cli_login_api_key, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("KeyCo").await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "ci_bot", "label": "CI", "roles": ["Administrators"]})),
        )
        .await;
    let key = r.ok()["apiKey"].as_str().unwrap().to_string();
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "KeyGame", "label": "k"})))
        .await
        .ok();

    // Saved in the profile, checked on the way.
    let cli = Cli::new();
    let text = cli.run(&["login", "--server", &s.base, "--api-key", &key]).await.ok().to_string();
    assert!(
        text.contains("saved for") && text.contains("as ci_bot in KeyCo (profile default)"),
        "{text}"
    );
    assert_eq!(std::fs::metadata(cli.config()).unwrap().permissions().mode() & 0o777, 0o600);
    let cfg = cli.config_text();
    assert_eq!(config_value(&cfg, "default", "api_key").as_deref(), Some(key.as_str()));
    assert!(config_value(&cfg, "default", "access_token").is_none());
    let apps = cli.json(&["apps", "list"]).await;
    assert_eq!(apps[0]["name"], "KeyGame");
    // A wrong key is refused at login.
    let bad = Cli::new();
    let line = bad
        .run(&["login", "--server", &s.base, "--api-key", "rk_0123456789abcdef_nope"])
        .await
        .failed()
        .to_string();
    assert!(line.starts_with("rockit: unauthorized: "), "{line}");
    assert!(!bad.config().exists());
    // Logout forgets the key.
    let text = cli.run(&["logout"]).await.ok().to_string();
    assert!(text.contains("API key removed"), "{text}");
    assert!(cli.run(&["apps", "list"]).await.failed().contains("not logged in"));

    // Environment only (CI): the machine triple, no config file at all.
    let env = Cli::new()
        .with_env("ROCKIT_SERVER", &s.base)
        .with_env("ROCKIT_API_KEY", &key)
        .with_env("ROCKIT_ORG", "KeyCo")
        .with_env("ROCKIT_USER", "ci_bot");
    assert_eq!(env.json(&["apps", "show", "KeyGame"]).await["name"], "KeyGame");
    assert!(!env.config().exists());
    let wrong = Cli::new()
        .with_env("ROCKIT_SERVER", &s.base)
        .with_env("ROCKIT_API_KEY", &key)
        .with_env("ROCKIT_ORG", "OtherOrg")
        .with_env("ROCKIT_USER", "ci_bot");
    let line = wrong.run(&["apps", "list"]).await.failed().to_string();
    assert!(line.starts_with("rockit: unauthorized: "), "the triple must match the key: {line}");
    // The key alone (bearer).
    let bearer = Cli::new().with_env("ROCKIT_SERVER", &s.base).with_env("ROCKIT_API_KEY", &key);
    assert_eq!(bearer.json(&["apps", "list"]).await.as_array().unwrap().len(), 1);
});

edge_test!(cli_push_directory_and_tar_until_published, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let pw = s.create_org("PushCo", "push_admin").await;
    let cli = Cli::new();
    cli.login(&s, "push_admin", &pw, &[]).await.ok();
    let dep = cli
        .json(&[
            "deployments",
            "create",
            "--name",
            "site",
            "--type",
            "fs",
            "--path",
            "site",
            "--prefix",
            "cdn",
        ])
        .await;
    assert_eq!(dep["origin"]["type"], "fs");
    assert_eq!(dep["originPrefix"], "cdn");
    let app = cli
        .json(&[
            "apps",
            "create",
            "--name",
            "Game",
            "--label",
            "The Game",
            "--max-builds",
            "3",
            "--deployment",
            "site",
        ])
        .await;
    assert_eq!(app["maxBuilds"], 3);
    assert_eq!(app["deployments"], json!(["site"]));

    // A directory, archived on the fly (long names and link targets go through PAX).
    let work = TempDir::new("push");
    let dir1 = work.0.join("v1");
    long_tree(&dir1);
    let r = cli.run(&["push", ps(&dir1), "--app", "Game", "--build-name", "1.0.0"]).await;
    let out = r.ok().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("uploaded ") && lines[0].contains("import g_"), "{out}");
    for (i, step) in ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"].iter().enumerate() {
        assert!(lines[i + 1].starts_with(&format!("{step:<7} done")), "{out}");
    }
    assert!(lines[2].contains("6 files") && lines[2].contains("warning empty-file"), "{out}");
    assert!(lines[5].contains("published to site, depot"), "{out}");
    let app = cli.json(&["apps", "show", "Game"]).await;
    let dxf = app["dxfName"].as_str().unwrap().to_string();
    assert_eq!(lines[6], format!("published Game build 1 \"1.0.0\" ({dxf})"));
    assert_eq!(app["iCurBuild"], 1);
    let img = s.data_dir().join(format!("origins/site/cdn/dxf/PushCo/Game/0001/{dxf}"));
    assert!(img.join("manifest.json").is_file(), "{}", img.display());
    let out1 = work.0.join("out1");
    cli.run(&["unpack", ps(&img), ps(&out1)]).await.ok();
    assert_eq!(
        read_tree(&out1),
        read_tree(&dir1),
        "the published image unpacks to the pushed tree"
    );

    // A tar file made by GNU tar, with --json.
    let mut v2 = game_v1();
    v2.insert("data/dlc.pak".into(), noise(9, 300_000));
    let (dir2, tar2) = make_build(&work.0, "v2", &v2);
    let res = cli.json(&["push", ps(&tar2), "--app", "Game", "--build-name", "1.0.1"]).await;
    assert_eq!(res["sizeBytes"], std::fs::metadata(&tar2).unwrap().len());
    let tasks = res["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["taskGroup"] == res["taskGroup"]),
        "{res}"
    );
    let app = cli.json(&["apps", "show", "Game"]).await;
    assert_eq!(app["iCurBuild"], 2);
    assert_eq!(app["patches"].as_array().unwrap().len(), 1);
    let img2 = s.data_dir().join(format!(
        "origins/site/cdn/dxf/PushCo/Game/0002/{}",
        app["dxfName"].as_str().unwrap()
    ));
    let out2 = work.0.join("out2");
    cli.run(&["unpack", ps(&img2), ps(&out2)]).await.ok();
    assert_eq!(read_tree(&out2), read_tree(&dir2));

    // --no-wait returns after the upload; `tasks watch --until-idle` sees the rest.
    let mut v3 = v2.clone();
    v3.insert("data/patch3.pak".into(), noise(10, 100_000));
    let dir3 = work.0.join("v3");
    write_tree(&dir3, &v3);
    let out = cli.run(&["push", ps(&dir3), "--app", "Game", "--no-wait"]).await.ok().to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("uploaded "), "{out}");
    let watched = cli
        .run(&["tasks", "watch", "--app", "Game", "--until-idle", "--interval", "0.2"])
        .await
        .ok()
        .to_string();
    let app = cli.json(&["apps", "show", "Game"]).await;
    assert_eq!(app["iCurBuild"], 3, "{watched}");
    assert_eq!(app["buildName"], "build-3", "the server's default name");
    // The pipeline may have ended before the first poll: then that is said.
    let idle = "nothing running (no task of apps matching \"Game\" is queued or running)";
    assert!(
        watched.trim() == idle || watched.lines().all(|l| l.contains(" t_") && l.contains("Game")),
        "{watched}"
    );

    // The builds for people: sizes in MiB, the current one marked, patches as a share.
    let shown = cli.run(&["apps", "show", "Game"]).await.ok().to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "Game \"The Game\"", "{shown}");
    assert!(
        lines[1].starts_with(&format!(
            "current build  3 \"build-3\" ({}, ",
            app["dxfName"].as_str().unwrap()
        )),
        "{shown}"
    );
    assert!(lines[1].ends_with(" MiB)"), "{shown}");
    assert!(
        shown.contains("\nbuilds kept    3 of at most 3\n")
            && shown.contains("\ndeployments    site\n"),
        "{shown}"
    );
    let header = lines.iter().position(|l| l.starts_with("BUILD ")).expect("a builds table");
    assert!(lines[header].starts_with("BUILD        NAME     IMAGE"), "{shown}");
    assert!(
        lines[header + 1].starts_with("3 (current)  build-3  dxf-")
            && lines[header + 3].starts_with("1            1.0.0"),
        "{shown}"
    );
    let patches = lines.iter().position(|l| l.starts_with("PATCH ")).expect("a patches table");
    assert!(
        lines[patches].starts_with("PATCH  SIZE") && lines[patches].ends_with("OF IMAGE"),
        "{shown}"
    );
    assert!(lines[patches + 1..].iter().all(|l| l.contains(" → ") && l.ends_with(" %")), "{shown}");
    assert_eq!(lines.len() - patches - 1, app["patches"].as_array().unwrap().len(), "{shown}");
    let builds = cli.json(&["builds", "list", "Game"]).await;
    let ids: Vec<i64> =
        builds.as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(ids, [3, 2, 1]);
    let table = cli.run(&["builds", "list", "Game"]).await.ok().to_string();
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("3 (current)") && table.contains(" MiB "),
        "{table}"
    );
    let b2 = cli.run(&["builds", "show", "Game", "2"]).await.ok().to_string();
    assert!(
        b2.starts_with("build     2 \"1.0.1\"\nimage     dxf-") && b2.contains(" MiB)\ncreated   "),
        "{b2}"
    );
    assert!(
        b2.lines()
            .any(|l| l.starts_with("patch     to build 3: ") && l.ends_with(" % of the image)")),
        "{b2}"
    );
    let b3 = cli.run(&["builds", "show", "Game", "3"]).await.ok().to_string();
    assert!(b3.starts_with("build     3 \"build-3\" (current)\n"), "{b3}");
    for from in [1, 2] {
        assert!(
            b3.lines().any(|l| l.starts_with(&format!("patch     from build {from}: "))
                && l.ends_with(" % of the image)")),
            "{b3}"
        );
    }
    assert_eq!(cli.json(&["builds", "show", "Game", "1"]).await["buildName"], "1.0.0");
    let line = cli.run(&["builds", "show", "Game", "9"]).await.failed().to_string();
    assert_eq!(line, "rockit: not-found: Game keeps no build 9 (see rockit builds list Game)");
    let done =
        cli.json(&["tasks", "list", "--app", "Game", "--status", "done", "--type", "deploy"]).await;
    assert_eq!(done.as_array().unwrap().len(), 3, "{done}");

    // The same content again: nothing new is published, and that is no failure.
    let out = cli.run(&["push", ps(&dir3), "--app", "Game"]).await.ok().to_string();
    assert!(out.contains("warning identical-build"), "{out}");
    assert!(out.contains("canceled  (identical-build)"), "{out}");
    assert!(
        out.trim_end().ends_with("Game: identical to the current build, nothing new was published"),
        "{out}"
    );

    // Refused before a byte is sent: an archive of another kind, a link leaving the tree.
    let bz = work.0.join("v2.tar.bz2");
    std::fs::write(&bz, b"BZh91AY&SY not really").unwrap();
    let line = cli.run(&["push", ps(&bz), "--app", "Game"]).await.failed().to_string();
    assert!(
        line.ends_with("v2.tar.bz2: not a tar, .tar.gz, .tar.zst or zip (bzip2); give the game directory or an archive of it"),
        "{line}"
    );
    std::os::unix::fs::symlink("/etc/passwd", dir3.join("escape")).unwrap();
    let line = cli.run(&["push", ps(&dir3), "--app", "Game"]).await.failed().to_string();
    assert_eq!(
        line,
        "rockit: escape: symbolic link leaving the tree (-> /etc/passwd); the Edge refuses it"
    );
    // An unknown app: the API's error code.
    std::fs::remove_file(dir3.join("escape")).unwrap();
    let line = cli.run(&["push", ps(&dir3), "--app", "Nope"]).await.failed().to_string();
    assert!(line.starts_with("rockit: not-found: "), "{line}");
});

edge_test!(cli_failed_publish_retry_and_ack, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let pw = s.create_org("FailCo", "fail_admin").await;
    let cli = Cli::new();
    cli.login(&s, "fail_admin", &pw, &["--org", "FailCo"]).await.ok();
    cli.json(&["deployments", "create", "--name", "site", "--type", "fs", "--path", "site"]).await;
    cli.json(&["apps", "create", "--name", "Game"]).await;
    // Break the origin: where the images go is a file.
    let origin = s.data_dir().join("origins/site");
    std::fs::write(origin.join("dxf"), b"not a directory").unwrap();

    let work = TempDir::new("fail");
    let dir = work.0.join("v1");
    write_tree(&dir, &game_v1());
    let r = cli.run(&["push", ps(&dir), "--app", "Game"]).await;
    let line = failed_line(&r);
    assert!(line.starts_with("rockit: deploy failed (task t_"), "{line}");
    assert!(line.contains("publish-failed: ") && line.ends_with("; deployment site"), "{line}");
    assert!(r.stdout.lines().any(|l| l.starts_with("deploy  error")), "{r:?}");
    assert!(r.stdout.lines().any(|l| l.starts_with("mkpat   done")), "{r:?}");
    let task = line.split("(task ").nth(1).unwrap().split(')').next().unwrap().to_string();
    let app = cli.json(&["apps", "show", "Game"]).await;
    assert_eq!(app["error"], true);
    assert_eq!(app["errorTask"], task.as_str());
    let table = cli.run(&["apps", "list"]).await.ok().to_string();
    assert!(table.contains(&format!("error ({task})")), "{table}");
    // The app is locked until the publish is retried.
    let line = cli.run(&["push", ps(&dir), "--app", "Game"]).await.failed().to_string();
    assert!(line.starts_with("rockit: app-locked: "), "{line}");
    // Retrying without a fix fails the same way.
    let r = cli.run(&["retry", &task]).await;
    let line = failed_line(&r);
    assert!(line.contains("publish-failed"), "{line}");
    assert!(
        r.stdout.starts_with(&format!("{task}: retrying (deploy, attempt 2)\n")),
        "the second run: {r:?}"
    );
    // Fixed: the retry publishes.
    std::fs::remove_file(origin.join("dxf")).unwrap();
    let out = cli.run(&["retry", &task]).await.ok().to_string();
    assert!(
        out.starts_with(&format!("{task}: retrying (deploy, attempt 3)\n")),
        "the third run: {out}"
    );
    assert!(out.contains("deploy  done") && out.contains("published Game build 1"), "{out}");
    let app = cli.json(&["apps", "show", "Game"]).await;
    assert_eq!(app["error"], false);
    assert_eq!(app["iCurBuild"], 1);
    assert!(origin
        .join(format!("dxf/FailCo/Game/0001/{}/manifest.json", app["dxfName"].as_str().unwrap()))
        .is_file());
    let line = cli.run(&["retry", &task]).await.failed().to_string();
    assert!(line.starts_with("rockit: invalid-state: "), "{line}");

    // Acknowledge mkraw's warning (an empty file in the build).
    let group =
        cli.json(&["tasks", "show", &task]).await["taskGroup"].as_str().unwrap().to_string();
    let ts = cli.json(&["tasks", "list", "--group", &group, "--type", "mkraw"]).await;
    let mkraw = ts[0]["taskName"].as_str().unwrap().to_string();
    assert_eq!(ts[0]["warning"]["code"], "empty-file");
    assert_eq!(ts[0]["warning"]["acknowledged"], false);
    let out = cli.run(&["ack", &mkraw]).await.ok().to_string();
    assert_eq!(out.trim(), format!("{mkraw}: warning empty-file acknowledged"));
    assert_eq!(cli.json(&["tasks", "show", &mkraw]).await["warning"]["acknowledged"], true);
    let table = cli.run(&["tasks", "list", "--app", "Game"]).await.ok().to_string();
    assert!(
        table.starts_with("TASK") && table.contains("warning empty-file (acknowledged)"),
        "{table}"
    );
    let line = cli.run(&["ack", &task]).await.failed().to_string();
    assert!(line.starts_with("rockit: invalid-state: "), "{line}");
    let line = cli.run(&["tasks", "show", "t_nope"]).await.failed().to_string();
    assert!(line.starts_with("rockit: not-found: "), "{line}");
});

/// A TCP proxy to the server that cuts the first `PUT` after `cut_after` bytes of it.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    fn start(cut_after: usize) -> CuttingProxy {
        use std::io::Read;
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let target: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let (t2, c2) = (target.clone(), cuts.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut client) = c else { continue };
                let Some(to) = *t2.lock().unwrap() else { continue };
                let Ok(up) = TcpStream::connect(to) else { continue };
                let cuts = c2.clone();
                let (mut up_r, mut client_w) =
                    (up.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_r, &mut client_w);
                    let _ = client_w.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let mut up = up;
                    let mut buf = vec![0u8; 16 * 1024];
                    let (mut n, mut put) = (0usize, None);
                    loop {
                        let k = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        let is_put = *put.get_or_insert_with(|| buf.starts_with(b"PUT "));
                        n += k;
                        if is_put
                            && n > cut_after
                            && cuts
                                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                        {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = up.shutdown(Shutdown::Both);
                            return;
                        }
                        if up.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    let _ = up.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { addr, target, cuts }
    }
}

edge_test!(cli_push_sends_a_broken_upload_again, |b| async move {
    let proxy = CuttingProxy::start(1 << 20);
    let public = format!("http://{}", proxy.addr);
    let s = Srv::start_with(b, move |c| c.public_url = Some(public)).await;
    *proxy.target.lock().unwrap() = Some(s.base.trim_start_matches("http://").parse().unwrap());
    let pw = s.create_org("CutCo", "cut_admin").await;
    let cli = Cli::new();
    cli.login(&s, "cut_admin", &pw, &[]).await.ok();
    cli.json(&["deployments", "create", "--name", "site", "--type", "fs", "--path", "site"]).await;
    cli.json(&["apps", "create", "--name", "Game"]).await;
    let work = TempDir::new("cut");
    let dir = work.0.join("v1");
    write_tree(&dir, &game_v1());
    let r = cli.run(&["push", ps(&dir), "--app", "Game"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 1, "the first upload was cut");
    assert!(
        r.stderr.starts_with("rockit: upload interrupted (")
            && r.stderr.contains("sending it again from the start"),
        "{r:?}"
    );
    assert!(r.stdout.contains("published Game build 1"), "{r:?}");
    let app = cli.json(&["apps", "show", "Game"]).await;
    let img = s
        .data_dir()
        .join(format!("origins/site/dxf/CutCo/Game/0001/{}", app["dxfName"].as_str().unwrap()));
    let out = work.0.join("out");
    cli.run(&["unpack", ps(&img), ps(&out)]).await.ok();
    assert_eq!(read_tree(&out), read_tree(&dir));
});

/// Zips `src` with Python's `zipfile` (deflated, Unix modes and symlinks kept, directories
/// left implicit) into `out`; extra entries `(name, data)` are added as they are.
fn python_zip(src: &Path, out: &Path, extra: &[(&str, &str)], method: &str) {
    const SCRIPT: &str = r#"
import os, stat, sys, zipfile
src, out, method = sys.argv[1], sys.argv[2], getattr(zipfile, sys.argv[3])
extra = sys.argv[4:]
with zipfile.ZipFile(out, "w", method) as z:
    if src != "-":
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(root, name)
                rel = os.path.relpath(p, src)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    zi = zipfile.ZipInfo(rel)
                    zi.create_system = 3
                    zi.external_attr = (stat.S_IFLNK | 0o777) << 16
                    z.writestr(zi, os.readlink(p))
                else:
                    z.write(p, rel)
    for i in range(0, len(extra), 2):
        z.writestr(extra[i], extra[i + 1])
"#;
    let mut c = std::process::Command::new("python3");
    c.arg("-c").arg(SCRIPT).arg(src).arg(out).arg(method);
    for (n, d) in extra {
        c.arg(n).arg(d);
    }
    let o = c.output().expect("python3 runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

edge_test!(cli_push_zip_tar_gz_and_tar_zst, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let pw = s.create_org("ZipCo", "zip_admin").await;
    let cli = Cli::new();
    cli.login(&s, "zip_admin", &pw, &[]).await.ok();
    cli.json(&["deployments", "create", "--name", "site", "--type", "fs", "--path", "site"]).await;
    cli.json(&["apps", "create", "--name", "Game", "--max-builds", "5"]).await;
    let work = TempDir::new("zip");
    let w = work.0.as_path();
    let unpacked = |n: i64, app: &Value| {
        s.data_dir().join(format!(
            "origins/site/dxf/ZipCo/Game/{n:04}/{}",
            app["dxfName"].as_str().unwrap()
        ))
    };

    // A zip (Unix modes, a symlink, directories implicit): sent as the tar of its entries.
    let mut v1 = game_v1();
    v1.insert("bin/tools/helper.sh".into(), b"#!/bin/sh\necho hi\n".to_vec());
    let dir1 = w.join("v1");
    write_tree(&dir1, &v1);
    for exe in ["bin/game.exe", "bin/tools/helper.sh"] {
        std::fs::set_permissions(dir1.join(exe), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let zip1 = w.join("v1.zip");
    python_zip(&dir1, &zip1, &[], "ZIP_DEFLATED");
    let out = cli
        .run(&["push", ps(&zip1), "--app", "Game", "--build-name", "zip"])
        .await
        .ok()
        .to_string();
    assert!(
        out.starts_with("uploaded ") && out.contains("published Game build 1 \"zip\""),
        "{out}"
    );
    assert!(out.lines().next().unwrap().contains(" MiB in "), "sizes in MiB: {out}");
    let app = cli.json(&["apps", "show", "Game"]).await;
    let o1 = w.join("o1");
    cli.run(&["unpack", ps(&unpacked(1, &app)), ps(&o1)]).await.ok();
    assert_eq!(read_tree(&o1), read_tree(&dir1), "files, modes and the link as in the directory");

    // A .tar.gz (made here; the name does not matter, the content does).
    let mut v2 = v1.clone();
    v2.insert("data/dlc.pak".into(), noise(9, 300_000));
    let (dir2, tar2) = make_build(w, "v2", &v2);
    std::fs::set_permissions(dir2.join("bin/game.exe"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    tar(&dir2, &tar2);
    let gz = w.join("v2.tgz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&std::fs::read(&tar2).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let res = cli.json(&["push", ps(&gz), "--app", "Game", "--build-name", "gz"]).await;
    assert_eq!(
        res["sizeBytes"],
        std::fs::metadata(&tar2).unwrap().len(),
        "the tar's length is announced and sent"
    );
    let app = cli.json(&["apps", "show", "Game"]).await;
    assert_eq!(app["iCurBuild"], 2);
    let o2 = w.join("o2");
    cli.run(&["unpack", ps(&unpacked(2, &app)), ps(&o2)]).await.ok();
    assert_eq!(read_tree(&o2), read_tree(&dir2));

    // A .tar.zst.
    let mut v3 = v2.clone();
    v3.insert("data/patch3.pak".into(), noise(10, 100_000));
    let (dir3, tar3) = make_build(w, "v3", &v3);
    let zst = w.join("v3.tar.zst");
    std::fs::write(&zst, zstd::encode_all(std::fs::File::open(&tar3).unwrap(), 3).unwrap())
        .unwrap();
    let out = cli.run(&["push", ps(&zst), "--app", "Game"]).await.ok().to_string();
    assert!(out.contains("published Game build 3"), "{out}");
    let app = cli.json(&["apps", "show", "Game"]).await;
    let o3 = w.join("o3");
    cli.run(&["unpack", ps(&unpacked(3, &app)), ps(&o3)]).await.ok();
    assert_eq!(read_tree(&o3), read_tree(&dir3));

    // Refused before anything is sent, by the same rules as a directory.
    let bad = w.join("bad.zip");
    python_zip(Path::new("-"), &bad, &[("ok.txt", "x"), ("../evil.txt", "x")], "ZIP_DEFLATED");
    let line = cli.run(&["push", ps(&bad), "--app", "Game"]).await.failed().to_string();
    assert_eq!(line, "rockit: ../evil.txt: parent directory reference; the Edge refuses it");
    let bad = w.join("bad2.zip");
    python_zip(Path::new("-"), &bad, &[("bin\\..\\..\\evil.dll", "x")], "ZIP_STORED");
    let line = cli.run(&["push", ps(&bad), "--app", "Game"]).await.failed().to_string();
    assert!(
        line.contains("backslash in name") && line.ends_with("; the Edge refuses it"),
        "{line}"
    );
    let bad = w.join("bad3.zip");
    python_zip(Path::new("-"), &bad, &[("a", "file"), ("a/b", "under a file")], "ZIP_STORED");
    let line = cli.run(&["push", ps(&bad), "--app", "Game"]).await.failed().to_string();
    assert!(line.starts_with("rockit: a/b: ") && line.ends_with("; the Edge refuses it"), "{line}");
    let bad = w.join("bad4.zip");
    python_zip(Path::new("-"), &bad, &[("data.bin", "bzip2 inside")], "ZIP_STORED");
    // Marked as bzip2 (method 12) in the local and the central header.
    let mut z = std::fs::read(&bad).unwrap();
    for (sig, at) in [(&b"PK\x03\x04"[..], 8), (&b"PK\x01\x02"[..], 10)] {
        let i = z.windows(4).position(|x| x == sig).unwrap() + at;
        z[i..i + 2].copy_from_slice(&12u16.to_le_bytes());
    }
    std::fs::write(&bad, z).unwrap();
    let line = cli.run(&["push", ps(&bad), "--app", "Game"]).await.failed().to_string();
    assert!(
        line.contains(
            "data.bin: compressed with Bzip2; rockit reads stored and deflated zip entries only"
        ),
        "{line}"
    );
    let empty = w.join("empty.zip");
    python_zip(Path::new("-"), &empty, &[], "ZIP_STORED");
    let line = cli.run(&["push", ps(&empty), "--app", "Game"]).await.failed().to_string();
    assert!(line.ends_with("empty.zip: the zip holds no files, nothing to push"), "{line}");
    // A damaged .tar.gz, and a .gz that holds no tar.
    let cut = w.join("cut.tar.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let line = cli.run(&["push", ps(&cut), "--app", "Game"]).await.failed().to_string();
    assert!(line.contains("cut.tar.gz: damaged gzip data ("), "{line}");
    let notar = w.join("notes.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&vec![b'x'; 4096]).unwrap();
    std::fs::write(&notar, enc.finish().unwrap()).unwrap();
    let line = cli.run(&["push", ps(&notar), "--app", "Game"]).await.failed().to_string();
    assert!(
        line.ends_with(
            "notes.txt.gz: gzip data that is not a tar (unknown); give a .tar.gz or .tar.zst"
        ),
        "{line}"
    );
    assert_eq!(
        cli.json(&["apps", "show", "Game"]).await["iCurBuild"],
        3,
        "nothing more was imported"
    );
    let tasks = cli.json(&["tasks", "list", "--app", "Game", "--type", "dltar"]).await;
    assert_eq!(tasks.as_array().unwrap().len(), 3, "no import was started for a refused archive");
});
