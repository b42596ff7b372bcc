//! Request extractors shared by every resource: the strict JSON body and list queries.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A JSON request body parsed into `T` under the contract's rules: `application/json`
/// (415), the configured size limit (413), well-formed (400), unknown fields and wrong
/// types named (400 `invalid-param` with `details.field`).
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body is `None` (endpoints whose body is optional).
pub struct OptJsonBody<T>(pub Option<T>);

/// Reads the raw body bytes with the JSON limit, after the content-type check.
async fn read_json_bytes(
    req: Request,
    limit: usize,
    allow_empty: bool,
) -> Result<Option<axum::body::Bytes>, ApiError> {
    let declared: Option<u64> = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(format!("request body over {limit} bytes")));
    }
    let ctype =
        req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let is_json = ctype.as_deref().is_some_and(|c| {
        let base = c.split(';').next().unwrap_or("").trim();
        base == "application/json" || (base.starts_with("application/") && base.ends_with("+json"))
    });
    if allow_empty && ctype.is_none() && declared.unwrap_or(0) == 0 {
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large("request body too large"))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Content-Type must be application/json",
        ));
    }
    if !is_json {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Content-Type must be application/json",
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::too_large(format!("request body over {limit} bytes")))?;
    if allow_empty && bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Parses JSON bytes into `T`, mapping serde's errors to the contract's 400s.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {}", e)))?;
    from_value(value)
}

/// Converts a JSON value into `T`, naming the offending field on failure.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let backticked = inner.split('`').nth(1).map(str::to_string);
        let field = if inner.starts_with("unknown field") && path != "." && !path.is_empty() {
            path.clone()
        } else if inner.starts_with("unknown field") || inner.starts_with("missing field") {
            let name = backticked.unwrap_or_default();
            if path == "." || path.is_empty() {
                name
            } else {
                format!("{path}.{name}")
            }
        } else {
            path
        };
        let msg = if inner.starts_with("unknown field") {
            format!("unknown field '{field}'")
        } else if inner.starts_with("missing field") {
            format!("missing field '{field}'")
        } else {
            format!(
                "invalid value for '{field}': {}",
                inner.split(" at line").next().unwrap_or(&inner)
            )
        };
        ApiError::invalid(&field, msg)
    })
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, st: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = read_json_bytes(req, st.cfg.json_body_limit, false).await?.unwrap_or_default();
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for OptJsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, st: &Arc<AppState>) -> Result<Self, ApiError> {
        match read_json_bytes(req, st.cfg.json_body_limit, true).await? {
            None => Ok(OptJsonBody(None)),
            Some(b) => Ok(OptJsonBody(Some(parse_json(&b)?))),
        }
    }
}

/// `{"status":"success", ...fields}`.
pub fn success(fields: Value) -> axum::Json<Value> {
    let mut m = Map::new();
    m.insert("status".into(), Value::from("success"));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    axum::Json(Value::Object(m))
}

/// What a list endpoint accepts beyond paging.
pub struct ListSpec {
    /// Filter parameters this endpoint takes.
    pub filters: &'static [&'static str],
    /// Fields that `order[]` may name.
    pub order_fields: &'static [&'static str],
    /// Default order (field, descending).
    pub default_order: (&'static str, bool),
    /// The unique key that ends every order.
    pub unique: &'static str,
}

/// A parsed list query: paging, order, projection, filters.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// Items to skip.
    pub offset: usize,
    /// Items to return.
    pub limit: usize,
    /// (field, descending) pairs; the unique key is appended.
    pub order: Vec<(String, bool)>,
    /// Projection; `None` = every field.
    pub fields: Option<Vec<String>>,
    /// Filter values by parameter name.
    pub filters: std::collections::HashMap<String, String>,
}

