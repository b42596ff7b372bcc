//! The wire shapes of a deployment's `origin` and `downloadAuth`, for `/openapi.json`:
//! one schema per type, told apart by `type`, in requests (secrets write-only) and in
//! answers (secrets shown as `********`). The handlers read and write these objects as
//! JSON ([`super::parse_origin`], [`super::parse_download_auth`]) so that their error
//! messages name the exact field; these types only describe them.
#![allow(dead_code)] // never built: they describe JSON the handlers read and write

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// The schema of a `type` field: the one string `value`.
fn tag(value: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some([value]))
        .description(Some(format!("`{value}`.")))
        .build()
}

fn s3_tag() -> Object {
    tag("s3")
}

fn fs_tag() -> Object {
    tag("fs")
}

fn netstorage_tag() -> Object {
    tag("netstorage")
}

fn akamai_tag() -> Object {
    tag("akamai")
}

fn gcore_tag() -> Object {
    tag("gcore")
}

/// The `origin` of a request: one of the origin types, told apart by `type`. Secrets are
/// write-only (answers show `********`); sending `********`, or leaving the secret out,
/// keeps the stored one while the type stays the same.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("s3" = "#/components/schemas/S3OriginIn"),
    ("fs" = "#/components/schemas/FsOriginIn"),
    ("netstorage" = "#/components/schemas/NetstorageOriginIn"))))]
pub(crate) enum OriginIn {
    /// An S3 bucket.
    S3(S3OriginIn),
    /// A directory of the Edge host.
    Fs(FsOriginIn),
    /// Akamai NetStorage.
    Netstorage(NetstorageOriginIn),
}

/// An S3 (or S3-compatible) bucket as origin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct S3OriginIn {
    /// `s3`.
    #[schema(schema_with = s3_tag)]
    r#type: String,
    /// The S3 endpoint URL.
    #[schema(min_length = 1, max_length = 1024)]
    endpoint: String,
    /// The bucket's region.
    #[schema(min_length = 1, max_length = 1024)]
    region: String,
    /// The bucket: 3 to 63 of `a-z`, `0-9`, `.`, `-`.
    #[schema(min_length = 3, max_length = 63, pattern = "^[a-z0-9.-]+$")]
    bucket: String,
    /// The access key id.
    #[schema(min_length = 1, max_length = 1024)]
    access_key_id: String,
    /// The secret access key: required unless the deployment has one for an `s3` origin.
    #[schema(write_only, min_length = 1, max_length = 1024)]
    secret_access_key: Option<String>,
    /// Address the bucket in the URL path instead of the host name.
    path_style: Option<bool>,
}

/// A directory of the Edge host as origin (inside the configured `fs_origin_root`; no two
/// organizations share one).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FsOriginIn {
    /// `fs`.
    #[schema(schema_with = fs_tag)]
    r#type: String,
    /// The directory: relative to the configured `fs_origin_root`, or absolute inside it;
    /// no `..`.
    #[schema(min_length = 1, max_length = 1024)]
    path: String,
}

/// Akamai NetStorage as origin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetstorageOriginIn {
    /// `netstorage`.
    #[schema(schema_with = netstorage_tag)]
    r#type: String,
    /// The NetStorage upload host.
    #[schema(min_length = 1, max_length = 1024)]
    host: String,
    /// The upload account's key name.
    #[schema(min_length = 1, max_length = 1024)]
    key_name: String,
    /// The upload account's key: required unless the deployment has one for a
    /// `netstorage` origin.
    #[schema(write_only, min_length = 1, max_length = 1024)]
    key: Option<String>,
    /// The CP code (digits).
    #[schema(min_length = 1, max_length = 1024, pattern = "^[0-9]+$")]
    cp_code: String,
    /// A directory under the CP code (leading and trailing `/` are dropped).
    #[schema(min_length = 1, max_length = 1024)]
    base_path: Option<String>,
}

/// The `downloadAuth` of a request: how the CDN signs download URLs, told apart by
/// `type`. The secret is write-only (answers show `********`); sending `********`, or
/// leaving it out, keeps the stored one while the type stays the same.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("akamai" = "#/components/schemas/AkamaiAuthIn"),
    ("gcore" = "#/components/schemas/GcoreAuthIn"))))]
