//! The server's floor plan, read from its source as `openapi.rs` reads the routes: every
//! module belongs to a layer, and a module may use modules of its own layer or below,
//! never above; and no two modules use each other, directly or around a circle. The
//! layers, bottom up:
//!
//! 0. leaves: `util`, `names`, `perms`, `error`, `crypto`, `orgkey`, `dlauth`,
//!    `changelog`, `version`, `caller`, `ids`
//! 1. `config`
//! 2. `db`
//! 3. `store`
//! 4. `depot`, `metrics`, `passwords`
//! 5. `state`
//! 6. `targets`, `ratelimit`
//! 7. `domain` — the rules and operations the API, the console and the pipeline share
//! 8. `delivery` — the pipeline steps, learning, purges, event dispatch; `settle`
//! 9. `orgconf`, `worker`
//! 10. `http` — extract, call, render
//! 11. `console` — the web console's pages (it resolves callers as the API does)
//! 12. `server`

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("util", 0),
    ("names", 0),
    ("perms", 0),
    ("error", 0),
    ("crypto", 0),
    ("orgkey", 0),
    ("dlauth", 0),
    ("changelog", 0),
    ("version", 0),
    ("caller", 0),
    ("ids", 0),
    ("config", 1),
    ("db", 2),
    ("store", 3),
    ("depot", 4),
    ("metrics", 4),
    ("passwords", 4),
    ("state", 5),
    ("targets", 6),
    ("ratelimit", 6),
    ("domain", 7),
    ("delivery", 8),
    ("settle", 8),
    ("orgconf", 9),
    ("worker", 9),
    ("http", 10),
    ("console", 11),
    ("server", 12),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file of the library (binaries are not part of it), as its module path.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if prefix.is_empty() && name == "bin" {
                continue;
            }
            let mut pre = prefix.to_vec();
            pre.push(name);
            modules(&p, &pre, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if prefix.is_empty() && (stem == "lib" || stem == "main") {
                continue;
            }
            let mut m = prefix.to_vec();
            if stem != "mod" {
                m.push(stem.to_string());
            }
            out.insert(m, p);
        }
    }
}

/// The code of a file without comments and string literals (a doc comment naming a
/// module is no use of it).
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The modules `code` (of module `me`) names through `crate::…` and `super::…` paths, and
/// through bare paths into its own children, resolved to the deepest known module.
fn uses(me: &[String], code: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let start_ok = i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':');
        let rest = &code[i..];
        let (base, skip): (Vec<String>, usize) = if start_ok && rest.starts_with("crate::") {
            (Vec::new(), 7)
        } else if start_ok && rest.starts_with("super::") {
            // `super` of `a/b.rs` ([a, b]) and of `a/b/mod.rs` ([a, b]) is [a].
            let mut b = me.to_vec();
            b.pop();
            (b, 7)
        } else {
            i += 1;
            continue;
        };
        // Read `seg::seg::…` and `{a, b::c}` one level deep.
        let tail = &code[i + skip..];
        let mut paths: Vec<Vec<String>> = Vec::new();
        let first: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segs: Vec<String> =
            first.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        let after = &tail[first.len()..];
        if let Some(braced) = after.strip_prefix('{') {
            let inner: String = braced.chars().take_while(|c| *c != '}').collect();
            for item in inner.split(',') {
                let mut p = base.clone();
                p.extend(segs.iter().cloned());
                p.extend(
                    item.trim()
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty() && s != "self"),
                );
                paths.push(p);
            }
        } else {
            let mut p = base.clone();
            p.extend(segs);
            paths.push(p);
        }
        for p in paths {
            // The deepest known module along the path.
            let mut best = None;
            for k in 1..=p.len() {
                if known.contains(&p[..k]) {
                    best = Some(p[..k].to_vec());
                }
            }
            if let Some(b) = best {
                if b != me {
                    out.insert(b);
                }
            }
        }
        i += skip;
    }
    out
}

fn layer(m: &[String]) -> u8 {
    LAYERS
        .iter()
        .find(|(n, _)| *n == m[0])
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module {} has no layer in tests/it/layers.rs", m[0]))
}

