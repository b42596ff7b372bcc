//! `dltar` in Edge-download mode: fetches the build archive from the publisher's URL
//! through the outbound guard, streaming to disk, checking size and hash, and mapping every
//! failure to the contract's exit codes.

use crate::delivery::outcome::{After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::state::AppState;
use crate::store::tasks::{self, DltarParams};
use edge_origin::{ErrorKind, OriginOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A URL as it may be shown: without userinfo and query.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

fn failed(exit: u8, status: Option<u16>, url: &str, extra: Option<(&str, Value)>) -> Done {
    let mut exc = json!({"httpDownloadFailed": {"httpStatus": status, "exitCode": exit, "url": if url.is_empty() { Value::Null } else { json!(display_url(url)) }}});
    if let Some((k, v)) = extra {
        exc[k] = v;
    }
    Done {
        outcome: tasks::Outcome {
            status: tasks::TaskStatus::Error,
            result: None,
            exception: Some(exc),
            warning: None,
        },
        after: After::CancelRest,
    }
}

fn classify(e: &reqwest::Error) -> u8 {
    let oe = edge_origin::net::request_error(e);
    let mut chain = String::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        chain.push_str(&s.to_string().to_lowercase());
        chain.push(' ');
        src = s.source();
    }
    match oe.kind {
        ErrorKind::Denied => 8,
        _ if e.is_redirect() || chain.contains("too many redirects") => 7,
        _ if e.is_timeout() || chain.contains("timed out") => 3,
        _ if [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "invalidcontenttype",
            "peer is incompatible",
            "alert",
            "rustls",
        ]
        .iter()
        .any(|k| chain.contains(k)) =>
        {
            6
        }
        _ => 1,
    }
}

/// Runs a download-mode `dltar`.
pub async fn run(
    st: &Arc<AppState>,
    t: &tasks::Task,
    progress: &Progress,
) -> Result<Done, StepError> {
    let p: DltarParams = t.payload()?;
    let url = p.url.unwrap_or_default();
    if let Err(e) = edge_origin::net::check_url(&url, st.cfg.allow_private_sources) {
        return Ok(failed(if e.kind == ErrorKind::Denied { 8 } else { 1 }, None, &url, None));
    }
    let headers: serde_json::Map<String, Value> = match p.headers_sealed.as_deref() {
        Some(s) => {
            st.data_key.open(s).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
        }
        None => Default::default(),
    };
    let opts = OriginOptions {
        allow_private: st.cfg.allow_private_sources,
        timeout: Duration::from_secs(st.cfg.download_idle_timeout),
    };
    let client = edge_origin::net::client_no_redirect(&opts);
    // Redirects by hand: every hop is checked, at most 5 are followed, and the publisher's
    // headers go only to the origin they were given for.
    let origin_of = |u: &reqwest::Url| {
        (u.scheme().to_string(), u.host_str().unwrap_or("").to_string(), u.port_or_known_default())
    };
    let first = reqwest::Url::parse(&url).map_err(|e| StepError::internal(e.to_string()))?;
    let home = origin_of(&first);
    let mut current = first;
    let mut hops = 0;
    let mut resp = loop {
        let mut req = client.get(current.clone());
        if origin_of(&current) == home {
            for (k, v) in &headers {
                if let Some(v) = v.as_str() {
                    req = req.header(k.as_str(), v);
                }
            }
        }
        let r = match req.send().await {
            Ok(r) => r,
            Err(e) => return Ok(failed(classify(&e), None, &url, None)),
        };
        if !r.status().is_redirection() {
            break r;
        }
        let Some(next) = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| current.join(l).ok())
        else {
            break r;
        };
        hops += 1;
        if hops > edge_origin::net::MAX_REDIRECTS {
            return Ok(failed(7, None, &url, None));
        }
        if let Err(e) = edge_origin::net::check_url(next.as_str(), st.cfg.allow_private_sources) {
            return Ok(failed(if e.kind == ErrorKind::Denied { 8 } else { 1 }, None, &url, None));
        }
        current = next;
    };
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        return Ok(failed(2, Some(status), &url, None));
    }
    let limit = st.cfg.upload_max_bytes;
    let expected = p.size;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(failed(5, Some(status), &url, None));
    }
    let total_hint = expected.or(resp.content_length()).unwrap_or(0);
    let key = depot::upload_key(&t.group);
    let dest = st.depot.local(&key);
    let part = dest.with_extension("part");
    std::fs::create_dir_all(dest.parent().expect("uploads dir"))?;
    let mut f = tokio::fs::File::create(&part).await?;
    let mut hasher = Sha256::new();
    let mut n: u64 = 0;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Ok(failed(classify(&e), Some(status), &url, None));
            }
        };
        n += chunk.len() as u64;
        if n > limit {
            let _ = tokio::fs::remove_file(&part).await;
            return Ok(failed(5, Some(status), &url, None));
        }
        hasher.update(&chunk);
        f.write_all(&chunk).await?;
        if total_hint > 0 {
            progress.set(n as f64 / total_hint as f64);
        }
    }
    f.sync_all().await?;
    drop(f);
    if let Some(want) = expected {
        if want != n {
            let _ = tokio::fs::remove_file(&part).await;
            return Ok(failed(
                4,
                Some(status),
                &url,
                Some(("sizeMismatch", json!({"sizeBytesActual": n, "sizeBytesExpected": want}))),
            ));
        }
    }
    let digest = crate::util::hex(&hasher.finalize());
    if let Some(want) = p.sha256.as_deref() {
        if !want.eq_ignore_ascii_case(&digest) {
            let _ = tokio::fs::remove_file(&part).await;
            return Ok(failed(4, Some(status), &url, None));
        }
    }
    tokio::fs::rename(&part, &dest).await?;
    st.depot.push(&key).await?;
    Ok(Done {
        outcome: tasks::Outcome {
            status: tasks::TaskStatus::Done,
            result: Some(json!({"sizeBytes": n, "sha256": digest, "url": display_url(&url)})),
            exception: None,
            warning: None,
        },
        after: After::Downloaded,
    })
}
