//! The bundle as `/openapi.json` describes it. A bundle is read as JSON (each item is
//! checked by its resource's own rules, see [`super::plan`]) and written from clear items,
//! so these types only describe it; keep them in step with [`super::items`] and the
//! resources' POST bodies. Roles, apps and users items are those bodies as they are;
//! deployments and subscriptions carry secrets, which a bundle may hold encrypted.

#![allow(dead_code)] // description only: nothing builds or reads these types

use crate::domain::{apps::AppIn, roles::RoleIn, users::UserIn};
use serde::Serialize;
use utoipa::ToSchema;

/// The resources a bundle holds, in the order a plan applies them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BundleResource {
    /// Roles (the built-in `Administrators` is never in a bundle).
    Roles,
    /// Deployments.
    Deployments,
    /// Apps.
    Apps,
    /// Users: persons and machine users.
    Users,
    /// Event subscriptions.
    Subscriptions,
    /// Training settings (none yet: always an empty list; a bundle naming any is refused).
    Trainings,
}

/// A configuration bundle: what `POST /be/v1/export` makes and `/be/v1/import` and
/// `/adm/v1/commit` take. The server reads `format`, `version` and `items`.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Always `rockit-org-config`.
    #[schema(pattern = "^rockit-org-config$")]
    format: String,
    /// Always 1.
    #[schema(minimum = 1, maximum = 1)]
    version: u64,
    /// The organization exported (for people; an import goes to the caller's organization).
    org_name: String,
    /// When it was exported (RFC 3339).
    created: String,
    /// The items, per resource (only those exported are present).
    items: BundleItems,
    /// True when the organization had no key to encrypt secrets to, so every secret was
    /// left out (an import then keeps the secrets stored where the item names none).
    #[schema(nullable = false)]
    secrets_omitted: Option<bool>,
}

/// The items of a bundle, per resource: objects of the fields each resource's POST takes,
/// sorted by name (`username` for users), one per name.
#[derive(ToSchema)]
pub struct BundleItems {
    /// Roles.
    #[schema(nullable = false)]
    roles: Option<Vec<RoleIn>>,
    /// Deployments.
    #[schema(nullable = false)]
    deployments: Option<Vec<BundleDeployment>>,
    /// Apps.
    #[schema(nullable = false)]
    apps: Option<Vec<AppIn>>,
    /// Users: persons and machine users. A person created by an import gets an initial
    /// password, a machine user an API key: the commit shows them once.
    #[schema(nullable = false)]
    users: Option<Vec<UserIn>>,
    /// Event subscriptions.
    #[schema(nullable = false)]
    subscriptions: Option<Vec<BundleSubscription>>,
    /// Training settings: always empty (an import naming any is refused).
    #[schema(value_type = Option<Vec<Object>>, nullable = false)]
    trainings: Option<Vec<serde_json::Value>>,
}

/// A secret in a bundle: encrypted to the organization's key (what an export writes), or
/// in clear (a bundle written by hand).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum BundleSecret {
    /// Encrypted.
    Sealed(SealedSecret),
    /// In clear.
    Clear(String),
}

/// A secret encrypted to an organization's RSA key: RSA-OAEP (SHA-256) wrapping a fresh
/// AES-256-GCM key. Only a holder of that organization's private key can open it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// Always `RSA-OAEP-256+A256GCM`.
    #[schema(pattern = "^RSA-OAEP-256\\+A256GCM$")]
    encrypted: String,
    /// The fingerprint of the organization key it is encrypted to (`SHA256:…`, as the
    /// organization object shows it).
    key_fingerprint: String,
    /// The wrapped AES key (base64).
    ek: String,
    /// The 12-byte GCM nonce (base64).
    iv: String,
    /// The ciphertext with its tag (base64).
    ct: String,
}

/// A deployment item: the Create Deployment body (without `probe`: nothing is probed),
/// its secrets possibly encrypted.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleDeployment {
    /// Unique in the organization.
    name: String,
    /// Free text.
    label: Option<String>,
    /// The directory inside the origin that everything goes under (`''`: none).
    origin_prefix: Option<String>,
    /// Where the files go.
    origin: BundleOrigin,
    /// Signed download URLs; absent or null: none.
    download_auth: Option<BundleDownloadAuth>,
    /// The public base URL of the files.
    public_url: Option<String>,
}

/// The kinds of origin.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BundleOriginType {
    /// An S3-compatible bucket.
    S3,
    /// A directory of the Edge's host, under its `fs_origin_root`.
    Fs,
    /// Akamai NetStorage.
    Netstorage,
}

/// A deployment's origin; `type` says which of the other fields it takes.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleOrigin {
    /// The kind of origin.
    #[serde(rename = "type")]
    kind: BundleOriginType,
    /// `s3`: the endpoint URL.
    endpoint: Option<String>,
    /// `s3`: the region.
    region: Option<String>,
    /// `s3`: the bucket.
    bucket: Option<String>,
    /// `s3`: the access key id.
    access_key_id: Option<String>,
    /// `s3`: the secret access key.
    secret_access_key: Option<BundleSecret>,
    /// `s3`: path-style addressing.
    path_style: Option<bool>,
    /// `fs`: the directory, relative to the origin root.
    path: Option<String>,
    /// `netstorage`: the upload host.
    host: Option<String>,
    /// `netstorage`: the upload account's key name.
    key_name: Option<String>,
    /// `netstorage`: the upload account's key.
    key: Option<BundleSecret>,
    /// `netstorage`: the CP code (digits).
    cp_code: Option<String>,
    /// `netstorage`: the directory under the CP code.
    base_path: Option<String>,
}

/// The kinds of signed download URLs.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BundleDownloadAuthType {
    /// Akamai token authentication.
    Akamai,
    /// G-Core secure tokens.
    Gcore,
}

/// A deployment's signed download URLs.
#[derive(ToSchema)]
pub struct BundleDownloadAuth {
    /// The kind.
    #[serde(rename = "type")]
    kind: BundleDownloadAuthType,
    /// How long a signed URL holds, 1 to 31536000 seconds.
    #[schema(minimum = 1, maximum = 31536000)]
    window: u64,
    /// `akamai`: the key (hex).
    key: Option<BundleSecret>,
    /// `gcore`: the secret.
    secret: Option<BundleSecret>,
}

/// The kinds of subscription.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BundleSubscriptionType {
    /// Signed HTTP POSTs to `url`.
    Webhook,
    /// Messages to a Slack channel.
    Slack,
}

/// A subscription item: the Create Subscription body, its Slack token possibly encrypted.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleSubscription {
    /// Unique in the organization.
    name: String,
    /// The kind.
    #[serde(rename = "type")]
    kind: BundleSubscriptionType,
    /// `webhook`: where the events go.
    url: Option<String>,
    /// `slack`: the channel.
    slack_channel: Option<String>,
    /// `slack`: the bot token; left out of an export without an organization key (an
    /// import then keeps the stored one).
    slack_token: Option<BundleSecret>,
    /// Which events; empty lists match everything.
    filter: Option<BundleFilter>,
}

/// What a subscription receives; each empty (or absent) list matches everything.
#[derive(ToSchema)]
pub struct BundleFilter {
    /// Task types.
    #[serde(default)]
    types: Vec<String>,
    /// Event names.
    #[serde(default)]
    events: Vec<String>,
    /// App names.
    #[serde(default)]
    apps: Vec<String>,
}
