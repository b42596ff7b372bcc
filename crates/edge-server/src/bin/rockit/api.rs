//! The Edge's backend API (`/be/v1`) as the CLI speaks it: one blocking client, the
//! profile's credentials, automatic refresh of an expired access token, and every failure
//! turned into one line (`<error code>: <message>`, `cannot connect to <server>`,
//! `not logged in (run rockit login)`).

use crate::config::{Config, Profile};
use crate::fail::Fail;
use crate::http::describe;
use edge_server::util::now_ms;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// The options every command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// The Edge's base URL with http:// or https:// (default: $ROCKIT_SERVER, else the profile's server).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The profile (a server and its login) to use (default: $ROCKIT_PROFILE, else "default").
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print the server's JSON (the payload without the envelope) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// How requests authenticate.
enum Auth {
    /// The profile's access token, refreshed with its refresh token.
    Token,
    /// An API key: the machine triple when org and username are known, else a bearer key.
    Key { key: String, org: Option<String>, user: Option<String> },
    /// Nothing usable.
    None,
}

/// A session with the server.
pub struct Api {
    client: Client,
    /// Base URL without trailing slash.
    pub server: String,
    pub cfg: Config,
    pub profile: Profile,
    auth: Auth,
}

/// The message for a missing or dead login.
pub const NOT_LOGGED_IN: &str = "not logged in (run rockit login)";

/// `https://host:port` without a trailing slash, checked. A server given without a scheme
/// (`127.0.0.1:8080`, `edge.example.com`) gets a hint to add one.
pub fn normalize_server(s: &str) -> Result<String, Fail> {
    let t = s.trim().trim_end_matches('/');
    if !t.contains("://") {
        return Err(Fail::new(format!(
            "server {t:?}: add http:// or https:// (for example --server http://{t}, or https://{t} behind TLS)"
        )));
    }
    let u = reqwest::Url::parse(t)
        .map_err(|e| Fail::new(format!("server {t:?}: not a valid URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Fail::new(format!(
            "server {t:?}: give an http(s) URL such as https://edge.example.com"
        )));
    }
    Ok(t.to_string())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The blocking client of the CLI; `total` bounds a whole request (`None` for uploads).
