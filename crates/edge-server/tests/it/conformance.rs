//! `/openapi.json` checked against the live server by two tools that know the server only
//! through that document:
//!
//! - schemathesis (4.x) sends generated requests to every operation and checks that none
//!   answers 5xx, that every status is documented, and that every answer matches the schema
//!   documented for its status;
//! - openapi-python-client generates a Python package from the document, and
//!   `conformance_client.py` logs in, creates an app and lists tasks through it alone.
//!
//! Both are Python packages that `.ci/run` installs. Without them these tests fail, saying
//! what to install; they never skip. SQLite only: the document and the handlers are the
//! same on both backends, and PostgreSQL adds minutes, not coverage of the document.

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const ORG: &str = "conformance";
/// The administrator `Srv::org_admin` makes for `ORG`.
const ADMIN: &str = "conformance_admin";

/// The checks schemathesis runs (`--checks`), and nothing else.
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance";

/// Operations schemathesis leaves alone (`--exclude-name`), each because it would pull the
/// ground from under the rest of the run: every request after it would test a 401, a 403 or
/// a 503 instead of the operation.
const EXCLUDED: &[&str] = &[
    // Ends the session whose access token every `bearer` request of the run carries.
    "POST /be/v1/logout",
    // With no `username` it changes the caller: `newPW` or `resetCreds` revokes the caller's
    // sessions (the run's access token).
    "PATCH /be/v1/users",
    // The stateful phase feeds names from GET /adm/v1/orgs into these: it would delete the
    // organization the run is logged in to.
    "DELETE /adm/v1/orgs/{name}",
    "DELETE /be/v1/orgs/{name}",
    // Maintenance on answers 503 (a server error to schemathesis) to everything after it.
    "PUT /adm/v1/maintenance",
];

/// Test cases per operation and phase (`--max-examples`): about a minute on 2 busy cores.
const MAX_EXAMPLES: u32 = 20;
/// The whole schemathesis run is killed (and the test fails) past this.
const SCHEMATHESIS_TIMEOUT: Duration = Duration::from_secs(240);

/// The Python package `dist` in a version starting with `prefix`, or a panic that says how
/// to install it. Returns the version.
fn require(dist: &str, prefix: &str, spec: &str) -> String {
    let hint = format!("install it with `python3 -m pip install '{spec}'` (.ci/run does)");
    let probe = format!("import importlib.metadata as m; print(m.version('{dist}'))");
    let out = match Command::new("python3").args(["-c", &probe]).output() {
        Ok(o) => o,
        Err(e) => {
            panic!("python3 does not run ({e}); this test drives the Python package {dist}: {hint}")
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{dist} is not installed for python3 ({}): {hint}",
        err.trim().lines().last().unwrap_or("")
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        version.starts_with(prefix),
        "{dist} {version} is installed; this test is written for {spec}: {hint}"
    );
    version
}

/// What a finished child process left.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn report(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` in `dir` off the runtime's threads (the server under test keeps them), its
/// output into files (no pipe to fill), killed after `limit`.
async fn run(mut cmd: Command, dir: &Path, tag: &str, limit: Duration) -> Run {
    let (out_path, err_path) =
        (dir.join(format!("{tag}.stdout")), dir.join(format!("{tag}.stderr")));
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .env("NO_COLOR", "1");
    let shown = format!("{cmd:?}");
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown} does not start: {e}"));
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Ok(s);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(shown);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Ok(status) => Run { status, stdout, stderr, took: started.elapsed() },
        Err(shown) => panic!(
            "{shown} ran past {limit:?} and was killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
    }
}

/// A server with the conformance org, its admin logged in, and one app (whose client key
/// the launcher operations get): (server, access token, client key).
async fn seeded() -> (Srv, String, String) {
    let s = Srv::start(Backend::Sqlite).await;
    let (token, _) = s.org_admin(ORG).await;
    let r = s
        .be(&token, Method::POST, "/be/v1/apps", Some(json!({"name": "Seed", "label": "Seed app"})))
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().expect("clientKey for an admin").to_string();
    (s, token, key)
}

