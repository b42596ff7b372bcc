//! `rockit trace send`: what a launcher does with its play traces — open a session with
//! the app's client key, upload the trace (zstd), end the session. For testing a training
//! loop without a launcher, and for replaying recorded traces.

use crate::api::{envelope, Api, Global};
use crate::fail::Fail;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Trace commands.
#[derive(clap::Subcommand)]
pub enum TraceCmd {
    /// Upload play traces as launchers do: one session per trace, with the app's client key.
    Send(SendArgs),
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// rockit-trace JSON files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The app the traces belong to.
    #[arg(long)]
    pub app: String,
    /// The organization (default: the profile's).
    #[arg(long)]
    pub org: Option<String>,
    /// The app's client key (default: $ROCKIT_CLIENT_KEY, else read from the app with your
    /// login, which needs keys Read).
    #[arg(long, value_name = "KEY")]
    pub client_key: Option<String>,
}

pub fn run(g: &Global, cmd: TraceCmd) -> Result<(), Fail> {
    let TraceCmd::Send(a) = cmd;
    let mut api = Api::open(g)?;
    let org = a.org.clone().or_else(|| api.profile.org.clone()).ok_or_else(|| Fail::new("no organization: give --org or log in"))?;
    let key = match a.client_key.clone().or_else(|| std::env::var("ROCKIT_CLIENT_KEY").ok().filter(|k| !k.is_empty())) {
        Some(k) => k,
        None => {
            let v = api.get(&format!("/be/v1/apps/{}", a.app), &[])?;
            v["app"]["clientKey"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Fail::new("the app's client key is not shown to you (keys Read needed): give --client-key"))?
        }
    };
    let client = crate::api::client(Some(std::time::Duration::from_secs(300)))?;
    let mut sent = Vec::new();
    for f in &a.files {
        let bytes = std::fs::read(f).map_err(|e| Fail::new(format!("{}: {e}", f.display())))?;
        let t = edge_engine::seq::parse_trace(&bytes).map_err(|e| Fail::new(format!("{}: not a valid rockit-trace: {e}", f.display())))?;
        let open = json!({"orgName": org, "appName": a.app, "buildId": t.build_id});
        let resp = client
            .post(api.url("/client/v1/rte-sessions"))
            .header("x-rockit-client-key", &key)
            .json(&open)
            .send()
            .map_err(|e| api.net(&e))?;
        let sess = envelope(resp, &api.server).map_err(|e| Fail::new(format!("{}: {e}", f.display())))?;
        let token = sess["sessionToken"].as_str().unwrap_or("").to_string();
        let body = zstd::stream::encode_all(&bytes[..], 3).map_err(|e| Fail::new(format!("zstd: {e}")))?;
        let resp = client
            .post(api.url("/client/v1/traces"))
            .header("x-rockit-session-token", &token)
            .header("content-encoding", "zstd")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .map_err(|e| api.net(&e))?;
        let v = envelope(resp, &api.server).map_err(|e| Fail::new(format!("{}: {e}", f.display())))?;
        let end = json!({"sessionId": sess["sessionId"], "state": "ended"});
        let resp =
            client.request(Method::PATCH, api.url("/client/v1/rte-sessions")).header("x-rockit-session-token", &token).json(&end).send();
        resp.map_err(|e| api.net(&e)).and_then(|r| envelope(r, &api.server))?;
        let id = v["traceId"].as_str().unwrap_or("").to_string();
        if !g.json {
            println!("{}  {id}", f.display());
        }
        sent.push(json!({"file": f.display().to_string(), "traceId": id}));
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(sent)).unwrap_or_default());
    }
    Ok(())
}
