//! Test harness: origin servers on 127.0.0.1 ephemeral ports whose
//! behaviour a test can switch between rounds, and the real `mirrorgate`
//! binary started against them. Nothing here reaches past loopback.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;

pub mod postgres;
pub mod receiver;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
pub const ARTICLE: &str = "/Detail/2017/01/24/507408/Trump-Russia-Daesh";

/// A shared fixture page with its `www.example.*` hosts moved onto `host`.
pub fn fixture(name: &str, fixture_host: &str, host: &str) -> String {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join(name)).expect("fixture exists");
    text.replace(fixture_host, host)
}

#[derive(Clone, Debug)]
pub enum Behavior {
    Page(String),
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
    Redirect(String),
    RateLimited {
        retry_after_secs: u64,
    },
    Bytes {
        size: usize,
    },
    /// The page with an ETag; 304 when If-None-Match matches it.
    Validated(String),
    /// 304 to any conditional request, this page to a full one: a base
    /// whose validators lie about what it serves now.
    StaleValidator(String),
    /// Exactly these bytes, with these headers (a content type among them,
    /// or none at all).
    Raw {
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Answers as `then` does, after `delay`.
    Slow {
        delay: Duration,
        then: Box<Behavior>,
    },
}

/// An origin server whose answer per path can be changed at any time.
pub struct TestOrigin {
    pub addr: SocketAddr,
    behaviors: Arc<Mutex<HashMap<String, Behavior>>>,
    fallback: Arc<Mutex<Behavior>>,
    pub requests: Arc<Mutex<Vec<(Instant, String)>>>,
    /// How many 304s this origin answered.
    pub not_modified: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestOrigin {
    pub async fn start(fallback: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        Self::start_on(listener, fallback)
    }

    /// Serves on a listener bound elsewhere (in a network namespace).
    pub fn start_on(listener: TcpListener, fallback: Behavior) -> Self {
        let addr = listener.local_addr().unwrap();
        let behaviors: Arc<Mutex<HashMap<String, Behavior>>> = Arc::default();
        let fallback = Arc::new(Mutex::new(fallback));
        let requests: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let not_modified: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (b, f, r, n) = (
            behaviors.clone(),
            fallback.clone(),
            requests.clone(),
            not_modified.clone(),
        );
        let app = Router::new().fallback(move |uri: Uri, headers: axum::http::HeaderMap| {
            let path = uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
            r.lock().unwrap().push((Instant::now(), path.clone()));
            let configured = {
                let map = b.lock().unwrap();
                map.get(&path).or_else(|| map.get(uri.path())).cloned()
            };
            let behavior = configured.unwrap_or_else(|| f.lock().unwrap().clone());
            let if_none_match = headers
                .get(header::IF_NONE_MATCH)
                .map(|v| v.to_str().unwrap_or("").to_string());
            respond(behavior, if_none_match, n.clone())
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestOrigin {
            addr,
            behaviors,
            fallback,
            requests,
            not_modified,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn set(&self, behavior: Behavior) {
        *self.fallback.lock().unwrap() = behavior;
    }

    pub fn set_path(&self, path: &str, behavior: Behavior) {
        self.behaviors.lock().unwrap().insert(path.to_string(), behavior);
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn respond(
    behavior: Behavior,
    if_none_match: Option<String>,
    not_modified: Arc<std::sync::atomic::AtomicUsize>,
) -> Response {
    let etag = |page: &str| format!("\"{:x}-{}\"", page.len(), page.bytes().map(u64::from).sum::<u64>());
    let unchanged = || {
        not_modified.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StatusCode::NOT_MODIFIED.into_response()
    };
    match behavior {
        Behavior::Slow { delay, then } => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*then, if_none_match, not_modified)).await
        }
        Behavior::Validated(page) => {
            let tag = etag(&page);
            if if_none_match.as_deref() == Some(tag.as_str()) {
                return unchanged();
            }
            (
                [(header::CONTENT_TYPE, "text/html".to_string()), (header::ETAG, tag)],
                page,
            )
                .into_response()
        }
        Behavior::StaleValidator(page) => {
            if if_none_match.is_some() {
                return unchanged();
            }
            (
                [
                    (header::CONTENT_TYPE, "text/html".to_string()),
                    (header::ETAG, etag(&page)),
                ],
                page,
            )
                .into_response()
        }
        Behavior::Page(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Behavior::Status(code) => (StatusCode::from_u16(code).unwrap(), "status\n").into_response(),
        Behavior::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Behavior::Redirect(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Behavior::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            "slow down\n",
        )
            .into_response(),
        Behavior::Raw { headers, body } => {
            let mut response = Response::builder();
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
        Behavior::Bytes { size } => Response::builder()
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from(vec![b'x'; size]))
            .unwrap(),
    }
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub struct SiteSpec<'a> {
    pub name: &'a str,
    pub primary: String,
    pub mirrors: Vec<String>,
    pub articles: Vec<&'a str>,
    pub extra: &'a str,
}

impl<'a> SiteSpec<'a> {
    pub fn new(name: &'a str, primary: String, mirrors: Vec<String>, articles: Vec<&'a str>) -> Self {
        SiteSpec {
            name,
            primary,
            mirrors,
            articles,
            extra: "",
        }
    }

    /// More `[[sites]]` keys, as TOML lines.
    pub fn extra(mut self, extra: &'a str) -> Self {
        self.extra = extra;
        self
    }
}

/// Writes `config_text(...)` to `path`.
pub fn write_config(path: &Path, store: &Path, probe: &str, sites: &[SiteSpec]) {
    std::fs::write(path, config_text(store, probe, sites)).unwrap();
}

/// The shared fixtures, each with the `www.example.*` host it is written for.
#[derive(Clone, Copy)]
pub enum Page {
    Primary,
    PrimaryV2,
    Faithful,
    Relative,
    Tampered,
    Blocked,
}

impl Page {
    /// The page as `origin` would serve it: its own host in every link.
    pub fn on(self, origin: &TestOrigin) -> String {
        let (file, host) = match self {
            Page::Primary => ("primary-v1.html", "www.example.com"),
            Page::PrimaryV2 => ("primary-v2.html", "www.example.com"),
            Page::Faithful => ("mirror-faithful-v1.html", "www.example.co.uk"),
            Page::Relative => ("mirror-relative-v1.html", "mirror.example.net"),
            Page::Tampered => ("mirror-tampered-v1.html", "www.example.co.uk"),
            Page::Blocked => ("blockpage.html", "www.example.com"),
        };
        fixture(file, host, &origin.authority())
    }
}

/// An origin serving `page` at [`ARTICLE`] only (a 404 elsewhere, so its
/// page is no soft 404).
pub async fn serving_article(page: Page) -> TestOrigin {
    let origin = TestOrigin::start(Behavior::Status(404)).await;
    origin.set_path(ARTICLE, Behavior::Page(page.on(&origin)));
    origin
}

/// A primary and a faithful mirror serving the article at each of `paths`
/// (a 404 elsewhere).
pub async fn primary_and_mirror(paths: &[&str]) -> (TestOrigin, TestOrigin) {
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    for path in paths {
        primary.set_path(path, Behavior::Page(Page::Primary.on(&primary)));
        mirror.set_path(path, Behavior::Page(Page::Faithful.on(&mirror)));
    }
    (primary, mirror)
}

/// An origin serving `page` on every path.
pub async fn serving(page: Page) -> TestOrigin {
    let origin = TestOrigin::start(Behavior::Status(404)).await;
    origin.set(Behavior::Page(page.on(&origin)));
    origin
}

/// A config for `sites`, with a short timeout and no per-host limit to
/// speak of, unless `probe` overrides them.
pub fn config_text(store: &Path, probe: &str, sites: &[SiteSpec]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"{}\"\n\n[probe]\n{}\n",
        store.display(),
        if probe.is_empty() {
            "interval = \"1h\"\ntimeout = \"2s\"\nper_host_rate = 100"
        } else {
            probe
        }
    );
    for site in sites {
        let quote = |v: &[String]| v.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
        let articles: Vec<String> = site.articles.iter().map(|a| a.to_string()).collect();
        text.push_str(&format!(
            "\n[[sites]]\nname = \"{}\"\nprimary = \"{}\"\nmirrors = [{}]\narticles = [{}]\n{}\n",
            site.name,
            site.primary,
            quote(&site.mirrors),
            quote(&articles),
            site.extra
        ));
    }
    text
}

/// Says, where a person will see it, that a test did not run: the harness
/// captures a passing test's output, so the line also goes to the terminal.
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}\n");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        use std::io::Write;
        let _ = tty.write_all(line.as_bytes());
    }
    eprint!("{line}");
}

/// A Chromium on this machine, if any (CI installs Debian's).
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mirrorgate")
}

/// The real daemon, as an operator runs it.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `mirrorgate run` and waits for it to report its address.
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("RUST_LOG", "mirrorgate=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mirrorgate");
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = entry["fields"]["local_addr"].as_str()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => panic!("daemon did not start; log:\n{}", log.lock().unwrap().join("\n")),
        };
        Daemon {
            child,
            addr,
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Log entries (JSON lines) whose fields contain every `(key, value)`.
    pub fn log_entries(&self, fields: &[(&str, &str)]) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| fields.iter().all(|(k, v)| entry["fields"][*k] == *v))
            .collect()
    }

    /// Every log line so far, as written.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// As [`wait_exit`](Self::wait_exit), without holding the test's
    /// runtime: the origins on it keep answering the daemon's last probes.
    pub async fn exited(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Waits for exit, returning the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that never follows redirects: tests look at the 302 itself.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A plain GET, redirects not followed.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Response {
    client().get(url).send().await.expect("request")
}

pub async fn get_json(url: &str) -> Value {
    let response = get(url).await;
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Polls `probe` until it returns Some, or fails the test with `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn get_text(url: &str) -> String {
    client().get(url).send().await.expect("request").text().await.unwrap()
}

/// The value of one Prometheus sample, by its exact name and labels.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until the daemon has completed at least `rounds` rounds. The
/// deadline is generous: it only matters when something is wrong, and a
/// loaded 2-core machine (probe threads at a lower priority) is slow.
pub async fn rounds_completed(daemon: &Daemon, rounds: u64) -> Value {
    let url = daemon.url("/status");
    eventually(&format!("{rounds} rounds"), Duration::from_secs(180), || {
        let url = url.clone();
        async move {
            let status = get_json(&url).await;
            (status["round"]["completed"].as_u64()? >= rounds).then_some(status)
        }
    })
    .await
}

/// The per-base entries of one article in `/status/{site}`, keyed by base URL.
pub fn bases_of(detail: &Value, path: &str) -> HashMap<String, Value> {
    let article = detail["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .unwrap_or_else(|| panic!("article {path} in {detail}"));
    article["bases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["url"].as_str().unwrap().to_string(), b.clone()))
        .collect()
}

/// One base's summary in a site of `/status`.
pub fn base_summary<'a>(site: &'a Value, url: &str) -> &'a Value {
    site["bases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["url"] == url)
        .unwrap_or_else(|| panic!("base {url} in {site}"))
}

pub fn article_of<'a>(detail: &'a Value, path: &str) -> &'a Value {
    detail["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .unwrap()
}

/// A JSON document fetched with a bearer token; None on any failure, for
/// `eventually` loops.
pub async fn get_json_authorized(url: &str, token: &str) -> Option<Value> {
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}
