//! The import URL of a build import: a plain `http(s)` URL, or an object with the URL,
//! request headers and the archive's SHA-256. Read from JSON by hand, so each refusal
//! names the exact field (`url.headers`, `url.sha256`, …).

use crate::error::{ApiError, ApiResult};
use serde_json::{json, Map, Value};

/// Headers an import may not set: the download sets them itself.
const RESERVED_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// A validated import URL.
pub(crate) struct ImportUrl {
    /// The http(s) URL, as sent.
    pub href: String,
    /// Request headers for the download (none: empty).
    pub headers: Map<String, Value>,
    /// The archive's SHA-256, lowercase hex, when given.
    pub sha256: Option<String>,
}

/// An http or https URL with a host, at most 8192 characters; `field` names it in refusals.
fn parse_href(field: &str, v: &Value) -> ApiResult<String> {
    let s =
        v.as_str().ok_or_else(|| ApiError::invalid(field, format!("{field} must be a string")))?;
    let ok = reqwest::Url::parse(s)
        .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some())
        .unwrap_or(false);
    if !ok || s.len() > 8192 {
        return Err(ApiError::invalid(field, format!("{field} must be an http or https URL")));
    }
    Ok(s.to_string())
}

/// The `headers` of an import URL object: names of letters, digits, `-` and `_`, string
/// values without line breaks (they go into a request as they are), none of
/// [`RESERVED_HEADERS`].
fn parse_headers(v: Option<&Value>) -> ApiResult<Map<String, Value>> {
    let mut headers = Map::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let lk = k.to_ascii_lowercase();
                if RESERVED_HEADERS.contains(&lk.as_str()) {
                    return Err(ApiError::invalid(
                        "url.headers",
                        format!("header '{k}' may not be set"),
                    ));
                }
                let valid_name = !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                let val = v.as_str().filter(|s| s.len() <= 8192 && !s.contains(['\r', '\n']));
                match (valid_name, val) {
                    (true, Some(val)) => {
                        headers.insert(k.clone(), json!(val));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "url.headers",
                            format!("header '{k}' must be a valid name with a string value"),
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(ApiError::invalid("url.headers", "url.headers must be an object")),
    }
    Ok(headers)
}

/// Validates the `url` of an import: a string (the URL alone) or an object of `href`,
/// `headers` and `sha256`.
pub(crate) fn parse_url(v: &Value) -> ApiResult<ImportUrl> {
    match v {
        Value::String(_) => {
            Ok(ImportUrl { href: parse_href("url", v)?, headers: Map::new(), sha256: None })
        }
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !["href", "headers", "sha256"].contains(&k.as_str()))
            {
                return Err(ApiError::invalid(
                    &format!("url.{k}"),
                    format!("unknown field 'url.{k}'"),
                ));
            }
            let href = parse_href("url.href", o.get("href").unwrap_or(&Value::Null))?;
            let headers = parse_headers(o.get("headers"))?;
            let sha256 = match o.get("sha256") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Some(s.to_lowercase())
                }
                Some(_) => {
                    return Err(ApiError::invalid("url.sha256", "url.sha256 must be 64 hex digits"))
                }
            };
            Ok(ImportUrl { href, headers, sha256 })
        }
        _ => Err(ApiError::invalid("url", "url must be a string or an import URL object")),
    }
}
