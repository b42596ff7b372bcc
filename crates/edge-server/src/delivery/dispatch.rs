//! The event dispatcher: sends each subscription's pending deliveries in order, one at a
//! time per subscription and many subscriptions at once, so one slow or dead receiver
//! delays nobody else. Webhooks are signed (HS256 JWT in `x-rockit-subscriptions` with the
//! body's SHA-256); Slack goes through `chat.postMessage`. Failures retry with exponential
//! backoff and jitter, honouring `Retry-After` up to an hour; then the event is dropped.

use crate::state::AppState;
use crate::store::deliveries::{self, Pending};
use crate::util::{hex, now_ms, random_bytes};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Deliveries older than this are dropped (events.md: 24 h).
const MAX_AGE_MS: i64 = 24 * 3600 * 1000;

/// Runs until `stop` flips.
pub async fn run(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let opts = edge_origin::OriginOptions {
        allow_private: st.cfg.allow_private_sources,
        timeout: Duration::from_millis(st.cfg.webhook_timeout_ms),
    };
    let client = edge_origin::net::client(&opts);
    loop {
        if *stop.borrow() {
            break;
        }
        match due(&st, &busy).await {
            Ok(list) => {
                for (sub, delivery) in list {
                    busy.lock().expect("busy set").insert(sub.clone());
                    let (st, busy, client) = (st.clone(), busy.clone(), client.clone());
                    tokio::spawn(crate::db::scope(async move {
                        // Serve this subscription's queue in order until nothing is due:
                        // the leased head first, then batches.
                        let mut batch = vec![delivery];
                        while !batch.is_empty() {
                            match serve_batch(&st, &client, &sub, &batch).await {
                                Ok(true) => {
                                    batch = lease_batch(&st, &sub, 64).await.unwrap_or_default()
                                }
                                Ok(false) => batch = Vec::new(),
                                Err(e) => {
                                    tracing::warn!(subscription = %sub, error = %e, "delivery bookkeeping failed");
                                    batch = Vec::new();
                                }
                            }
                        }
                        busy.lock().expect("busy set").remove(&sub);
                    }));
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for due deliveries failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The head delivery of every subscription that has one due and is not being served.
async fn due(
    st: &AppState,
    busy: &Mutex<HashSet<String>>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let now = now_ms();
    // The head of each queue, then a primary-key lookup per head.
    let ids = deliveries::heads(&st.db).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for h in deliveries::heads_by_id(&st.db, &ids).await? {
        if h.next_at > now
            || h.lease_until.is_some_and(|l| l > now)
            || busy.lock().expect("busy set").contains(&h.subscription_id)
        {
            continue;
        }
        // Lease it so another process does not send it too.
        if deliveries::lease(&st.db, &h.id, now).await? {
            out.push((h.subscription_id, h.id));
        }
    }
    Ok(out)
}

/// Leases up to `n` due deliveries at the head of one subscription's queue, in order
/// (stopping at the first one not yet due: order is kept).
async fn lease_batch(st: &AppState, sub: &str, n: i64) -> Result<Vec<String>, sqlx::Error> {
    let now = now_ms();
    let rows = deliveries::queue_head(&st.db, sub, n).await?;
    let ids: Vec<String> =
        rows.into_iter().take_while(|(_, next_at)| *next_at <= now).map(|(id, _)| id).collect();
    if ids.is_empty() {
        return Ok(ids);
    }
    let got = deliveries::lease_all(&st.db, &ids, now).await?;
    // Another process holds part of this queue: leave it to that one (its leases expire).
    Ok(if got as usize == ids.len() { ids } else { Vec::new() })
}

/// Sends a leased batch in order; successes are recorded together. `Ok(true)` when the
/// whole batch went out (the queue may go on at once).
async fn serve_batch(
    st: &AppState,
    client: &reqwest::Client,
    sub: &str,
    batch: &[String],
) -> Result<bool, sqlx::Error> {
    let mut delivered: Vec<&String> = Vec::new();
    let mut all_ok = true;
    let mut rows: std::collections::HashMap<String, Pending> =
        deliveries::pending(&st.db, batch).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    for id in batch {
        match deliver(st, client, id, rows.remove(id), false).await? {
            Some(true) => delivered.push(id),
            Some(false) => continue,
            None => {
                all_ok = false;
                break;
            }
        }
    }
    if !delivered.is_empty() {
        let mut tx = st.db.tx().await?;
        deliveries::mark_done_all(&mut tx, &delivered).await?;
        deliveries::count_delivered(&mut tx, sub, delivered.len() as i64).await?;
        tx.commit().await?;
    }
    if !all_ok {
        // Release the leases of what was not attempted, keeping their place in line.
        deliveries::release(&st.db, sub, now_ms()).await?;
    }
    Ok(all_ok)
}

enum Sent {
    Ok,
    /// Disable the subscription (410, or Slack's fatal errors).
    Gone(String),
    /// Retry (optionally after the receiver's Retry-After).
    Retry(String, Option<u64>),
}

/// Sends one delivery. `Some(true)`: it succeeded (recorded by the caller unless
/// `record`); `Some(false)`: dropped (recorded), the queue may go on; `None`: a retry was
/// scheduled or the subscription disabled — the queue stops here.
async fn deliver(
    st: &AppState,
    client: &reqwest::Client,
    id: &str,
    row: Option<Pending>,
    record: bool,
) -> Result<Option<bool>, sqlx::Error> {
    let row = match row {
        Some(r) => Some(r),
        None => deliveries::pending_one(&st.db, id).await?,
    };
    let Some(r) = row else {
        return Ok(Some(false));
    };
    let sub = r.subscription_id.clone();
    let now = now_ms();
    let kind = r.kind.clone();
    if !r.is_enabled() || now - r.created > MAX_AGE_MS {
        st.metrics.delivery(&kind, "failed");
        return drop_delivery(st, id, &sub, "expired before delivery").await.map(|_| Some(false));
    }
    let mut body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    body["deliveryId"] = json!(id);
    let sent = if kind == "slack" {
        send_slack(st, client, &r, &body).await
    } else {
        send_webhook(st, client, &r, &body).await
    };
    st.metrics.delivery(
        &kind,
        match &sent {
            Sent::Ok => "delivered",
            Sent::Gone(_) => "failed",
            Sent::Retry(..) if r.attempts as usize >= st.cfg.webhook_backoff_ms.len() => "failed",
            Sent::Retry(..) => "retried",
        },
    );
    match sent {
        Sent::Ok if !record => Ok(Some(true)),
        Sent::Ok => {
            let mut tx = st.db.tx().await?;
            deliveries::mark_done(&mut tx, id).await?;
            deliveries::count_one_delivered(&mut tx, &sub).await?;
            tx.commit().await.map(|_| Some(true))
        }
        Sent::Gone(why) => {
            let mut tx = st.db.tx().await?;
            deliveries::disable_subscription(&mut tx, &sub, &why).await?;
            let n = deliveries::drop_queue(&mut tx, &sub).await?;
            deliveries::count_failed(&mut tx, &sub, n as i64).await?;
            tx.commit().await?;
            tracing::info!(subscription = %r.name, reason = %why, "subscription disabled");
            Ok(None)
        }
        Sent::Retry(why, retry_after) => {
            let attempts = r.attempts as usize;
            let schedule = &st.cfg.webhook_backoff_ms;
            if attempts >= schedule.len() {
                // Dropped: the next event in line may go at once.
                return drop_delivery(st, id, &sub, &why).await.map(|_| Some(false));
            }
            let base = schedule[attempts] as f64;
            let jitter = 0.8 + (random_bytes(1)[0] as f64 / 255.0) * 0.4;
            let mut wait = (base * jitter) as i64;
            if let Some(ra) = retry_after {
                wait = wait.max((ra.min(3600) * 1000) as i64);
            }
            let mut tx = st.db.tx().await?;
            deliveries::schedule_retry(&mut tx, id, now_ms() + wait, &why).await?;
            deliveries::note_failure(&mut tx, &sub, &why).await?;
            tx.commit().await.map(|_| None)
        }
    }
}

async fn drop_delivery(st: &AppState, id: &str, sub: &str, why: &str) -> Result<(), sqlx::Error> {
    let mut tx = st.db.tx().await?;
    deliveries::drop_one(&mut tx, id, why).await?;
    deliveries::count_dropped(&mut tx, sub, why).await?;
    tx.commit().await
}

fn secret_of(st: &AppState, sealed: Option<String>) -> Vec<u8> {
    sealed.and_then(|s| st.data_key.open(&s)).unwrap_or_default()
}

async fn send_webhook(st: &AppState, client: &reqwest::Client, r: &Pending, body: &Value) -> Sent {
    let url = r.url.clone().unwrap_or_default();
    if let Err(e) = edge_origin::net::check_url(&url, st.cfg.allow_private_sources) {
        return Sent::Retry(e.to_string(), None);
    }
    let bytes = body.to_string().into_bytes();
    let secret = secret_of(st, Some(r.secret_sealed.clone()));
    let key =
        crate::util::b64url_decode(std::str::from_utf8(&secret).unwrap_or("")).unwrap_or_default();
    let iat = now_ms() / 1000;
    let claims = json!({"iss": "rockit-edge", "sub": r.name, "iat": iat, "exp": iat + 300, "jti": body["deliveryId"], "sha256": hex(&Sha256::digest(&bytes))});
    let jwt = crate::crypto::jwt_sign(&claims, &key);
    let req = client
        .post(&url)
        .header("content-type", "application/json")
        .header("x-rockit-subscriptions", jwt)
        .timeout(Duration::from_millis(st.cfg.webhook_timeout_ms))
        .body(bytes);
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Sent::Ok,
        Ok(resp) if resp.status().as_u16() == 410 => Sent::Gone("410 Gone".into()),
        Ok(resp) => {
            let ra = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Sent::Retry(format!("HTTP {}", resp.status().as_u16()), ra)
        }
        Err(e) => Sent::Retry(edge_origin::net::request_error(&e).to_string(), None),
    }
}

/// One line for humans, e.g. `MyGame 1.0.3: deploy error (publish-failed)`.
fn slack_text(b: &Value) -> String {
    let mut t = format!(
        "{} {}{}: {} {}",
        b["orgName"].as_str().unwrap_or(""),
        b["appName"].as_str().unwrap_or(""),
        b["buildName"].as_str().map(|n| format!(" {n}")).unwrap_or_default(),
        b["type"].as_str().unwrap_or(""),
        b["event"].as_str().unwrap_or("")
    );
    if let Some(code) = b["exception"].as_object().and_then(|o| o.keys().next()) {
        t.push_str(&format!(" ({code})"));
    }
    t
}

async fn send_slack(st: &AppState, client: &reqwest::Client, r: &Pending, body: &Value) -> Sent {
    let token = String::from_utf8(secret_of(st, r.slack_token_sealed.clone())).unwrap_or_default();
    let url = format!("{}/chat.postMessage", st.cfg.slack_api_base.trim_end_matches('/'));
    let fields: Vec<Value> = ["type", "event", "appName", "buildName", "buildId", "taskName"]
        .iter()
        .filter(|k| !body[**k].is_null())
        .map(|k| json!({"type": "mrkdwn", "text": format!("*{k}*: {}", body[*k].as_str().map(String::from).unwrap_or_else(|| body[*k].to_string()))}))
        .collect();
    let msg = json!({"channel": r.slack_channel.as_deref().unwrap_or_default(), "text": slack_text(body),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": slack_text(body)}, "fields": fields}], "metadata": {"event_type": "rockit_edge", "event_payload": body}});
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .json(&msg)
        .timeout(Duration::from_millis(st.cfg.webhook_timeout_ms))
        .send()
        .await;
    match resp {
        Ok(resp) if resp.status().is_success() => {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            match (v["ok"].as_bool(), v["error"].as_str()) {
                (Some(true), _) => Sent::Ok,
                (_, Some(e @ ("invalid_auth" | "channel_not_found" | "account_inactive"))) => {
                    Sent::Gone(format!("slack: {e}"))
                }
                (_, e) => Sent::Retry(format!("slack: {}", e.unwrap_or("not ok")), None),
            }
        }
        Ok(resp) => {
            let ra = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Sent::Retry(format!("slack HTTP {}", resp.status().as_u16()), ra)
        }
        Err(e) => Sent::Retry(edge_origin::net::request_error(&e).to_string(), None),
    }
}
