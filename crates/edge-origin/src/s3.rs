//! The `s3` origin: any S3-compatible store, spoken to with SigV4-signed requests
//! ([`crate::sigv4`]) over the guarded client ([`crate::net`]).

use crate::http::{self, Base};
use crate::sigv4::{self, Credentials, Scope};
use crate::{net, ErrorKind, OriginError, OriginOptions, Secret};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{Method, Response, StatusCode};
use std::path::Path;
use time::OffsetDateTime;

pub(crate) struct S3Config {
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) bucket: String,
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
    pub(crate) path_style: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct S3Origin {
    client: reqwest::Client,
    base: Base,
    region: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: Secret,
    path_style: bool,
    allow_private: bool,
}

/// An upload body: the stream and its length, or nothing.
type Upload = Option<(reqwest::Body, u64)>;

impl S3Origin {
    pub(crate) fn new(cfg: S3Config, opts: &OriginOptions) -> Result<S3Origin, OriginError> {
        let base = http::parse_base(&cfg.endpoint, "S3 endpoint")?;
        let bucket_ok = !cfg.bucket.is_empty()
            && cfg.bucket.len() <= 255
            && cfg.bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && cfg.bucket != "."
            && cfg.bucket != "..";
        if !bucket_ok {
            return Err(OriginError::invalid(format!("invalid S3 bucket name {:?}", cfg.bucket)));
        }
        if !cfg.path_style {
            if base.is_ip() {
                return Err(OriginError::invalid(
                    "an S3 endpoint given as an IP address needs path-style addressing (pathStyle)",
                ));
            }
            let dns_ok =
                cfg.bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                }) && !cfg.bucket.starts_with(['.', '-'])
                    && !cfg.bucket.ends_with(['.', '-']);
            if !dns_ok {
                return Err(OriginError::invalid(format!(
                    "S3 bucket name {:?} is not usable as a host name: use path-style addressing (pathStyle)",
                    cfg.bucket
                )));
            }
        }
        if cfg.region.is_empty()
            || !cfg.region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(OriginError::invalid(format!("invalid S3 region {:?}", cfg.region)));
        }
        if cfg.access_key_id.is_empty()
            || cfg.access_key_id.contains(|c: char| c.is_whitespace() || c == '/' || c == ',')
        {
            return Err(OriginError::invalid("invalid S3 access key id"));
        }
        if cfg.secret_access_key.expose().is_empty() {
            return Err(OriginError::invalid("the S3 secret access key is empty"));
        }
        Ok(S3Origin {
            client: net::client(opts),
            base,
            region: cfg.region,
            bucket: cfg.bucket,
            access_key_id: cfg.access_key_id,
            secret_access_key: cfg.secret_access_key,
            path_style: cfg.path_style,
            allow_private: opts.allow_private,
        })
    }

    pub(crate) async fn put_file(&self, key: &str, path: &Path) -> Result<(), OriginError> {
        let (body, len) = http::file_body(path).await?;
        let resp =
            self.request(Method::PUT, key, Some((body, len)), sigv4::UNSIGNED_PAYLOAD).await?;
        self.expect_success(resp, "PUT", key).await
    }

    pub(crate) async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<(), OriginError> {
        let hash = sigv4::sha256_hex(&data);
        let len = data.len() as u64;
        let resp = self.request(Method::PUT, key, Some((data.into(), len)), &hash).await?;
        self.expect_success(resp, "PUT", key).await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, OriginError> {
        let resp = self.request(Method::GET, key, None, sigv4::EMPTY_SHA256).await?;
        if resp.status().is_success() {
            return http::read_body(resp).await.map(Some);
        }
        let failure = Failure::read(resp).await;
        if failure.status == StatusCode::NOT_FOUND && failure.code != "NoSuchBucket" {
            return Ok(None);
        }
        Err(self.error(&failure, "GET", key))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), OriginError> {
        let resp = self.request(Method::DELETE, key, None, sigv4::EMPTY_SHA256).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let failure = Failure::read(resp).await;
        if failure.status == StatusCode::NOT_FOUND && failure.code != "NoSuchBucket" {
            return Ok(());
        }
        Err(self.error(&failure, "DELETE", key))
    }

    /// The size of an object; `None` when there is none.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<u64>, OriginError> {
        let resp = self.request(Method::HEAD, key, None, sigv4::EMPTY_SHA256).await?;
        if resp.status().is_success() {
            // The header, not the (empty) body of a HEAD answer.
            let len = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            return Ok(Some(len.unwrap_or(0)));
        }
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // HEAD answers carry no body: the status is all there is.
        Err(self.error(
            &Failure { status: resp.status(), code: String::new(), message: String::new() },
            "HEAD",
            key,
        ))
    }

    /// A streamed GET, whole or of the inclusive byte range `range`; `None` when there is
    /// no such object.
    pub(crate) async fn open(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Response>, OriginError> {
        let r = range.map(|(a, b)| format!("bytes={a}-{b}"));
        let resp = self
            .request_with(Method::GET, key, &[], r.as_deref(), None, sigv4::EMPTY_SHA256)
            .await?;
        if resp.status().is_success() {
            return Ok(Some(resp));
        }
        let failure = Failure::read(resp).await;
        if failure.status == StatusCode::NOT_FOUND && failure.code != "NoSuchBucket" {
            return Ok(None);
        }
        Err(self.error(&failure, "GET", key))
    }

    /// Every object under `prefix` (a key prefix, normally ending in `/`): key and size,
    /// through ListObjectsV2 pages of up to 1000.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, OriginError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let resp =
                self.request_with(Method::GET, "", &query, None, None, sigv4::EMPTY_SHA256).await?;
            if !resp.status().is_success() {
                return Err(self.error(&Failure::read(resp).await, "LIST", prefix));
            }
            let body = String::from_utf8_lossy(&http::read_body(resp).await?).into_owned();
            for part in body.split("<Contents>").skip(1) {
                let key = http::xml_field(part, "Key").map(http::xml_unescape).unwrap_or_default();
                let size = http::xml_field(part, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                if !key.is_empty() {
                    out.push((key, size));
                }
            }
            token = match http::xml_field(&body, "IsTruncated") {
                Some("true") => {
                    http::xml_field(&body, "NextContinuationToken").map(http::xml_unescape)
                }
                _ => None,
            };
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The URL, the canonical URI and the `Host` header of an object.
    fn target(&self, key: &str) -> (String, String, String) {
        let key = sigv4::uri_encode(key, false);
        let (host, uri) = if self.path_style && key.is_empty() {
            // The bucket itself (listings): `/bucket`, as S3 servers canonicalize it.
            (self.base.authority.clone(), format!("/{}", sigv4::uri_encode(&self.bucket, true)))
        } else if self.path_style {
            (
                self.base.authority.clone(),
                format!("/{}/{key}", sigv4::uri_encode(&self.bucket, true)),
            )
        } else {
            (format!("{}.{}", self.bucket, self.base.authority), format!("/{key}"))
        };
        (format!("{}://{host}{uri}", self.base.scheme), uri, host)
    }

    async fn request(
        &self,
        method: Method,
        key: &str,
        upload: Upload,
        payload_hash: &str,
    ) -> Result<Response, OriginError> {
        self.request_with(method, key, &[], None, upload, payload_hash).await
    }

    /// A signed request with query parameters and an optional (unsigned) `Range` header.
    async fn request_with(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        range: Option<&str>,
        upload: Upload,
        payload_hash: &str,
    ) -> Result<Response, OriginError> {
        let (mut url, uri, host) = self.target(key);
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!("{}={}", sigv4::uri_encode(k, true), sigv4::uri_encode(v, true))
                })
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        net::check_url(&url, self.allow_private)?;
        let date = sigv4::amz_date(OffsetDateTime::now_utc());
        let headers = [
            ("host", host.as_str()),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", date.as_str()),
        ];
        let signed = sigv4::Request {
            method: method.as_str(),
            canonical_uri: &uri,
            query,
            headers: &headers,
            payload_hash,
        };
        let creds = Credentials {
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose(),
        };
        let scope = Scope { region: &self.region, service: "s3" };
        let auth = sigv4::authorization(creds, scope, &signed, &date);
        let mut req = self
            .client
            .request(method, &url)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", &date)
            .header(AUTHORIZATION, auth);
        if let Some(r) = range {
            req = req.header(reqwest::header::RANGE, r);
        }
        if let Some((body, len)) = upload {
            // An explicit length: the file is streamed, not chunked (S3 refuses chunked PUTs).
            req = req.header(CONTENT_LENGTH, len).body(body);
        }
        http::send(req).await
    }

    async fn expect_success(&self, resp: Response, op: &str, key: &str) -> Result<(), OriginError> {
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.error(&Failure::read(resp).await, op, key))
    }

    fn error(&self, f: &Failure, op: &str, key: &str) -> OriginError {
        let status = f.status.as_u16();
        let detail = match (f.code.is_empty(), f.message.is_empty()) {
            (true, _) => format!("HTTP {status}"),
            (false, true) => format!("{}, HTTP {status}", f.code),
            (false, false) => format!("{}: {}", f.code, f.message),
        };
        let credentials = matches!(
            f.code.as_str(),
            "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "InvalidToken"
                | "ExpiredToken"
                | "AccessDenied"
                | "InvalidSecurity"
        ) || status == 401
            || status == 403;
        if credentials {
            OriginError::new(
                ErrorKind::Credentials,
                format!("S3 refused the credentials for bucket {} ({detail})", self.bucket),
            )
        } else if f.code == "NoSuchBucket" {
            OriginError::new(
                ErrorKind::Bucket,
                format!("S3 bucket {} does not exist ({detail})", self.bucket),
            )
        } else {
            OriginError::new(ErrorKind::Http(status), format!("S3 {op} {key} failed ({detail})"))
        }
    }
}

