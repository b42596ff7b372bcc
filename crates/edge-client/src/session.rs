//! Launcher sessions (`/client/v1/rte-sessions`): opened with the app's client key, they say
//! where the build's image is; at the end the play trace is sent (`/client/v1/traces`,
//! zstd) and the session closed with its play time and stalls.

use crate::error::{Error, ErrorKind, Result};
use crate::http::{client, describe, shown};
use edge_engine::seq::Trace;
use reqwest::blocking::Client;
use reqwest::Url;
use serde_json::{json, Value};
use std::time::Duration;

/// What opening a session needs.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The Edge's base URL (`https://edge.example.com`).
    pub server: String,
    /// The organization.
    pub org: String,
    /// The app.
    pub app: String,
    /// The app's client key (`ck_…`).
    pub client_key: String,
    /// A build to play instead of the current one.
    pub build_id: Option<u64>,
}

/// An open launcher session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `sessionId`.
    pub id: String,
    token: String,
    server: Url,
    http: Client,
    /// The organization.
    pub org_name: String,
    /// The app.
    pub app_name: String,
    /// The build the session plays.
    pub build_id: u64,
    /// Its image.
    pub dxf_name: String,
    /// Where the image's manifest is.
    pub manifest_url: String,
    /// The CDN token to append to every file URL, when the deployment has one.
    pub download_query: Option<String>,
    /// The organization's public key (SPKI PEM) when it has one: the manifest must then
    /// carry a signature that verifies with it.
    pub public_key_pem: Option<String>,
}

/// The numbers a session is closed with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionEnd {
    /// Seconds played.
    pub play_seconds: u64,
    /// Reads that had to wait for the network.
    pub stalls: u64,
    /// Seconds those reads waited, rounded up.
    pub stall_seconds: u64,
}

fn server_url(s: &str) -> Result<Url> {
    let u = Url::parse(s.trim_end_matches('/'))
        .map_err(|e| Error::new(ErrorKind::Invalid, format!("{s}: not a valid URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("{s}: only http(s) URLs with a host are supported"),
        ));
    }
    Ok(u)
}

/// The envelope of an answer: the body on success, else the server's code and message.
fn envelope(resp: reqwest::blocking::Response, what: &str) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp.json_value();
    if status.is_success() && body["status"] != "failed" {
        return Ok(body);
    }
    let code = body["error"].as_str().unwrap_or("error");
    let msg = body["message"].as_str().unwrap_or("");
    let kind = if status == reqwest::StatusCode::NOT_FOUND {
        ErrorKind::NotFound
    } else {
        ErrorKind::Server
    };
    Err(Error::new(kind, format!("{what}: HTTP {} {code}: {msg}", status.as_u16())))
}

trait JsonValue {
    fn json_value(self) -> Value;
}

impl JsonValue for reqwest::blocking::Response {
    fn json_value(self) -> Value {
        use std::io::Read;
        let mut b = Vec::new();
        let _ = self.take(1 << 20).read_to_end(&mut b);
        serde_json::from_slice(&b).unwrap_or(Value::Null)
    }
}

impl Session {
    /// Opens a session with the app's client key (`POST /client/v1/rte-sessions`).
    /// `timeout` bounds each request.
    pub fn open(req: &SessionRequest, timeout: Duration) -> Result<Session> {
        let server = server_url(&req.server)?;
        let http = client(timeout)?;
        let mut body = json!({"orgName": req.org, "appName": req.app});
        if let Some(b) = req.build_id {
            body["buildId"] = json!(b);
        }
        let url = server
            .join("/client/v1/rte-sessions")
            .map_err(|e| Error::new(ErrorKind::Invalid, e))?;
        let what = format!("opening a session at {}", shown(&server));
        let resp = http
            .post(url)
            .header("x-rockit-client-key", &req.client_key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .map_err(|e| Error::new(ErrorKind::Network, format!("{what}: {}", describe(&e))))?;
        let v = envelope(resp, &what)?;
        let s = |k: &str| v[k].as_str().map(String::from);
        let b = &v["build"];
        let (Some(id), Some(token), Some(build_id), Some(dxf), Some(murl)) = (
            s("sessionId"),
            s("sessionToken"),
            b["buildId"].as_u64(),
            b["dxfName"].as_str(),
            b["manifestUrl"].as_str(),
        ) else {
            return Err(Error::new(
                ErrorKind::Server,
                format!("{what}: the answer lacks the session or its build: {v}"),
            ));
        };
        Ok(Session {
            id,
            token,
            server,
            http,
            org_name: req.org.clone(),
            app_name: req.app.clone(),
            build_id,
            dxf_name: dxf.to_string(),
            manifest_url: murl.to_string(),
            download_query: s("downloadQuery").filter(|q| !q.is_empty()),
            public_key_pem: s("publicKeyPem").filter(|p| !p.is_empty()),
        })
    }

    /// The session token (for the Edge's depot; sent nowhere else).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The server the session was opened at.
    pub(crate) fn server(&self) -> &Url {
        &self.server
    }

    /// Sends the play trace, zstd-compressed (`POST /client/v1/traces`); returns its
    /// `traceId`. A session takes one trace.
    pub fn send_trace(&self, trace: &Trace) -> Result<String> {
        let body = zstd::bulk::compress(&trace.to_json(), 3)
            .map_err(|e| Error::new(ErrorKind::Io, format!("compressing the trace: {e}")))?;
        let url =
            self.server.join("/client/v1/traces").map_err(|e| Error::new(ErrorKind::Invalid, e))?;
        let what = "sending the trace";
        let resp = self
            .http
            .post(url)
            .header("x-rockit-session-token", &self.token)
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .body(body)
            .send()
            .map_err(|e| Error::new(ErrorKind::Network, format!("{what}: {}", describe(&e))))?;
        let v = envelope(resp, what)?;
        Ok(v["traceId"].as_str().unwrap_or("").to_string())
    }

    /// Ends the session (`PATCH /client/v1/rte-sessions`, `state: ended`).
    pub fn close(&self, end: SessionEnd) -> Result<()> {
        let url = self
            .server
            .join("/client/v1/rte-sessions")
            .map_err(|e| Error::new(ErrorKind::Invalid, e))?;
        let body = json!({"sessionId": self.id, "state": "ended", "playSeconds": end.play_seconds, "stalls": end.stalls,
                          "stallSeconds": end.stall_seconds});
        let what = "closing the session";
        let resp = self
            .http
            .patch(url)
            .header("x-rockit-session-token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .map_err(|e| Error::new(ErrorKind::Network, format!("{what}: {}", describe(&e))))?;
        envelope(resp, what).map(|_| ())
    }
}
