//! The webhooks page: every subscription with its delivery figures and its newest
//! deliveries (status, attempts, the receiver's answer when it failed); creating one (its
//! signing secret shown once) and unsubscribing.

use super::form::{Checked, NoFields};
use super::page::{age, render, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain::subscriptions::{self as rules, FilterIn, SubscriptionIn};
use crate::perms::{Resource, C, D, R};
use crate::state::AppState;
use crate::store::{deliveries, subscriptions};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::sync::Arc;

/// How many deliveries each subscription shows.
const RECENT: i64 = 10;

struct Delivery {
    event: String,
    status: String,
    attempts: i64,
    age: String,
    error: String,
}

struct Sub {
    name: String,
    kind: String,
    target: String,
    enabled: bool,
    delivered: i64,
    failed: i64,
    last: String,
    last_error: String,
    deliveries: Vec<Delivery>,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct Page {
    chrome: Chrome,
    subs: Vec<Sub>,
    can_create: bool,
    can_delete: bool,
}

/// `GET /console/webhooks`.
pub async fn page(State(st): State<Arc<AppState>>, v: Viewer) -> PageResult {
    v.caller.require(Resource::Subscriptions, R)?;
    let mut c = st.db.conn().await?;
    let mut subs = Vec::new();
    for s in subscriptions::list(&mut c, &v.caller.org_id).await? {
        let recent = deliveries::recent(&mut c, &s.id, RECENT).await?;
        subs.push(Sub {
            target: match s.kind.as_str() {
                "slack" => format!("#{}", s.slack_channel.clone().unwrap_or_default()),
                _ => s.url.clone().unwrap_or_default(),
            },
            name: s.name,
            kind: s.kind,
            enabled: s.enabled == 1,
            delivered: s.delivered,
            failed: s.failed,
            last: s.last_delivery.map(age).unwrap_or_else(|| "never".into()),
            last_error: s.last_error.unwrap_or_default(),
            deliveries: recent
                .into_iter()
                .map(|d| Delivery {
                    event: format!(
                        "{} {}{}",
                        d.task_type,
                        d.event,
                        d.app_name.map(|a| format!(" ({a})")).unwrap_or_default()
                    ),
                    status: d.status,
                    attempts: d.attempts,
                    age: age(d.created),
                    error: d.last_error.unwrap_or_default(),
                })
                .collect(),
        });
    }
    let page = Page {
        chrome: Chrome::new(&v, "Webhooks", "/console/webhooks"),
        subs,
        can_create: v.can(Resource::Subscriptions, C),
        can_delete: v.can(Resource::Subscriptions, D),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The New Subscription form (a webhook; Slack goes through the API or the CLI).
#[derive(Deserialize)]
pub struct NewSub {
    name: String,
    url: String,
    /// Comma-separated app names; empty: every app.
    #[serde(default)]
    apps: String,
}

/// The signing secret of a subscription just made, shown once.
#[derive(Template)]
#[template(path = "console/credential.html")]
struct Secret {
    chrome: Chrome,
    heading: String,
    what: &'static str,
    secret: String,
}

/// `POST /console/webhooks`: the API's Create Subscription.
pub async fn create(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewSub>,
) -> PageResult {
    let apps: Vec<String> =
        f.apps.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
    let b = SubscriptionIn {
        name: f.name.trim().to_string(),
        kind: "webhook".into(),
        url: Some(f.url.trim().to_string()),
        slack_channel: None,
        slack_token: None,
        filter: (!apps.is_empty()).then(|| FilterIn { types: vec![], events: vec![], apps }),
    };
    let (sub, secret) = rules::create(&st, &v.caller, b).await?;
    let page = Secret {
        chrome: Chrome::new(&v, "Webhook created", "/console/webhooks"),
        heading: format!("Webhook {} created", sub.name),
        what: "The secret its deliveries are signed with",
        secret,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/webhooks/{name}/delete`: unsubscribes (queued deliveries dropped).
pub async fn delete(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    rules::delete(&st, &v.caller, &name).await?;
    Ok(Redirect::to("/console/webhooks").into_response())
}
