//! The one rule set for build trees: which names, links and shapes a tree may have so that
//! writing it out — `rockit unpack`, `rockit apply`, a launcher — only ever creates things
//! inside its output directory.
//!
//! A tree is given as a plain listing: each entry's path (normal form, `/`-separated,
//! relative to the tree's root), its [`Kind`] and, for a symbolic link, its target. The
//! listing describes the *final* tree, one entry per path: a tar whose later entries replace
//! earlier ones is checked once it has been read whole (`ingest`), never entry by entry.
//!
//! The rules ([`check`]):
//!
//! - **Names.** Every path is in normal form (relative, no empty, `.` or `..` segment); no
//!   path and no link target holds a backslash (a separator, hence a traversal, for a
//!   Windows launcher) or a control character (U+0000–U+001F, U+007F).
//! - **Shape.** No entry lies under another entry that is a symbolic link (writing
//!   `up/x.txt` when `up -> .` would write through the link) or a regular file (`a` and
//!   `a/b`). Paths the listing does not name are directories (parents are created).
//! - **Links.** A target is relative and not empty. Resolved from the link's own directory
//!   component by component — every component that is a link of the tree replaced by that
//!   link's own resolution, at most [`MAX_HOPS`] links followed in all, the link itself
//!   included (a loop is refused) — the target never climbs above the root. A target may
//!   name something the tree lacks (a dangling link that stays inside is fine). A
//!   component that is not a link is taken lexically, so `missing/..` counts as staying
//!   put: stricter than a file system, which would fail there, never looser.
//!
//! The textual check this replaces missed escapes through other links: with `s -> .`,
//! `a/l -> ../s/..` reads as the root but is the root's parent.
//!
//! Not covered: names equal only on a case-insensitive or Unicode-normalising file system
//! (Windows, macOS: `S -> .` and `s/x`), and Windows' own name rules (`:`, reserved names
//! such as `CON`, trailing dots and spaces).

use crate::tree::Kind;
use std::collections::HashMap;
use std::fmt;

/// Most symbolic links followed to reach where a link leads, the link itself included
/// (Linux's `MAXSYMLINKS`, beyond which `ELOOP`).
pub const MAX_HOPS: u32 = 40;

/// Why an entry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The path starts with `/`.
    Absolute,
    /// The path has a `..` segment.
    Parent,
    /// The path is empty or has an empty or `.` segment (or a trailing `/`).
    NotNormal,
    /// A backslash in the path.
    Backslash,
    /// A control character in the path.
    Control,
    /// A backslash in a link's target.
    TargetBackslash,
    /// A control character in a link's target.
    TargetControl,
    /// The listing names the path twice.
    Twice,
    /// A proper prefix of the path is a symbolic link of the tree.
    ThroughLink,
    /// A proper prefix of the path is a regular file of the tree.
    ThroughFile,
    /// A link whose target is absolute or empty, or resolves above the root.
    Leaves,
    /// A link whose resolution loops or follows more than [`MAX_HOPS`] links.
    Loop,
}

impl Why {
    /// The `typeExpected` of the `fileReadFailed` exception (what the entry should have
    /// been): `"relative path"` for path problems, `"regular file"` for refused links (as
    /// the contract has it for links leaving the tree).
    pub fn expected(self) -> &'static str {
        match self {
            Why::TargetBackslash | Why::TargetControl | Why::Leaves | Why::Loop => "regular file",
            _ => "relative path",
        }
    }

    /// The `typeDetected` of the `fileReadFailed` exception: what is wrong.
    pub fn detected(self) -> &'static str {
        match self {
            Why::Absolute => "absolute path",
            Why::Parent => "parent directory reference",
            Why::NotNormal => "path not in normal form",
            Why::Backslash => "backslash in name",
            Why::Control => "control character in name",
            Why::TargetBackslash => "backslash in link target",
            Why::TargetControl => "control character in link target",
            Why::Twice => "path listed twice",
            Why::ThroughLink => "path through a symbolic link",
            Why::ThroughFile => "path through a regular file",
            Why::Leaves => "symbolic link leaving the tree",
            Why::Loop => "symbolic link loop",
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// Path relative to the root, `/`-separated, normal form.
    pub path: &'a str,
    /// File, directory or symbolic link.
    pub kind: Kind,
    /// The link's target (links; `None` for a link counts as empty).
    pub target: Option<&'a str>,
}

