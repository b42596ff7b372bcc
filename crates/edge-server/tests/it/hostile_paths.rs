//! Hostile archive paths (issue 13, items 4–6): trees whose entries pass through their own
//! symbolic links, links that leave the tree through other links, names unsafe on a
//! player's machine. Made with GNU tar and sent through the real pipeline, `mkraw` refuses
//! each with `fileReadFailed` naming the entry and nothing is published; hand-made images
//! and patches that list such trees (written with the engine, bypassing `mkraw`) are
//! refused by the real `rockit unpack` and `rockit apply`, which create nothing outside
//! their output directory.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use edge_engine::image::{write_image, ImageMeta};
use edge_engine::patch::{write_patch, PatchMeta};
use edge_engine::store::ChunkStore;
use edge_engine::tree::{Entry, Kind, Tree};
use edge_engine::Params;
use reqwest::Method;
use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs GNU tar with `args` in `dir`.
fn gnu_tar(dir: &Path, args: &[&str]) {
    let out = Command::new("tar").args(args).current_dir(dir).output().expect("GNU tar runs");
    assert!(out.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A hostile archive and the `fileReadFailed` it must produce.
struct Case {
    label: &'static str,
    tar: PathBuf,
    filename: String,
    expected: &'static str,
    detected: &'static str,
}

/// The archives. Two directories `a` and `b` per case: `tar cf` of the first, then `tar rf`
/// (append) of members of the second, for entries that cannot coexist on a disk (a path
/// under a link of the same archive).
fn cases(work: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let dirs = |name: &str| {
        let (a, b) = (work.join(name).join("a"), work.join(name).join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        (a, b, work.join(format!("{name}.tar")))
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Item 4: d/s2 -> .. (the root: fine alone), then d/s2/e -> ../.. (textually inside
    // from d/s2, but d/s2 is the root, so e is the root's grandparent).
    let (a, b, t) = dirs("item4");
    std::fs::create_dir_all(a.join("d")).unwrap();
    std::fs::write(a.join("d/ok.txt"), b"ok").unwrap();
    symlink("..", a.join("d/s2")).unwrap();
    std::fs::create_dir_all(b.join("d/s2")).unwrap();
    symlink("../..", b.join("d/s2/e")).unwrap();
    gnu_tar(&a, &["--sort=name", "-cf", &s(&t), "."]);
    gnu_tar(&b, &["-rf", &s(&t), "./d/s2/e"]);
    out.push(Case {
        label: "item 4",
        tar: t,
        filename: "d/s2/e".into(),
        expected: "relative path",
        detected: "path through a symbolic link",
    });

    // Item 5: up -> . and a regular file up/x.txt.
    let (a, b, t) = dirs("item5");
    symlink(".", a.join("up")).unwrap();
    std::fs::create_dir_all(b.join("up")).unwrap();
    std::fs::write(b.join("up/x.txt"), b"through the link").unwrap();
    gnu_tar(&a, &["-cf", &s(&t), "./up"]);
    gnu_tar(&b, &["-rf", &s(&t), "./up/x.txt"]);
    out.push(Case {
        label: "item 5",
        tar: t,
        filename: "up/x.txt".into(),
        expected: "relative path",
        detected: "path through a symbolic link",
    });

    // What a textual check misses: s -> . makes a/l -> ../s/.. the root's parent.
    let (a, _, t) = dirs("via");
    std::fs::create_dir_all(a.join("a")).unwrap();
    std::fs::write(a.join("a/ok.txt"), b"ok").unwrap();
    symlink(".", a.join("s")).unwrap();
    symlink("../s/..", a.join("a/l")).unwrap();
    gnu_tar(&a, &["--sort=name", "-cf", &s(&t), "."]);
    out.push(Case {
        label: "link through a link",
        tar: t,
        filename: "a/l".into(),
        expected: "regular file",
        detected: "symbolic link leaving the tree",
    });

    // Item 6: a Windows traversal, and control characters (a newline, \x01).
    let names: [(&str, &str, &str); 3] = [
        ("backslash", "..\\..\\evil.dll", "backslash in name"),
        ("newline", "readme\nnow.txt", "control character in name"),
        ("ctrl", "level\u{1}.dat", "control character in name"),
    ];
    for (tag, name, detected) in names {
        let (a, _, t) = dirs(tag);
        std::fs::create_dir_all(a.join("bin")).unwrap();
        std::fs::write(a.join("bin/game.exe"), noise(4, 20_000)).unwrap();
        std::fs::write(a.join(name), b"MZ hostile").unwrap();
        gnu_tar(&a, &["--sort=name", "-cf", &s(&t), "."]);
        out.push(Case {
            label: tag,
            tar: t,
            filename: name.into(),
            expected: "relative path",
            detected,
        });
    }

    // A file where a directory must be: a, then a/b.
    let (a, b, t) = dirs("file-parent");
    std::fs::write(a.join("a"), b"a file").unwrap();
    std::fs::create_dir_all(b.join("a")).unwrap();
    std::fs::write(b.join("a/b"), b"under a file").unwrap();
    gnu_tar(&a, &["-cf", &s(&t), "./a"]);
    gnu_tar(&b, &["-rf", &s(&t), "./a/b"]);
    out.push(Case {
        label: "file as a parent",
        tar: t,
        filename: "a/b".into(),
        expected: "relative path",
        detected: "path through a regular file",
    });
    out
}

async fn hostile_paths_refused(b: Backend, ingest: bool) {
    let s = Srv::start_with(b, |c| c.ingest_during_upload = ingest).await;
    let (tok, _) = s.org_admin("PathOrg").await;
    let deployment =
        json!({"name": "site", "originPrefix": "cdn", "origin": {"type": "fs", "path": "site"}});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(deployment)).await.ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": "Paths", "label": "Paths", "maxBuilds": 3})),
    )
    .await
    .ok();
    let work = TempDir::new("hostile-paths");
    let cases = cases(&work.0);
    for (k, c) in cases.iter().enumerate() {
        let imp = upload(&s, &tok, "Paths", &format!("hostile-{k}"), &c.tar).await;
        let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        let kinds: Vec<String> = tasks
            .iter()
            .map(|t| format!("{}={}", t["type"].as_str().unwrap(), t["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            ["dltar=done", "mkraw=error", "mkdxf=canceled", "mkpat=canceled", "deploy=canceled"],
            "{}",
            c.label
        );
        assert_eq!(
            tasks[1]["exception"],
            json!({"fileReadFailed": {"filename": c.filename, "typeExpected": c.expected, "typeDetected": c.detected}}),
            "{}: {}",
            c.label,
            tasks[1]
        );
        assert!(tasks.iter().all(|t| t["buildId"].is_null()), "{}: no build id", c.label);
        let app = s.be(&tok, Method::GET, "/be/v1/apps/Paths", None).await.ok()["app"].clone();
        assert_eq!(app["iCurBuild"], Value::Null, "{}: {app}", c.label);
        assert_eq!(app["builds"], json!([]), "{}: {app}", c.label);
        assert_eq!(app["error"], false, "{}: {app}", c.label);
        // Nothing published: no image on the origin, none in the depot.
        assert!(!s.data_dir().join("origins/site/cdn/dxf").exists(), "{}", c.label);
        assert!(!s.data_dir().join("depot/dxf").exists(), "{}", c.label);
    }
    // The app is still usable: a good build becomes build 1.
    let mut files = std::collections::BTreeMap::new();
    files.insert("bin/game.exe".to_string(), noise(7, 30_000));
    let (_, good) = make_build(&work.0, "good", &files);
    let imp = upload(&s, &tok, "Paths", "good", &good).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1), "{tasks:?}");
    assert_eq!(tasks[1]["result"]["ingestedDuringUpload"], ingest, "{}", tasks[1]);
}

edge_test!(hostile_paths_are_refused_by_mkraw, |b| async move {
    hostile_paths_refused(b, true).await;
});

edge_test!(hostile_paths_are_refused_by_mkraw_from_disk, |b| async move {
    hostile_paths_refused(b, false).await;
});

// ---------------------------------------------------------------------------------------
// rockit unpack / apply on hand-made images and patches
// ---------------------------------------------------------------------------------------

/// A tree of directories, links and empty files (no chunks: no content to store).
fn tree(rows: &[(&str, &str)]) -> Tree {
    let entries = rows
        .iter()
        .map(|(p, t)| {
            let (kind, target) = match *t {
                "file" => (Kind::File, None),
                "dir" => (Kind::Dir, None),
                t => (Kind::Symlink, Some(t.to_string())),
            };
            let mode = if kind == Kind::Symlink { 0o777 } else { 0o755 };
            Entry { path: p.to_string(), kind, mode, size: 0, target, chunks: vec![] }
        })
        .collect();
    Tree { entries, chunks: Default::default() }
}

/// Hand-made hostile trees: (label, tree, what the refusal says).
fn hostile_trees() -> Vec<(&'static str, Tree, &'static str)> {
    vec![
        // a/l leads above the root through s; a reader that checks links one at a time
        // creates a/l, then a/l/x -> planted through it, next to its output directory.
        (
            "plant",
            tree(&[("s", "."), ("a", "dir"), ("a/l", "../s/.."), ("a/l/x", "planted")]),
            "a/l: symbolic link leaving the tree",
        ),
        (
            "item4",
            tree(&[("d", "dir"), ("d/s2", ".."), ("d/s2/e", "../..")]),
            "d/s2/e: path through a symbolic link",
        ),
        (
            "item5",
            tree(&[("up", "."), ("up/x.txt", "file")]),
            "up/x.txt: path through a symbolic link",
        ),
        ("backslash", tree(&[("..\\..\\evil.dll", "file")]), "..\\..\\evil.dll: backslash in name"),
        ("newline", tree(&[("bad\nname", "file")]), "bad\\nname: control character in name"),
    ]
}

fn meta(id: u64) -> ImageMeta {
    ImageMeta {
        org_name: "PathOrg".into(),
        app_name: "Paths".into(),
        build_id: id,
        build_name: format!("b{id}"),
        created: "2026-01-01T00:00:00Z".into(),
        traces: 0,
        generation: 0,
        preload: Value::Null,
    }
}

/// What one run of the `rockit` binary gave: (exit code, stdout, stderr).
fn rockit(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rockit")).args(args).output().expect("rockit runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a refusal reported as one `rockit: …` line naming `what`.
#[track_caller]
fn refused(run: &(i32, String, String), what: &str, label: &str) {
    let (code, stdout, stderr) = run;
    assert_eq!(*code, 1, "{label}: {run:?}");
    assert!(stdout.is_empty(), "{label}: {run:?}");
    assert_eq!(stderr.lines().count(), 1, "{label}: {run:?}");
    assert!(
        stderr.starts_with("rockit: ") && stderr.contains(what),
        "{label}: {what:?} in {stderr:?}"
    );
}

/// The names in a directory.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rockit_unpack_refuses_hostile_images() {
    let work = TempDir::new("hostile-unpack");
    let store = ChunkStore::open(&work.0.join("store")).unwrap();
    for (label, t, what) in hostile_trees() {
        let img = work.0.join(format!("img-{label}"));
        write_image(&t, &store, &[], &meta(1), &img, &Params::default(), None, &Default::default())
            .unwrap();
        // Each run in a directory of its own: whatever it creates is in there.
        let case = work.0.join(format!("case-{label}"));
        std::fs::create_dir_all(&case).unwrap();
        let out = case.join("out");
        let run = rockit(&[Path::new("unpack"), &img, &out]);
        refused(&run, &format!("the image's file table refused: {what}"), label);
        assert!(
            names(&case).is_empty(),
            "{label}: nothing outside the output directory (nor the directory): {:?}",
            names(&case)
        );
        // An existing empty output directory stays, empty.
        std::fs::create_dir_all(&out).unwrap();
        let run = rockit(&[Path::new("unpack"), &img, &out]);
        refused(&run, what, label);
        assert_eq!(names(&case), ["out"], "{label}");
        assert!(names(&out).is_empty(), "{label}: {:?}", names(&out));
    }
}

#[test]
fn rockit_apply_refuses_hostile_patches() {
    let work = TempDir::new("hostile-apply");
    let store = ChunkStore::open(&work.0.join("store")).unwrap();
    let p = Params::default();
    let v1 = tree(&[("bin", "dir"), ("bin/game.exe", "file"), ("run", "bin/game.exe")]);
    let img = work.0.join("img-1");
    write_image(&v1, &store, &[], &meta(1), &img, &p, None, &Default::default()).unwrap();
    let from = work.0.join("from");
    let (code, stdout, stderr) = rockit(&[Path::new("unpack"), &img, &from]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    for (k, (label, mut v2, what)) in hostile_trees().into_iter().enumerate() {
        v2.entries.extend(v1.entries.iter().cloned());
        let to = k as u64 + 2;
        let pm = PatchMeta {
            org_name: "PathOrg".into(),
            app_name: "Paths".into(),
            from_build_id: 1,
            to_build_id: to,
            from_dxf_name: "dxf-0000000000000001".into(),
            to_dxf_name: format!("dxf-{to:016}"),
            created: "2026-01-01T00:00:00Z".into(),
        };
        let pat = work.0.join(format!("pat-{label}"));
        write_patch(&v1, &v2, &store, &pm, &pat, &p, &Default::default(), &Default::default())
            .unwrap();
        let case = work.0.join(format!("case-{label}"));
        std::fs::create_dir_all(&case).unwrap();
        let run = rockit(&[Path::new("apply"), &pat, &from, &case.join("out")]);
        refused(&run, what, label);
        assert!(
            names(&case).is_empty(),
            "{label}: nothing outside the output directory: {:?}",
            names(&case)
        );
    }
    // The older tree is untouched.
    assert_eq!(names(&from), ["bin", "run"]);
}
