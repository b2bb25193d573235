//! A PostgreSQL schema of its own for each test, on the server CI starts
//! (`MIRRORGATE_TEST_POSTGRES`, by default the local one on 127.0.0.1:5432),
//! dropped when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn server_url() -> String {
    std::env::var("MIRRORGATE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into())
}

/// A fresh, empty schema; its [`url`](Self::url) makes it the connection's
/// search path, so the store's unqualified tables land in it.
pub struct Schema {
    pub name: String,
    server: String,
}

impl Schema {
    /// The schema, or `None` (after a visible `SKIPPED` line) when no
    /// server answers. Under `CI=true` a missing server fails the test:
    /// CI promises one.
    pub fn create(test: &str) -> Option<Schema> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mg_{}_{}_{}",
            test.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>()
                .to_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let server = server_url();
        match execute(
            &server,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        ) {
            Ok(()) => Some(Schema { name, server }),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL at {server} is needed under CI=true: {e}")
            }
            Err(e) => {
                super::skipped(test, &format!("no PostgreSQL at {server} ({e})"));
                None
            }
        }
    }

    /// The server's URL with this schema as the search path.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-csearch_path%3D{}", self.server, self.name)
    }

    /// Runs SQL in this schema (test set-up and inspection).
    pub fn execute(&self, sql: &str) {
        execute(&self.url(), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of the first row, as text.
    pub fn query_text(&self, sql: &str) -> String {
        let url = self.url();
        let sql = sql.to_string();
        on_own_runtime(async move {
            let client = connect(&url).await?;
            let row = client.query_one(&format!("SELECT ({sql})::text"), &[]).await?;
            Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
        })
        .unwrap_or_else(|e| panic!("query failed: {e}"))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = execute(&self.server, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (url, sql) = (url.to_string(), sql.to_string());
    on_own_runtime(async move {
        let client = connect(&url).await?;
        client.batch_execute(&sql).await
    })
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A thread with a runtime of its own, so sync and async tests alike can
/// call in.
fn on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
) -> Result<T, tokio_postgres::Error> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work)
    })
    .join()
    .expect("the PostgreSQL helper does not panic")
}
