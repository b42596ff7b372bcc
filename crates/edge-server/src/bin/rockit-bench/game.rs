//! A seeded synthetic game with structure (`rockit-bench gen --layout game`) and seeded play
//! sessions on it (`rockit-bench traces`). The model is documented in `docs/SEQUENCE.md`.
//!
//! The game: executables and boot data read at start (with GPU-vendor shader caches and
//! per-language text and fonts), a menu, intro and level movies, shared asset paks that
//! levels draw regions from, per-language voice paks, N level paks (a header, an index, a
//! core read at load — textures by quality setting — and cells streamed as the player
//! progresses, with optional side cells), and content never read in play (redistributables,
//! extras, credits). `layout.json` (written next to the game directory, as
//! `<dir>.layout.json`) records every region; the trace synthesiser reads only that.

use crate::gen::{content, Content, Rng};
use edge_engine::seq::Trace;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A byte range of a file, serialized as `[path, offset, length]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Region(pub String, pub u64, pub u64);

/// One level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Level {
    /// The level's pak.
    pub pak: String,
    /// Header and index, read first at load.
    pub head: Vec<Region>,
    /// Core data sections (geometry, scripts, navigation), read at load.
    pub core_data: Vec<Region>,
    /// Core texture sections, read at load: whole at high quality, the last 35 % (the mip
    /// tail) at low quality.
    pub core_tex: Vec<Region>,
    /// Regions of the shared paks the level uses, read at load.
    pub shared: Vec<Region>,
    /// The level's bark bank in the English voice pak (same offsets in every voice pak).
    pub barks: Region,
    /// Cells along the main path, streamed as the player progresses.
    pub cells: Vec<Cell>,
    /// The level's cutscene movie.
    pub movie: Region,
}

/// One cell of a level's main path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// The cell's data in the level pak.
    pub main: Region,
    /// Optional side areas next to it (each visited by some players).
    pub side: Vec<Region>,
    /// Scripted voice lines heard there (English voice pak offsets).
    pub voice: Vec<Region>,
}

/// A language.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Language {
    pub code: String,
    /// Share of players.
    pub share: f64,
    /// Its text pak (read whole at boot).
    pub text: Region,
    /// The voice pak it plays (its own, or English with subtitles).
    pub voice: String,
}

/// The description of a generated game (`<dir>.layout.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameLayout {
    pub format: String,
    pub version: u32,
    pub seed: u64,
    pub size_bytes: u64,
    /// Every file: path, size, role, content.
    pub files: Vec<FileInfo>,
    /// Read by every session at start, in order: executable pages, libraries, config.
    pub boot: Vec<Region>,
    /// Shader cache: the common part and one part per GPU vendor (nvidia, amd, intel).
    pub shaders_common: Vec<Region>,
    pub shaders_vendor: Vec<Vec<Region>>,
    /// UI and Latin fonts read at boot; the CJK font part (Japanese players).
    pub ui: Vec<Region>,
    pub fonts_cjk: Region,
    pub languages: Vec<Language>,
    pub intro: Region,
    pub menu: Vec<Region>,
    pub menu_music: Region,
    /// Shared assets every level needs, read at the first level load.
    pub shared_common: Vec<Region>,
    pub levels: Vec<Level>,
}

/// A file's description in the layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub role: String,
    pub content: String,
}

/// Content of a file part.
#[derive(Clone, Copy)]
enum Fill {
    One(Content),
    /// Blocks of 64 KiB–1 MiB, each text with this probability (in %), else noise.
    Mixed(u64),
}

impl Fill {
    fn name(self) -> &'static str {
        match self {
            Fill::One(Content::Noise) => "incompressible",
            Fill::One(Content::Text) => "text",
            Fill::One(Content::Code) => "code",
            Fill::Mixed(_) => "mixed",
        }
    }
}

/// A file being laid out: its parts, written at the end.
struct Pak {
    path: String,
    role: &'static str,
    parts: Vec<(u64, Fill)>,
    len: u64,
}

