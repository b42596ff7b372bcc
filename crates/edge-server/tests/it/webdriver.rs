//! A small W3C WebDriver client driving Debian's headless Chromium through `chromedriver`
//! (both installed by `.ci/run`), for the console's browser tests. Screenshots go to
//! `target/tmp/console-screens/`.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the driver process ends with it.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
}

/// How long the helpers wait for an element or a text before failing the test: generous,
/// because CI runs the browser tests beside the rest of the suite on two cores, and a wait
/// that succeeds returns at once.
pub const WAIT: u64 = 45;

/// An element of the current page, with the selector that found it (to find it again when a
/// page script replaced it).
pub struct El<'a> {
    b: &'a Browser,
    css: String,
    id: String,
}

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium of 1280×900.
    pub async fn start() -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let r: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}"));
        Browser { http, base: format!("{url}/session/{sid}"), driver }
    }

    /// Sends a command; answers its value, or the WebDriver error code and message.
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        match r["value"]["error"].as_str() {
            Some(code) => {
                Err((code.to_string(), r["value"]["message"].as_str().unwrap_or("").to_string()))
            }
            None => Ok(r["value"].clone()),
        }
    }

    /// Sends a command; a WebDriver error fails the test, in its own words.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|(code, msg)| panic!("webdriver {path}: {code}: {msg}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens `url`.
    pub async fn go(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or("").to_string()
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or("").to_string()
    }

    /// The first element matching `css` now, if any.
    pub async fn find(&self, css: &str) -> Option<El<'_>> {
        let q = json!({"using": "css selector", "value": css});
        match self.try_cmd(reqwest::Method::POST, "/element", Some(q)).await {
            Ok(v) => v[ELEMENT].as_str().map(|id| El {
                b: self,
                css: css.to_string(),
                id: id.to_string(),
            }),
            Err((code, _)) if code == "no such element" => None,
            Err((code, msg)) => panic!("webdriver find {css}: {code}: {msg}"),
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        let v = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        v.as_array().map_or(0, Vec::len)
    }

    /// The element matching `css`, waited for up to [`WAIT`] seconds (a page may still be
    /// loading after a click); fails the test when none comes.
    pub async fn el(&self, css: &str) -> El<'_> {
        let until = Instant::now() + Duration::from_secs(WAIT);
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            assert!(Instant::now() < until, "no element {css} after {WAIT} s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of the element matching `css` (empty when there is none, or when a page
    /// script replaced it meanwhile).
    pub async fn text(&self, css: &str) -> String {
        let Some(e) = self.find(css).await else { return String::new() };
        let path = e.path("text");
        match self.try_cmd(reqwest::Method::GET, &path, None).await {
            Ok(v) => v.as_str().unwrap_or("").to_string(),
            Err((code, msg)) if stale(&code, &msg) => String::new(),
            Err((code, msg)) => panic!("webdriver text of {css}: {code}: {msg}"),
        }
    }

    /// Waits up to `secs` for the text of `css` to satisfy `ok`; returns it.
    pub async fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text(css).await;
            if ok(&t) {
                return t;
            }
            assert!(Instant::now() < until, "{css} still reads {t:?} after {secs} s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks `css`, a button that submits a form, and waits until the page the answer
    /// leads to has loaded. A navigation right after a bare click may cancel a submission
    /// the browser has not sent yet (under load, the operator's test task was never
    /// submitted that way).
    pub async fn submit(&self, css: &str) {
        self.run("window.__rockitBefore = true;", json!([])).await;
        self.el(css).await.click().await;
        let until = Instant::now() + Duration::from_secs(WAIT);
        let check = json!({"script": "return window.__rockitBefore !== true && document.readyState === 'complete';", "args": []});
        loop {
            // While the browser navigates, scripts may fail to run: that is "not yet".
            let v = self.try_cmd(reqwest::Method::POST, "/execute/sync", Some(check.clone())).await;
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            assert!(Instant::now() < until, "submitting {css}: no new page after {WAIT} s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; a returned
    /// promise is awaited.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// The value of cookie `name` (WebDriver sees `HttpOnly` cookies, page scripts do not).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let v = self.try_cmd(reqwest::Method::GET, &format!("/cookie/{name}"), None).await;
        v.ok()?["value"].as_str().map(String::from)
    }

    /// Accepts the open `confirm` dialog.
    pub async fn accept_dialog(&self) {
        self.post("/alert/accept", json!({})).await;
    }

    /// Resizes the window.
    pub async fn size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Saves a screenshot of the window as `<name>.png` in the artifacts directory.
    pub async fn shot(&self, name: &str) {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screens");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium with the driver's session; the driver itself is killed.
        let _ = std::process::Command::new("curl")
            .args(["-s", "-X", "DELETE", &self.base])
            .stdout(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl El<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    /// Clicks it; when a page script replaced it meanwhile (the pipeline fragment is
    /// redrawn every second), clicks the element its selector finds now.
    pub async fn click(&self) {
        let mut id = self.id.clone();
        let until = Instant::now() + Duration::from_secs(WAIT);
        loop {
            let path = format!("/element/{id}/click");
            match self.b.try_cmd(reqwest::Method::POST, &path, Some(json!({}))).await {
                Ok(_) => return,
                Err((code, msg)) if stale(&code, &msg) => {
                    assert!(Instant::now() < until, "{} stays stale: {msg}", self.css);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    id = self.b.el(&self.css).await.id;
                }
                Err((code, msg)) => panic!("webdriver click {}: {code}: {msg}", self.css),
            }
        }
    }

    /// Empties it (an input or a text area).
    pub async fn clear(&self) {
        self.b.post(&self.path("clear"), json!({})).await;
    }

    /// Types `text` into it.
    pub async fn typ(&self, text: &str) {
        self.b.post(&self.path("value"), json!({"text": text})).await;
    }
}

/// Whether a WebDriver error says the element left the page: the standard code, or
/// Chromium's "unknown error" when a page script replaced the node during the command.
fn stale(code: &str, msg: &str) -> bool {
    code == "stale element reference" || msg.contains("does not belong to the document")
}
