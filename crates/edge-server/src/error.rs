//! The one error type at the HTTP edge: a stable `error` code, an HTTP status and the
//! failure envelope of conventions.md. Internal causes go to the log, never to the client.
//! Also [`About`]: a cause with what it was about, which the server's internal error
//! types (depot, pipeline, start-up) carry so their messages keep naming the file or key.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// A failure answered to a client as `{"status":"failed","error":…,"message":…}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid-param`, `not-found`, …).
    pub code: &'static str,
    /// Human sentence; never holds secrets, SQL or paths.
    pub message: String,
    /// The rarely used parts, boxed so results stay small.
    pub more: Option<Box<More>>,
}

/// Optional parts of an error.
#[derive(Debug, Default)]
pub struct More {
    /// Structured details (`{"field":"name"}`).
    pub details: Option<Map<String, Value>>,
    /// Extra top-level fields of the envelope (`retryAfter` for maintenance).
    pub extra: Option<Map<String, Value>>,
    /// `Retry-After` header value in seconds.
    pub retry_after: Option<u64>,
}

/// Result alias for handlers and services.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Builds an error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), more: None }
    }
    /// 400 `invalid-param` naming the offending field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-param", message).detail("field", field)
    }
    /// 400 `invalid-param` without a single field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-param", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404 `not-found` for a kind of resource and its name.
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("{what} '{name}' not found"))
    }
    /// 409 with one of the conflict codes.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 413 `payload-too-large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", message)
    }
    /// 429 `too-many-requests` with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "too many attempts, try again later",
        )
        .retry_after(retry_after.max(1))
    }
    /// 500 `internal`: logs the cause, shows the client nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
    /// Adds one entry to `details`.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.more
            .get_or_insert_with(Default::default)
            .details
            .get_or_insert_with(Map::new)
            .insert(key.to_string(), value.into());
        self
    }
    /// Adds one top-level field to the envelope.
    pub fn extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.more
            .get_or_insert_with(Default::default)
            .extra
            .get_or_insert_with(Map::new)
            .insert(key.to_string(), value.into());
        self
    }
    /// Sets the `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.more.get_or_insert_with(Default::default).retry_after = Some(seconds);
        self
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApiError::conflict("item-exists", "an item with that name already exists");
            }
        }
        ApiError::internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("status".into(), json!("failed"));
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        let more = self.more.map(|m| *m).unwrap_or_default();
        if let Some(d) = more.details {
            body.insert("details".into(), Value::Object(d));
        }
        if let Some(x) = more.extra {
            body.extend(x);
        }
        let mut resp = (self.status, axum::Json(Value::Object(body))).into_response();
        if let Some(s) = more.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A cause and, when the message names it, what it was about: shown as `<what>: <cause>`,
/// or the bare cause.
#[derive(Debug)]
pub struct About<E> {
    /// The file, key or document the cause concerns (`None`: the cause says enough).
    pub what: Option<String>,
    /// What went wrong.
    pub source: E,
}

impl<E> About<E> {
    /// `source`, about `what`.
    pub fn new(what: impl Into<String>, source: E) -> Self {
        About { what: Some(what.into()), source }
    }
}

impl<E> From<E> for About<E> {
    fn from(source: E) -> Self {
        About { what: None, source }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for About<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.what {
            Some(w) => write!(f, "{w}: {}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for About<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `From<cause>` for an error enum, one per cause, each wrapped in the variant named
/// (through `Into`: a bare cause becomes an [`About`] naming nothing), so `?` converts.
macro_rules! from_causes {
    ($error:ident { $($cause:ty => $variant:ident),* $(,)? }) => {$(
        impl From<$cause> for $error {
            fn from(e: $cause) -> $error {
                $error::$variant(e.into())
            }
        }
    )*};
}
pub(crate) use from_causes;

/// Names what a failure was about: `result.about(|| format!("build tree {}", p.display()))`.
pub trait AboutExt<T, E> {
    /// The error, if any, with `what` (made only on failure).
    fn about<W: Into<String>>(self, what: impl FnOnce() -> W) -> Result<T, About<E>>;
}

impl<T, E> AboutExt<T, E> for Result<T, E> {
    fn about<W: Into<String>>(self, what: impl FnOnce() -> W) -> Result<T, About<E>> {
        self.map_err(|source| About::new(what(), source))
    }
}
