//! Patch round trips for every kind of change, byte for byte (contents, modes, links,
//! directories), and the refusals: damaged patch data, a wrong older tree, an unknown
//! format version. Never a wrong tree without an error.

use crate::image::write_image;
use crate::ingest::ingest;
use crate::patch::{write_patch, PatchMeta, PatchSummary};
use crate::reader::{apply, unpack, DirSource};
use crate::roundtrip_tests::{meta, noise, params, Tmp};
use crate::store::ChunkStore;
use crate::Params;
use std::collections::BTreeMap;
use std::path::Path;

/// One entry of a test build.
#[derive(Clone, Debug, PartialEq)]
enum E {
    /// A regular file: mode, content.
    F(u32, Vec<u8>),
    /// A symlink and its target.
    L(String),
    /// A directory and its mode.
    D(u32),
}

type Build = BTreeMap<String, E>;

fn f(data: Vec<u8>) -> E {
    E::F(0o644, data)
}

/// Compressible text of `n` bytes.
fn text(seed: u64, n: usize) -> Vec<u8> {
    const W: [&str; 8] =
        ["castle ", "dragon ", "sword ", "river ", "forest ", "potion ", "shield ", "level "];
    let r = noise(seed, n);
    let mut out = Vec::with_capacity(n + 8);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(W[(r[i % n] & 7) as usize].as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Adds the parent directories every entry needs (mode 0755) so that the build is
/// complete and a tree on disk can be compared with it exactly.
fn with_dirs(mut b: Build) -> Build {
    let paths: Vec<String> = b.keys().cloned().collect();
    for p in paths {
        for (k, _) in p.match_indices('/') {
            b.entry(p[..k].to_string()).or_insert(E::D(0o755));
        }
    }
    b
}

fn tar_of(b: &Build) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, e) in b {
        let mut h = tar::Header::new_gnu();
        match e {
            E::F(mode, d) => {
                h.set_size(d.len() as u64);
                h.set_mode(*mode);
                h.set_cksum();
                t.append_data(&mut h, format!("./{p}"), &d[..]).unwrap();
            }
            E::L(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                h.set_cksum();
                t.append_link(&mut h, p, target).unwrap();
            }
            E::D(mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(*mode);
                h.set_cksum();
                t.append_data(&mut h, format!("./{p}/"), &[][..]).unwrap();
            }
        }
    }
    t.into_inner().unwrap()
}