impl Pak {
    fn new(path: impl Into<String>, role: &'static str) -> Pak {
        Pak { path: path.into(), role, parts: Vec::new(), len: 0 }
    }
    fn add(&mut self, len: u64, fill: Fill) -> Region {
        let len = len.max(1);
        let r = Region(self.path.clone(), self.len, len);
        self.parts.push((len, fill));
        self.len += len;
        r
    }
    fn whole(&self) -> Region {
        Region(self.path.clone(), 0, self.len)
    }
}

/// Zipf-distributed index in `0..n` (weight `1/(k+1)^s`).
pub fn zipf(rng: &mut Rng, n: usize, s: f64) -> usize {
    let w: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = w.iter().sum();
    let mut x = unit(rng) * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    n - 1
}

/// SplitMix64: decorrelates nearby seeds.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1).
pub fn unit(rng: &mut Rng) -> f64 {
    (rng.next() >> 11) as f64 / (1u64 << 53) as f64
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// Exponential with this mean.
fn expo(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - unit(rng)).ln()
}

/// Random size in `[lo, hi]` scaled by `s`, at least 4 KiB.
fn sz(rng: &mut Rng, lo: u64, hi: u64, s: f64) -> u64 {
    (((lo + rng.below(hi - lo + 1)) as f64 * s) as u64).max(4096)
}

