//! Publishing targets against real peers: S3 round trips on a moto server (path-style and
//! virtual-hosted, with signature checking switched on), NetStorage on a local receiver
//! that verifies Akamai's signature headers, the address guard and the redirect cap.
//!
//! [`start_moto`] is the reusable S3 peer: `python3 -m moto.server` (`pip install
//! 'moto[server]'`) on a free port, with an IAM user whose key the store enforces.

#![allow(dead_code)]

use crate::common::TempDir;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use edge_origin::sigv4::{self, Credentials, Scope};
use edge_origin::{keys, net, ErrorKind, Origin, OriginConfig, OriginOptions};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A moto S3 server on 127.0.0.1, killed when dropped. Requests must be signed with
/// `access_key_id`/`secret_access_key` (an IAM user allowed everything).
pub struct Moto {
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    child: Child,
    log: TempDir,
}

/// Key pair used for the unauthenticated IAM set-up calls (moto only reads its scope).
const SETUP_CREDS: Credentials<'static> =
    Credentials { access_key_id: "AKIAIOSFODNN7EXAMPLE", secret_access_key: "setup" };

/// Starts moto in server mode on a free port, creates an IAM user with an access key and
/// an allow-all policy, then switches moto's signature and permission checks on.
pub async fn start_moto() -> Moto {
    let mut moto = start_moto_open().await;
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    moto.iam(&[("Action", "CreateUser"), ("UserName", "rockit")]).await;
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "rockit"),
        ("PolicyName", "all"),
        ("PolicyDocument", policy),
    ])
    .await;
    let created = moto.iam(&[("Action", "CreateAccessKey"), ("UserName", "rockit")]).await;
    moto.access_key_id = xml_text(&created, "AccessKeyId");
    moto.secret_access_key = xml_text(&created, "SecretAccessKey");
    // From now on every request is authenticated and authorised.
    let resp = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.endpoint))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "reset-auth: {}", resp.text().await.unwrap());
    moto
}

/// Starts moto in server mode without its signature checks (any key pair is taken). For
/// requests with query strings: moto checks their signature against its *decoded* URL, so
/// a listing whose prefix holds `/` (sent and signed as `%2F`, as AWS requires) fails there.
/// Our query signing is checked against botocore's own signer instead (`sigv4_query_matches_botocore`).
pub async fn start_moto_open() -> Moto {
    let import = Command::new("python3").args(["-c", "import moto.server"]).output();
    match import {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "moto is not installed (pip install 'moto[server]'): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 is needed to run moto: {e}"),
    }
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = TempDir::new("moto");
    let log_file = std::fs::File::create(log.0.join("moto.log")).unwrap();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("python3 -m moto.server");
    let mut moto = Moto {
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key_id: String::new(),
        secret_access_key: String::new(),
        region: "us-east-1".into(),
        child,
        log,
    };
    moto.access_key_id = "AKIAMOTOOPEN".into();
    moto.secret_access_key = "moto-open".into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = moto.child.try_wait().unwrap() {
            panic!("moto exited with {status} before listening:\n{}", moto.log_text());
        }
        assert!(Instant::now() < deadline, "moto did not listen within 60 s:\n{}", moto.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    moto
}

