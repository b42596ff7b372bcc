//! Engine round trips: tar → chunks → image → unpack, and build → patch → apply.

use crate::image::{write_image, ImageMeta};
use crate::ingest::{ingest, IngestError};
use crate::patch::{write_patch, FileHashes, PatchMeta};
use crate::reader::{apply, unpack, DirSource};
use crate::store::ChunkStore;
use crate::{ChunkParams, Params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) struct Tmp(pub(crate) PathBuf);
impl Tmp {
    pub(crate) fn new() -> Tmp {
        let p = std::env::temp_dir().join(format!(
            "engine-test-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64,
    );
    h.finish()
}

/// Deterministic pseudo-random bytes.
pub(crate) fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tar_of(files: &BTreeMap<String, Vec<u8>>, links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("./{p}"), &d[..]).unwrap();
    }
    for (p, t) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, p, t).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes(),
                );
            } else if ft.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub(crate) fn params() -> Params {
    Params {
        chunk: ChunkParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 },
        zstd_level: 3,
        pack_limit: 256 << 10,
    }
}

pub(crate) fn meta(id: u64) -> ImageMeta {
    ImageMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        build_id: id,
        build_name: format!("b{id}"),
        created: "2026-01-01T00:00:00Z".into(),
        traces: 0,
        generation: 0,
        preload: serde_json::Value::Null,
    }
}

#[test]
fn image_and_patch_round_trip() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let mut v1 = BTreeMap::new();
    v1.insert("bin/game.exe".to_string(), noise(1, 300_000));
    v1.insert("data/level1.pak".to_string(), b"level data ".repeat(40_000));
    v1.insert("data/empty.txt".to_string(), Vec::new());
    v1.insert("readme.txt".to_string(), b"hello".to_vec());
    let tar1 = tar_of(&v1, &[("bin/readme", "../readme.txt")]);
    let p = params();
    let ing = ingest(&tar1[..], &store, &p, &mut |_| {}).unwrap();
    assert_eq!(ing.empty_files, 1);
    assert!(ing.new_chunks > 5);
    let img = write_image(
        &ing.tree,
        &store,
        &[],
        &meta(1),
        &t.0.join("img1"),
        &p,
        None,
        &Default::default(),
    )
    .unwrap();
    assert!(img.dxf_name.starts_with("dxf-"));
    assert!(img.files.len() > 3, "packs split at the limit: {:?}", img.files);
    assert_eq!(img.files.last().unwrap(), "manifest.json");
    unpack(&DirSource(t.0.join("img1")), &t.0.join("out1"), None).unwrap();
    let mut want = v1.clone();
    want.insert("bin/readme".into(), b"-> ../readme.txt".to_vec());
    assert_eq!(read_tree(&t.0.join("out1")), want);
    // The same content gives the same image name; refusal of a non-empty output.
    let again = write_image(
        &ing.tree,
        &store,
        &[],
        &meta(1),
        &t.0.join("img1b"),
        &p,
        None,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(again.dxf_name, img.dxf_name);
    assert!(unpack(&DirSource(t.0.join("img1")), &t.0.join("out1"), None).is_err());

    // Build 2: a rename, a small edit, an insertion, a new file.
    let mut v2 = v1.clone();
    let exe = v2.remove("bin/game.exe").unwrap();
    v2.insert("bin/game2.exe".into(), exe);
    let lvl = v2.get_mut("data/level1.pak").unwrap();
    lvl[200_000] ^= 0xff;
    lvl.splice(100_000..100_000, b"INSERTED".iter().copied());
    v2.insert("data/new.bin".into(), noise(2, 50_000));
    let tar2 = tar_of(&v2, &[("bin/readme", "../readme.txt")]);
    let ing2 = ingest(&tar2[..], &store, &p, &mut |_| {}).unwrap();
    let img2 = write_image(
        &ing2.tree,
        &store,
        &[],
        &meta(2),
        &t.0.join("img2"),
        &p,
        None,
        &Default::default(),
    )
    .unwrap();
    assert_ne!(img2.dxf_name, img.dxf_name);
    let pm = PatchMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        from_build_id: 1,
        to_build_id: 2,
        from_dxf_name: img.dxf_name.clone(),
        to_dxf_name: img2.dxf_name.clone(),
        created: "2026-01-01T00:00:00Z".into(),
    };
    let ps = write_patch(
        &ing.tree,
        &ing2.tree,
        &store,
        &pm,
        &t.0.join("pat"),
        &p,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert!(ps.reused > 10);
    assert!(ps.deltas >= 1, "the edited chunks go as deltas: {ps:?}");
    // Renamed file costs nothing; the patch is far smaller than the new content.
    assert!(ps.size_bytes < 90_000, "patch too big: {}", ps.size_bytes);
    apply(&DirSource(t.0.join("pat")), &t.0.join("out1"), &t.0.join("out2")).unwrap();
    let mut want2 = v2.clone();
    want2.insert("bin/readme".into(), b"-> ../readme.txt".to_vec());
    assert_eq!(read_tree(&t.0.join("out2")), want2);
    // A corrupted pack is caught.
    let pack = t.0.join("img2/pack-0001.bin");
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    assert!(unpack(&DirSource(t.0.join("img2")), &t.0.join("out3"), None).is_err());
}