pub(crate) enum DownloadAuthIn {
    /// Akamai token authentication.
    Akamai(AkamaiAuthIn),
    /// G-Core secure tokens.
    Gcore(GcoreAuthIn),
}

/// Akamai token authentication of downloads.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct AkamaiAuthIn {
    /// `akamai`.
    #[schema(schema_with = akamai_tag)]
    r#type: String,
    /// How long a signed URL stays valid, in seconds (1 to 31536000).
    #[schema(minimum = 1, maximum = 31_536_000)]
    window: u64,
    /// The token key, in hex: required unless the deployment has an `akamai` one.
    #[schema(write_only, min_length = 1)]
    key: Option<String>,
}

/// G-Core secure tokens for downloads.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct GcoreAuthIn {
    /// `gcore`.
    #[schema(schema_with = gcore_tag)]
    r#type: String,
    /// How long a signed URL stays valid, in seconds (1 to 31536000).
    #[schema(minimum = 1, maximum = 31_536_000)]
    window: u64,
    /// The token secret: required unless the deployment has a `gcore` one.
    #[schema(write_only, min_length = 1)]
    secret: Option<String>,
}

// Answers.

/// The `origin` of a deployment in answers: one of the origin types, told apart by `type`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("s3" = "#/components/schemas/S3Origin"),
    ("fs" = "#/components/schemas/FsOrigin"),
    ("netstorage" = "#/components/schemas/NetstorageOrigin"))))]
pub(crate) enum Origin {
    /// An S3 bucket.
    S3(S3Origin),
    /// A directory of the Edge host.
    Fs(FsOrigin),
    /// Akamai NetStorage.
    Netstorage(NetstorageOrigin),
}

/// An S3 (or S3-compatible) bucket.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct S3Origin {
    /// `s3`.
    #[schema(schema_with = s3_tag)]
    r#type: String,
    /// The S3 endpoint URL.
    endpoint: String,
    /// The bucket's region.
    region: String,
    /// The bucket.
    bucket: String,
    /// The access key id.
    access_key_id: String,
    /// Always `********`: the secret is never shown.
    secret_access_key: String,
    /// True when the bucket is addressed in the URL path; absent when never set.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_style: Option<bool>,
}

/// A directory of the Edge host.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FsOrigin {
    /// `fs`.
    #[schema(schema_with = fs_tag)]
    r#type: String,
    /// The directory, as given (relative to the configured `fs_origin_root`, or absolute).
    path: String,
}

/// Akamai NetStorage.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetstorageOrigin {
    /// `netstorage`.
    #[schema(schema_with = netstorage_tag)]
    r#type: String,
    /// The NetStorage upload host.
    host: String,
    /// The upload account's key name.
    key_name: String,
    /// Always `********`: the key is never shown.
    key: String,
    /// The CP code.
    cp_code: String,
    /// The directory under the CP code; absent when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    base_path: Option<String>,
}

/// The `downloadAuth` of a deployment in answers, told apart by `type`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("akamai" = "#/components/schemas/AkamaiAuth"),
    ("gcore" = "#/components/schemas/GcoreAuth"))))]
pub(crate) enum DownloadAuth {
    /// Akamai token authentication.
    Akamai(AkamaiAuth),
    /// G-Core secure tokens.
    Gcore(GcoreAuth),
}

/// Akamai token authentication of downloads.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AkamaiAuth {
    /// `akamai`.
    #[schema(schema_with = akamai_tag)]
    r#type: String,
    /// How long a signed URL stays valid, in seconds.
    window: u64,
    /// Always `********`: the key is never shown.
    key: String,
}

/// G-Core secure tokens for downloads.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GcoreAuth {
    /// `gcore`.
    #[schema(schema_with = gcore_tag)]
    r#type: String,
    /// How long a signed URL stays valid, in seconds.
    window: u64,
    /// Always `********`: the secret is never shown.
    secret: String,
}