impl Moto {
    /// Sends a signed, empty-bodied path-style request to `uri` (`/<bucket>[/<key>]`).
    pub async fn signed(&self, method: &str, uri: &str) -> reqwest::Response {
        let host = format!("127.0.0.1:{}", self.port);
        let date = sigv4::amz_date(time::OffsetDateTime::now_utc());
        let headers = [
            ("host", host.as_str()),
            ("x-amz-content-sha256", sigv4::EMPTY_SHA256),
            ("x-amz-date", date.as_str()),
        ];
        let req = sigv4::Request {
            method,
            canonical_uri: uri,
            query: &[],
            headers: &headers,
            payload_hash: sigv4::EMPTY_SHA256,
        };
        let auth = sigv4::authorization(
            self.creds(),
            Scope { region: &self.region, service: "s3" },
            &req,
            &date,
        );
        reqwest::Client::new()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{uri}", self.endpoint),
            )
            .header("x-amz-content-sha256", sigv4::EMPTY_SHA256)
            .header("x-amz-date", &date)
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
    }

    /// Creates a bucket with a signed path-style `PUT /<bucket>`.
    pub async fn create_bucket(&self, bucket: &str) {
        let resp = self.signed("PUT", &format!("/{bucket}")).await;
        let status = resp.status();
        assert!(
            status.is_success(),
            "create bucket {bucket}: {status} {}",
            resp.text().await.unwrap()
        );
    }

    /// An S3 origin configuration for `bucket` on this server, with the valid key pair.
    pub fn s3_config(&self, endpoint: &str, bucket: &str, path_style: bool) -> OriginConfig {
        OriginConfig::S3 {
            endpoint: endpoint.into(),
            region: self.region.clone(),
            bucket: bucket.into(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            path_style,
        }
    }

    pub fn creds(&self) -> Credentials<'_> {
        Credentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
        }
    }

    /// One IAM Query API call (signed, although moto does not check it during set-up).
    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut all = params.to_vec();
        all.push(("Version", "2010-05-08"));
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(all).finish();
        let host = format!("127.0.0.1:{}", self.port);
        let date = sigv4::amz_date(time::OffsetDateTime::now_utc());
        let hash = sigv4::sha256_hex(body.as_bytes());
        let ctype = "application/x-www-form-urlencoded; charset=utf-8";
        let headers =
            [("content-type", ctype), ("host", host.as_str()), ("x-amz-date", date.as_str())];
        let req = sigv4::Request {
            method: "POST",
            canonical_uri: "/",
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        let auth = sigv4::authorization(
            SETUP_CREDS,
            Scope { region: "us-east-1", service: "iam" },
            &req,
            &date,
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/", self.endpoint))
            .header("content-type", ctype)
            .header("x-amz-date", &date)
            .header("authorization", auth)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "IAM {params:?}: {status} {text}");
        text
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.log.0.join("moto.log"))
            .and_then(|mut f| f.read_to_string(&mut s));
        s
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml_text(body: &str, tag: &str) -> String {
    let start = body.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + tag.len()
        + 2;
    let end = start + body[start..].find(&format!("</{tag}>")).unwrap();
    body[start..end].trim().to_owned()
}

fn allowed() -> OriginOptions {
    OriginOptions { allow_private: true, timeout: Duration::from_secs(30) }
}

fn guarded() -> OriginOptions {
    OriginOptions { allow_private: false, timeout: Duration::from_secs(30) }
}