#[test]
fn hostile_archives_are_refused() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    let rejected = |data: &[u8]| match ingest(data, &store, &p, &mut |_| {}) {
        Err(IngestError::Rejected(r)) => r,
        Err(IngestError::Io(e)) => panic!("io: {e}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(rejected(b"").type_detected, "empty");
    assert_eq!(rejected(&[0x1f, 0x8b, 8, 0, 0, 0]).type_detected, "gzip");
    let mut files = BTreeMap::new();
    files.insert("a.bin".to_string(), noise(3, 5000));
    let good = tar_of(&files, &[]);
    let r = rejected(&good[..good.len() - 1024 - 600]);
    assert_eq!(r.type_detected, "truncated");
    // Cut exactly after an entry: no end-of-archive marker.
    let r = rejected(&good[..512 + 5120]);
    assert_eq!((r.filename.as_str(), r.type_detected.as_str()), ("native-build.tar", "truncated"));
    // A symlink out of the tree.
    let evil = tar_of(&files, &[("link", "../../etc/passwd")]);
    let r = rejected(&evil);
    assert_eq!((r.filename.as_str(), r.type_expected.as_str()), ("link", "regular file"));
    // A character device.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_size(0);
    h.set_path("dev/null").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let r = rejected(&b.into_inner().unwrap());
    assert_eq!(r.type_detected, "character device");
}

#[test]
fn play_agrees_with_the_model_and_counts_stalls() {
    use crate::play::{play, PlayOptions};
    use crate::seq;
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let mut v = BTreeMap::new();
    v.insert("a/unused.pak".to_string(), noise(7, 900_000));
    v.insert("z/boot.bin".to_string(), noise(8, 200_000));
    let p = params();
    let ing = ingest(&tar_of(&v, &[])[..], &store, &p, &mut |_| {}).unwrap();
    let trace = seq::Trace {
        app_name: "A".into(),
        build_id: 1,
        dxf_name: None,
        paths: vec!["z/boot.bin".into(), "a/unused.pak".into()],
        events: vec![[0, 0, 0, 200_000], [2_000, 1, 100_000, 50_000]],
    };
    let b = 100_000.0; // 100 kB/s: the image takes 11 s
    let acc = seq::accesses(&ing.tree, &trace);
    for (name, sequence) in [
        ("tar", Vec::new()),
        (
            "trained",
            seq::optimize(&ing.tree, std::slice::from_ref(&acc), &seq::SeqParams::default()),
        ),
    ] {
        let dir = t.0.join(name);
        write_image(&ing.tree, &store, &sequence, &meta(1), &dir, &p, None, &Default::default())
            .unwrap();
        let order = crate::image::stream_order(&ing.tree, &sequence);
        let model = seq::preload_bytes(&seq::layout(&ing.tree, &order), &acc, b);
        let r = play(
            &DirSource(dir.clone()),
            &trace,
            &PlayOptions { bytes_per_s: b, start_after: None, stream: true, realtime: false },
        )
        .unwrap();
        assert!(
            r.preload_bytes.abs_diff(model) <= 1,
            "{name}: play {} vs model {model}",
            r.preload_bytes
        );
        assert_eq!((r.events, r.events_mapped, r.stalls), (2, 2, 0));
        assert_eq!(r.verified_bytes, r.total_bytes);
        // Starting with nothing downloaded waits exactly the time-to-play in stalls.
        let early = play(
            &DirSource(dir),
            &trace,
            &PlayOptions { bytes_per_s: b, start_after: Some(0), stream: false, realtime: false },
        )
        .unwrap();
        assert!(early.stalls >= 1);
        assert!(
            (early.stall_seconds - r.time_to_play_s).abs() < 1e-6,
            "{name}: {early:?} vs {r:?}"
        );
    }
    let tar = play(
        &DirSource(t.0.join("tar")),
        &trace,
        &PlayOptions { bytes_per_s: b, start_after: None, stream: false, realtime: false },
    )
    .unwrap();
    let trained = play(
        &DirSource(t.0.join("trained")),
        &trace,
        &PlayOptions { bytes_per_s: b, start_after: None, stream: false, realtime: false },
    )
    .unwrap();
    assert!(trained.preload_bytes * 3 < tar.preload_bytes, "{trained:?} vs {tar:?}");
    // Paced in real time, the stream takes as long as the line needs for it.
    let fast = 8_000_000.0;
    let paced = play(
        &DirSource(t.0.join("trained")),
        &trace,
        &PlayOptions { bytes_per_s: fast, start_after: None, stream: true, realtime: true },
    )
    .unwrap();
    assert!(paced.stream_seconds >= 0.95 * paced.total_bytes as f64 / fast, "{paced:?}");
    assert!(trained.acceleration.unwrap() > tar.acceleration.unwrap());
}

/// Files under `dir`, recursively: (named chunk files, temporary files).
fn store_files(dir: &Path) -> (usize, usize) {
    let (mut named, mut tmp) = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            let (n, t) = store_files(&e.path());
            named += n;
            tmp += t;
        } else if e.file_name().to_string_lossy().starts_with('.') {
            tmp += 1;
        } else {
            named += 1;
        }
    }
    (named, tmp)
}