impl<'a> Item<'a> {
    /// A listing entry.
    pub fn new(path: &'a str, kind: Kind, target: Option<&'a str>) -> Item<'a> {
        Item { path, kind, target }
    }
}

/// A refused entry: its path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The entry's path, as listed.
    pub path: String,
    /// What is wrong with it.
    pub why: Why,
}

impl fmt::Display for Refusal {
    /// `<path>: <what>`, control characters of the path escaped (one line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", shown(&self.path), self.why.detected())
    }
}

impl std::error::Error for Refusal {}

/// A name for messages: control characters escaped (`\n`, `\u{1}`), all else as it is.
pub fn shown(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if is_control(c) {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

fn is_control(c: char) -> bool {
    c <= '\u{1f}' || c == '\u{7f}'
}

/// The per-name rules for a path: normal form, no backslash, no control character.
pub fn check_name(path: &str) -> Result<(), Why> {
    if path.starts_with('/') {
        return Err(Why::Absolute);
    }
    if path.split('/').any(|c| c == "..") {
        return Err(Why::Parent);
    }
    if path.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(Why::NotNormal);
    }
    if path.contains('\\') {
        return Err(Why::Backslash);
    }
    if path.chars().any(is_control) {
        return Err(Why::Control);
    }
    Ok(())
}

/// The per-name rules for a link target: relative, not empty, no backslash, no control
/// character. (Where it leads is [`check`]'s business.)
pub fn check_target(target: &str) -> Result<(), Why> {
    if target.is_empty() || target.starts_with('/') {
        return Err(Why::Leaves);
    }
    if target.contains('\\') {
        return Err(Why::TargetBackslash);
    }
    if target.chars().any(is_control) {
        return Err(Why::TargetControl);
    }
    Ok(())
}

/// Checks a whole tree against every rule (module documentation). The first refused entry
/// in listing order is reported: names, link targets and duplicates first, then shape and
/// link resolution. Each link is resolved once (results are reused), so long chains and
/// many links through one link stay cheap.
pub fn check<'a>(listing: impl IntoIterator<Item = Item<'a>>) -> Result<(), Refusal> {
    let items: Vec<Item<'a>> = listing.into_iter().collect();
    let refuse = |path: &str, why: Why| Refusal { path: path.to_string(), why };
    let mut map: HashMap<&'a str, Item<'a>> = HashMap::with_capacity(items.len());
    for it in &items {
        check_name(it.path).map_err(|w| refuse(it.path, w))?;
        if map.insert(it.path, *it).is_some() {
            return Err(refuse(it.path, Why::Twice));
        }
        if it.kind == Kind::Symlink {
            check_target(it.target.unwrap_or("")).map_err(|w| refuse(it.path, w))?;
        }
    }
    let mut r = Resolver { map: &map, memo: HashMap::new() };
    for it in &items {
        for (k, _) in it.path.match_indices('/') {
            match map.get(&it.path[..k]).map(|p| p.kind) {
                Some(Kind::Symlink) => return Err(refuse(it.path, Why::ThroughLink)),
                Some(Kind::File) => return Err(refuse(it.path, Why::ThroughFile)),
                Some(Kind::Dir) | None => {}
            }
        }
        if it.kind == Kind::Symlink {
            r.resolve(it.path, 0).map_err(|s| refuse(it.path, s.why()))?;
        }
    }
    Ok(())
}

/// Why a resolution stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// A verdict on the link itself.
    Refused(Why),
    /// Nested [`MAX_HOPS`] deep: the outermost link follows too many links, but nothing
    /// is known about the inner ones (not remembered).
    Deep,
}

impl Stop {
    fn why(self) -> Why {
        match self {
            Stop::Refused(w) => w,
            Stop::Deep => Why::Loop,
        }
    }
}

enum Memo {
    /// Being resolved: meeting it again is a loop.
    Busy,
    /// Resolved: the path it leads to (inside the tree, `""` = the root) and the links
    /// followed on the way (the link itself not counted); or the refusal.
    Done(Result<(String, u32), Why>),
}

