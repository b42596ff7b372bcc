//! Seeded synthetic game builds of a realistic mix, and the build-to-build changes the
//! patch benchmark measures.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A small, fast, seeded generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "player", "enemy", "spawn", "health", "weapon", "texture", "shader", "vertex", "quest",
    "dialog", "castle", "forest", "river", "dragon", "sword", "shield", "potion", "level", "score",
    "mesh", "anim", "bone", "light", "shadow", "sound", "music",
];

/// Kinds of content in a game build.
#[derive(Clone, Copy)]
pub(crate) enum Content {
    /// Compressed assets (textures, audio, video): incompressible.
    Noise,
    /// Scripts, configs, level data: compressible text.
    Text,
    /// Executables and libraries: code-like, partly compressible.
    Code,
}

pub(crate) fn content(rng: &mut Rng, kind: Content, n: usize, out: &mut Vec<u8>) {
    match kind {
        Content::Noise => {
            let start = out.len();
            out.resize(start + n, 0);
            rng.fill(&mut out[start..]);
        }
        Content::Text => {
            while out.len() < n {
                let w = WORDS[rng.below(WORDS.len() as u64) as usize];
                out.extend_from_slice(w.as_bytes());
                out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
                if rng.below(5) == 0 {
                    out.extend_from_slice(format!("{} ", rng.below(10_000)).as_bytes());
                }
            }
            out.truncate(n);
        }
        Content::Code => {
            // Instruction-like: a small alphabet of opcodes with random operands.
            while out.len() < n {
                let op = [0x48u8, 0x89, 0x8b, 0xe8, 0x0f, 0xff, 0xc3, 0x90][rng.below(8) as usize];
                out.push(op);
                let k = rng.below(5) as usize;
                for _ in 0..k {
                    out.push(if rng.below(3) == 0 { rng.next() as u8 } else { 0 });
                }
            }
            out.truncate(n);
        }
    }
}

/// Writes a file of `n` bytes of `kind` content.
fn write_file(rng: &mut Rng, path: &Path, kind: Content, n: usize) -> io::Result<()> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p)?;
    }
    let mut f = io::BufWriter::new(fs::File::create(path)?);
    let mut left = n;
    let mut buf = Vec::with_capacity(1 << 20);
    while left > 0 {
        let k = left.min(1 << 20);
        buf.clear();
        content(rng, kind, k, &mut buf);
        f.write_all(&buf)?;
        left -= k;
    }
    f.flush()
}

/// Generates a build of about `total` bytes under `dir`: executables (10 %), compressible
/// data (20 %), incompressible assets (45 %) and pack files of mixed blocks (25 %).
pub fn generate(dir: &Path, total: u64, seed: u64) -> io::Result<Vec<PathBuf>> {
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    let budget = |share: f64| (total as f64 * share) as u64;
    // Executables: a few large binaries and many small libraries.
    let mut left = budget(0.10);
    let mut i = 0;
    while left > 0 {
        let n =
            if i < 2 { left.min(total / 25 + 1) } else { left.min(64 * 1024 + rng.below(2 << 20)) };
        let p = dir.join(if i == 0 {
            "bin/game.exe".to_string()
        } else {
            format!("bin/lib{i:03}.dll")
        });
        write_file(&mut rng, &p, Content::Code, n as usize)?;
        files.push(p);
        left -= n;
        i += 1;
    }
    // Compressible data: configs, scripts, levels; many small files.
    let mut left = budget(0.20);
    let mut i = 0;
    while left > 0 {
        let n = left.min(if rng.below(10) == 0 { 4 << 20 } else { 2048 + rng.below(256 << 10) });
        let p = dir.join(format!("data/levels/{:02}/level{i:04}.dat", i % 16));
        write_file(&mut rng, &p, Content::Text, n as usize)?;
        files.push(p);
        left -= n;
        i += 1;
    }
    // Incompressible assets: textures and audio, a wide size range.
    let mut left = budget(0.45);
    let mut i = 0;
    while left > 0 {
        let n = left.min(if rng.below(8) == 0 { 32 << 20 } else { 16 << 10 | rng.below(3 << 20) });
        let p = dir.join(format!(
            "assets/{}/{:03}/asset{i:05}.bin",
            ["textures", "audio", "video"][i % 3],
            i % 50
        ));
        write_file(&mut rng, &p, Content::Noise, n as usize)?;
        files.push(p);
        left -= n;
        i += 1;
    }
    // Pack files: big archives of mixed blocks (what a reorder scenario permutes).
    let mut left = budget(0.25);
    let mut i = 0;
    while left > 0 {
        let n = left.min(256 << 20);
        let p = dir.join(format!("packs/pack{i:02}.pak"));
        fs::create_dir_all(p.parent().expect("parent"))?;
        let mut f = io::BufWriter::new(fs::File::create(&p)?);
        let mut written = 0u64;
        let mut buf = Vec::new();
        while written < n {
            let k = (n - written).min(64 << 10 | rng.below(1 << 20));
            buf.clear();
            let kind = if rng.below(3) == 0 { Content::Text } else { Content::Noise };
            content(&mut rng, kind, k as usize, &mut buf);
            f.write_all(&buf)?;
            written += k;
        }
        f.flush()?;
        files.push(p);
        left -= n;
        i += 1;
    }
    Ok(files)
}

