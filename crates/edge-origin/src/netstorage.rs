//! The `netstorage` origin: the Akamai NetStorage HTTP API ("Usage API"), signed with the
//! upload account key the way Akamai's own clients sign (version 5 auth data, HMAC-SHA256).
//!
//! Paths are `/<cpCode>/<basePath>/<key>`, percent-encoded like Python's `quote` (which
//! Akamai's reference client uses), and signed in that encoded form.

use crate::http::{self, Base};
use crate::sigv4::uri_encode;
use crate::{keys, net, ErrorKind, OriginError, OriginOptions, Secret};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, Response, StatusCode};
use sha2::Sha256;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) struct NsConfig {
    pub(crate) host: String,
    pub(crate) key_name: String,
    pub(crate) key: Secret,
    pub(crate) cp_code: String,
    pub(crate) base_path: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct NsOrigin {
    client: reqwest::Client,
    base: Base,
    key_name: String,
    key: Secret,
    cp_code: String,
    /// `/<cpCode>` or `/<cpCode>/<basePath>`, not encoded.
    root: String,
    allow_private: bool,
}

const ACTION_UPLOAD: &str = "upload&upload-type=binary";
const ACTION_DOWNLOAD: &str = "download";
const ACTION_DELETE: &str = "delete";

impl NsOrigin {
    pub(crate) fn new(cfg: NsConfig, opts: &OriginOptions) -> Result<NsOrigin, OriginError> {
        let base = http::parse_base(&cfg.host, "NetStorage host")?;
        if cfg.key_name.is_empty()
            || !cfg.key_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(OriginError::invalid(format!(
                "invalid NetStorage key name {:?}",
                cfg.key_name
            )));
        }
        if cfg.key.expose().is_empty() {
            return Err(OriginError::invalid("the NetStorage key is empty"));
        }
        if cfg.cp_code.is_empty() || !cfg.cp_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OriginError::invalid(format!(
                "invalid NetStorage CP code {:?} (digits only)",
                cfg.cp_code
            )));
        }
        let mut root = format!("/{}", cfg.cp_code);
        let base_path = cfg.base_path.as_deref().unwrap_or("").trim_matches('/');
        if !base_path.is_empty() {
            if !keys::valid_key(base_path) {
                return Err(OriginError::invalid(format!(
                    "invalid NetStorage base path {base_path:?}"
                )));
            }
            root = format!("{root}/{base_path}");
        }
        Ok(NsOrigin {
            client: net::client(opts),
            base,
            key_name: cfg.key_name,
            key: cfg.key,
            cp_code: cfg.cp_code,
            root,
            allow_private: opts.allow_private,
        })
    }

    pub(crate) async fn put_file(&self, key: &str, path: &Path) -> Result<(), OriginError> {
        let upload = http::file_body(path).await?;
        let resp = self.request(Method::PUT, key, ACTION_UPLOAD, Some(upload)).await?;
        self.expect_success(resp, "upload", key)
    }

    pub(crate) async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<(), OriginError> {
        let len = data.len() as u64;
        let resp = self.request(Method::PUT, key, ACTION_UPLOAD, Some((data.into(), len))).await?;
        self.expect_success(resp, "upload", key)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, OriginError> {
        let resp = self.request(Method::GET, key, ACTION_DOWNLOAD, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.error(resp.status(), "download", key));
        }
        http::read_body(resp).await.map(Some)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), OriginError> {
        let resp = self.request(Method::POST, key, ACTION_DELETE, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.expect_success(resp, "delete", key)
    }

    /// The encoded request path of an object.
    fn path(&self, key: &str) -> String {
        uri_encode(&format!("{}/{key}", self.root), false)
    }

    async fn request(
        &self,
        method: Method,
        key: &str,
        action: &str,
        upload: Option<(reqwest::Body, u64)>,
    ) -> Result<Response, OriginError> {
        let path = self.path(key);
        let url = format!("{}://{}{path}", self.base.scheme, self.base.authority);
        net::check_url(&url, self.allow_private)?;
        let action = format!("version=1&action={action}");
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (auth_data, auth_sign) =
            sign(self.key.expose(), &self.key_name, &path, &action, time, &unique_id());
        let mut req = self
            .client
            .request(method, &url)
            .header("X-Akamai-ACS-Action", action)
            .header("X-Akamai-ACS-Auth-Data", auth_data)
            .header("X-Akamai-ACS-Auth-Sign", auth_sign)
            .header("Accept-Encoding", "identity");
        if let Some((body, len)) = upload {
            req = req.header(CONTENT_LENGTH, len).body(body);
        }
        http::send(req).await
    }

    fn expect_success(&self, resp: Response, op: &str, key: &str) -> Result<(), OriginError> {
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.error(resp.status(), op, key))
        }
    }

    fn error(&self, status: StatusCode, op: &str, key: &str) -> OriginError {
        let code = status.as_u16();
        match code {
            401 | 403 => OriginError::new(
                ErrorKind::Credentials,
                format!(
                    "NetStorage refused the upload key {:?} for CP code {} (HTTP {code})",
                    self.key_name, self.cp_code
                ),
            ),
            404 => OriginError::new(
                ErrorKind::Bucket,
                format!(
                    "NetStorage path {} not found: check the CP code and base path (HTTP 404)",
                    self.root
                ),
            ),
            _ => OriginError::new(
                ErrorKind::Http(code),
                format!("NetStorage {op} {key} failed (HTTP {code})"),
            ),
        }
    }
}

