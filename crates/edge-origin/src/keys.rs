//! The publishing layout on every origin (delivery.md, "Publishing rules"): the only place
//! where object keys are put together, so nobody formats a path by hand.
//!
//! ```text
//! <originPrefix>/dxf/<orgName>/<appName>/<iCurBuild>/<dxfName>/…
//! <originPrefix>/pat/<orgName>/<appName>/<toBuildId>/<fromBuildId>/…
//! ```
//! Build ids are zero-padded to at least 4 digits; an empty prefix means keys start at
//! `dxf/` and `pat/`. Keys are `/`-separated and relative.

/// The file name written and removed again by a deployment probe.
pub const PROBE_FILE: &str = ".rockit-probe";

/// Longest `originPrefix` accepted (characters).
pub const MAX_PREFIX_LEN: usize = 200;

/// Longest object key accepted (bytes); S3 allows 1024.
pub const MAX_KEY_LEN: usize = 1024;

/// A build id as a directory name, zero-padded to at least 4 digits: 1 → `0001`, 12345 → `12345`.
pub fn build_dir_name(id: u64) -> String {
    format!("{id:04}")
}

/// The directory of a published DxF image: `<prefix>/dxf/<org>/<app>/<build>/<dxfName>`.
pub fn dxf_dir(prefix: &str, org: &str, app: &str, build_id: u64, dxf_name: &str) -> String {
    under(prefix, &["dxf", org, app, &build_dir_name(build_id), dxf_name])
}

/// The directory of a published patch: `<prefix>/pat/<org>/<app>/<to>/<from>`.
pub fn pat_dir(prefix: &str, org: &str, app: &str, to: u64, from: u64) -> String {
    under(prefix, &["pat", org, app, &build_dir_name(to), &build_dir_name(from)])
}

/// Every directory an org publishes into: `[<prefix>/dxf/<org>, <prefix>/pat/<org>]`.
pub fn org_roots(prefix: &str, org: &str) -> [String; 2] {
    [under(prefix, &["dxf", org]), under(prefix, &["pat", org])]
}

/// A file inside a directory key; an empty `dir` gives `file` itself.
pub fn join(dir: &str, file: &str) -> String {
    let dir = dir.trim_end_matches('/');
    let file = file.trim_start_matches('/');
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The key a deployment probe writes and deletes: `<prefix>/.rockit-probe`.
pub fn probe_key(prefix: &str) -> String {
    join(prefix, PROBE_FILE)
}

/// The `originPrefix` rule: `""`, or `/`-separated segments of `[A-Za-z0-9._-]`, none `.` or
/// `..`, no leading or trailing `/`, at most 200 characters.
pub fn valid_prefix(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_PREFIX_LEN
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            }))
}

/// Whether `key` is a clean relative object key: non-empty `/`-separated segments, none
/// `.` or `..`, no backslash or control character, no leading or trailing `/`. Every
/// origin refuses other keys, so a key can never leave the origin's root.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.chars().any(|c| c == '\\' || c.is_control())
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn under(prefix: &str, parts: &[&str]) -> String {
    let mut out = String::from(prefix);
    for part in parts {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_padded_to_four_digits() {
        assert_eq!(build_dir_name(0), "0000");
        assert_eq!(build_dir_name(1), "0001");
        assert_eq!(build_dir_name(3), "0003");
        assert_eq!(build_dir_name(9999), "9999");
        assert_eq!(build_dir_name(12345), "12345");
    }

    #[test]
    fn layout_with_prefix() {
        let dir = dxf_dir("rockit", "Org", "App", 3, "dxf-0123456789abcdef");
        assert_eq!(dir, "rockit/dxf/Org/App/0003/dxf-0123456789abcdef");
        assert_eq!(
            join(&dir, "pack-0001.bin"),
            "rockit/dxf/Org/App/0003/dxf-0123456789abcdef/pack-0001.bin"
        );
        assert_eq!(pat_dir("a/b", "Org", "App", 12, 7), "a/b/pat/Org/App/0012/0007");
        assert_eq!(
            org_roots("rockit", "Org"),
            ["rockit/dxf/Org".to_owned(), "rockit/pat/Org".to_owned()]
        );
        assert_eq!(probe_key("rockit/eu"), "rockit/eu/.rockit-probe");
    }

    #[test]
    fn layout_with_empty_prefix() {
        assert_eq!(dxf_dir("", "Org", "App", 12345, "dxf-1"), "dxf/Org/App/12345/dxf-1");
        assert_eq!(pat_dir("", "Org", "App", 2, 1), "pat/Org/App/0002/0001");
        assert_eq!(org_roots("", "Org"), ["dxf/Org".to_owned(), "pat/Org".to_owned()]);
        assert_eq!(probe_key(""), ".rockit-probe");
        assert_eq!(join("", "x.bin"), "x.bin");
        for key in [
            dxf_dir("", "O", "A", 1, "d"),
            pat_dir("p", "O", "A", 2, 1),
            probe_key(""),
            probe_key("p/q"),
        ] {
            assert!(valid_key(&key), "{key}");
        }
    }

    #[test]
    fn prefix_rule() {
        for ok in ["", "rockit", "a/b/c", "A-z_0.9", "..a", "a..", &"x".repeat(200)] {
            assert!(valid_prefix(ok), "{ok:?}");
        }
        let long = "x".repeat(201);
        for bad in
            ["/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a b", "a\\b", "é", "a?", &long]
        {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn key_rule() {
        for ok in ["a", "a/b.bin", ".rockit-probe", "x/..y/z", "sp ace/ü"] {
            assert!(valid_key(ok), "{ok:?}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "./a",
            "a\\b",
            "a\0b",
            "a\nb",
            &"k".repeat(1025),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
