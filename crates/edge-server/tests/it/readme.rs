//! The README's tour run as written: every ```sh block between `<!-- tour -->` and
//! `<!-- /tour -->`, in order, in one bash with `set -euo pipefail`, the built programs on
//! PATH (what the README's `cargo build --release && export PATH=…` line gives a reader), a
//! fresh HOME, and a free port in place of 8080.

use crate::common::TempDir;
use std::path::Path;

const README: &str = include_str!("../../../../README.md");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_tour_runs_as_written() {
    let tour = README
        .split("<!-- tour -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /tour -->").next())
        .expect("the README marks its tour");
    let mut body = String::new();
    let mut inside = false;
    for line in tour.lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, l) => {
                body.push_str(l);
                body.push('\n');
            }
            _ => {}
        }
    }
    assert!(
        body.contains("rockit push") && body.contains("jq -r .apiKey"),
        "the tour's blocks were found:\n{body}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = body.replace("8080", &port.to_string());
    let work = TempDir::new("readme");
    let home = work.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = crate::getting_started::run_script(&body, &work.0, &home).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(work.0.join("tour/server.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the tour failed\n--- stdout\n{stdout}\n--- stderr\n{}\n--- server.log\n{}",
        String::from_utf8_lossy(&out.stderr),
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    assert!(stdout.contains("the image holds the build exactly"), "{stdout}");
    // The machine user's key listed the apps (an empty page, before MyGame existed).
    assert!(stdout.contains(r#""apps":[]"#), "{stdout}");
    assert!(stdout.contains("1.0.1"), "the CLI pushed and showed build 1.0.1: {stdout}");
}

#[test]
fn no_link_leaves_the_repository() {
    // Every relative link of the README and docs/ names a file or directory of this
    // repository (a clone alone must explain itself); absolute links are to the web.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let base = page.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = text[i + 2..]
                .split(')')
                .next()
                .unwrap_or("")
                .split('#')
                .next()
                .unwrap_or("")
                .trim();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = base.join(target);
            let inside = resolved
                .canonicalize()
                .ok()
                .filter(|p| p.starts_with(root.canonicalize().unwrap()));
            if inside.is_none() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
        if text.contains("../shared") {
            broken.push(format!("{}: mentions ../shared", page.display()));
        }
    }
    assert!(
        broken.is_empty(),
        "links that leave the repository or lead nowhere:\n{}",
        broken.join("\n")
    );
}