/// An S3 error answer: status and the `Code`/`Message` of its XML body.
struct Failure {
    status: StatusCode,
    code: String,
    message: String,
}

impl Failure {
    async fn read(resp: Response) -> Failure {
        let status = resp.status();
        // Error bodies are small XML documents; an unreadable one just leaves the status.
        let body = http::read_body(resp).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let field = |tag| http::xml_field(&text, tag).unwrap_or_default().to_owned();
        Failure { status, code: field("Code"), message: field("Message") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(endpoint: &str, bucket: &str, path_style: bool) -> Result<S3Origin, OriginError> {
        let cfg = S3Config {
            endpoint: endpoint.into(),
            region: "eu-central-1".into(),
            bucket: bucket.into(),
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret("s".into()),
            path_style,
        };
        S3Origin::new(cfg, &OriginOptions::default())
    }

    #[test]
    fn addressing_styles() {
        let o = origin("s3.eu-central-1.amazonaws.com", "cdn-origin", false).unwrap();
        let (url, uri, host) = o.target("rockit/dxf/Org/App/0003/a b.bin");
        assert_eq!(
            url,
            "https://cdn-origin.s3.eu-central-1.amazonaws.com/rockit/dxf/Org/App/0003/a%20b.bin"
        );
        assert_eq!(uri, "/rockit/dxf/Org/App/0003/a%20b.bin");
        assert_eq!(host, "cdn-origin.s3.eu-central-1.amazonaws.com");

        let o = origin("http://127.0.0.1:9000", "Legacy_Bucket", true).unwrap();
        let (url, uri, host) = o.target("dxf/x.bin");
        assert_eq!(url, "http://127.0.0.1:9000/Legacy_Bucket/dxf/x.bin");
        assert_eq!(uri, "/Legacy_Bucket/dxf/x.bin");
        assert_eq!(host, "127.0.0.1:9000");
    }

    #[test]
    fn configuration_is_checked() {
        for (endpoint, bucket, path_style) in [
            ("http://127.0.0.1:9000", "b", false),
            ("s3.example.com", "Upper", false),
            ("s3.example.com", "", true),
            ("s3.example.com", "a/b", true),
            ("s3.example.com/path", "b", true),
        ] {
            let err = origin(endpoint, bucket, path_style).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Invalid, "{endpoint} {bucket}: {err}");
        }
    }

    #[test]
    fn error_answers_are_classified() {
        let o = origin("s3.example.com", "b", false).unwrap();
        let f = |status: u16, code: &str| Failure {
            status: StatusCode::from_u16(status).unwrap(),
            code: code.into(),
            message: "m".into(),
        };
        assert_eq!(
            o.error(&f(403, "SignatureDoesNotMatch"), "PUT", "k").kind,
            ErrorKind::Credentials
        );
        assert_eq!(o.error(&f(403, "InvalidAccessKeyId"), "PUT", "k").kind, ErrorKind::Credentials);
        assert_eq!(o.error(&f(404, "NoSuchBucket"), "PUT", "k").kind, ErrorKind::Bucket);
        assert_eq!(
            o.error(&f(400, "AuthorizationHeaderMalformed"), "PUT", "k").kind,
            ErrorKind::Http(400)
        );
        let e = o.error(&f(503, ""), "PUT", "k");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Http(503), "S3 PUT k failed (HTTP 503)")
        );
    }
}
