//! `mirrorgate demo`: the real daemon against loopback origins, for a first
//! run on a machine that cannot (or should not) reach real news sites.
//!
//! The origins play one site, "demo-news": a primary, a faithful mirror (its
//! own host in every link, a banner above the article), a mirror that stopped
//! syncing (stale once the primary publishes an update), one replaced by a
//! censor's block page, and one that is down. The config is written to a
//! temp dir and goes through the same validation as an operator's.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cmd::run::Daemon;

pub const SITE: &str = "demo-news";
const INTERVAL_SECS: u64 = 5;

struct Article {
    path: &'static str,
    title: &'static str,
    paragraphs: &'static [&'static str],
    update: &'static str,
}

const ARTICLES: &[Article] = &[
    Article {
        path: "/news/2017/01/24/507408/joint-airstrikes",
        title: "Talks on joint airstrikes are a hopeful sign, adviser says",
        paragraphs: &[
            "A willingness to coordinate airstrikes against the Daesh terrorist group is a hopeful indication, a former Senate policy adviser said on Tuesday.",
            "The adviser, a specialist in international relations, said the new administration appeared ready to work with Moscow against a common enemy.",
            "The White House press secretary said on Monday that joint operations were being considered.",
        ],
        update: "Update: officials later said no joint operation had been agreed yet.",
    },
    Article {
        path: "/news/2017/01/23/507300/briefing?lang=en",
        title: "Press secretary holds first daily briefing",
        paragraphs: &[
            "The new press secretary held his first daily briefing on Monday, taking questions on trade, immigration and foreign policy.",
            "He said the administration would announce further measures later in the week.",
        ],
        update: "Update: the transcript of the briefing has been published.",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Io(#[from] std::io::Error),
    #[error("demo: the generated config is invalid (a bug): {0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error("demo: {0}")]
    Start(#[from] crate::cmd::run::StartError),
}

#[derive(Clone, Copy)]
enum Role {
    Primary,
    Faithful,
    Stale,
    BlockPage,
}

struct Origins {
    updated: Arc<AtomicBool>,
}

/// Runs until `shutdown`; prints where to look.
pub async fn run(listen: SocketAddr, shutdown: CancellationToken) -> Result<(), DemoError> {
    let dir = tempfile::Builder::new().prefix("mirrorgate-demo-").tempdir()?;
    let origins = Origins {
        updated: Arc::new(AtomicBool::new(false)),
    };
    let primary = origins.serve(Role::Primary, &shutdown).await?;
    let faithful = origins.serve(Role::Faithful, &shutdown).await?;
    let stale = origins.serve(Role::Stale, &shutdown).await?;
    let blocked = origins.serve(Role::BlockPage, &shutdown).await?;
    let down = {
        // Bound, then released: nothing listens there, so probes are refused.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let listen = match TcpListener::bind(listen).await {
        Ok(_) => listen,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let articles: Vec<String> = ARTICLES.iter().map(|a| format!("\"{}\"", a.path)).collect();
    let config_text = format!(
        r#"# Written by `mirrorgate demo`: loopback origins playing one site.
[server]
listen = "{listen}"

[store]
path = "{store}"

[probe]
interval = "{INTERVAL_SECS}s"
timeout = "3s"
per_host_rate = 20

[[sites]]
name = "{SITE}"
primary = "http://{primary}"
mirrors = ["http://{faithful}", "http://{stale}", "http://{blocked}", "http://{down}"]
articles = [{articles}]
content_selector = "article"
"#,
        store = dir.path().join("mirrorgate.db").display(),
        articles = articles.join(", "),
    );
    let config_path = dir.path().join("mirrorgate.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = crate::config::load(&config_path)?;
    let reload = crate::cmd::run::Reload {
        path: Some(config_path.clone()),
        listen_override: None,
        set_log_level: None,
    };
    let daemon = Daemon::start(config, reload, shutdown.clone()).await?;
    let addr = daemon.local_addr();
    let first = ARTICLES[0].path;
    let go_target = format!("http://{faithful}{first}");
    let go = url::form_urlencoded::byte_serialize(go_target.as_bytes()).collect::<String>();
    let banner = format!(
        "mirrorgate demo: watching site \"{SITE}\" on loopback origins (config and store in {dir})\n\
         \n\
         \x20 primary          http://{primary}\n\
         \x20 faithful mirror  http://{faithful}   (own host in links, banner above the article)\n\
         \x20 stale mirror     http://{stale}   (stops syncing; stale once the primary updates)\n\
         \x20 blocked mirror   http://{blocked}   (a censor's block page)\n\
         \x20 down mirror      http://{down}   (nothing listens)\n\
         \n\
         Try:\n\
         \x20 curl -s http://{addr}/status\n\
         \x20 curl -s http://{addr}/status/{SITE}\n\
         \x20 curl -si http://{addr}/r/{SITE}{first}\n\
         \x20 curl -si 'http://{addr}/go?url={go}'\n\
         \n\
         Rounds run every {INTERVAL_SECS}s; the primary publishes an update after about {update}s. Ctrl-C stops.",
        dir = dir.path().display(),
        update = INTERVAL_SECS * 3 / 2,
    );
    // Not println!: a reader that stops reading (`mirrorgate demo | head`)
    // must not take the daemon down with a panic on EPIPE.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{banner}").and_then(|_| stdout.flush());
    drop(stdout);
    let updated = origins.updated.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(INTERVAL_SECS * 1500)) => {
                updated.store(true, Ordering::Relaxed);
                tracing::info!("demo: the primary published an update to every article");
            }
        }
    });
    daemon.finished().await?;
    Ok(())
}

impl Origins {
    async fn serve(&self, role: Role, shutdown: &CancellationToken) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let updated = self.updated.clone();
        let app = Router::new().fallback(move |uri: Uri| {
            let updated = updated.load(Ordering::Relaxed);
            async move { respond(role, addr, updated, &uri) }
        });
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(addr)
    }
}

