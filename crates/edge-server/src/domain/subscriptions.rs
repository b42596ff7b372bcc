//! Subscriptions (webhooks and Slack): validation of the body (the target checked by the
//! address guard), creating one with its signing secret (shown once), and unsubscribing.

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::names::Name;
use crate::perms::{Resource, C, D};
use crate::state::AppState;
use crate::store::events::{EVENTS, TYPES};
use crate::store::subscriptions::{self, Subscription};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A subscription's filter: an event is delivered when it matches every list that is not
/// empty.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterIn {
    /// Task types whose events are delivered; empty: all.
    #[serde(default)]
    #[schema(value_type = Vec<EventTaskType>)]
    pub types: Vec<String>,
    /// Events delivered; empty: all.
    #[serde(default)]
    #[schema(value_type = Vec<EventName>)]
    pub events: Vec<String>,
    /// Names of the apps whose events are delivered; empty: all.
    #[serde(default)]
    pub apps: Vec<String>,
}

/// The Create Subscription body (also a subscription item of a configuration bundle).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SubscriptionIn {
    /// Unique in the organization: 2 to 50 letters, digits or `_`.
    pub name: String,
    /// `webhook` or `slack`.
    #[serde(rename = "type")]
    #[schema(value_type = SubscriptionKind)]
    pub kind: String,
    /// A webhook's target: an `http(s)` URL of at most 2048 characters, on a public address
    /// unless the instance allows private ones. Webhooks only.
    pub url: Option<String>,
    /// The Slack channel to post to (1 to 200 characters). Slack only.
    pub slack_channel: Option<String>,
    /// The Slack bot token (1 to 500 characters); kept sealed, never shown. Slack only.
    pub slack_token: Option<String>,
    /// Which events to deliver; absent: all.
    pub filter: Option<FilterIn>,
}

/// What a subscription delivers to.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // `SubscriptionIn.type` is read as text (its error names both); this only describes it
pub(crate) enum SubscriptionKind {
    /// Signed HTTP POSTs to `url`.
    Webhook,
    /// Messages to `slackChannel`.
    Slack,
}

/// A string schema of the given values.
fn one_of_names(values: &[&str]) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(values.to_vec()))
            .build(),
    ))
}

/// The task types whose changes are events ([`TYPES`]), as a schema.
pub struct EventTaskType;

impl PartialSchema for EventTaskType {
    fn schema() -> RefOr<Schema> {
        one_of_names(&TYPES)
    }
}

impl ToSchema for EventTaskType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventTaskType")
    }
}

/// The event names ([`EVENTS`]), as a schema.
pub struct EventName;

impl PartialSchema for EventName {
    fn schema() -> RefOr<Schema> {
        one_of_names(&EVENTS)
    }
}

impl ToSchema for EventName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventName")
    }
}

/// A Create Subscription body that passed validation.
pub(crate) struct ValidSub {
    pub name: Name,
    pub kind: String,
    pub url: Option<String>,
    pub channel: Option<String>,
    pub token: Option<String>,
    /// The filter in its stored (and wire) form.
    pub filter: Value,
}

/// Refuses URLs whose host is (or resolves to) a private, loopback or link-local address,
/// unless the instance allows them.
pub(crate) async fn check_target(st: &AppState, url: &str) -> ApiResult<()> {
    edge_origin::net::check_url(url, st.cfg.allow_private_sources)
        .map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if st.cfg.allow_private_sources {
        return Ok(());
    }
    let u = reqwest::Url::parse(url).map_err(|_| ApiError::invalid("url", "not a valid URL"))?;
    let host = u.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    if host.parse::<std::net::IpAddr>().is_err() {
        // Names are checked again at every connection; this early check gives a clear 400.
        if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
            if addrs.into_iter().any(|a| !edge_origin::net::is_public_ip(a.ip())) {
                return Err(ApiError::invalid(
                    "url",
                    "the URL resolves to a private or loopback address",
                ));
            }
        }
    }
    Ok(())
}

