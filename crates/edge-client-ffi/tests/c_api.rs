//! The C interface as a C launcher uses it: a small C program compiled with `cc` against
//! `include/rockit_edge.h` and the shared library opens an image served over HTTP (written by
//! the engine), waits for the preload, reads a file in pieces while the image streams,
//! shows progress, is refused an unknown path with a message, mounts the build (FUSE) and
//! reads a file there with plain `fopen`/`fread`, unmounts, and closes.

use edge_engine::image::{write_image, ImageMeta};
use edge_engine::ingest::ingest;
use edge_engine::store::ChunkStore;
use edge_engine::{ChunkParams, Params};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "rockit_edge.h"

/* argv: manifest URL, cache directory, level copy, mount directory, music copy. */
int main(int argc, char **argv) {
    if (argc != 6) return 1;
    RockitRuntime *rt = rockit_open_url(argv[1], NULL, argv[2], 0);
    if (!rt) { fprintf(stderr, "open: %s\n", rockit_last_error()); return 2; }
    if (rockit_wait_preload(rt, 20000) != 1) { fprintf(stderr, "no preload\n"); return 3; }
    FILE *out = fopen(argv[3], "wb");
    static uint8_t buf[65536];
    uint64_t at = 0;
    for (;;) {
        int64_t n = rockit_read(rt, "data/level1.pak", at, buf, sizeof buf);
        if (n < 0) { fprintf(stderr, "read: %s\n", rockit_last_error()); return 4; }
        if (n == 0) break;
        fwrite(buf, 1, (size_t)n, out);
        at += (uint64_t)n;
    }
    fclose(out);
    if (rockit_read(rt, "no/such/file", 0, buf, 16) != -1) return 5;
    printf("missing: %s\n", rockit_last_error());
    RockitProgress p;
    if (rockit_progress(rt, &p) != 0) return 6;
    printf("progress: %llu of %llu, preload %d\n", (unsigned long long)p.verified_bytes,
           (unsigned long long)p.total_bytes, p.preload_reached);
    if (p.verified_bytes > p.total_bytes || p.total_bytes == 0) return 7;
    if (rockit_wait_preload(NULL, 0) != -1) return 8;

    /* The build as a directory: any code reads it with plain stdio while it streams. */
    if (rockit_mount(rt, "/no/such/directory") != NULL) return 10;
    printf("no directory: %s\n", rockit_last_error());
    RockitMount *m = rockit_mount(rt, argv[4]);
    if (!m) { fprintf(stderr, "mount: %s\n", rockit_last_error()); return 11; }
    char path[4096];
    snprintf(path, sizeof path, "%s/data/music.ogg", argv[4]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 12; }
    FILE *copy = fopen(argv[5], "wb");
    static uint8_t mine[65536];
    uint64_t off = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        /* The mount's bytes are the runtime's bytes. */
        if (rockit_read(rt, "data/music.ogg", off, mine, n) != (int64_t)n) return 13;
        if (memcmp(buf, mine, n) != 0) return 14;
        fwrite(buf, 1, n, copy);
        off += n;
    }
    if (ferror(f)) { perror("fread"); return 15; }
    fclose(f);
    fclose(copy);
    printf("mounted read: %llu bytes\n", (unsigned long long)off);
    if (rockit_unmount(m) != 0) return 16;
    /* Unmounted: the directory is empty again. */
    if (fopen(path, "rb") != NULL) return 17;
    if (rockit_unmount(NULL) != 0) return 18;
    return rockit_close(rt, 0) == 0 ? 0 : 9;
}
"#;

fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes an image of `files` into `dir`; returns its dxfName.
fn publish(dir: &Path, files: &[(&str, Vec<u8>)]) -> String {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("./{p}"), &d[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let params = Params {
        chunk: ChunkParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 },
        zstd_level: 3,
        pack_limit: 256 << 10,
    };
    let store = ChunkStore::open(&dir.with_extension("store")).unwrap();
    let tree = ingest(&tar[..], &store, &params, &mut |_| {}).unwrap().tree;
    let meta = ImageMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        build_id: 1,
        build_name: "1.0".into(),
        created: "2026-01-01T00:00:00Z".into(),
        traces: 0,
        generation: 0,
        preload: serde_json::json!({"100": 100_000}),
    };
    write_image(&tree, &store, &[], &meta, dir, &params, None, &Default::default())
        .unwrap()
        .dxf_name
}