/// Every regular file under `dir`, sorted.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Applies one change scenario to a copy of a build already at `dir` (in place).
pub fn mutate(dir: &Path, scenario: &str, seed: u64) -> io::Result<String> {
    let mut rng = Rng::new(seed);
    let files = list(dir)?;
    match scenario {
        "rename" => {
            let mut n = 0;
            for (k, f) in files.iter().enumerate().filter(|(k, _)| k % 10 == 0) {
                let to = dir.join(format!(
                    "moved/{k:05}-{}",
                    f.file_name().and_then(|s| s.to_str()).unwrap_or("f")
                ));
                fs::create_dir_all(to.parent().expect("parent"))?;
                fs::rename(f, &to)?;
                n += 1;
            }
            Ok(format!("renamed {n} files"))
        }
        "edits" => {
            for _ in 0..200 {
                let f = &files[rng.below(files.len() as u64) as usize];
                let mut data = fs::read(f)?;
                if data.is_empty() {
                    continue;
                }
                let at = rng.below(data.len() as u64) as usize;
                for b in data.iter_mut().skip(at).take(16) {
                    *b ^= 0x5a;
                }
                fs::write(f, data)?;
            }
            Ok("200 small edits of 16 bytes in random files".into())
        }
        "insert" => {
            let mut big: Vec<(u64, &PathBuf)> =
                files.iter().map(|f| (fs::metadata(f).map(|m| m.len()).unwrap_or(0), f)).collect();
            big.sort_by_key(|b| std::cmp::Reverse(b.0));
            for (_, f) in big.iter().take(5) {
                let mut data = fs::read(f)?;
                for _ in 0..4 {
                    let at = rng.below(data.len() as u64) as usize;
                    let mut ins = vec![0u8; 1024 + rng.below(3072) as usize];
                    rng.fill(&mut ins);
                    data.splice(at..at, ins);
                }
                fs::write(f, data)?;
            }
            Ok("4 insertions of 1–4 KiB into each of the 5 largest files".into())
        }
        "reorder" => {
            let pack = files
                .iter()
                .find(|f| f.extension().and_then(|e| e.to_str()) == Some("pak"))
                .ok_or_else(|| io::Error::other("no pack file"))?;
            let data = fs::read(pack)?;
            let block = 256 << 10;
            let mut blocks: Vec<&[u8]> = data.chunks(block).collect();
            for k in (1..blocks.len()).rev() {
                let j = rng.below(k as u64 + 1) as usize;
                blocks.swap(k, j);
            }
            fs::write(pack, blocks.concat())?;
            Ok(format!("{} blocks of 256 KiB of {} shuffled", blocks.len(), pack.display()))
        }
        "newfiles" => {
            let total: u64 =
                files.iter().map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
            let mut left = total / 20;
            let mut i = 0;
            while left > 0 {
                let n = left.min(512 << 10 | rng.below(4 << 20));
                let kind = if i % 3 == 0 { Content::Text } else { Content::Noise };
                write_file(&mut rng, &dir.join(format!("dlc/new{i:04}.bin")), kind, n as usize)?;
                left -= n;
                i += 1;
            }
            Ok(format!("{i} new files, +5 % bytes"))
        }
        other => Err(io::Error::other(format!("unknown scenario {other}"))),
    }
}