pub fn client(total: Option<Duration>) -> Result<Client, Fail> {
    let mut b = Client::builder()
        .user_agent(concat!("rockit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30));
    b = b.timeout(total);
    b.build().map_err(|e| Fail::new(format!("HTTP client: {}", describe(&e))))
}

impl Api {
    /// The server and credentials chosen by the flags, the environment and the profile.
    /// Fails only when no server is known at all.
    pub fn open(g: &Global) -> Result<Api, Fail> {
        let cfg = Config::open(g.profile.as_deref())?;
        let profile = cfg.load()?;
        let chosen = g.server.clone().or_else(|| env("ROCKIT_SERVER"));
        let server = match (&chosen, &profile.server) {
            (Some(s), _) | (None, Some(s)) => normalize_server(s)?,
            (None, None) => {
                return Err(Fail::new("no server: give --server URL, set ROCKIT_SERVER, or run rockit login --server URL"));
            }
        };
        // The profile's credentials belong to the profile's server only.
        let same_server =
            profile.server.as_deref().map(|s| s.trim_end_matches('/')) == Some(server.as_str());
        let auth = if let Some(key) = env("ROCKIT_API_KEY") {
            Auth::Key { key, org: env("ROCKIT_ORG"), user: env("ROCKIT_USER") }
        } else if !same_server {
            Auth::None
        } else if let Some(key) = &profile.api_key {
            Auth::Key { key: key.clone(), org: profile.org.clone(), user: profile.username.clone() }
        } else if profile.access_token.is_some() || profile.refresh_token.is_some() {
            Auth::Token
        } else {
            Auth::None
        };
        Ok(Api { client: client(Some(Duration::from_secs(300)))?, server, cfg, profile, auth })
    }

    /// Authenticates with an API key from now on.
    pub fn use_key(&mut self, key: &str, org: Option<String>, user: Option<String>) {
        self.auth = Auth::Key { key: key.to_string(), org, user };
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn with_auth(&self, rb: RequestBuilder) -> Result<RequestBuilder, Fail> {
        Ok(match &self.auth {
            Auth::Token => match &self.profile.access_token {
                Some(t) => rb.bearer_auth(t),
                None => return Err(Fail::new(NOT_LOGGED_IN)),
            },
            Auth::Key { key, org: Some(org), user: Some(user) } => rb
                .header("x-rockit-orgname", org)
                .header("x-rockit-username", user)
                .header("x-rockit-api-key", key),
            Auth::Key { key, .. } => rb.bearer_auth(key),
            Auth::None => return Err(Fail::new(NOT_LOGGED_IN)),
        })
    }

    /// Sends a request with no credential but `bearer`, if given (login, logout); answers
    /// the success envelope.
    pub fn public(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, Fail> {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().map_err(|e| self.net(&e))?;
        self.envelope(resp)
    }

    /// Sends an authenticated request; refreshes an expired access token once. Answers the
    /// whole success envelope.
    pub fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Fail> {
        if matches!(self.auth, Auth::Token) {
            let stale = self.profile.access_expires.is_none_or(|e| e * 1000 <= now_ms() + 5_000);
            if self.profile.access_token.is_none()
                || (stale && self.profile.refresh_token.is_some())
            {
                self.refresh()?;
            }
        }
        let mut refreshed = false;
        loop {
            let mut rb = self.with_auth(self.client.request(method.clone(), self.url(path)))?;
            if !query.is_empty() {
                rb = rb.query(query);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = rb.send().map_err(|e| self.net(&e))?;
            if resp.status() == StatusCode::UNAUTHORIZED
                && matches!(self.auth, Auth::Token)
                && !refreshed
            {
                if self.profile.refresh_token.is_none() {
                    return Err(Fail::new(NOT_LOGGED_IN));
                }
                self.refresh()?;
                refreshed = true;
                continue;
            }
            return self.envelope(resp);
        }
    }

    pub fn get(&mut self, path: &str, query: &[(&str, String)]) -> Result<Value, Fail> {
        self.call(Method::GET, path, query, None)
    }

    pub fn post(&mut self, path: &str, body: &Value) -> Result<Value, Fail> {
        self.call(Method::POST, path, &[], Some(body))
    }

    pub fn patch(&mut self, path: &str, body: &Value) -> Result<Value, Fail> {
        self.call(Method::PATCH, path, &[], Some(body))
    }

    pub fn delete(&mut self, path: &str, query: &[(&str, String)]) -> Result<Value, Fail> {
        self.call(Method::DELETE, path, query, None)
    }

    /// Exchanges the refresh token for a new pair and saves it. Another `rockit` may have
    /// rotated it a moment ago: then the pair it saved is taken.
    fn refresh(&mut self) -> Result<(), Fail> {
        let Some(rt) = self.profile.refresh_token.clone() else {
            return Err(Fail::new(NOT_LOGGED_IN));
        };
        let resp = self
            .client
            .post(self.url("/be/v1/refresh"))
            .bearer_auth(&rt)
            .send()
            .map_err(|e| self.net(&e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let now = self.cfg.load()?;
            if now.refresh_token.is_some()
                && now.refresh_token != Some(rt)
                && now.access_token.is_some()
            {
                self.profile = now;
                return Ok(());
            }
            return Err(Fail::new(NOT_LOGGED_IN));
        }
        let v = self.envelope(resp)?;
        store_tokens(&mut self.profile, &v);
        self.cfg.save(&self.profile)
    }

    /// A transport failure in one line: one plain cause, not reqwest's chain of layers.
    pub fn net(&self, e: &reqwest::Error) -> Fail {
        if e.is_connect() {
            Fail::new(format!("cannot connect to {}: {}", self.server, connect_cause(e)))
        } else if e.is_timeout() {
            Fail::new(format!("{}: no answer in time", self.server))
        } else {
            Fail::new(format!("connection to {} failed ({})", self.server, describe(e)))
        }
    }

    /// The success envelope of an answer, or its error as `<code>: <message>`.
    pub fn envelope(&self, resp: Response) -> Result<Value, Fail> {
        envelope(resp, &self.server)
    }
}

/// Why a connection could not be made, in a few words: the innermost cause of the error
/// chain (`connection refused`, the DNS failure, the TLS error), without the layers
/// (`client error (Connect)`, `tcp connect error`) and the `(os error N)` suffix.
pub fn connect_cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(c) = inner.source() {
        inner = c;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return "connection refused (is the server running, on that port?)".into()
            }
            std::io::ErrorKind::TimedOut => return "no answer (timed out)".into(),
            std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                return "host unreachable".into()
            }
            _ => {}
        }
    }
    let text = inner.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "cannot connect".into(),
    }
}

/// The success envelope of an answer, or its error as `<code>: <message>`.
pub fn envelope(resp: Response, server: &str) -> Result<Value, Fail> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .map_err(|e| Fail::new(format!("reading the answer of {server}: {}", describe(&e))))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    envelope_of(status, &v, server)
}

/// [`envelope`] of an answer already read.
pub fn envelope_of(status: StatusCode, v: &Value, server: &str) -> Result<Value, Fail> {
    if status.is_success() && v["status"] == "success" {
        return Ok(v.clone());
    }
    if let Some(code) = v["error"].as_str() {
        let msg = v["message"].as_str().unwrap_or("");
        let mut line = format!("{code}: {msg}");
        if let Some(f) = v["details"]["field"].as_str() {
            if !msg.contains(f) {
                line.push_str(&format!(" (field {f})"));
            }
        }
        if let Some(p) = v["details"]["probe"].as_str() {
            line.push_str(&format!(" (probe: {p})"));
        }
        return Err(Fail::new(line));
    }
    Err(Fail::new(format!(
        "{server} answered HTTP {status} without an API envelope (is this a ROCKIT Edge?)"
    )))
}

/// Takes a login or refresh answer's tokens into the profile.
pub fn store_tokens(p: &mut Profile, v: &Value) {
    let now = now_ms() / 1000;
    p.access_token = v["accessToken"].as_str().map(str::to_string);
    p.refresh_token = v["refreshToken"].as_str().map(str::to_string);
    p.access_expires = v["accessExpiresIn"].as_i64().map(|s| now + s);
    p.refresh_expires = v["refreshExpiresIn"].as_i64().map(|s| now + s);
    if let Some(o) = v["orgName"].as_str() {
        p.org = Some(o.to_string());
    }
    if let Some(u) = v["username"].as_str() {
        p.username = Some(u.to_string());
    }
    p.api_key = None;
}