/// Serves `root` over HTTP/1.1 with single byte ranges; returns its base URL.
fn serve(root: PathBuf) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = conn(c, &root);
            });
        }
    });
    url
}

fn conn(c: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut range = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = v.trim().split_once('-').unwrap();
                range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
            }
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let file = root.join(&target);
        if target.contains("..") || !file.is_file() {
            write!(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let mut f = std::fs::File::open(&file)?;
        let len = f.metadata()?.len();
        let (status, start, end) = match range {
            Some((a, b)) => ("206 Partial Content", a, b.min(len - 1)),
            None => ("200 OK", 0, len.saturating_sub(1)),
        };
        let n = if len == 0 { 0 } else { end - start + 1 };
        write!(w, "HTTP/1.1 {status}\r\nContent-Length: {n}\r\n")?;
        if range.is_some() {
            write!(w, "Content-Range: bytes {start}-{end}/{len}\r\n")?;
        }
        write!(w, "\r\n")?;
        f.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut f.take(n), &mut w)?;
    }
}

/// Whether `dir` is a mount point now.
fn mounted(dir: &Path) -> bool {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == canon.to_str())
}

/// Detaches a mount the C program left behind when it failed half-way.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if mounted(&self.0) {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.0).status();
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The directory holding the shared library cargo built for this test.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    [deps.clone(), deps.parent().unwrap().to_path_buf()]
        .into_iter()
        .find(|d| d.join("librockit_edge.so").is_file())
        .expect("librockit_edge.so next to the test")
}

#[test]
fn a_c_program_plays_an_image_through_the_shared_library() {
    let work = std::env::temp_dir().join(format!("rockit-ffi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let level = b"castle dragon torch ".repeat(30_000);
    let files = [
        ("bin/game.exe", noise(1, 200_000)),
        ("data/level1.pak", level.clone()),
        ("data/music.ogg", noise(2, 400_000)),
    ];
    let site = work.join("site");
    let dxf = publish(&site.join("img"), &files);
    assert!(!dxf.is_empty());
    let url = format!("{}/img/manifest.json", serve(site));

    let prog = work.join("launcher.c");
    std::fs::write(&prog, PROGRAM).unwrap();
    let (exe, lib) = (work.join("launcher"), lib_dir());
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let cc = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg(format!("-I{}", include.display()))
        .arg(&prog)
        .arg(format!("-L{}", lib.display()))
        .arg("-lrockit_edge")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(cc.status.success(), "cc: {}", String::from_utf8_lossy(&cc.stderr));

    let (out, mnt, music) = (work.join("level1.out"), work.join("mnt"), work.join("music.out"));
    std::fs::create_dir_all(&mnt).unwrap();
    let _guard = Unmount(mnt.clone());
    let run = Command::new(&exe)
        // The library this test was built with, not an older copy cargo's search path for
        // tests may name first (target/debug keeps what the last `cargo build` uplifted).
        .env("LD_LIBRARY_PATH", &lib)
        .arg(&url)
        .arg(work.join("cache"))
        .arg(&out)
        .arg(&mnt)
        .arg(&music)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "exit {:?}: {stdout} {}",
        run.status.code(),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), level, "the C program read the exact bytes");
    assert!(stdout.contains("missing: ") && stdout.contains("no/such/file"), "{stdout}");
    assert!(stdout.contains("preload 1"), "{stdout}");
    assert!(
        stdout.contains("no directory: /no/such/directory: not a directory"),
        "a mount on a missing directory is refused with a message: {stdout}"
    );
    assert!(stdout.contains("mounted read: 400000 bytes"), "{stdout}");
    assert_eq!(std::fs::read(&music).unwrap(), files[2].1, "fread from the mount: the exact bytes");
    assert!(!mounted(&mnt), "unmounted");
    let _ = std::fs::remove_dir_all(&work);
}
