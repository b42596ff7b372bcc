//! `rockit subscriptions`: list, show, create and delete event subscriptions — signed
//! webhooks and Slack messages for task events. A new subscription's signing secret is
//! shown once.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::resources::{self, Paging, Res};
use crate::table;
use clap::Subcommand;
use serde_json::json;

/// The subscriptions of `/be/v1/subscriptions`.
pub const SUBSCRIPTIONS: Res = Res {
    singular: "subscription",
    plural: "subscriptions",
    path: "/be/v1/subscriptions",
    key: "name",
    cols: &[
        ("NAME", "name"),
        ("TYPE", "type"),
        ("TARGET", "target:"),
        ("ENABLED", "enabled"),
        ("DELIVERED", "stats.delivered"),
        ("FAILED", "stats.failed"),
        ("LAST STATUS", "stats.lastStatus"),
    ],
    default_limit: None,
};

/// Event subscriptions (webhooks, Slack): list, show, create, delete.
#[derive(Subcommand)]
pub enum SubscriptionsCmd {
    /// List the organization's subscriptions.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one subscription with its delivery statistics.
    Show { name: String },
    /// Subscribe a webhook URL or a Slack channel to task events.
    ///
    /// Webhook deliveries are signed with a secret that is printed once.
    /// Examples:
    ///
    ///   rockit subscriptions create --name releases --url https://ci.example.com/hook --event end --event error
    ///   rockit subscriptions create --name chat --type slack --slack-channel '#releases' --task-type deploy
    #[command(verbatim_doc_comment)]
    Create(Box<SubscriptionCreate>),
    /// Unsubscribe: no further deliveries.
    Delete { name: String },
}

/// `rockit subscriptions create`.
#[derive(clap::Args)]
pub struct SubscriptionCreate {
    /// The subscription's name: 2..50 of A-Z a-z 0-9 _.
    #[arg(long)]
    name: String,
    /// webhook (default) or slack.
    #[arg(long = "type", value_parser = ["webhook", "slack"], default_value = "webhook")]
    kind: String,
    /// webhook: the URL events are POSTed to.
    #[arg(long)]
    url: Option<String>,
    /// slack: the channel.
    #[arg(long, required_if_eq("kind", "slack"))]
    slack_channel: Option<String>,
    /// slack: the bot token (default: $ROCKIT_SLACK_TOKEN).
    #[arg(long)]
    slack_token: Option<String>,
    /// Only events of tasks of this type (repeatable): dltar, mkraw, mkdxf, mkpat, deploy, mkseq.
    #[arg(long = "task-type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only these events (repeatable): submit, begin, end, error.
    #[arg(long = "event", value_name = "EVENT")]
    events: Vec<String>,
    /// Only events of this app (repeatable).
    #[arg(long = "app", value_name = "APP")]
    apps: Vec<String>,
}

/// Runs a `rockit subscriptions` command.
pub fn run(g: &Global, c: SubscriptionsCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        SubscriptionsCmd::List { paging } => {
            resources::list(&mut api, g, &SUBSCRIPTIONS, &[], &paging)
        }
        SubscriptionsCmd::Show { name } => resources::show(&mut api, g, &SUBSCRIPTIONS, &name),
        SubscriptionsCmd::Delete { name } => {
            resources::delete(&mut api, g, &SUBSCRIPTIONS, &name, &[])
        }
        SubscriptionsCmd::Create(s) => create(&mut api, g, *s),
    }
}

fn create(api: &mut Api, g: &Global, s: SubscriptionCreate) -> Result<(), Fail> {
    let mut body = json!({"name": s.name, "type": s.kind, "filter": {"types": s.types, "events": s.events, "apps": s.apps}});
    if s.kind == "webhook" {
        body["url"] = json!(s.url.ok_or_else(|| Fail::new("a webhook needs --url"))?);
    } else {
        let token = s
            .slack_token
            .or_else(|| std::env::var("ROCKIT_SLACK_TOKEN").ok().filter(|t| !t.is_empty()))
            .ok_or_else(|| Fail::new("slack needs --slack-token or $ROCKIT_SLACK_TOKEN"))?;
        body["slackChannel"] = json!(s.slack_channel);
        body["slackToken"] = json!(token);
    }
    let v = api.post(SUBSCRIPTIONS.path, &body)?;
    if g.json {
        return table::print_json(&resources::without_status(v));
    }
    let sub = &v["subscription"];
    println!(
        "created subscription {} ({} {})",
        table::plain(&sub["name"]),
        table::plain(&sub["type"]),
        table::cell(sub, "target:")
    );
    resources::print_secret("signing secret", &v["secret"]);
    Ok(())
}