/// Resolves links of one listing, each once: a link's resolution does not depend on how
/// it was reached (it starts from its own directory), so substituting a link by its
/// remembered result is the same as substituting its target text.
struct Resolver<'m, 'a> {
    map: &'m HashMap<&'a str, Item<'a>>,
    memo: HashMap<&'a str, Memo>,
}

impl<'a> Resolver<'_, 'a> {
    /// The resolution of the link at `link` (a key of the map), `depth` links in.
    fn resolve(&mut self, link: &'a str, depth: u32) -> Result<(String, u32), Stop> {
        // `depth` links are being followed already, plus the outermost one itself.
        if depth >= MAX_HOPS {
            return Err(Stop::Deep);
        }
        match self.memo.get(link) {
            Some(Memo::Busy) => return Err(Stop::Refused(Why::Loop)),
            Some(Memo::Done(r)) => return r.clone().map_err(Stop::Refused),
            None => {}
        }
        self.memo.insert(link, Memo::Busy);
        let r = self.walk(link, depth);
        match &r {
            Err(Stop::Deep) => {
                self.memo.remove(link);
            }
            Err(Stop::Refused(w)) => {
                self.memo.insert(link, Memo::Done(Err(*w)));
            }
            Ok(v) => {
                self.memo.insert(link, Memo::Done(Ok(v.clone())));
            }
        }
        r
    }

    fn walk(&mut self, link: &'a str, depth: u32) -> Result<(String, u32), Stop> {
        let target = self.map.get(link).and_then(|i| i.target).unwrap_or("");
        check_target(target).map_err(Stop::Refused)?;
        // Where we are: a path of the tree without links in it ("" = the root).
        let mut cur = link.rfind('/').map(|k| link[..k].to_string()).unwrap_or_default();
        let mut hops = 0u32;
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if cur.is_empty() {
                        return Err(Stop::Refused(Why::Leaves));
                    }
                    cur.truncate(cur.rfind('/').unwrap_or(0));
                }
                name => {
                    let next =
                        if cur.is_empty() { name.to_string() } else { format!("{cur}/{name}") };
                    match self.map.get_key_value(next.as_str()) {
                        Some((key, it)) if it.kind == Kind::Symlink => {
                            let (to, h) = self.resolve(key, depth + 1)?;
                            hops += 1 + h;
                            // Following this link itself counts too (as for ELOOP).
                            if hops >= MAX_HOPS {
                                return Err(Stop::Refused(Why::Loop));
                            }
                            cur = to;
                        }
                        _ => cur = next,
                    }
                }
            }
        }
        Ok((cur, hops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing from `(path, kind, target)` rows: `f` file, `d` directory, anything else
    /// is a link's target.
    fn tree(rows: &[(&'static str, &'static str)]) -> Vec<Item<'static>> {
        rows.iter()
            .map(|(p, t)| match *t {
                "f" => Item::new(p, Kind::File, None),
                "d" => Item::new(p, Kind::Dir, None),
                t => Item::new(p, Kind::Symlink, Some(t)),
            })
            .collect()
    }

    fn verdict(rows: &[(&'static str, &'static str)]) -> Result<(), (String, Why)> {
        check(tree(rows)).map_err(|r| (r.path, r.why))
    }

    fn refused(rows: &[(&'static str, &'static str)], path: &str, why: Why) {
        assert_eq!(verdict(rows), Err((path.to_string(), why)), "{rows:?}");
    }

    #[test]
    fn ordinary_trees_pass() {
        assert_eq!(verdict(&[]), Ok(()));
        let rows = [
            ("bin", "d"),
            ("bin/game", "f"),
            ("bin/settings", "../config/settings.ini"),
            ("config/settings.ini", "f"),
            ("run", "bin/game"),
            ("here", "."),
            ("data", "d"),
            ("data/up", ".."),
            ("data/deep/x", "../../bin/./game"),
            ("chain1", "chain2"),
            ("chain2", "bin"),
            ("via", "chain1/game"),
        ];
        assert_eq!(verdict(&rows), Ok(()));
    }

    #[test]
    fn textual_rules_of_old_still_hold() {
        assert_eq!(verdict(&[("bin/a", "../data/x")]), Ok(()));
        refused(&[("bin/a", "../../x")], "bin/a", Why::Leaves);
        refused(&[("a", "/etc/passwd")], "a", Why::Leaves);
        refused(&[("a", "")], "a", Why::Leaves);
        assert_eq!(verdict(&[("a", "b")]), Ok(()));
        refused(&[("a", "..")], "a", Why::Leaves);
        refused(&[("x/y", "../z/../../q")], "x/y", Why::Leaves);
    }

    #[test]
    fn escapes_through_other_links() {
        // The textual reading of ../s/.. is the root; s is the root, so s/.. is above it.
        refused(&[("s", "."), ("a", "d"), ("a/l", "../s/..")], "a/l", Why::Leaves);
        // Without the link s it is fine (s/.. lexically).
        assert_eq!(verdict(&[("a", "d"), ("a/l", "../s/..")]), Ok(()));
        // Deeper: d/up -> .. is the root, e -> d/up/.. leaves.
        refused(&[("d/up", ".."), ("e", "d/up/..")], "e", Why::Leaves);
        // A chain: each link fine alone, the last one climbs out through both.
        refused(&[("p/q/r", "../.."), ("p/x", "q/r/.."), ("y", "p/x/..")], "p/x", Why::Leaves);
        // Through a link that itself leaves: both refused, the first listed reported.
        refused(&[("via", "out/x"), ("out", "../..")], "via", Why::Leaves);
        refused(&[("out", "../.."), ("via", "out/x")], "out", Why::Leaves);
        // Link to a link's own resolution that ends at the root, then .. from there.
        refused(&[("r1", "r2"), ("r2", "."), ("z/w", "../r1/..")], "z/w", Why::Leaves);
        assert_eq!(verdict(&[("r1", "r2"), ("r2", "."), ("z/w", "../r1/z")]), Ok(()));
    }

    #[test]
    fn entries_under_links_and_files() {
        // Issue 13, item 4: d/s2 -> .. (the root), then d/s2/e -> ../.. through it.
        refused(&[("d", "d"), ("d/s2", ".."), ("d/s2/e", "../..")], "d/s2/e", Why::ThroughLink);
        // Item 5: up -> . and a file up/x.txt.
        refused(&[("up", "."), ("up/x.txt", "f")], "up/x.txt", Why::ThroughLink);
        refused(&[("up", "."), ("up/sub", "d")], "up/sub", Why::ThroughLink);
        refused(&[("a", "f"), ("a/b", "f")], "a/b", Why::ThroughFile);
        refused(&[("a/b/c", "f"), ("a", "f")], "a/b/c", Why::ThroughFile);
        refused(&[("a", "d"), ("a/b", "f"), ("a/b/c", "x")], "a/b/c", Why::ThroughFile);
        // Parents the listing does not name are directories.
        assert_eq!(verdict(&[("a/b/c", "f"), ("a/b/d", "../c")]), Ok(()));
    }

    #[test]
    fn loops_and_long_chains() {
        refused(&[("a", "a")], "a", Why::Loop);
        refused(&[("a", "b"), ("b", "a")], "a", Why::Loop);
        refused(&[("x", "y/l"), ("y/l", "../x")], "x", Why::Loop);
        refused(&[("a", "b/c"), ("b", "./.."), ("b2", "a")], "a", Why::Leaves);
        // Self-reference through a directory of the tree.
        refused(&[("d", "d"), ("d/me", "../d/me")], "d/me", Why::Loop);
        // A chain of MAX_HOPS links (l0 -> l1 -> … -> a file) is fine, one more is not
        // (ELOOP: reaching the file through l0 follows every link of the chain).
        let names: Vec<String> = (0..=MAX_HOPS + 1).map(|i| format!("l{i}")).collect();
        let chain = |n: usize| -> Vec<Item<'_>> {
            let mut v: Vec<Item<'_>> = (0..n)
                .map(|i| Item::new(names[i].as_str(), Kind::Symlink, Some(names[i + 1].as_str())))
                .collect();
            v.push(Item::new(names[n].as_str(), Kind::File, None));
            v
        };
        assert_eq!(check(chain(MAX_HOPS as usize)), Ok(()));
        let r = check(chain(MAX_HOPS as usize + 1)).unwrap_err();
        assert_eq!((r.path.as_str(), r.why), ("l0", Why::Loop));
        // Listed from the far end first (results remembered): the same verdicts.
        let mut v = chain(MAX_HOPS as usize + 1);
        v.reverse();
        let r = check(v).unwrap_err();
        assert_eq!((r.path.as_str(), r.why), ("l0", Why::Loop));
    }

    #[test]
    fn many_links_are_checked_quickly() {
        // A chain far longer than the hop limit, and a wide fan of links through one link
        // with a long target: each link is resolved once.
        let n = 20_000;
        let names: Vec<String> = (0..=n).map(|i| format!("c{i}")).collect();
        let mut v: Vec<Item<'_>> = (0..n)
            .map(|i| Item::new(names[i].as_str(), Kind::Symlink, Some(names[i + 1].as_str())))
            .collect();
        v.push(Item::new(names[n].as_str(), Kind::Dir, None));
        let t0 = std::time::Instant::now();
        assert_eq!(check(v).unwrap_err().why, Why::Loop);
        let long = "x/".repeat(1000) + &"../".repeat(1000);
        let fans: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let mut v = vec![Item::new("hub", Kind::Symlink, Some(long.as_str()))];
        v.extend(fans.iter().map(|f| Item::new(f.as_str(), Kind::Symlink, Some("hub/hub/hub/."))));
        // hub resolves to the root; hub/hub... is then the root's hub again: fine.
        assert_eq!(check(v), Ok(()));
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn dangling_links_inside_are_fine() {
        assert_eq!(verdict(&[("a", "missing")]), Ok(()));
        assert_eq!(verdict(&[("d/a", "../nowhere/x/y")]), Ok(()));
        assert_eq!(verdict(&[("d/a", "nowhere/..")]), Ok(()));
        // Lexical past a missing component: missing/../.. from the root is above it.
        refused(&[("a", "missing/../..")], "a", Why::Leaves);
        // A file taken lexically too.
        assert_eq!(verdict(&[("f", "f"), ("l", "f/..")]), Ok(()));
    }

    #[test]
    fn the_final_tree_counts() {
        // A tar's later entry replaces an earlier one of the same path; ingest checks the
        // tree it ends with. up as a directory (replacing `up -> .`) holds up/x.txt fine,
        // up as a link (replacing the directory) does not.
        assert_eq!(verdict(&[("up", "d"), ("up/x.txt", "f")]), Ok(()));
        refused(&[("up", "."), ("up/x.txt", "f")], "up/x.txt", Why::ThroughLink);
        // A listing names each path once.
        refused(&[("a", "f"), ("a", "d")], "a", Why::Twice);
    }

    #[test]
    fn names() {
        refused(&[("..\\..\\evil.dll", "f")], "..\\..\\evil.dll", Why::Backslash);
        refused(&[("dir\\x", "d")], "dir\\x", Why::Backslash);
        refused(&[("bad\nname", "f")], "bad\nname", Why::Control);
        refused(&[("a/b\u{1}c", "f")], "a/b\u{1}c", Why::Control);
        refused(&[("nul\0", "f")], "nul\0", Why::Control);
        refused(&[("del\u{7f}", "f")], "del\u{7f}", Why::Control);
        refused(&[("l", "..\\..\\evil.dll")], "l", Why::TargetBackslash);
        refused(&[("l", "x\ty")], "l", Why::TargetControl);
        refused(&[("/abs", "f")], "/abs", Why::Absolute);
        refused(&[("a/../b", "f")], "a/../b", Why::Parent);
        refused(&[("./a", "f")], "./a", Why::NotNormal);
        refused(&[("a//b", "f")], "a//b", Why::NotNormal);
        refused(&[("a/", "d")], "a/", Why::NotNormal);
        refused(&[("", "f")], "", Why::NotNormal);
        // Not control characters: DEL's neighbours, non-ASCII, spaces.
        assert_eq!(verdict(&[("~ é ü 日本/x y.txt", "f"), ("l", "~ é ü 日本")]), Ok(()));
        let r = check(tree(&[("bad\nname", "f")])).unwrap_err();
        assert_eq!(r.to_string(), "bad\\nname: control character in name");
        assert_eq!(shown("a\u{1}b"), "a\\u{1}b");
        assert_eq!(Why::Control.expected(), "relative path");
        assert_eq!(Why::Leaves.expected(), "regular file");
    }
}