/// The tree on disk as a build.
fn on_disk(dir: &Path) -> Build {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, d: &Path, out: &mut Build) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    E::L(std::fs::read_link(&p).unwrap().to_string_lossy().into_owned()),
                );
            } else if m.is_dir() {
                out.insert(rel, E::D(mode));
                walk(base, &p, out);
            } else {
                out.insert(rel, E::F(mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Build::new();
    walk(dir, dir, &mut out);
    out
}

/// A patch made and applied: `old` (build 1 unpacked from its image), `pat`, `new`.
struct Done {
    t: Tmp,
    sum: PatchSummary,
    /// Bytes of the patch's packs (the stream), without patch.json.
    data: u64,
}

fn pm() -> PatchMeta {
    PatchMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        from_build_id: 1,
        to_build_id: 2,
        from_dxf_name: "dxf-a".into(),
        to_dxf_name: "dxf-b".into(),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

/// Patches `v1` → `v2` and applies the patch to `v1` as unpacked from its image; the
/// result must be `v2` exactly.
fn round_trip_with(v1: &Build, v2: &Build, p: &Params) -> Done {
    let (v1, v2) = (with_dirs(v1.clone()), with_dirs(v2.clone()));
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let a = ingest(&tar_of(&v1)[..], &store, p, &mut |_| {}).unwrap();
    let b = ingest(&tar_of(&v2)[..], &store, p, &mut |_| {}).unwrap();
    write_image(&a.tree, &store, &[], &meta(1), &t.0.join("img1"), p, None, &Default::default())
        .unwrap();
    unpack(&DirSource(t.0.join("img1")), &t.0.join("old"), None).unwrap();
    assert_eq!(on_disk(&t.0.join("old")), v1);
    let sum = write_patch(
        &a.tree,
        &b.tree,
        &store,
        &pm(),
        &t.0.join("pat"),
        p,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(sum.files.last().map(String::as_str), Some("patch.json"));
    let data: u64 = sum
        .files
        .iter()
        .filter(|n| *n != "patch.json")
        .map(|n| std::fs::metadata(t.0.join("pat").join(n)).unwrap().len())
        .sum();
    let stats = apply(&DirSource(t.0.join("pat")), &t.0.join("old"), &t.0.join("new")).unwrap();
    assert_eq!(on_disk(&t.0.join("new")), v2);
    assert_eq!(stats.bytes, b.tree.size_bytes());
    assert_eq!(on_disk(&t.0.join("old")), v1, "the older tree is only read");
    Done { t, sum, data }
}

fn round_trip(v1: &Build, v2: &Build) -> Done {
    round_trip_with(v1, v2, &params())
}

/// A build of `n` files of noise and text under a few directories.
fn game(n: usize) -> Build {
    let mut b = Build::new();
    for i in 0..n {
        let data = if i % 3 == 0 {
            text(i as u64, 40_000 + i * 1000)
        } else {
            noise(i as u64, 60_000 + i * 977)
        };
        b.insert(format!("data/dir{}/file{i:03}.pak", i % 4), f(data));
    }
    b
}

fn edit(data: &mut [u8], at: usize) {
    for b in data.iter_mut().skip(at).take(16) {
        *b ^= 0x5a;
    }
}

#[test]
fn renames_cost_a_few_bytes_each() {
    let v1 = game(30);
    let mut v2 = v1.clone();
    for i in [0, 7, 14, 21, 28] {
        let e = v2.remove(&format!("data/dir{}/file{i:03}.pak", i % 4)).unwrap();
        v2.insert(format!("moved/{i:05}-file.pak"), e);
    }
    let d = round_trip(&v1, &v2);
    assert!(d.data < 400, "5 renames cost {} bytes", d.data);
    assert_eq!((d.sum.sent, d.sum.deltas), (0, 0), "{:?}", d.sum);
}

#[test]
fn scattered_edits_cost_their_changed_bytes() {
    let mut v1 = game(12);
    v1.insert("big/noise.bin".into(), f(noise(50, 2 << 20)));
    v1.insert("big/text.txt".into(), f(text(51, 1 << 20)));
    let mut v2 = v1.clone();
    let keys: Vec<String> = v2.keys().cloned().collect();
    for k in 0..30usize {
        let E::F(_, d) = v2.get_mut(&keys[k * 7 % keys.len()]).unwrap() else { unreachable!() };
        let at = (k * 104_729) % (d.len() - 16);
        edit(d, at);
    }
    let d = round_trip(&v1, &v2);
    assert!(d.data < 30 * 40 + 200, "30 edits of 16 bytes cost {} bytes", d.data);
    assert!(d.sum.deltas >= 10 && d.sum.sent == 0, "{:?}", d.sum);
}

#[test]
fn insertions_cost_their_inserted_bytes() {
    let mut v1 = Build::new();
    v1.insert("a.pak".into(), f(noise(60, 3 << 20)));
    v1.insert("b.txt".into(), f(text(61, 1 << 20)));
    let mut v2 = v1.clone();
    let mut inserted = 0;
    for (k, name) in ["a.pak", "b.txt", "a.pak", "a.pak"].iter().enumerate() {
        let E::F(_, d) = v2.get_mut(*name).unwrap() else { unreachable!() };
        let ins = noise(70 + k as u64, 1024 + 1000 * k);
        inserted += ins.len();
        let at = d.len() / 5 * (k + 1);
        d.splice(at..at, ins);
    }
    let d = round_trip(&v1, &v2);
    assert!(d.data < inserted as u64 + 300, "{inserted} inserted bytes cost {}", d.data);
}

#[test]
fn a_reordered_file_is_a_list_of_copies() {
    let pak = noise(11, 1 << 20);
    let mut v1 = Build::new();
    v1.insert("data/assets.pak".into(), f(pak.clone()));
    // Blocks of the chunk size, reversed: almost every new chunk straddles two old blocks.
    let mut reordered = Vec::new();
    for b in pak.chunks(16 << 10).rev() {
        reordered.extend_from_slice(b);
    }
    let mut v2 = v1.clone();
    v2.insert("data/assets.pak".into(), f(reordered));
    let d = round_trip(&v1, &v2);
    assert!(d.data < 64 * 8 + 200, "a reorder of 64 blocks costs {} bytes", d.data);
    assert!(d.sum.deltas > d.sum.sent, "{:?}", d.sum);
}

#[test]
fn new_and_removed_files() {
    let v1 = game(10);
    let mut v2 = v1.clone();
    v2.remove("data/dir1/file001.pak");
    v2.remove("data/dir2/file002.pak");
    v2.remove("data/dir3/file003.pak");
    v2.insert("dlc/new.bin".into(), f(noise(90, 100_000)));
    v2.insert("dlc/new.txt".into(), f(text(91, 100_000)));
    let d = round_trip(&v1, &v2);
    assert!(d.data < 100_000 + 20_000, "{}", d.data);
    assert!(d.sum.sent >= 2, "{:?}", d.sum);
}

#[test]
fn modes_links_empty_files_and_kind_changes() {
    let mut v1 = Build::new();
    v1.insert("run.sh".into(), f(b"#!/bin/sh\n".to_vec()));
    v1.insert("lib/a.so".into(), E::F(0o755, noise(1, 70_000)));
    v1.insert("link1".into(), E::L("run.sh".into()));
    v1.insert("link2".into(), E::L("lib/a.so".into()));
    v1.insert("becomes-link".into(), f(noise(2, 5000)));
    v1.insert("becomes-file".into(), E::L("run.sh".into()));
    v1.insert("becomes-dir".into(), f(b"x".to_vec()));
    v1.insert("empty1".into(), f(Vec::new()));
    v1.insert("empty2".into(), f(Vec::new()));
    v1.insert("shrinks".into(), f(noise(3, 9000)));
    v1.insert("gone/deep/y.bin".into(), f(noise(4, 3000)));
    v1.insert("keep".into(), E::D(0o755));
    v1.insert("keep/z.txt".into(), f(text(5, 3000)));
    let mut v2 = v1.clone();
    v2.insert("run.sh".into(), E::F(0o755, b"#!/bin/sh\n".to_vec()));
    v2.insert("link1".into(), E::L("lib/a.so".into()));
    v2.remove("link2");
    v2.insert("link3".into(), E::L("keep/z.txt".into()));
    v2.insert("becomes-link".into(), E::L("run.sh".into()));
    v2.insert("becomes-file".into(), f(noise(2, 5000)));
    v2.remove("becomes-dir");
    v2.insert("becomes-dir".into(), E::D(0o700));
    v2.insert("becomes-dir/inner".into(), f(b"x".to_vec()));
    v2.insert("empty3".into(), f(Vec::new()));
    v2.remove("empty2");
    v2.insert("shrinks".into(), f(Vec::new()));
    v2.remove("gone/deep/y.bin");
    v2.insert("keep".into(), E::D(0o750));
    let d = round_trip(&v1, &v2);
    assert!(d.data < 400, "{}", d.data);
    // The same build again: nothing but the header and digests.
    let same = round_trip(&v2, &v2);
    assert!(same.data < 120, "an empty patch costs {}", same.data);
    assert_eq!((same.sum.sent, same.sum.deltas), (0, 0));
}

#[test]
fn large_files_span_packs_and_buffers() {
    // Packs of 64 KiB: the stream runs across many; files and ops larger than every
    // buffer of the writer and the reader.
    let p = Params { pack_limit: 64 << 10, ..params() };
    let mut v1 = Build::new();
    v1.insert("big.pak".into(), f(noise(7, 3 << 20)));
    let mut v2 = v1.clone();
    let E::F(_, d) = v2.get_mut("big.pak").unwrap() else { unreachable!() };
    edit(d, 5);
    edit(d, 1 << 20);
    d.extend_from_slice(&noise(8, 2 << 20));
    v2.insert("new.pak".into(), f(noise(9, 1_500_000)));
    let d = round_trip_with(&v1, &v2, &p);
    assert!(d.sum.files.len() > 50, "{:?}", d.sum.files.len());
    assert!(d.data < 3_500_000 + 100_000 + 10_000, "{}", d.data);
}

/// A patch with copies, literals and table records, for the refusal tests.
fn sample() -> Done {
    let mut v1 = game(8);
    v1.insert("x/edited.bin".into(), f(noise(30, 300_000)));
    let mut v2 = v1.clone();
    let E::F(_, d) = v2.get_mut("x/edited.bin").unwrap() else { unreachable!() };
    edit(d, 150_000);
    v2.remove("data/dir1/file001.pak");
    v2.insert("x/new.txt".into(), f(text(31, 50_000)));
    round_trip(&v1, &v2)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn damaged_patch_data_is_refused() {
    let d = sample();
    let pat = d.t.0.join("pat");
    let pack = d.t.0.join("pat/pack-0001.bin");
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    for (k, at) in [0, 3, 10, len / 3, len / 2, len - 2, len - 1].into_iter().enumerate() {
        let bad = d.t.0.join(format!("bad{k}"));
        copy_dir(&pat, &bad);
        let mut bytes = std::fs::read(bad.join("pack-0001.bin")).unwrap();
        bytes[at] ^= 0x10;
        std::fs::write(bad.join("pack-0001.bin"), bytes).unwrap();
        let e = apply(&DirSource(bad), &d.t.0.join("old"), &d.t.0.join(format!("o{k}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pack-0001.bin"), "byte {at}: {e}");
    }
    // A pack cut short, and one with a byte too many.
    for (k, extra) in [(0, false), (1, true)] {
        let bad = d.t.0.join(format!("cut{k}"));
        copy_dir(&pat, &bad);
        let mut bytes = std::fs::read(bad.join("pack-0001.bin")).unwrap();
        if extra {
            bytes.push(0);
        } else {
            bytes.pop();
        }
        std::fs::write(bad.join("pack-0001.bin"), bytes).unwrap();
        let e = apply(&DirSource(bad), &d.t.0.join("old"), &d.t.0.join(format!("c{k}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pack-0001.bin"), "{e}");
    }
    // An unknown format version.
    let v3 = d.t.0.join("v3");
    copy_dir(&pat, &v3);
    let m = std::fs::read_to_string(v3.join("patch.json"))
        .unwrap()
        .replace("\"version\": 2", "\"version\": 3");
    std::fs::write(v3.join("patch.json"), m).unwrap();
    let e = apply(&DirSource(v3), &d.t.0.join("old"), &d.t.0.join("o-v3")).unwrap_err().to_string();
    assert!(e.contains("version 3 is not supported"), "{e}");
    // patch.json whose index names another result than its stream rebuilds.
    let other = d.t.0.join("other-digest");
    copy_dir(&pat, &other);
    let m = std::fs::read_to_string(other.join("patch.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    let digest = v["index"]["toDigest"].as_str().unwrap().to_string();
    assert_eq!((v["index"]["in"].as_str(), digest.len()), (Some("packs"), 64), "{m}");
    let flipped = format!("{}{}", if digest.starts_with('0') { "1" } else { "0" }, &digest[1..]);
    std::fs::write(other.join("patch.json"), m.replace(&digest, &flipped)).unwrap();
    let e = apply(&DirSource(other), &d.t.0.join("old"), &d.t.0.join("o-other"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("index.toDigest"), "{e}");
}

#[test]
fn a_wrong_older_tree_is_refused() {
    let d = sample();
    let old = d.t.0.join("old");
    let try_with = |name: &str, change: &dyn Fn(&Path)| -> String {
        let from = d.t.0.join(format!("from-{name}"));
        std::process::Command::new("cp").arg("-a").arg(&old).arg(&from).status().unwrap();
        change(&from);
        apply(&DirSource(d.t.0.join("pat")), &from, &d.t.0.join(format!("out-{name}")))
            .unwrap_err()
            .to_string()
    };
    let flip = |p: &Path, at: u64| {
        let mut b = std::fs::read(p).unwrap();
        b[at as usize] ^= 1;
        std::fs::write(p, b).unwrap();
    };
    // A byte of an unchanged file, of the file the edit copies from, of a removed file.
    let e = try_with("unchanged", &|f| flip(&f.join("data/dir2/file002.pak"), 4242));
    assert!(e.contains("differs from build 1"), "{e}");
    let e = try_with("copied", &|f| flip(&f.join("x/edited.bin"), 10));
    assert!(e.contains("differs from build 1"), "{e}");
    // A removed file may differ: the patch never reads it.
    let from = d.t.0.join("from-removed");
    std::process::Command::new("cp").arg("-a").arg(&old).arg(&from).status().unwrap();
    flip(&from.join("data/dir1/file001.pak"), 7);
    apply(&DirSource(d.t.0.join("pat")), &from, &d.t.0.join("out-removed")).unwrap();
    // Files added, missing or resized.
    let e = try_with("extra", &|f| std::fs::write(f.join("saves.dat"), b"x").unwrap());
    assert!(e.contains("is not build 1") && e.contains("holds"), "{e}");
    let e =
        try_with("missing", &|f| std::fs::remove_file(f.join("data/dir0/file000.pak")).unwrap());
    assert!(e.contains("is not build 1"), "{e}");
    let e = try_with("resized", &|f| {
        let p = f.join("data/dir0/file000.pak");
        let mut b = std::fs::read(&p).unwrap();
        b.push(1);
        std::fs::write(p, b).unwrap();
    });
    assert!(e.contains("is not build 1") && e.contains("size"), "{e}");
}

/// The worked example of `docs/FORMAT.md`: build 2 changes one byte of `words.txt` and
/// appends 600 bytes to `noise.bin`. Its decoded stream, byte for byte (digests aside).
#[test]
fn worked_example_stream() {
    let p = Params {
        chunk: crate::ChunkParams { min: 256, avg: 1024, max: 4096 },
        zstd_level: 3,
        pack_limit: 4096,
    };
    let mut v1 = Build::new();
    v1.insert("bin".into(), E::D(0o755));
    v1.insert("bin/run.sh".into(), E::F(0o755, b"#!/bin/sh\nexec ./game \"$@\"\n".to_vec()));
    v1.insert("data".into(), E::D(0o755));
    v1.insert("data/empty.cfg".into(), f(Vec::new()));
    v1.insert("data/noise.bin".into(), f(noise(1, 2500)));
    v1.insert("data/words.txt".into(), f(text(2, 3000)));
    v1.insert("run".into(), E::L("bin/run.sh".into()));
    let mut v2 = v1.clone();
    let E::F(_, w) = v2.get_mut("data/words.txt").unwrap() else { unreachable!() };
    w[1500] = b'X';
    let E::F(_, n) = v2.get_mut("data/noise.bin").unwrap() else { unreachable!() };
    n.extend_from_slice(&noise(3, 600));
    let d = round_trip_with(&v1, &v2, &p);
    let mut packed = Vec::new();
    for name in d.sum.files.iter().filter(|n| *n != "patch.json") {
        packed.extend(std::fs::read(d.t.0.join("pat").join(name)).unwrap());
    }
    let s = zstd::stream::decode_all(&packed[..]).unwrap();
    let mut want = b"RKP2".to_vec();
    want.push(5); // five files and links in `from`
    want.extend_from_slice(&s[5..37]); // the `from` digest
    want.extend_from_slice(&[2, 1, 0xed, 0x03, 4, 0xa4, 0x03]); // modes: 1 × 493, 4 × 420
    want.extend_from_slice(&[5, 2, 0xb0, 0x09]); // FILE_AT noise.bin, size +600
    want.extend_from_slice(&[0x90, 0x4e, 0]); // COPY 2500 from offset 0
    want.extend_from_slice(&[0xe1, 0x12]); // INSERT 600
    want.extend_from_slice(&noise(3, 600));
    want.extend_from_slice(&[5, 3, 0]); // FILE_AT words.txt, same size
    want.extend_from_slice(&[0xf0, 0x2e, 0, 0x05, b'X', 0xec, 0x2e, 2]); // COPY 1500, INSERT "X", COPY 1499 from 1501
    want.push(0); // END
    want.extend_from_slice(&s[s.len() - 32..]); // the `to` digest
    assert_eq!(s, want);
    assert_eq!((d.sum.reused, d.sum.sent, d.sum.deltas), (3, 1, 2), "{:?}", d.sum);
}