/// Cuts `total` bytes into sections of `lo..=hi` (scaled) bytes.
fn sections(rng: &mut Rng, total: u64, lo: u64, hi: u64, s: f64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = sz(rng, lo, hi, s).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// Regions covering about `share` of `r`, as segments of `lo..=hi` bytes at random places,
/// in file order.
fn sample(rng: &mut Rng, r: &Region, share: f64, lo: u64, hi: u64, s: f64) -> Vec<Region> {
    let mut out = Vec::new();
    let mut at = r.1;
    let end = r.1 + r.2;
    while at < end {
        let n = sz(rng, lo, hi, s).min(end - at);
        if unit(rng) < share {
            out.push(Region(r.0.clone(), at, n));
        }
        at += n;
    }
    out
}

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// Generates the game under `dir` (about `total` bytes) and writes `<dir>.layout.json`.
pub fn generate(dir: &Path, total: u64, seed: u64, levels: usize) -> io::Result<GameLayout> {
    let mut rng = Rng::new(seed ^ 0x6a09_e667_f3bc_c908);
    let s = total as f64 / (8u64 << 30) as f64;
    let f = |x: f64| ((total as f64 * x / 100.0) as u64).max(4096);
    let mut paks: Vec<Pak> = Vec::new();
    let mut boot = Vec::new();

    // Executables: the game and its libraries (pages read at start), installers never run.
    let mut exe = Pak::new("bin/game.exe", "executable");
    let head = exe.add(64 * KIB, Fill::One(Content::Code));
    let body = exe.add(f(1.0), Fill::One(Content::Code));
    boot.push(head);
    boot.extend(sample(&mut rng, &body, 0.6, 64 * KIB, 1024 * KIB, s));
    paks.push(exe);
    for (name, share, pct) in [
        ("engine", 0.7, 0.5),
        ("physics", 0.6, 0.075),
        ("audio", 0.6, 0.075),
        ("net", 0.6, 0.075),
        ("ui", 0.6, 0.075),
    ] {
        let mut dll = Pak::new(format!("bin/{name}.dll"), "library");
        let r = dll.add(f(pct), Fill::One(Content::Code));
        boot.extend(sample(&mut rng, &r, share, 64 * KIB, 512 * KIB, s));
        paks.push(dll);
    }
    for (name, pct) in [("vc_redist.x64.exe", 0.3), ("dxsetup.exe", 0.2)] {
        let mut p = Pak::new(format!("bin/redist/{name}"), "installer (never read)");
        p.add(f(pct), Fill::One(Content::Noise));
        paks.push(p);
    }
    // Config: small text files read whole at start.
    for i in 0..24 {
        let mut p = Pak::new(
            format!(
                "boot/config/{:02}-{}.ini",
                i,
                ["engine", "input", "render", "audio", "game", "ui"][i % 6]
            ),
            "config",
        );
        let n = 4 * KIB + rng.below(44 * KIB);
        boot.push(p.add(n, Fill::One(Content::Text)));
        paks.push(p);
    }
    // Shader cache: a common part and one per GPU vendor.
    let mut sh = Pak::new("boot/shaders.pak", "shader cache");
    let shaders_common = vec![sh.add(f(0.48), Fill::One(Content::Code))];
    let shaders_vendor = (0..3).map(|_| vec![sh.add(f(0.24), Fill::One(Content::Code))]).collect();
    paks.push(sh);
    let mut ui = Pak::new("boot/ui.pak", "UI");
    let mut ui_read = Vec::new();
    for n in sections(&mut rng, f(0.6), 512 * KIB, 4 * MIB, s) {
        let r = ui.add(n, Fill::Mixed(40));
        if unit(&mut rng) < 0.8 {
            ui_read.push(r);
        }
    }
    paks.push(ui);
    let mut fonts = Pak::new("boot/fonts.pak", "fonts");
    ui_read.push(fonts.add(f(0.075), Fill::One(Content::Noise)));
    let fonts_cjk = fonts.add(f(0.15), Fill::One(Content::Noise));
    fonts.add(f(0.025), Fill::One(Content::Noise));
    paks.push(fonts);

    // Languages: text for all, voice for three (the others play English with subtitles).
    let langs = [
        ("en", 0.50, true),
        ("de", 0.15, true),
        ("fr", 0.15, true),
        ("es", 0.12, false),
        ("ja", 0.08, false),
    ];
    let mut languages = Vec::new();
    for (code, share, _) in langs {
        let mut p = Pak::new(format!("loc/{code}/text.pak"), "localized text");
        p.add(f(0.15), Fill::One(Content::Text));
        let voice = if langs.iter().any(|l| l.0 == code && l.2) {
            format!("loc/{code}/voice.pak")
        } else {
            "loc/en/voice.pak".into()
        };
        languages.push(Language { code: code.into(), share, text: p.whole(), voice });
        paks.push(p);
    }

    // Menu and movies.
    let mut menu = Pak::new("menu/menu.pak", "menu");
    let mut menu_read = Vec::new();
    for n in sections(&mut rng, f(1.0), 512 * KIB, 6 * MIB, s) {
        let r = menu.add(n, Fill::Mixed(30));
        if unit(&mut rng) < 0.7 {
            menu_read.push(r);
        }
    }
    paks.push(menu);
    let mut music = Pak::new("menu/music.ogg", "menu music (streamed)");
    music.add(f(0.2), Fill::One(Content::Noise));
    let menu_music = music.whole();
    paks.push(music);
    let mut intro = Pak::new("movies/intro.bik", "intro movie (streamed)");
    intro.add(f(1.2), Fill::One(Content::Noise));
    let intro_r = intro.whole();
    paks.push(intro);
    let mut credits = Pak::new("movies/credits.bik", "credits movie (never reached)");
    credits.add(f(0.8), Fill::One(Content::Noise));
    paks.push(credits);

    // Shared assets: a pool of regions; every level uses a common set and a Zipf-skewed
    // draw of the rest (popular regions are shared by many levels).
    let mut pool = Vec::new();
    for (name, pct, fill) in [
        ("textures00", 3.5, Fill::Mixed(10)),
        ("textures01", 3.5, Fill::Mixed(10)),
        ("textures02", 3.5, Fill::Mixed(10)),
        ("textures03", 3.5, Fill::Mixed(10)),
        ("sounds", 3.5, Fill::One(Content::Noise)),
        ("anims", 2.5, Fill::Mixed(60)),
    ] {
        let mut p = Pak::new(format!("shared/{name}.pak"), "shared assets");
        for n in sections(&mut rng, f(pct), MIB, 6 * MIB, s) {
            pool.push(p.add(n, fill));
        }
        paks.push(p);
    }
    // A seeded permutation of the pool: popularity rank → region.
    for k in (1..pool.len()).rev() {
        let j = rng.below(k as u64 + 1) as usize;
        pool.swap(k, j);
    }
    let mut shared_common = Vec::new();
    let mut used = 0u64;
    let mut next = 0;
    while used < f(0.5) && next < pool.len() {
        used += pool[next].2;
        shared_common.push(pool[next].clone());
        next += 1;
    }
    let rest = &pool[next..];

    // Levels, and the voice pak whose structure follows them.
    let mut voice_parts: Vec<(u64, Fill)> = Vec::new();
    let mut voice_len = 0u64;
    let mut voice_add = |len: u64| {
        let r = Region("loc/en/voice.pak".into(), voice_len, len);
        voice_parts.push((len, Fill::One(Content::Noise)));
        voice_len += len;
        r
    };
    voice_add(sz(&mut rng, 2 * MIB, 4 * MIB, s)); // menu and intro lines
    let weights: Vec<f64> = (0..levels).map(|_| uniform(&mut rng, 0.7, 1.3)).collect();
    let level_share = 100.0 - 39.3 - 0.2 * levels as f64;
    let wsum: f64 = weights.iter().sum();
    let mut level_descs = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let size = f(level_share * w / wsum);
        let mut p = Pak::new(format!("levels/level{:02}.pak", i + 1), "level");
        let head = vec![
            p.add((64.0 * KIB as f64 * s) as u64, Fill::One(Content::Text)),
            p.add(size / 250, Fill::One(Content::Text)),
        ];
        let mut core_data = Vec::new();
        let mut core_tex = Vec::new();
        for n in sections(&mut rng, size * 26 / 100, 2 * MIB, 10 * MIB, s) {
            if unit(&mut rng) < 0.45 {
                core_data.push(p.add(n, Fill::Mixed(60)));
            } else {
                core_tex.push(p.add(n, Fill::One(Content::Noise)));
            }
        }
        let mut cells = Vec::new();
        while p.len < size {
            let main = p.add(sz(&mut rng, 3 * MIB, 9 * MIB, s), Fill::Mixed(25));
            let side = (0..rng.below(3))
                .map(|_| p.add(sz(&mut rng, 2 * MIB, 6 * MIB, s), Fill::Mixed(25)))
                .collect();
            let voice = (0..1 + rng.below(3))
                .map(|_| voice_add(sz(&mut rng, 60 * KIB, 400 * KIB, s)))
                .collect();
            cells.push(Cell { main, side, voice });
        }
        let barks = voice_add(sz(&mut rng, 2 * MIB, 4 * MIB, s));
        let mut shared = Vec::new();
        let mut want = (f(0.8) as f64 * uniform(&mut rng, 0.6, 1.4)) as u64;
        let mut picked = vec![false; rest.len()];
        while want > 0 && !rest.is_empty() && picked.iter().any(|p| !p) {
            let k = zipf(&mut rng, rest.len(), 0.8);
            if !picked[k] {
                picked[k] = true;
                want = want.saturating_sub(rest[k].2);
            }
        }
        // Loaders read a level's dependencies in pak order.
        for (k, r) in rest.iter().enumerate() {
            if picked[k] {
                shared.push(r.clone());
            }
        }
        shared.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut movie = Pak::new(format!("movies/level{:02}.bik", i + 1), "level movie (streamed)");
        movie.add(f(0.2), Fill::One(Content::Noise));
        level_descs.push(Level {
            pak: p.path.clone(),
            head,
            core_data,
            core_tex,
            shared,
            barks,
            cells,
            movie: movie.whole(),
        });
        paks.push(p);
        paks.push(movie);
    }
    for code in langs.iter().filter(|l| l.2).map(|l| l.0) {
        let mut p = Pak::new(format!("loc/{code}/voice.pak"), "localized voice");
        for (n, fill) in &voice_parts {
            p.add(*n, *fill);
        }
        paks.push(p);
    }
    // Extras never read in play.
    for i in 0..8 {
        let mut p = Pak::new(format!("extras/soundtrack/{:02}.flac", i + 1), "extras (never read)");
        p.add(f(1.5 / 8.0), Fill::One(Content::Noise));
        paks.push(p);
    }
    // The art book takes what is left of the requested size (at least 0.5 %), so that
    // the game is at least `total` bytes.
    let so_far: u64 = paks.iter().map(|p| p.len).sum();
    let mut p = Pak::new("extras/artbook.pdf", "extras (never read)");
    p.add(total.saturating_sub(so_far).max(f(0.5)), Fill::One(Content::Noise));
    paks.push(p);

    // Write everything, in path order, content seeded per file.
    paks.sort_by(|a, b| a.path.cmp(&b.path));
    let mut files = Vec::new();
    let mut buf = Vec::with_capacity(2 << 20);
    for (k, pak) in paks.iter().enumerate() {
        let path = dir.join(&pak.path);
        fs::create_dir_all(path.parent().expect("parent"))?;
        let mut out = io::BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        let mut frng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(k as u64 + 1));
        let mut kinds = Vec::new();
        for &(len, fill) in &pak.parts {
            kinds.push(fill.name());
            let mut left = len;
            while left > 0 {
                let (n, kind) = match fill {
                    Fill::One(c) => (left.min(MIB), c),
                    Fill::Mixed(pct) => {
                        let n = left.min(64 * KIB + frng.below(960 * KIB));
                        (n, if frng.below(100) < pct { Content::Text } else { Content::Noise })
                    }
                };
                buf.clear();
                content(&mut frng, kind, n as usize, &mut buf);
                out.write_all(&buf)?;
                left -= n;
            }
        }
        out.flush()?;
        kinds.sort_unstable();
        kinds.dedup();
        files.push(FileInfo {
            path: pak.path.clone(),
            size: pak.len,
            role: pak.role.into(),
            content: kinds.join("+"),
        });
    }
    let layout = GameLayout {
        format: "rockit-bench-game".into(),
        version: 1,
        seed,
        size_bytes: files.iter().map(|f| f.size).sum(),
        files,
        boot,
        shaders_common,
        shaders_vendor,
        ui: ui_read,
        fonts_cjk,
        languages,
        intro: intro_r,
        menu: menu_read,
        menu_music,
        shared_common,
        levels: level_descs,
    };
    fs::write(layout_path(dir), serde_json::to_vec_pretty(&layout).map_err(io::Error::other)?)?;
    Ok(layout)
}

