//! The CLI's configuration file: one profile per server login, with its credentials.
//!
//! Location: `$XDG_CONFIG_HOME/rockit/config.toml`, else `$HOME/.config/rockit/config.toml`.
//! Format (TOML, written by `rockit login`, read with the `toml` crate, written here by hand
//! because every value is a string or an integer):
//!
//! ```toml
//! [profiles.default]
//! server = "https://edge.example.com"
//! org = "MyOrg"
//! username = "alice"
//! access_token = "…"
//! access_expires = 1767225600   # Unix seconds
//! refresh_token = "…"
//! refresh_expires = 1767312000
//! # or, after `rockit login --api-key`:
//! api_key = "rk_…"
//! ```
//!
//! The file holds secrets: it is always written whole to a new file of mode 0600 (in a
//! directory of mode 0700) and renamed over the old one.

use crate::fail::Fail;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

/// The profile used when neither `--profile` nor `ROCKIT_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";

/// One login: a server and its credentials.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Profile {
    pub server: Option<String>,
    pub org: Option<String>,
    pub username: Option<String>,
    pub access_token: Option<String>,
    pub access_expires: Option<i64>,
    pub refresh_token: Option<String>,
    pub refresh_expires: Option<i64>,
    pub api_key: Option<String>,
}

impl Profile {
    /// Forgets every credential, keeping server, org and username.
    pub fn clear_credentials(&mut self) {
        self.access_token = None;
        self.access_expires = None;
        self.refresh_token = None;
        self.refresh_expires = None;
        self.api_key = None;
    }

    /// True when the profile holds a token or a key.
    pub fn has_credentials(&self) -> bool {
        self.access_token.is_some() || self.refresh_token.is_some() || self.api_key.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct File {
    profiles: BTreeMap<String, Profile>,
}

/// The configuration file and the profile in use.
pub struct Config {
    pub path: PathBuf,
    pub name: String,
}

/// `$XDG_CONFIG_HOME/rockit` or `$HOME/.config/rockit`.
fn dir() -> Result<PathBuf, Fail> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            return Ok(x.join("rockit"));
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("rockit")),
        None => {
            Err(Fail::new("cannot find the configuration directory: set HOME or XDG_CONFIG_HOME"))
        }
    }
}

/// A profile name usable as a bare TOML key.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    /// The configuration of profile `name` (`--profile`, else `ROCKIT_PROFILE`, else `default`).
    pub fn open(name: Option<&str>) -> Result<Config, Fail> {
        let env = std::env::var("ROCKIT_PROFILE").ok().filter(|p| !p.is_empty());
        let name = name.map(str::to_string).or(env).unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        if !valid_name(&name) {
            return Err(Fail::new(format!(
                "profile name {name:?}: use 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        Ok(Config { path: dir()?.join("config.toml"), name })
    }

    fn read_all(&self) -> Result<File, Fail> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
            Err(e) => return Err(Fail::new(format!("{}: {e}", self.path.display()))),
        };
        toml::from_str(&text)
            .map_err(|e| Fail::new(format!("{}: {}", self.path.display(), e.message())))
    }

    /// The profile in use (empty when it was never saved).
    pub fn load(&self) -> Result<Profile, Fail> {
        Ok(self.read_all()?.profiles.remove(&self.name).unwrap_or_default())
    }

    /// Replaces the profile in use (other profiles are kept as they are in the file now).
    pub fn save(&self, p: &Profile) -> Result<(), Fail> {
        let mut all = self.read_all()?;
        all.profiles.insert(self.name.clone(), p.clone());
        self.write(&all)
    }

    fn write(&self, all: &File) -> Result<(), Fail> {
        let what = |e: std::io::Error| Fail::new(format!("{}: {e}", self.path.display()));
        let parent = self.path.parent().expect("config file has a directory");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(what)?;
        let mut out = String::from(
            "# rockit CLI configuration (docs/CLI.md). Holds credentials: keep it private.\n",
        );
        for (name, p) in &all.profiles {
            let _ = write!(out, "\n[profiles.{name}]\n");
            let strings = [
                ("server", &p.server),
                ("org", &p.org),
                ("username", &p.username),
                ("access_token", &p.access_token),
                ("refresh_token", &p.refresh_token),
                ("api_key", &p.api_key),
            ];
            for (k, v) in strings {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {}", quote(v));
                }
            }
            for (k, v) in
                [("access_expires", p.access_expires), ("refresh_expires", p.refresh_expires)]
            {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {v}");
                }
            }
        }
        let tmp = parent.join(format!(".config.toml.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(what)?;
        let res = f
            .write_all(out.as_bytes())
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.path));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(what(e));
        }
        Ok(())
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Profile {
            server: Some("http://127.0.0.1:1".into()),
            org: Some("Org".into()),
            access_token: Some("a\"b\\c\u{1}".into()),
            access_expires: Some(12),
            ..Default::default()
        };
        let mut all = File::default();
        all.profiles.insert("x-1".into(), p.clone());
        let dir = std::env::temp_dir().join(format!("rockit-cfg-{}", std::process::id()));
        let c = Config { path: dir.join("config.toml"), name: "x-1".into() };
        c.write(&all).unwrap();
        assert_eq!(c.load().unwrap(), p);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&c.path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