fn respond(role: Role, addr: SocketAddr, updated: bool, uri: &Uri) -> Response {
    let html = |body: String| ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    if let Role::BlockPage = role {
        return html(BLOCK_PAGE.to_string());
    }
    let wanted = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let Some(article) = ARTICLES.iter().find(|a| a.path == wanted || a.path == uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let host = format!("http://{addr}");
    let with_update = updated && !matches!(role, Role::Stale);
    html(page(&host, article, with_update, matches!(role, Role::Faithful)))
}

/// A news page as real sites serve it: navigation, scripts and a render
/// time that change on every request, and absolute links on its own host.
fn page(host: &str, article: &Article, with_update: bool, banner: bool) -> String {
    let rendered = crate::clock::now_ms();
    let mut paragraphs: String = article.paragraphs.iter().map(|p| format!("<p>{p}</p>\n")).collect();
    if with_update {
        paragraphs.push_str(&format!("<p>{}</p>\n", article.update));
    }
    let banner = if banner {
        "<div class=\"mirror-banner\">You are reading a mirror. Bookmark it.</div>\n"
    } else {
        ""
    };
    let json_host = host.replace('/', "\\/");
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} | Demo News</title>
<link rel="canonical" href="{host}{path}">
<script>window.__CFG={{"cdn":"{json_host}","rendered":{rendered}}};</script>
</head><body>
{banner}<nav><a href="{host}/">Home</a> <a href="{host}/section/world">World</a></nav>
<article>
<h1>{title}</h1>
{paragraphs}<p>Read more: <a href="{host}/section/world">World news</a></p>
</article>
<!-- served at {rendered} -->
<footer>This website can also be accessed at alternate addresses.</footer>
</body></html>
"#,
        title = article.title,
        path = article.path,
    )
}

const BLOCK_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Access denied</title></head><body>\n<h1>Access to this website has been restricted</h1>\n<p>By order of the regulator, this resource is blocked in your country.</p>\n</body></html>\n";