/// `<dir>.layout.json`.
pub fn layout_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".layout.json");
    PathBuf::from(p)
}

/// Reads `<dir>.layout.json`.
pub fn read_layout(dir: &Path) -> io::Result<GameLayout> {
    let p = layout_path(dir);
    let data =
        fs::read(&p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    serde_json::from_slice(&data).map_err(io::Error::other)
}

/// One simulated play session being recorded.
struct Session {
    rng: Rng,
    /// Game time, ms.
    t: f64,
    /// Machine speed factor (1 = reference): disk and CPU.
    speed: f64,
    paths: Vec<String>,
    index: HashMap<String, u64>,
    events: Vec<[u64; 4]>,
}

impl Session {
    fn path(&mut self, p: &str) -> u64 {
        if let Some(&i) = self.index.get(p) {
            return i;
        }
        let n = self.paths.len() as u64;
        self.index.insert(p.to_string(), n);
        self.paths.push(p.to_string());
        n
    }

    /// Waits `lo..hi` ms; `cpu`: work that a faster machine does sooner.
    fn pause(&mut self, lo: f64, hi: f64, cpu: bool) {
        let ms = uniform(&mut self.rng, lo, hi);
        self.t += if cpu { ms / self.speed } else { ms };
    }

    /// Loads a region: reads of `piece` size (random in range) back to back, each costing
    /// disk time (350 MB/s at speed 1) and parsing time (6 ms/MiB at speed 1).
    fn load(&mut self, r: &Region, lo: u64, hi: u64) {
        let p = self.path(&r.0);
        let mut at = r.1;
        let end = r.1 + r.2;
        while at < end {
            let n = (lo + self.rng.below(hi - lo + 1)).min(end - at);
            self.events.push([self.t as u64, p, at, n]);
            let mib = n as f64 / MIB as f64;
            self.t +=
                (n as f64 / 350_000.0 + mib * 6.0 + uniform(&mut self.rng, 0.02, 0.3)) / self.speed;
            at += n;
        }
    }

    /// Loads several regions.
    fn load_all(&mut self, rs: &[Region], lo: u64, hi: u64) {
        for r in rs {
            self.load(r, lo, hi);
        }
    }

    /// Streams a region at `bytes_per_s` for up to `ms` (media playback): a read of
    /// `piece` bytes whenever the player's buffer needs it.
    fn stream(&mut self, r: &Region, bytes_per_s: f64, ms: f64, piece: u64) {
        let p = self.path(&r.0);
        let stop = self.t + ms;
        let mut at = r.1;
        let end = r.1 + r.2;
        while at < end && self.t < stop {
            let n = piece.min(end - at);
            self.events.push([self.t as u64, p, at, n]);
            at += n;
            self.t += n as f64 / bytes_per_s * 1000.0;
        }
    }
}

/// Synthesises session `k` of the seeded population on `game`.
/// `mixed_languages`: players speak the layout's languages in their shares (else all
/// play in the first, English).
/// `new_players`: the share of first sessions (first-run settings, the intro, then the
/// campaign's first level).
pub fn session(
    game: &GameLayout,
    seed: u64,
    k: u64,
    mixed_languages: bool,
    new_players: f64,
) -> Trace {
    let mut rng = Rng::new(splitmix(splitmix(seed) ^ k));
    // Who plays: machine speed, GPU vendor, language, quality, first session or not.
    let speed = (0.3 * (unit(&mut rng) + unit(&mut rng) + unit(&mut rng) - 1.5) * 2.0).exp();
    let vendor = match unit(&mut rng) {
        x if x < 0.6 => 0,
        x if x < 0.9 => 1,
        _ => 2,
    };
    let mut x = unit(&mut rng);
    let mut lang = &game.languages[0];
    if mixed_languages {
        for l in &game.languages {
            if x < l.share {
                lang = l;
                break;
            }
            x -= l.share;
        }
    }
    let high_quality = unit(&mut rng) < 0.65;
    let first_time = unit(&mut rng) < new_players;
    let mut s = Session {
        rng,
        t: 0.0,
        speed,
        paths: Vec::new(),
        index: HashMap::new(),
        events: Vec::new(),
    };
    let r = &mut s;

    // Boot: process start, executable pages and libraries, engine init, config, shaders,
    // UI and fonts, text.
    r.pause(50.0, 200.0, false);
    r.load_all(&game.boot, 64 * KIB, 512 * KIB);
    r.pause(300.0, 1200.0, true);
    r.load_all(&game.shaders_common, 256 * KIB, 2 * MIB);
    r.load_all(&game.shaders_vendor[vendor], 256 * KIB, 2 * MIB);
    r.pause(500.0, 2500.0, true);
    r.load_all(&game.ui, 256 * KIB, 2 * MIB);
    if lang.code == "ja" {
        r.load(&game.fonts_cjk, 256 * KIB, 2 * MIB);
    }
    r.load(&lang.text, 64 * KIB, MIB);
    r.pause(200.0, 800.0, false);
    // The menu, with its music streaming: a new player goes through first-run settings
    // (15–45 s), a returning one picks what to play (5 s + 15 s on average).
    r.load_all(&game.menu, 256 * KIB, 2 * MIB);
    let dwell = if first_time {
        uniform(&mut r.rng, 15_000.0, 45_000.0)
    } else {
        (5000.0 + expo(&mut r.rng, 15_000.0)).min(120_000.0)
    };
    r.stream(&game.menu_music, 24_000.0, dwell, 256 * KIB);
    // New game: the intro movie, watched whole or skipped after a few seconds.
    if first_time {
        let full = game.intro.2 as f64 / 1.2e6 * 1000.0;
        let ms = if unit(&mut r.rng) < 0.5 {
            full
        } else {
            uniform(&mut r.rng, 3000.0, 20000.0).min(full)
        };
        r.stream(&game.intro, 1.2e6, ms, 512 * KIB);
    }

    // Levels: 1–3, the first by popularity (Zipf), then mostly the next one.
    let n = game.levels.len();
    let count = match unit(&mut r.rng) {
        x if x < 0.45 => 1,
        x if x < 0.80 => 2,
        _ => 3,
    };
    let mut played: Vec<usize> = Vec::new();
    for i in 0..count.min(n) {
        // A new player starts the campaign; others continue or pick a level.
        let mut lv = if i == 0 && first_time {
            0
        } else if i > 0 && unit(&mut r.rng) < 0.65 {
            played[i - 1] + 1
        } else {
            zipf(&mut r.rng, n, 1.0)
        };
        while lv >= n || played.contains(&lv) {
            lv = zipf(&mut r.rng, n, 1.0);
        }
        played.push(lv);
        let level = &game.levels[lv];
        // Loading screen.
        r.pause(300.0, 800.0, false);
        r.load_all(&level.head, 64 * KIB, MIB);
        if i == 0 {
            r.load_all(&game.shared_common, 256 * KIB, 2 * MIB);
        }
        r.load_all(&level.shared, 256 * KIB, 2 * MIB);
        r.load_all(&level.core_data, 256 * KIB, 2 * MIB);
        for t in &level.core_tex {
            if high_quality {
                r.load(t, 256 * KIB, 2 * MIB);
            } else {
                // The mip tail: the last 35 % (as a borrowed region of the same file).
                let tail = Region(t.0.clone(), t.1 + t.2 * 65 / 100, t.2 - t.2 * 65 / 100);
                r.load(&tail, 256 * KIB, 2 * MIB);
            }
        }
        r.load(&voice_region(&level.barks, lang), 256 * KIB, MIB);
        r.pause(500.0, 2000.0, true);
        if unit(&mut r.rng) < 0.4 {
            let ms = uniform(&mut r.rng, 5000.0, 25000.0);
            r.stream(&level.movie, 1.2e6, ms, 512 * KIB);
        }
        // Play: cells along the main path as the player progresses; side areas sometimes.
        let play = (30_000.0 + expo(&mut r.rng, 70_000.0)).min(400_000.0);
        let per_cell = uniform(&mut r.rng, 15_000.0, 35_000.0);
        let start = r.t;
        for (c, cell) in level.cells.iter().enumerate() {
            let at = start + c as f64 * per_cell * uniform(&mut r.rng, 0.8, 1.2);
            if at > start + play {
                break;
            }
            r.t = r.t.max(at);
            r.load(&cell.main, 128 * KIB, MIB);
            for v in &cell.voice {
                r.load(&voice_region(v, lang), 64 * KIB, 512 * KIB);
            }
            for side in &cell.side {
                if unit(&mut r.rng) < 0.4 {
                    r.load(side, 128 * KIB, MIB);
                }
            }
        }
        r.t = r.t.max(start + play);
        r.pause(2000.0, 8000.0, false);
    }
    Trace {
        app_name: "BenchGame".into(),
        build_id: 1,
        dxf_name: None,
        paths: s.paths,
        events: s.events,
    }
}

/// The same voice region in the language's voice pak.
fn voice_region(r: &Region, lang: &Language) -> Region {
    Region(lang.voice.clone(), r.1, r.2)
}