/// The `X-Akamai-ACS-Auth-Data` and `X-Akamai-ACS-Auth-Sign` headers for a request to the
/// encoded `path` with the full action string (`version=1&action=...`).
pub(crate) fn sign(
    key: &str,
    key_name: &str,
    path: &str,
    action: &str,
    time: u64,
    unique_id: &str,
) -> (String, String) {
    let auth_data = format!("5, 0.0.0.0, 0.0.0.0, {time}, {unique_id}, {key_name}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{auth_data}{path}\nx-akamai-acs-action:{action}\n").as_bytes());
    (auth_data, base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// A random 32-bit number in decimal, as Akamai's clients use for the unique id.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The standard library's randomly keyed hasher is random enough for a nonce.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() as u32).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn origin(host: &str, base_path: Option<&str>) -> NsOrigin {
        let cfg = NsConfig {
            host: host.into(),
            key_name: "upload1".into(),
            key: Secret("abcdEFGH1234".into()),
            cp_code: "123456".into(),
            base_path: base_path.map(str::to_owned),
        };
        NsOrigin::new(cfg, &OriginOptions::default()).unwrap()
    }

    #[test]
    fn paths_and_signature() {
        let o = origin("example-nsu.akamaihd.net", Some("/games/eu/"));
        assert_eq!(
            o.path("dxf/Org/App/0003/a b+c.bin"),
            "/123456/games/eu/dxf/Org/App/0003/a%20b%2Bc.bin"
        );
        assert_eq!(origin("example-nsu.akamaihd.net", None).path("x"), "/123456/x");
        let (data, sig) = sign(
            "abcdEFGH1234",
            "upload1",
            "/123456/x",
            "version=1&action=delete",
            1_700_000_000,
            "42",
        );
        assert_eq!(data, "5, 0.0.0.0, 0.0.0.0, 1700000000, 42, upload1");
        // HMAC-SHA256 base64 is 44 characters; the value itself is cross-checked against
        // Akamai's client below.
        assert_eq!(sig.len(), 44);
        assert_ne!(unique_id(), unique_id());
    }

    #[test]
    fn configuration_is_checked() {
        for (cp, base, key_name) in [
            ("12a", None, "k"),
            ("", None, "k"),
            ("1", Some("a/../b"), "k"),
            ("1", None, "k,5"),
            ("1", None, ""),
        ] {
            let cfg = NsConfig {
                host: "h.example".into(),
                key_name: key_name.into(),
                key: Secret("k".into()),
                cp_code: cp.into(),
                base_path: base.map(str::to_owned),
            };
            assert_eq!(
                NsOrigin::new(cfg, &OriginOptions::default()).unwrap_err().kind,
                ErrorKind::Invalid,
                "{cp} {base:?} {key_name}"
            );
        }
    }

    /// Akamai's reference client (`pip install netstorageapi`) with time, unique id and HTTP
    /// session replaced, printing URL, action, auth data and signature of three requests.
    const PY_SIGNER: &str = r#"
import sys
import akamai.netstorage.netstorage as m
m.time.time = lambda: 1700000000.25
m.random.getrandbits = lambda n: 3735928559
class Resp:
    status_code = 200
seen = []
class Session:
    def _request(self, url, headers=None, **kwargs):
        seen.append((url, headers))
        return Resp()
    get = put = post = _request
host, key_name, key, path = sys.argv[1:5]
ns = m.Netstorage(host, key_name, key, ssl=True)
ns.http_client = Session()
ns._request(action='upload&upload-type=binary', method='PUT', stream=b'', path=path)
ns.delete(path)
ns._request(action='download', method='GET', path=path, stream=True)
for url, h in seen:
    sig = h['X-Akamai-ACS-Auth-Sign']
    print(url)
    print(h['X-Akamai-ACS-Action'])
    print(h['X-Akamai-ACS-Auth-Data'])
    print(sig.decode() if isinstance(sig, bytes) else sig)
"#;

    #[test]
    fn signature_matches_akamais_python_client() {
        let o = origin("example-nsu.akamaihd.net", Some("games"));
        let key = "dxf/Org/App/0003/dxf-0123456789abcdef/pack 0001+ü.bin";
        let raw_path = format!("/123456/games/{key}");
        let out = match Command::new("python3")
            .args([
                "-c",
                PY_SIGNER,
                "example-nsu.akamaihd.net",
                "upload1",
                "abcdEFGH1234",
                &raw_path,
            ])
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                println!(
                    "SKIPPED: Akamai's netstorageapi is not usable (pip install netstorageapi): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            Err(e) => {
                println!("SKIPPED: python3 is not available: {e}");
                return;
            }
        };
        let lines: Vec<String> =
            String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 12, "{lines:?}");
        let path = o.path(key);
        for (chunk, action) in lines.chunks(4).zip([ACTION_UPLOAD, ACTION_DELETE, ACTION_DOWNLOAD])
        {
            let action = format!("version=1&action={action}");
            let (data, sig) =
                sign("abcdEFGH1234", "upload1", &path, &action, 1_700_000_000, "3735928559");
            assert_eq!(chunk[0], format!("https://example-nsu.akamaihd.net{path}"));
            assert_eq!(chunk[1], action);
            assert_eq!(chunk[2], data);
            assert_eq!(chunk[3], sig, "signature for {action}");
        }
    }
}