/// Checks every field of a Create Subscription body, the target URL included.
pub(crate) async fn validate_subscription(st: &AppState, b: SubscriptionIn) -> ApiResult<ValidSub> {
    let name = Name::parse("name", &b.name)?;
    let f = b.filter.unwrap_or(FilterIn { types: vec![], events: vec![], apps: vec![] });
    if let Some(t) = f.types.iter().find(|t| !TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid("filter.types", format!("unknown task type '{t}'")));
    }
    if let Some(e) = f.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::invalid("filter.events", format!("unknown event '{e}'")));
    }
    for a in &f.apps {
        Name::parse("filter.apps", a)?;
    }
    let (url, channel, token) = match b.kind.as_str() {
        "webhook" => {
            if b.slack_channel.is_some() || b.slack_token.is_some() {
                return Err(ApiError::invalid(
                    "slackChannel",
                    "a webhook takes url, not slackChannel/slackToken",
                ));
            }
            let url = b.url.ok_or_else(|| ApiError::invalid("url", "missing field 'url'"))?;
            if url.len() > 2048 {
                return Err(ApiError::invalid("url", "url is too long"));
            }
            check_target(st, &url).await?;
            (Some(url), None, None)
        }
        "slack" => {
            if b.url.is_some() {
                return Err(ApiError::invalid(
                    "url",
                    "a slack subscription takes slackChannel and slackToken, not url",
                ));
            }
            let ch = b
                .slack_channel
                .filter(|c| !c.is_empty() && c.len() <= 200)
                .ok_or_else(|| ApiError::invalid("slackChannel", "missing field 'slackChannel'"))?;
            let tok = b
                .slack_token
                .filter(|t| !t.is_empty() && t.len() <= 500)
                .ok_or_else(|| ApiError::invalid("slackToken", "missing field 'slackToken'"))?;
            (None, Some(ch), Some(tok))
        }
        _ => return Err(ApiError::invalid("type", "type must be webhook or slack")),
    };
    let filter = json!({"types": f.types, "events": f.events, "apps": f.apps});
    Ok(ValidSub { name, kind: b.kind, url, channel, token, filter })
}

/// Inserts a validated subscription with a fresh signing secret; returns (id, secret).
/// A taken name is 409 `item-exists`.
pub(crate) async fn insert_subscription(
    st: &AppState,
    c: &mut crate::store::Conn,
    org_id: &OrgId,
    v: &ValidSub,
) -> ApiResult<(String, String)> {
    let secret = crate::util::b64url(&crate::util::random_bytes(32));
    let id = crate::util::new_id("sub");
    if subscriptions::exists(&mut *c, org_id, v.name.as_str()).await? {
        return Err(ApiError::conflict("item-exists", format!("subscription '{}' exists", v.name)));
    }
    subscriptions::insert(
        c,
        subscriptions::NewSubscription {
            id: &id,
            org: org_id,
            name: v.name.as_str(),
            kind: &v.kind,
            url: v.url.as_deref(),
            channel: v.channel.as_deref(),
            slack_token_sealed: v.token.as_ref().map(|t| st.data_key.seal(t.as_bytes())),
            secret_sealed: st.data_key.seal(secret.as_bytes()),
            filter_json: v.filter.to_string(),
        },
    )
    .await?;
    Ok((id, secret))
}

/// Subscribes the caller's organization: validates the body (400; the webhook target must
/// be a public address unless the instance allows private ones), checks `subscriptions:
/// Create` (403), and saves it with a fresh signing secret (409 `item-exists` for a taken
/// name). Answers the subscription as saved and the secret, which is never shown again.
pub(crate) async fn create(
    st: &AppState,
    c: &Caller,
    b: SubscriptionIn,
) -> ApiResult<(Subscription, String)> {
    let v = validate_subscription(st, b).await?;
    c.require(Resource::Subscriptions, C)?;
    let mut tx = st.db.tx().await?;
    let (id, secret) = insert_subscription(st, &mut tx, &c.org_id, &v).await?;
    let r = subscriptions::by_id(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("subscription vanished"))?;
    tx.commit().await?;
    Ok((r, secret))
}

/// Unsubscribes the caller's subscription `name` (`subscriptions: Delete`; 404 for an
/// unknown one): its deliveries not yet made are dropped with it.
pub(crate) async fn delete(st: &AppState, c: &Caller, name: &str) -> ApiResult<()> {
    c.require(Resource::Subscriptions, D)?;
    let mut tx = st.db.tx().await?;
    let r = subscriptions::by_name(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", name))?;
    subscriptions::delete(&mut tx, &r.id).await?;
    tx.commit().await?;
    Ok(())
}