fn name(m: &[String]) -> String {
    m.join("::")
}

/// Module → modules it uses.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(m, p)| (m.clone(), uses(m, &code_of(&std::fs::read_to_string(p).unwrap()), &known)))
        .collect()
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let g = graph();
    assert!(g.len() > 60, "the source was not found: {} modules", g.len());
    let mut up = Vec::new();
    for (m, deps) in &g {
        for d in deps {
            if layer(d) > layer(m) {
                up.push(format!(
                    "{} (layer {}) uses {} (layer {})",
                    name(m),
                    layer(m),
                    name(d),
                    layer(d)
                ));
            }
        }
    }
    assert!(up.is_empty(), "{} upward uses:\n{}", up.len(), up.join("\n"));
}

#[test]
fn no_circle_of_modules() {
    let g = graph();
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on: BTreeSet<Vec<String>>,
        next: usize,
        sccs: Vec<Vec<Vec<String>>>,
    }
    impl T<'_> {
        fn visit(&mut self, v: &Vec<String>) {
            self.index.insert(v.clone(), self.next);
            self.low.insert(v.clone(), self.next);
            self.next += 1;
            self.stack.push(v.clone());
            self.on.insert(v.clone());
            for w in self.g.get(v).into_iter().flatten() {
                if !self.g.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v.clone(), l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v.clone(), l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(&w);
                    let done = &w == v;
                    scc.push(w);
                    if done {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.sccs.push(scc);
                }
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        sccs: vec![],
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    let circles: Vec<String> =
        t.sccs.iter().map(|s| s.iter().map(|m| name(m)).collect::<Vec<_>>().join(" ↔ ")).collect();
    assert!(circles.is_empty(), "{} circles:\n{}", circles.len(), circles.join("\n"));
}

#[test]
fn sql_lives_in_the_store() {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|(m, _)| m[0] != "store" && m[0] != "db")
        .filter(|(_, p)| code_of(&std::fs::read_to_string(p).unwrap()).contains("sqlx::query"))
        .map(|(m, _)| name(m))
        .collect();
    assert!(outside.is_empty(), "SQL outside store/ (and db/): {outside:?}");
}

#[test]
fn no_string_errors_in_the_library() {
    // Failures in the library are typed, so callers can tell them apart and `?` converts
    // them; only the binaries' command lines (`main.rs`, `src/bin`, outside the library)
    // keep plain-text errors. Found: `Result<…, String>` (nested generics read whole) and
    // `type Err/Error = String` (a `FromStr` or `TryFrom` failing with text).
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let mut found = Vec::new();
    for (m, p) in &files {
        let code = code_of(&std::fs::read_to_string(p).unwrap());
        let b = code.as_bytes();
        let mut from = 0;
        while let Some(at) = code[from..].find("Result<").map(|k| from + k) {
            from = at + "Result<".len();
            if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
                continue; // `ApiResult<…>` and the like name their own error
            }
            // The type arguments, split at the commas of the outer level.
            let (mut depth, mut args, mut i) = (1, vec![String::new()], from);
            while i < b.len() && depth > 0 {
                match b[i] {
                    b'<' | b'(' | b'[' => depth += 1,
                    b'>' if b[i - 1] != b'-' => depth -= 1,
                    b')' | b']' => depth -= 1,
                    b',' if depth == 1 => args.push(String::new()),
                    _ => {}
                }
                if depth > 0 && !(b[i] == b',' && depth == 1) {
                    args.last_mut().unwrap().push(b[i] as char);
                }
                i += 1;
            }
            let err = args.last().unwrap().split_whitespace().collect::<String>();
            if args.len() > 1 && (err == "String" || err == "std::string::String") {
                found.push(format!(
                    "{}: {}",
                    name(m),
                    code[at..i].split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
        for alias in ["type Err = String", "type Error = String"] {
            if code.contains(alias) {
                found.push(format!("{}: {alias}", name(m)));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{} plain-text errors in the library:\n{}",
        found.len(),
        found.join("\n")
    );
}
