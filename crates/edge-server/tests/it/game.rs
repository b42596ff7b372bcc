//! Generated game trees and GNU tar archives of them, for the delivery tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Compressible "level data".
pub fn text(seed: u64, n: usize) -> Vec<u8> {
    let words = ["tree", "rock", "castle", "dragon", "sword", "river", "cloud", "torch"];
    let mut out = Vec::with_capacity(n);
    let mut i = seed as usize;
    while out.len() < n {
        out.extend_from_slice(words[i % words.len()].as_bytes());
        out.push(b' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    out.truncate(n);
    out
}

/// A small game: an executable, a pack file, level data, a config, a symlink.
pub fn game_v1() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert("bin/game.exe".into(), noise(1, 700_000));
    m.insert("data/levels.pak".into(), text(2, 2_500_000));
    m.insert("data/textures.pak".into(), noise(3, 1_200_000));
    m.insert("config/settings.ini".into(), b"[video]\nwidth=1920\n".to_vec());
    m.insert("config/empty.cfg".into(), Vec::new());
    m
}

/// Writes files (and the symlink `bin/settings -> ../config/settings.ini`) under `dir`.
pub fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (p, d) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, d).unwrap();
    }
    #[cfg(unix)]
    {
        let link = dir.join("bin/settings");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("../config/settings.ini", link).unwrap();
    }
}

/// `cd dir && tar cf out .` with GNU tar.
pub fn tar(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .expect("GNU tar runs");
    assert!(st.success());
}

/// Builds a tree and its tar under `base`; returns (tree dir, tar path).
pub fn make_build(
    base: &Path,
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> (PathBuf, PathBuf) {
    let dir = base.join(name);
    write_tree(&dir, files);
    let t = base.join(format!("{name}.tar"));
    tar(&dir, &t);
    (dir, t)
}

/// Reads a directory tree: path → bytes (symlinks as `-> target`), with modes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            #[cfg(unix)]
            use std::os::unix::fs::PermissionsExt;
            if ft.is_symlink() {
                out.insert(
                    rel,
                    (format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes(), 0),
                );
            } else if ft.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    rel,
                    (
                        std::fs::read(&p).unwrap(),
                        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                    ),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}
