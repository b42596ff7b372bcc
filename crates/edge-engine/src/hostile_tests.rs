//! Hostile trees (issue 13): the tar ingest refuses them with the `fileReadFailed` naming
//! the entry, and `unpack` and `apply` refuse hand-made images and patches that list them,
//! before anything is created and never writing outside their output directory.

use crate::image::write_image;
use crate::ingest::{ingest, IngestError, Rejected};
use crate::patch::{write_patch, PatchMeta};
use crate::reader::{apply, unpack, DirSource};
use crate::roundtrip_tests::{meta, params, Tmp};
use crate::store::ChunkStore;
use crate::tree::{Entry, Kind, Tree};
use std::path::Path;

/// One tar entry: a file with content, a directory, or a link with its target.
#[derive(Clone, Copy)]
enum T {
    F(&'static [u8]),
    D,
    L(&'static str),
}

fn tar_of(entries: &[(&str, T)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, e) in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            T::F(d) => {
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, p, *d).unwrap();
            }
            T::D => {
                h.set_size(0);
                h.set_mode(0o755);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            T::L(t) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Regular files anywhere under `dir`.
fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| if e.file_type().unwrap().is_dir() { files_under(&e.path()) } else { 1 })
        .sum()
}

/// What a directory holds, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A tar's entries, the entry its refusal names, and (`typeExpected`, `typeDetected`).
type Case = (Vec<(&'static str, T)>, &'static str, (&'static str, &'static str));

#[test]
fn ingest_refuses_hostile_trees() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    let through = ("relative path", "path through a symbolic link");
    let leaves = ("regular file", "symbolic link leaving the tree");
    let cases: Vec<Case> = vec![
        // Item 4: d/s2 -> .. then d/s2/e -> ../.. (each textually inside).
        (
            vec![("./d/", T::D), ("./d/s2", T::L("..")), ("./d/s2/e", T::L("../.."))],
            "d/s2/e",
            through,
        ),
        // Item 5: up -> . and a file up/x.txt.
        (vec![("./up", T::L(".")), ("./up/x.txt", T::F(b"through the link"))], "up/x.txt", through),
        // The textual check's miss: s -> . makes ../s/.. the root's parent.
        (vec![("./s", T::L(".")), ("./a/", T::D), ("./a/l", T::L("../s/.."))], "a/l", leaves),
        // Item 6: names unsafe on a player's machine.
        (
            vec![("./ok.txt", T::F(b"ok")), ("./..\\..\\evil.dll", T::F(b"MZ"))],
            "..\\..\\evil.dll",
            ("relative path", "backslash in name"),
        ),
        (
            vec![("./bad\nname.txt", T::F(b"x"))],
            "bad\nname.txt",
            ("relative path", "control character in name"),
        ),
        (
            vec![("./ctl\u{1}.txt", T::F(b"x"))],
            "ctl\u{1}.txt",
            ("relative path", "control character in name"),
        ),
        (
            vec![("./l", T::L("..\\..\\evil.dll"))],
            "l",
            ("regular file", "backslash in link target"),
        ),
        (vec![("./l", T::L("a\tb"))], "l", ("regular file", "control character in link target")),
        // A file where a directory must be.
        (
            vec![("./a", T::F(b"file")), ("./a/b", T::F(b"under a file"))],
            "a/b",
            ("relative path", "path through a regular file"),
        ),
        // A later entry turns the directory into a link: the final tree counts.
        (
            vec![("./up/", T::D), ("./up/x.txt", T::F(b"x")), ("./up", T::L("."))],
            "up/x.txt",
            through,
        ),
        // Loops.
        (vec![("./loop", T::L("loop"))], "loop", ("regular file", "symbolic link loop")),
        (vec![("./a", T::L("b")), ("./b", T::L("a"))], "a", ("regular file", "symbolic link loop")),
        // The old textual rules.
        (vec![("./out", T::L("../x"))], "out", leaves),
        (vec![("./abs", T::L("/etc/passwd"))], "abs", leaves),
    ];
    for (entries, name, (expected, detected)) in cases {
        let r = match ingest(&tar_of(&entries)[..], &store, &p, &mut |_| {}) {
            Err(IngestError::Rejected(r)) => r,
            Err(IngestError::Io(e)) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: accepted"),
        };
        let want = Rejected {
            filename: name.into(),
            type_expected: expected.into(),
            type_detected: detected.into(),
        };
        assert_eq!(r, want);
        assert_eq!(
            files_under(&t.0.join("store")),
            0,
            "{name}: a refused archive leaves no chunk behind"
        );
    }
    // The final tree counts the other way too: a link replaced by a file or a directory.
    let ok = ingest(
        &tar_of(&[("./x", T::L("../..")), ("./x", T::F(b"now a file"))])[..],
        &store,
        &p,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(ok.tree.entries.len(), 1);
    assert_eq!(ok.tree.entries[0].kind, Kind::File);
    let ok = ingest(
        &tar_of(&[("./up", T::L(".")), ("./up/", T::D), ("./up/x.txt", T::F(b"x"))])[..],
        &store,
        &p,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(ok.tree.entries[0].kind, Kind::Dir);
    // Dangling links that stay inside, and links through links that stay inside, pass.
    let ok = ingest(
        &tar_of(&[("./s", T::L(".")), ("./a/l", T::L("../s/a/missing")), ("./d", T::L("s/s/s"))])[..],
        &store,
        &p,
        &mut |_| {},
    );
    assert!(ok.is_ok());
}

fn entry(path: &str, t: T) -> Entry {
    let (kind, target) = match t {
        T::F(d) => {
            assert!(d.is_empty(), "hand-made trees hold empty files only");
            (Kind::File, None)
        }
        T::D => (Kind::Dir, None),
        T::L(t) => (Kind::Symlink, Some(t.to_string())),
    };
    Entry {
        path: path.into(),
        kind,
        mode: if kind == Kind::File { 0o644 } else { 0o755 },
        size: 0,
        target,
        chunks: vec![],
    }
}

fn tree(entries: &[(&str, T)]) -> Tree {
    Tree {
        entries: entries.iter().map(|(p, t)| entry(p, *t)).collect(),
        chunks: Default::default(),
    }
}

/// Hand-made trees the ingest would refuse, the entry each refusal names, and how.
fn hostile_trees() -> Vec<(Tree, &'static str, &'static str)> {
    vec![
        // The link a/l leads above the root; a/l/x -> planted would be created through it,
        // next to the output directory, by a reader that checks links one by one.
        (
            tree(&[
                ("s", T::L(".")),
                ("a", T::D),
                ("a/l", T::L("../s/..")),
                ("a/l/x", T::L("planted")),
            ]),
            "a/l",
            "symbolic link leaving the tree",
        ),
        (
            tree(&[("s", T::L(".")), ("a", T::D), ("a/l", T::L("../s/.."))]),
            "a/l",
            "symbolic link leaving the tree",
        ),
        (
            tree(&[("d", T::D), ("d/s2", T::L("..")), ("d/s2/e", T::L("../.."))]),
            "d/s2/e",
            "path through a symbolic link",
        ),
        (
            tree(&[("up", T::L(".")), ("up/x.txt", T::F(b""))]),
            "up/x.txt",
            "path through a symbolic link",
        ),
        (tree(&[("..\\..\\evil.dll", T::F(b""))]), "..\\..\\evil.dll", "backslash in name"),
        (tree(&[("new\nline", T::F(b""))]), "new\\nline", "control character in name"),
        (tree(&[("a", T::F(b"")), ("a/b", T::F(b""))]), "a/b", "path through a regular file"),
    ]
}

#[test]
fn unpack_refuses_hostile_file_tables_before_creating_anything() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    for (k, (tree, name, why)) in hostile_trees().into_iter().enumerate() {
        let img = t.0.join(format!("img{k}"));
        write_image(&tree, &store, &[], &meta(1), &img, &p, None, &Default::default()).unwrap();
        let case = t.0.join(format!("case{k}"));
        std::fs::create_dir_all(&case).unwrap();
        let out = case.join("out");
        let e = unpack(&DirSource(img), &out, None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{name}: {e}");
        assert!(e.to_string().contains(&format!("{name}: {why}")), "{name}: {e}");
        assert!(!out.exists(), "{name}: nothing is created");
        assert!(
            names(&case).is_empty(),
            "{name}: nothing outside the output directory: {:?}",
            names(&case)
        );
    }
}

#[test]
fn apply_refuses_hostile_patched_trees_and_writes_nothing_outside() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    let v1 = tree(&[("keep", T::D), ("keep/a.txt", T::F(b""))]);
    let img = t.0.join("img1");
    write_image(&v1, &store, &[], &meta(1), &img, &p, None, &Default::default()).unwrap();
    let from = t.0.join("from");
    unpack(&DirSource(img), &from, None).unwrap();
    let pm = |to: u64| PatchMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        from_build_id: 1,
        to_build_id: to,
        from_dxf_name: "dxf-1".into(),
        to_dxf_name: format!("dxf-{to}"),
        created: "2026-01-01T00:00:00Z".into(),
    };
    for (k, (mut v2, name, why)) in hostile_trees().into_iter().enumerate() {
        v2.entries.extend(v1.entries.iter().cloned());
        let pat = t.0.join(format!("pat{k}"));
        write_patch(
            &v1,
            &v2,
            &store,
            &pm(k as u64 + 2),
            &pat,
            &p,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let case = t.0.join(format!("case{k}"));
        std::fs::create_dir_all(&case).unwrap();
        let out = case.join("out");
        let e = apply(&DirSource(pat), &from, &out).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{name}: {e}");
        assert!(e.to_string().contains(&format!("{name}: {why}")), "{name}: {e}");
        assert_eq!(names(&case), ["out"], "{name}: nothing outside the output directory");
        let mut links = Vec::new();
        let mut stack = vec![out.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let ft = e.file_type().unwrap();
                if ft.is_symlink() {
                    links.push(e.path());
                } else if ft.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        assert!(links.is_empty(), "{name}: no link is created: {links:?}");
    }
}