/// What every origin must do: streamed and in-memory writes, reads, idempotent rewrites
/// and deletes, keys that need encoding, probes with and without a prefix.
async fn round_trip(origin: &Origin) {
    let dir = TempDir::new("origin-src");
    let data: Vec<u8> = (0..(3 * 1024 * 1024 + 7u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = dir.0.join("pack.bin");
    std::fs::write(&src, &data).unwrap();

    let image = keys::dxf_dir("rockit", "Org", "App", 3, "dxf-0123456789abcdef");
    let pack = keys::join(&image, "pack-0001.bin");
    let manifest = keys::join(&image, "manifest.json");
    assert_eq!(origin.get(&pack).await.unwrap(), None);

    origin.put_file(&pack, &src).await.unwrap();
    assert_eq!(origin.get(&pack).await.unwrap().as_deref(), Some(&data[..]));
    // A re-run publish is harmless.
    origin.put_file(&pack, &src).await.unwrap();
    origin.put_bytes(&manifest, br#"{"build":3}"#.to_vec()).await.unwrap();
    assert_eq!(origin.get(&manifest).await.unwrap().as_deref(), Some(&br#"{"build":3}"#[..]));
    origin.put_bytes(&manifest, br#"{"build":4}"#.to_vec()).await.unwrap();
    assert_eq!(origin.get(&manifest).await.unwrap().as_deref(), Some(&br#"{"build":4}"#[..]));

    let odd = keys::join(&keys::pat_dir("", "Org", "My App", 4, 3), "a b.bin");
    origin.put_bytes(&odd, b"odd".to_vec()).await.unwrap();
    assert_eq!(origin.get(&odd).await.unwrap().as_deref(), Some(&b"odd"[..]));
    let empty = keys::join(&image, "empty.bin");
    origin.put_bytes(&empty, Vec::new()).await.unwrap();
    assert_eq!(origin.get(&empty).await.unwrap().as_deref(), Some(&b""[..]));

    for key in [&pack, &manifest, &odd, &empty] {
        origin.delete(key).await.unwrap();
        assert_eq!(origin.get(key).await.unwrap(), None, "{key}");
        origin.delete(key).await.unwrap();
    }

    origin.probe("rockit").await.unwrap();
    origin.probe("").await.unwrap();
    assert_eq!(origin.get(&keys::probe_key("rockit")).await.unwrap(), None);
    assert_eq!(origin.get(&keys::probe_key("")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_path_style_round_trip_on_moto() {
    let moto = start_moto().await;
    moto.create_bucket("rockit-origin").await;
    let origin =
        Origin::new(moto.s3_config(&moto.endpoint, "rockit-origin", true), allowed()).unwrap();
    round_trip(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_virtual_hosted_round_trip_on_moto() {
    let moto = start_moto().await;
    moto.create_bucket("rockit-vhost").await;
    // `rockit-vhost.localhost` resolves to loopback (RFC 6761) inside the guarded client.
    let endpoint = format!("http://localhost:{}", moto.port);
    let origin = Origin::new(moto.s3_config(&endpoint, "rockit-vhost", false), allowed()).unwrap();
    round_trip(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failures_are_classified() {
    let moto = start_moto().await;
    moto.create_bucket("rockit-origin").await;

    let wrong_secret = OriginConfig::S3 {
        endpoint: moto.endpoint.clone(),
        region: moto.region.clone(),
        bucket: "rockit-origin".into(),
        access_key_id: moto.access_key_id.clone(),
        secret_access_key: "not-the-secret-0123456789".into(),
        path_style: true,
    };
    let err = Origin::new(wrong_secret, allowed()).unwrap().probe("rockit").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    assert!(err.message.contains("SignatureDoesNotMatch"), "{err}");
    assert!(!err.message.contains("not-the-secret"), "{err}");

    let unknown_key = OriginConfig::S3 {
        endpoint: moto.endpoint.clone(),
        region: moto.region.clone(),
        bucket: "rockit-origin".into(),
        access_key_id: "AKIAUNKNOWNKEY000000".into(),
        secret_access_key: moto.secret_access_key.clone(),
        path_style: true,
    };
    let err = Origin::new(unknown_key, allowed())
        .unwrap()
        .put_bytes("x", b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    assert!(!err.message.contains(&moto.secret_access_key), "{err}");

    let missing =
        Origin::new(moto.s3_config(&moto.endpoint, "no-such-bucket", true), allowed()).unwrap();
    let err = missing.probe("").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Bucket, "{err}");
    assert_eq!(missing.get("dxf/x").await.unwrap_err().kind, ErrorKind::Bucket);
    assert_eq!(missing.delete("dxf/x").await.unwrap_err().kind, ErrorKind::Bucket);

    // Loopback is refused unless allowed: as an IP literal, by name, and for a bucket subdomain.
    let localhost = format!("http://localhost:{}", moto.port);
    for (endpoint, path_style) in
        [(moto.endpoint.as_str(), true), (localhost.as_str(), true), (localhost.as_str(), false)]
    {
        let guarded_origin =
            Origin::new(moto.s3_config(endpoint, "rockit-origin", path_style), guarded()).unwrap();
        let err = guarded_origin.probe("rockit").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Denied, "{endpoint}: {err}");
    }

    // Nothing listens: a network failure.
    let closed = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = Origin::new(
        moto.s3_config(&format!("http://127.0.0.1:{closed}"), "rockit-origin", true),
        allowed(),
    )
    .unwrap();
    assert_eq!(closed.probe("").await.unwrap_err().kind, ErrorKind::Network);

    // The valid key still works after all that.
    let origin =
        Origin::new(moto.s3_config(&moto.endpoint, "rockit-origin", true), allowed()).unwrap();
    origin.probe("rockit").await.unwrap();
}

/// A NetStorage stand-in that checks Akamai's auth headers with the upload key.
struct NetStorage {
    key_name: String,
    key: String,
    cp_code: String,
    objects: Mutex<HashMap<String, Vec<u8>>>,
    refused: Mutex<u32>,
}

async fn netstorage_receiver(
    State(ns): State<Arc<NetStorage>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let h =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (action, auth_data, auth_sign) =
        (h("x-akamai-acs-action"), h("x-akamai-acs-auth-data"), h("x-akamai-acs-auth-sign"));
    let path = uri.path().to_owned();
    let fields: Vec<&str> = auth_data.split(", ").collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let fresh =
        fields.get(3).and_then(|t| t.parse::<i64>().ok()).is_some_and(|t| (now - t).abs() < 120);
    let mut mac = Hmac::<Sha256>::new_from_slice(ns.key.as_bytes()).unwrap();
    mac.update(format!("{auth_data}{path}\nx-akamai-acs-action:{action}\n").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let valid = fields.len() == 6
        && fields[..3] == ["5", "0.0.0.0", "0.0.0.0"]
        && !fields[4].is_empty()
        && fields[5] == ns.key_name
        && fresh
        && expected == auth_sign
        && path.starts_with(&format!("/{}/", ns.cp_code));
    if !valid {
        *ns.refused.lock().unwrap() += 1;
        return (StatusCode::FORBIDDEN, Vec::new());
    }
    let mut objects = ns.objects.lock().unwrap();
    match (method, action.as_str()) {
        (Method::PUT, "version=1&action=upload&upload-type=binary") => {
            objects.insert(path, body.to_vec());
            (StatusCode::OK, Vec::new())
        }
        (Method::GET, "version=1&action=download") => match objects.get(&path) {
            Some(data) => (StatusCode::OK, data.clone()),
            None => (StatusCode::NOT_FOUND, Vec::new()),
        },
        (Method::POST | Method::PUT, "version=1&action=delete") => match objects.remove(&path) {
            Some(_) => (StatusCode::OK, Vec::new()),
            None => (StatusCode::NOT_FOUND, Vec::new()),
        },
        _ => (StatusCode::BAD_REQUEST, Vec::new()),
    }
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn ns_config(addr: SocketAddr, key: &str, cp_code: &str) -> OriginConfig {
    OriginConfig::NetStorage {
        host: format!("http://{addr}"),
        key_name: "upload1".into(),
        key: key.into(),
        cp_code: cp_code.into(),
        base_path: Some("/games/eu/".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netstorage_round_trip_with_verified_signatures() {
    let ns = Arc::new(NetStorage {
        key_name: "upload1".into(),
        key: "k3y-0f-the-upload-account".into(),
        cp_code: "123456".into(),
        objects: Mutex::default(),
        refused: Mutex::default(),
    });
    let app = axum::Router::new()
        .fallback(netstorage_receiver)
        .layer(DefaultBodyLimit::disable())
        .with_state(ns.clone());
    let addr = serve(app).await;

    let origin =
        Origin::new(ns_config(addr, "k3y-0f-the-upload-account", "123456"), allowed()).unwrap();
    assert_eq!(origin.type_name(), "netstorage");
    round_trip(&origin).await;
    assert_eq!(*ns.refused.lock().unwrap(), 0);
    assert!(ns.objects.lock().unwrap().is_empty());

    // Objects land under /<cpCode>/<basePath>/<key>, percent-encoded.
    let key = keys::join(&keys::pat_dir("rockit", "Org", "My App", 2, 1), "p.bin");
    origin.put_bytes(&key, b"patch".to_vec()).await.unwrap();
    let stored: Vec<String> = ns.objects.lock().unwrap().keys().cloned().collect();
    assert_eq!(stored, ["/123456/games/eu/rockit/pat/Org/My%20App/0002/0001/p.bin"]);

    let err = Origin::new(ns_config(addr, "wrong-key", "123456"), allowed())
        .unwrap()
        .probe("rockit")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    assert!(!err.message.contains("wrong-key"), "{err}");
    let err = Origin::new(ns_config(addr, "k3y-0f-the-upload-account", "999"), allowed())
        .unwrap()
        .probe("")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    assert_eq!(*ns.refused.lock().unwrap(), 2);

    let err = Origin::new(ns_config(addr, "k3y-0f-the-upload-account", "123456"), guarded())
        .unwrap()
        .probe("")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Denied, "{err}");
    assert_eq!(*ns.refused.lock().unwrap(), 2, "a denied address is never contacted");
}

async fn hop(UrlPath(n): UrlPath<u32>) -> axum::response::Response {
    if n == 0 {
        return "arrived".into_response();
    }
    (StatusCode::FOUND, [(header::LOCATION, format!("/r/{}", n - 1))]).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_capped_and_checked() {
    let app = axum::Router::new().route("/r/{n}", axum::routing::get(hop)).route(
        "/ftp",
        axum::routing::get(|| async {
            (StatusCode::FOUND, [(header::LOCATION, "ftp://127.0.0.1/x")])
        }),
    );
    let addr = serve(app).await;
    let client = net::client(&allowed());

    let resp = client.get(format!("http://{addr}/r/5")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "arrived");

    let err = client.get(format!("http://{addr}/r/6")).send().await.unwrap_err();
    let err = net::request_error(&err);
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    assert!(err.message.contains("too many redirects"), "{err}");

    let err =
        net::request_error(&client.get(format!("http://{addr}/ftp")).send().await.unwrap_err());
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");

    // Without allow_private the first hop is already refused, before any connection.
    let err = net::request_error(
        &net::client(&guarded())
            .get(format!("http://localhost:{}/r/0", addr.port()))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(err.kind, ErrorKind::Denied, "{err}");
}

/// Our signature of a listing (query values with `/`, `=` and spaces) equals the one
/// botocore, the AWS SDK's signer, computes for the same request from its parameters.
#[test]
fn sigv4_query_matches_botocore() {
    let query = [
        ("list-type", "2"),
        ("prefix", "edge/main/chunks/a b=c/"),
        ("continuation-token", "1/x+y=="),
    ];
    let date = "20261202T010203Z";
    let headers = [
        ("host", "127.0.0.1:9000"),
        ("x-amz-content-sha256", sigv4::EMPTY_SHA256),
        ("x-amz-date", date),
    ];
    let req = sigv4::Request {
        method: "GET",
        canonical_uri: "/edge-depot",
        query: &query,
        headers: &headers,
        payload_hash: sigv4::EMPTY_SHA256,
    };
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    };
    let ours =
        sigv4::authorization(creds, Scope { region: "eu-central-1", service: "s3" }, &req, date);
    let script = r#"
import json, sys
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
q = json.loads(sys.argv[1])
r = AWSRequest(method="GET", url="http://127.0.0.1:9000/edge-depot", params=q,
               headers={"host": "127.0.0.1:9000", "x-amz-content-sha256": sys.argv[2], "x-amz-date": sys.argv[3]})
r.context["timestamp"] = sys.argv[3]
a = S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "s3", "eu-central-1")
print(a.signature(a.string_to_sign(r, a.canonical_request(r)), r))
"#;
    let q = serde_json::to_string(
        &query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>(),
    )
    .unwrap();
    let out = Command::new("python3")
        .args(["-c", script, &q, sigv4::EMPTY_SHA256, date])
        .output()
        .expect("python3 with botocore");
    assert!(out.status.success(), "botocore: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(theirs.len(), 64, "{theirs}");
    assert!(ours.ends_with(&format!("Signature={theirs}")), "ours: {ours}\nbotocore: {theirs}");
}
