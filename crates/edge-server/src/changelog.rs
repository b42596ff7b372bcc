//! Parses `CHANGELOG.md` (Keep a Changelog) into the `/srv/v1/changelog` answer.

use serde_json::{json, Value};

/// `[{"version","date","changes":[...]}]`, newest first, as written in the file.
pub fn parse(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            let h = h.trim();
            let (ver, date) = match h.split_once(" - ") {
                Some((v, d)) => (v.trim(), Some(d.trim().to_string())),
                None => (h, None),
            };
            let ver = ver.trim_start_matches('[').trim_end_matches(']');
            let ver = if ver.eq_ignore_ascii_case("unreleased") {
                "unreleased".to_string()
            } else {
                ver.to_string()
            };
            out.push(json!({"version": ver, "date": date, "changes": []}));
        } else if let Some(item) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
            if let Some(Value::Array(ch)) = out.last_mut().and_then(|v| v.get_mut("changes")) {
                ch.push(json!(item.trim()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_sections() {
        let v = super::parse(
            "# C\n## [Unreleased]\n### Added\n- a\n- b\n## [0.1.0] - 2026-01-02\n- c\n",
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["version"], "unreleased");
        assert!(v[0]["date"].is_null());
        assert_eq!(v[0]["changes"].as_array().unwrap().len(), 2);
        assert_eq!(v[1]["date"], "2026-01-02");
    }
}