impl ListQuery {
    /// Parses a raw query string against `spec`; anything unknown or ill-typed is 400.
    pub fn parse(raw: Option<&str>, spec: &ListSpec) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery { limit: 10, ..Default::default() };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            match k.as_str() {
                "offset" => {
                    q.offset = v
                        .parse()
                        .map_err(|_| ApiError::invalid("offset", "offset must be an integer ≥ 0"))?
                }
                "limit" => {
                    q.limit =
                        v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                            ApiError::invalid("limit", "limit must be an integer 1..1000")
                        })?
                }
                "order[]" | "order" => {
                    for part in v.split(',').filter(|s| !s.is_empty()) {
                        let p = part.trim().trim_start_matches('[').trim_end_matches(']');
                        let (desc, name) = match p.as_bytes().first() {
                            Some(b'-') => (true, &p[1..]),
                            Some(b'+') => (false, &p[1..]),
                            _ => (false, p),
                        };
                        if !spec.order_fields.contains(&name) {
                            return Err(ApiError::invalid(
                                "order[]",
                                format!("cannot order by '{name}'"),
                            ));
                        }
                        q.order.push((name.to_string(), desc));
                    }
                }
                "fields[]" | "fields" => q
                    .fields
                    .get_or_insert_with(Vec::new)
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
                other if spec.filters.contains(&other) => {
                    q.filters.insert(other.to_string(), v);
                }
                other => {
                    return Err(ApiError::invalid(
                        other,
                        format!("unknown query parameter '{other}'"),
                    ))
                }
            }
        }
        if q.order.is_empty() {
            q.order.push((spec.default_order.0.to_string(), spec.default_order.1));
        }
        if !q.order.iter().any(|(f, _)| f == spec.unique) {
            q.order.push((spec.unique.to_string(), false));
        }
        Ok(q)
    }

    /// A boolean filter (`true`/`false`), 400 otherwise.
    pub fn bool_filter(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.filters.get(name).map(String::as_str) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, format!("{name} must be true or false"))),
        }
    }

    /// The page of typed `items` this query asks for: sorted, cut and projected.
    pub fn page_of<P: super::reply::Page>(
        &self,
        items: Vec<P::Item>,
    ) -> Result<super::reply::Reply<P>, ApiError> {
        let items = items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::internal(format!("the answer cannot be written: {e}")))?;
        let (page, total) = self.select(items)?;
        Ok(super::reply::Reply(P::new(page, total, self.offset, self.limit)))
    }

    /// Checks `fields[]`, sorts, and cuts the page: the page's items and the total.
    fn select(&self, mut items: Vec<Value>) -> Result<(Vec<Value>, usize), ApiError> {
        if let Some(fields) = &self.fields {
            let known = |f: &str| {
                super::reply::OPTIONAL_FIELDS.contains(&f)
                    || items.iter().any(|i| i.get(f).is_some())
            };
            if let Some(bad) = fields.iter().find(|f| !items.is_empty() && !known(f)) {
                return Err(ApiError::invalid("fields[]", format!("unknown field '{bad}'")));
            }
        }
        items.sort_by(|a, b| {
            for (f, desc) in &self.order {
                let o = cmp_json(a.get(f.as_str()), b.get(f.as_str()));
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        let total = items.len();
        let page: Vec<Value> = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|v| match (&self.fields, v) {
                (Some(fs), Value::Object(m)) => {
                    Value::Object(m.into_iter().filter(|(k, _)| fs.contains(k)).collect())
                }
                (_, v) => v,
            })
            .collect();
        Ok((page, total))
    }

    /// Sorts, pages and projects in-memory items; answers the list envelope under `plural`.
    pub fn page(&self, items: Vec<Value>, plural: &str) -> Result<axum::Json<Value>, ApiError> {
        let (page, total) = self.select(items)?;
        let mut out = Map::new();
        out.insert(plural.into(), Value::Array(page));
        out.insert("total".into(), total.into());
        out.insert("offset".into(), self.offset.into());
        out.insert("limit".into(), self.limit.into());
        Ok(success(Value::Object(out)))
    }
}

fn cmp_json(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Equal,
        (None | Some(Value::Null), _) => Less,
        (_, None | Some(Value::Null)) => Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Deserializes a field that distinguishes "absent" (`None`) from `null` (`Some(None)`),
/// for PATCH bodies where `null` removes an optional value.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Some)
}

/// The query of a DELETE that takes one boolean flag (`force`, `prune`): the flag's value
/// (default false); anything else in the query is 400.
pub fn flag_query(raw: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let mut on = false;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            (k, "true") if k == name => on = true,
            (k, "false") if k == name => on = false,
            (k, _) if k == name => {
                return Err(ApiError::invalid(name, format!("{name} must be true or false")))
            }
            (other, _) => {
                return Err(ApiError::invalid(other, format!("unknown query parameter '{other}'")))
            }
        }
    }
    Ok(on)
}
