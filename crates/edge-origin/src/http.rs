//! Small pieces shared by the HTTP-speaking origins (S3, NetStorage).

use crate::{net, ErrorKind, OriginError};
use std::path::Path;

/// A streaming request body for a local file, with its length (sent as `Content-Length`).
pub(crate) async fn file_body(path: &Path) -> Result<(reqwest::Body, u64), OriginError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| OriginError::io(&format!("cannot read {}", path.display()), &e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| OriginError::io(&format!("cannot read {}", path.display()), &e))?;
    if !meta.is_file() {
        return Err(OriginError::new(
            ErrorKind::Io,
            format!("cannot read {}: not a regular file", path.display()),
        ));
    }
    Ok((reqwest::Body::from(file), meta.len()))
}

/// Reads a whole (small) response body.
pub(crate) async fn read_body(resp: reqwest::Response) -> Result<Vec<u8>, OriginError> {
    resp.bytes().await.map(|b| b.to_vec()).map_err(|e| net::request_error(&e))
}

/// Sends a request, mapping transport failures (including the address guard's refusals).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, OriginError> {
    req.send().await.map_err(|e| net::request_error(&e))
}

/// A base URL from `host[:port]` (https) or `http(s)://host[:port]`: the scheme, the host
/// (brackets kept for IPv6) and the authority as a client sends it in `Host` (default port
/// dropped). `what` names the field in errors.
pub(crate) fn parse_base(s: &str, what: &str) -> Result<Base, OriginError> {
    let bad = || {
        OriginError::invalid(format!(
            "{what} {s:?} must be host[:port] or an http(s)://host[:port] URL"
        ))
    };
    let (scheme, rest) = match (s.strip_prefix("http://"), s.strip_prefix("https://")) {
        (Some(rest), _) => ("http", rest),
        (_, Some(rest)) => ("https", rest),
        _ => ("https", s),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty()
        || rest.contains(|c: char| "/?#@\\".contains(c) || c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let url = reqwest::Url::parse(&format!("{scheme}://{rest}/")).map_err(|_| bad())?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?.to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    Ok(Base { scheme, host, authority })
}

/// See [`parse_base`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Base {
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) authority: String,
}

impl Base {
    /// Whether the host is an IP literal (no virtual-hosted buckets there).
    pub(crate) fn is_ip(&self) -> bool {
        self.host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
    }
}

/// The text between `<tag>` and `</tag>` in an XML error body, if any.
pub(crate) fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..start + len].trim())
}

/// Decodes the five predefined XML entities (S3 listings escape keys with them).
pub(crate) fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        let b = parse_base("s3.eu-central-1.amazonaws.com", "endpoint").unwrap();
        assert_eq!(
            (b.scheme, b.host.as_str(), b.authority.as_str()),
            ("https", "s3.eu-central-1.amazonaws.com", "s3.eu-central-1.amazonaws.com")
        );
        let b = parse_base("minio.local:9000", "endpoint").unwrap();
        assert_eq!((b.scheme, b.authority.as_str()), ("https", "minio.local:9000"));
        let b = parse_base("http://127.0.0.1:9000/", "endpoint").unwrap();
        assert_eq!(
            (b.scheme, b.host.as_str(), b.authority.as_str()),
            ("http", "127.0.0.1", "127.0.0.1:9000")
        );
        assert!(b.is_ip());
        let b = parse_base("https://Store.Example:443", "endpoint").unwrap();
        assert_eq!((b.host.as_str(), b.authority.as_str()), ("store.example", "store.example"));
        let b = parse_base("http://[::1]:80", "endpoint").unwrap();
        assert_eq!(b.authority, "[::1]");
        assert!(b.is_ip());
        for bad in
            ["", "http://", "https://h/path", "h?x", "user@h", "h#f", "ftp://h", "h h", "h:99999"]
        {
            assert_eq!(
                parse_base(bad, "endpoint").unwrap_err().kind,
                ErrorKind::Invalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn xml_fields() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_field(body, "Code"), Some("NoSuchBucket"));
        assert_eq!(xml_field(body, "Message"), Some("The specified bucket does not exist"));
        assert_eq!(xml_field(body, "Resource"), None);
        assert_eq!(xml_field("<Code>x", "Code"), None);
    }
}