/// schemathesis's credentials by security scheme (`[auth.openapi.<scheme>]`), so that each
/// operation gets the one it documents and no other: /be/v1/login refuses a bearer, and the
/// admin token is also a bearer token to the operations that take either. The schemes are
/// found by what they are, not by name; the values come from the environment of the run.
/// The session token scheme gets none: a session needs a published build.
fn auth_config(doc: &serde_json::Value) -> String {
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("/openapi.json has components.securitySchemes");
    let mut out = String::new();
    for (name, s) in schemes {
        let (field, var) = match (
            s["type"].as_str(),
            s["scheme"].as_str(),
            s["in"].as_str(),
            s["name"].as_str(),
        ) {
            (Some("http"), Some("bearer"), _, _) => ("bearer", "ROCKIT_ACCESS_TOKEN"),
            (Some("apiKey"), _, Some("header"), Some("x-rockit-admin-token")) => {
                ("api_key", "ROCKIT_ADMIN_TOKEN")
            }
            (Some("apiKey"), _, Some("header"), Some("x-rockit-client-key")) => {
                ("api_key", "ROCKIT_CLIENT_KEY")
            }
            _ => continue,
        };
        out += &format!(
            "[auth.openapi.{}]\n{field} = \"${{{var}}}\"\n\n",
            serde_json::Value::from(name.as_str())
        );
    }
    for var in ["ROCKIT_ACCESS_TOKEN", "ROCKIT_ADMIN_TOKEN"] {
        assert!(out.contains(var), "no security scheme for {var} in /openapi.json: {schemes:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    require("schemathesis", "4.", "schemathesis>=4,<5");
    let (s, token, client_key) = seeded().await;
    let work = TempDir::new("schemathesis");
    let config = work.0.join("schemathesis.toml");
    std::fs::write(
        &config,
        auth_config(&s.req(Method::GET, "/openapi.json", &[], None).await.body),
    )
    .unwrap();
    let seed = std::env::var("EDGE_CONFORMANCE_SEED").unwrap_or_else(|_| "20261207".into());
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", s.base)])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &seed])
        // One worker: generation is CPU-bound Python (a second thread gets no second core
        // under the GIL), and two crashed hypothesis once inside ast.parse, whose recursion
        // counter CPython 3.11 does not keep per thread ("AST constructor recursion depth
        // mismatch", CPython gh-106905).
        .args(["--workers", "1", "--request-timeout", "20", "--continue-on-failure"])
        .args(["--generation-database", "none", "--no-color"])
        .env("ROCKIT_ACCESS_TOKEN", &token)
        .env("ROCKIT_ADMIN_TOKEN", &s.admin)
        .env("ROCKIT_CLIENT_KEY", &client_key);
    for name in EXCLUDED {
        cmd.args(["--exclude-name", name]);
    }
    let r = run(cmd, &work.0, "schemathesis", SCHEMATHESIS_TIMEOUT).await;
    eprintln!("schemathesis took {:.0?}", r.took);
    assert!(
        r.status.success(),
        "schemathesis found failures in /openapi.json against the server ({}):\n{}",
        r.status,
        r.report()
    );
    // Exit 0 also when nothing ran: the summary must show the operations tested.
    assert!(r.stdout.contains("Tested:"), "schemathesis tested no operation:\n{}", r.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_works() {
    require("openapi-python-client", "0.29.", "openapi-python-client>=0.29,<0.30");
    let s = Srv::start(Backend::Sqlite).await;
    let (token, pw) = s.org_admin(ORG).await;
    // A deleted app leaves its deletion task, for the script's task list to hold.
    s.be(&token, Method::POST, "/be/v1/apps", Some(json!({"name": "Doomed", "label": "Doomed"})))
        .await
        .ok();
    s.be(&token, Method::DELETE, "/be/v1/apps/Doomed", None).await.ok();
    let work = TempDir::new("pyclient");
    let doc =
        s.http.get(format!("{}/openapi.json", s.base)).send().await.unwrap().bytes().await.unwrap();
    std::fs::write(work.0.join("openapi.json"), &doc).unwrap();
    // No post hooks: the generator would run ruff over its output, a formatter this test
    // does not need.
    std::fs::write(work.0.join("generator.yaml"), "post_hooks: []\n").unwrap();
    let package = "rockit_edge_client";
    let mut gen = Command::new("python3");
    gen.args([
        "-m",
        "openapi_python_client",
        "generate",
        "--path",
        "openapi.json",
        "--output-path",
        package,
    ]);
    // A warning is a part of the document that did not become client code: an operation or
    // a model a Python user would not have.
    gen.args(["--meta", "none", "--config", "generator.yaml", "--fail-on-warning"]);
    let r = run(gen, &work.0, "generate", Duration::from_secs(120)).await;
    assert!(
        r.status.success(),
        "openapi-python-client could not generate a client from /openapi.json:\n{}",
        r.report()
    );
    assert!(
        work.0.join(package).join("client.py").is_file(),
        "no package generated:\n{}",
        r.report()
    );

    let script: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/conformance_client.py");
    let mut py = Command::new("python3");
    py.arg(&script).arg(&work.0).args([package, &s.base, ORG, ADMIN, &pw]);
    let r = run(py, &work.0, "client", Duration::from_secs(60)).await;
    assert!(r.status.success(), "the generated client failed against the server:\n{}", r.report());
    assert!(r.stdout.contains("generated client: logged in"), "{}", r.report());
}