#[test]
fn ingest_names_its_chunks_only_when_the_archive_is_whole() {
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    let mut files = BTreeMap::new();
    files.insert("a.bin".to_string(), noise(11, 300_000));
    files.insert("b.bin".to_string(), noise(12, 200_000));
    let good = tar_of(&files, &[]);
    // Cut inside b.bin: a.bin's chunks were cut and written, but nothing is kept.
    let cut = &good[..good.len() - 1024 - 50_000];
    assert!(matches!(ingest(cut, &store, &p, &mut |_| {}), Err(IngestError::Rejected(_))));
    assert_eq!(store_files(&t.0.join("store")), (0, 0), "a refused archive leaves no chunk behind");
    let ing = ingest(&good[..], &store, &p, &mut |_| {}).unwrap();
    assert_eq!(store_files(&t.0.join("store")), (ing.tree.chunks.len(), 0));
    assert_eq!(ing.new_chunks, ing.tree.chunks.len());
    for (h, info) in &ing.tree.chunks {
        assert_eq!(store.get_raw(h, info.raw as usize).unwrap().len(), info.raw as usize);
        assert_eq!(store.info(h), Some((info.stored, info.z)));
    }
    // Again: every chunk is found, none is written.
    let again = ingest(&good[..], &store, &p, &mut |_| {}).unwrap();
    assert_eq!(again.new_chunks, 0);
    assert_eq!(store_files(&t.0.join("store")), (ing.tree.chunks.len(), 0));
}

/// The writers count their work for whoever follows it from another thread: the image the
/// bytes of its packs, which `pack_ends` foretells pack by pack; a patch every byte of the
/// newer build once, so patches from several older builds into one counter add up to
/// their newer builds' sizes.
#[test]
fn writers_count_their_work() {
    use crate::image::{pack_ends, stream_order};
    use std::sync::atomic::{AtomicU64, Ordering};
    let t = Tmp::new();
    let store = ChunkStore::open(&t.0.join("store")).unwrap();
    let p = params();
    let mut v1 = BTreeMap::new();
    v1.insert("bin/game.exe".to_string(), noise(11, 600_000));
    v1.insert("data/level1.pak".to_string(), b"level data ".repeat(60_000));
    v1.insert("data/empty.txt".to_string(), Vec::new());
    let mut v2 = v1.clone();
    v2.get_mut("bin/game.exe").unwrap()[300_000] ^= 1;
    v2.insert("data/new.bin".into(), noise(12, 200_000));
    let a = ingest(&tar_of(&v1, &[])[..], &store, &p, &mut |_| {}).unwrap();
    let b = ingest(&tar_of(&v2, &[])[..], &store, &p, &mut |_| {}).unwrap();

    let done = AtomicU64::new(0);
    let img =
        write_image(&b.tree, &store, &[], &meta(2), &t.0.join("img"), &p, None, &done).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), img.pack_bytes);
    let ends = pack_ends(&b.tree, &stream_order(&b.tree, &[]), p.pack_limit);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.0.join("img/manifest.json")).unwrap()).unwrap();
    let written: Vec<u64> = manifest["packs"]
        .as_array()
        .unwrap()
        .iter()
        .scan(0, |sum, pk| {
            *sum += pk["sizeBytes"].as_u64().unwrap();
            Some(*sum)
        })
        .collect();
    assert!(written.len() > 3, "packs split at the limit: {written:?}");
    assert_eq!(ends, written);

    // Build 2 from build 1 (one file edited, one new, one unchanged), then from an empty
    // build: the counter goes on from where the first patch left it.
    let done = AtomicU64::new(0);
    let pm = |from| PatchMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        from_build_id: from,
        to_build_id: 2,
        from_dxf_name: String::new(),
        to_dxf_name: img.dxf_name.clone(),
        created: "2026-01-01T00:00:00Z".into(),
    };
    let known = FileHashes::default();
    write_patch(&a.tree, &b.tree, &store, &pm(1), &t.0.join("pat1"), &p, &known, &done).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), b.tree.size_bytes());
    let files = b.tree.entries.iter().filter(|e| e.kind == crate::tree::Kind::File).count();
    assert_eq!(known.len(), files, "the first patch leaves every file's hash to the next");
    let empty = crate::tree::Tree::default();
    write_patch(&empty, &b.tree, &store, &pm(0), &t.0.join("pat0"), &p, &known, &done).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 2 * b.tree.size_bytes());
    // With the hashes known, the same patch comes out byte for byte, and the counter still
    // counts the unchanged file it no longer reads.
    write_patch(&a.tree, &b.tree, &store, &pm(1), &t.0.join("pat1b"), &p, &known, &done).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 3 * b.tree.size_bytes());
    let listing = |d: &str| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(t.0.join(d))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing("pat1"), listing("pat1b"));
}
