//! An image or patch read over HTTP: `<base>/<name>` with a blocking reqwest client. Bodies
//! are streamed as the engine reads them; nothing is buffered whole.

use crate::fail::Fail;
use edge_engine::reader::Source;
use reqwest::blocking::Client;
use reqwest::Url;
use std::io::{self, Read};
use std::time::Duration;

/// The directory of an image or patch at an http(s) base URL. A query on the base (a CDN
/// token) is kept on every request.
pub struct HttpSource {
    client: Client,
    base: Url,
}

impl HttpSource {
    /// Checks the URL and builds the client.
    pub fn new(base: &str) -> Result<HttpSource, Fail> {
        let mut base =
            Url::parse(base).map_err(|e| Fail::new(format!("{base}: not a valid URL ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Fail::new(format!(
                "{}: only http(s) URLs with a host are supported",
                shown(&base)
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let client = Client::builder()
            .user_agent(concat!("rockit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // Applies to connecting, the answer's head, and each read of a body: a stall.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Fail::new(format!("HTTP client: {}", describe(&e))))?;
        Ok(HttpSource { client, base })
    }

    fn url(&self, name: &str) -> io::Result<Url> {
        if name.is_empty() || name.contains(['/', '\\', '?', '#']) || name.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsafe file name {name:?}"),
            ));
        }
        let mut u = self.base.clone();
        u.set_path(&format!("{}{name}", self.base.path()));
        Ok(u)
    }
}

impl Source for HttpSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        let url = self.url(name)?;
        let resp = self
            .client
            .get(url.clone())
            .send()
            .map_err(|e| io::Error::other(format!("GET {}: {}", shown(&url), describe(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            let kind = if status == reqwest::StatusCode::NOT_FOUND {
                io::ErrorKind::NotFound
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(kind, format!("GET {}: HTTP {status}", shown(&url))));
        }
        Ok(Box::new(resp))
    }
}

/// A URL fit for messages: without userinfo and query (they may carry secrets).
pub fn shown(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The innermost causes of a reqwest error, without the URL reqwest repeats.
pub use edge_client::describe_http_error as describe;
