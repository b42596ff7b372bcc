//! Typed answers: the structs every handler returns, from which `/openapi.json` describes
//! the responses (`utoipa::ToSchema`). An answer is serialized through serde_json's map,
//! whose keys are sorted, so the bytes on the wire are the ones the `json!` answers of
//! earlier releases wrote, whatever order a struct declares its fields in.

use crate::error::ApiError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// `"success"`: the `status` of every answer that succeeded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Success;

impl Serialize for Success {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("success")
    }
}

impl PartialSchema for Success {
    fn schema() -> RefOr<Schema> {
        let s = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(["success"]));
        RefOr::T(Schema::Object(s.build()))
    }
}

impl ToSchema for Success {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SuccessStatus")
    }
}

/// `"failed"`: the `status` of every failure.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Failed {
    /// The request failed.
    Failed,
}

/// The body of every failure (any status ≥ 400). Some failures add fields of their own,
/// named in the operation's description.
#[derive(Serialize, ToSchema)]
pub struct Failure {
    /// Always `failed`.
    pub status: Failed,
    /// A stable code (`invalid-argument`, `permission-denied`, `item-not-found`, …).
    pub error: String,
    /// One sentence for people.
    pub message: String,
    /// Where the failure has a subject: `field` for a request field that was refused, more
    /// for some codes.
    #[schema(required = false)]
    pub details: Option<Map<String, Value>>,
}

/// An answer that carries only a sentence (`{"status":"success","message":…}`).
#[derive(Serialize, ToSchema)]
pub struct Message {
    /// Always `success`.
    pub status: Success,
    /// What was done.
    pub message: String,
}

impl Message {
    /// A success answer saying `message`.
    pub fn new(message: impl Into<String>) -> Reply<Message> {
        Reply(Message { status: Success, message: message.into() })
    }
}

/// A typed answer, written with status 200.
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        // Through `Value`: its map sorts keys, keeping the bytes of earlier releases.
        match serde_json::to_value(&self.0) {
            Ok(v) => Json(v).into_response(),
            Err(e) => {
                ApiError::internal(format!("the answer cannot be written: {e}")).into_response()
            }
        }
    }
}

/// One item as a JSON object, projected to the `fields[]` of the query when it names some
/// (unknown field → 400).
pub fn projected<T: Serialize>(item: &T, raw_query: Option<&str>) -> Result<Value, ApiError> {
    let v = serde_json::to_value(item)
        .map_err(|e| ApiError::internal(format!("the answer cannot be written: {e}")))?;
    project(v, raw_query)
}

/// Fields that some objects carry only when set (a person's `email`, a machine's `label`,
/// …): naming them in `fields[]` is never an error, even when no item has them.
pub(crate) const OPTIONAL_FIELDS: &[&str] =
    &["label", "title", "email", "firstname", "surname", "lastLogin", "url", "slackChannel"];

/// Projects one item to `fields[]` of a single-resource GET (unknown field → 400).
pub fn project(item: Value, raw_query: Option<&str>) -> Result<Value, ApiError> {
    let mut fields: Option<Vec<String>> = None;
    for (k, v) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "fields[]" | "fields" => fields
                .get_or_insert_with(Vec::new)
                .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
            other => {
                return Err(ApiError::invalid(other, format!("unknown query parameter '{other}'")))
            }
        }
    }
    match (fields, item) {
        (Some(fs), Value::Object(m)) => {
            if let Some(bad) = fs
                .iter()
                .find(|f| !m.contains_key(f.as_str()) && !OPTIONAL_FIELDS.contains(&f.as_str()))
            {
                return Err(ApiError::invalid("fields[]", format!("unknown field '{bad}'")));
            }
            Ok(Value::Object(m.into_iter().filter(|(k, _)| fs.contains(k)).collect()))
        }
        (_, v) => Ok(v),
    }
}

/// A page of a list: `{status, <plural>: [...], total, offset, limit}`. Made by
/// [`page!`](crate::http::reply::page) for each list, filled by
/// [`ListQuery::page_of`](super::extract::ListQuery::page_of).
pub trait Page: Serialize {
    /// What one item is, before `fields[]` projects it.
    type Item: Serialize;
    /// The page from its (projected) items and counts.
    fn new(items: Vec<Value>, total: usize, offset: usize, limit: usize) -> Self;
}

/// Declares the page type of one list: `page!(RolePage, "roles", RoleView)`.
macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $plural:tt, $item:ty) => {
        $(#[$doc])*
        #[derive(serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            /// Always `success`.
            status: $crate::http::reply::Success,
            /// The items of this page, projected to `fields[]` when given.
            #[serde(rename = $plural)]
            #[schema(value_type = Vec<$item>)]
            items: Vec<serde_json::Value>,
            /// How many items match, over all pages.
            total: usize,
            /// Items skipped before this page.
            offset: usize,
            /// The page size asked for.
            limit: usize,
        }

        impl $crate::http::reply::Page for $name {
            type Item = $item;
            fn new(items: Vec<serde_json::Value>, total: usize, offset: usize, limit: usize) -> Self {
                $name { status: $crate::http::reply::Success, items, total, offset, limit }
            }
        }
    };
}
pub(crate) use page;

/// The query of a list: paging, order and projection (each list adds its filters).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `ListQuery::parse`; this type only describes the query
pub struct ListParams {
    /// Items to skip (default 0).
    offset: Option<usize>,
    /// Items per page, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Sort keys, comma-separated or repeated; `-name` sorts descending. The keys each
    /// list accepts are named in its description.
    #[serde(rename = "order[]")]
    order: Option<Vec<String>>,
    /// Only these fields of each item (comma-separated or repeated).
    #[serde(rename = "fields[]")]
    fields: Option<Vec<String>>,
}

/// The query of a single item's GET: its projection.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `project`; this type only describes the query
pub struct FieldsParam {
    /// Only these fields of the item (comma-separated or repeated).
    #[serde(rename = "fields[]")]
    fields: Option<Vec<String>>,
}

/// Marks the JSON bodies of the named POST operations as optional, for handlers taking an
/// `OptJsonBody`: the body may be left out entirely, but when sent it is an object
/// (`request_body = Option<T>` would also admit a JSON `null`, which is refused). Use with
/// `request_body = T` and a `const` of it in `#[openapi(paths(…), modifiers(&CONST))]`.
pub struct OptionalPostBodies(pub &'static [&'static str]);

impl utoipa::Modify for OptionalPostBodies {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for path in self.0 {
            let op = api.paths.paths.get_mut(*path).and_then(|p| p.post.as_mut());
            if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}
