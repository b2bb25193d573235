//! The PostgreSQL backend: the same tables as SQLite, so a store can be
//! copied either way, written with one statement per table per batch
//! (arrays unnested server-side) over prepared statements.
//!
//! The [`Store`] trait is synchronous (the writer calls it from a blocking
//! thread), so the store drives its tokio-postgres connection on a small
//! runtime of its own: the daemon's runtime is never blocked, and the store
//! works the same from `check`, tests and the writer. A connection that
//! drops is opened again on the next call; the writer keeps the batch and
//! retries with back-off meanwhile.
//!
//! The schema is versioned ([`MIGRATIONS`]) and applied at open under an
//! advisory lock, so instances starting together never race; a database
//! whose schema is newer than this binary is refused, naming both versions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Runtime;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, Statement};

mod work;

use super::rollups::{HOUR_MS, Rollups};
use super::{
    Beat, Cell, Claim, ClaimLimits, Cluster, ColumnType, DiscoveredArticle, Kept, MEMBER_TTL_MS, Member, MinuteCount,
    ProbeRecord, Store, StoreError, StoredState, StoredVersion, TABLES, Table, WorkPair,
};
use crate::clock::UnixMillis;
use crate::fingerprint::{Hash, PageClass, PageFacts, RawHash};
use crate::verdict::Verdict;
use crate::verdict::observation::{Observation, Outcome};

/// The schema, one entry per version: entry `n` takes a database from
/// version `n` to `n + 1`. Never edit a released entry; add one.
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE probes (
    id BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    article TEXT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms BIGINT NOT NULL,
    raw_hash BYTEA,
    hash BYTEA,
    page_class TEXT
);
CREATE INDEX probes_at ON probes (at);
CREATE INDEX probes_base_ok ON probes (base, id) WHERE outcome = 'ok';
CREATE TABLE latest (
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    article TEXT NOT NULL,
    is_primary BOOLEAN NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms BIGINT NOT NULL,
    raw_hash BYTEA,
    hash BYTEA,
    last_ok_at BIGINT,
    text_len BIGINT NOT NULL DEFAULT 0,
    title_words BIGINT NOT NULL DEFAULT 0,
    page_flags INTEGER NOT NULL DEFAULT 0,
    page_class TEXT,
    rules BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, base, article)
);
CREATE TABLE versions (
    site TEXT NOT NULL,
    article TEXT NOT NULL,
    hash BYTEA NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    text_len BIGINT NOT NULL DEFAULT 0,
    title_words BIGINT NOT NULL DEFAULT 0,
    page_flags INTEGER NOT NULL DEFAULT 0,
    rules BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, article, hash)
);
CREATE TABLE article_ids (
    id BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    article TEXT NOT NULL,
    UNIQUE (site, article)
);
CREATE TABLE base_hours (
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    hour BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    verdict TEXT NOT NULL,
    probes BIGINT NOT NULL,
    latency_sum_ms BIGINT NOT NULL,
    ms_le_50 BIGINT NOT NULL,
    ms_le_100 BIGINT NOT NULL,
    ms_le_250 BIGINT NOT NULL,
    ms_le_500 BIGINT NOT NULL,
    ms_le_1000 BIGINT NOT NULL,
    ms_le_2500 BIGINT NOT NULL,
    ms_le_5000 BIGINT NOT NULL,
    ms_over_5000 BIGINT NOT NULL,
    PRIMARY KEY (site, base, hour, outcome, verdict)
);
CREATE TABLE article_hours (
    article_id BIGINT NOT NULL,
    hour BIGINT NOT NULL,
    probes BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    same BIGINT NOT NULL,
    stale BIGINT NOT NULL,
    diverged BIGINT NOT NULL,
    missing BIGINT NOT NULL,
    unknown BIGINT NOT NULL,
    unreachable BIGINT NOT NULL,
    latency_sum_ms BIGINT NOT NULL,
    PRIMARY KEY (hour, article_id)
);
CREATE TABLE discovered (
    site TEXT NOT NULL,
    path TEXT NOT NULL,
    position BIGINT NOT NULL,
    date BIGINT,
    source TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (site, path)
);
CREATE TABLE base_minutes (
    base TEXT NOT NULL,
    minute BIGINT NOT NULL,
    probes BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    PRIMARY KEY (base, minute)
);
",
    "
CREATE TABLE kept (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
",
    "
CREATE TABLE instances (
    name TEXT PRIMARY KEY,
    last_seen BIGINT NOT NULL,
    config_hash TEXT NOT NULL,
    probes_last_interval BIGINT NOT NULL
);
CREATE TABLE leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
",
    work::MIGRATION,
];

/// Held while migrating: any 64-bit key unlikely to collide with another
/// application's (the ASCII of "mirrorga").
const MIGRATION_LOCK: i64 = 0x6d69_7272_6f72_6761;

/// Where to connect, and how the store names itself in errors and logs.
#[derive(Clone)]
pub struct PostgresTarget {
    pub config: tokio_postgres::Config,
    /// `user@host:port/database`: never a password.
    pub name: String,
    /// `sslmode=verify-ca` or `verify-full`: TLS checks the server's
    /// certificate, not only encrypts.
    pub verify_server: bool,
    /// Read again at every connect: a rotated password (a reload, a new
    /// systemd credential) is used from the next connection on.
    pub password_file: Option<std::path::PathBuf>,
}

impl PostgresTarget {
    /// The target `[store] url` names, with the password from
    /// `password_file` when one is set (it wins over one in the URL).
    pub fn of(config: &crate::config::PostgresConfig, password_file: Option<&Path>) -> Result<Self, StoreError> {
        let fail = |message: String| StoreError {
            path: config.shown.clone(),
            source: message.into(),
        };
        let mut connect: tokio_postgres::Config = config
            .url
            .expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| fail(format!("not a PostgreSQL URL: {e}")))?;
        if let Some(file) = password_file {
            connect.password(read_password(file).map_err(fail)?);
        }
        // Without one, a host that drops packets holds the start forever.
        if connect.get_connect_timeout().is_none() {
            connect.connect_timeout(std::time::Duration::from_secs(10));
        }
        if connect.get_application_name().is_none() {
            connect.application_name("mirrorgate");
        }
        Ok(PostgresTarget {
            config: connect,
            name: config.shown.clone(),
            verify_server: config.verify_server,
            password_file: password_file.map(Path::to_path_buf),
        })
    }
}

/// The password file's first line.
fn read_password(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("store.password_file \"{}\" cannot be read: {e}", file.display()))?;
    Ok(text.lines().next().unwrap_or("").trim_end_matches('\r').to_string())
}

pub struct PostgresStore {
    target: PostgresTarget,
    /// None only while dropping: see [`Drop`].
    runtime: Option<Runtime>,
    connection: Option<Connection>,
}

struct Connection {
    client: Client,
    statements: Statements,
}

struct Statements {
    probes: Statement,
    latest: Statement,
    versions: Statement,
    minutes: Statement,
    base_hours: Statement,
    article_ids: Statement,
    find_article_ids: Statement,
    article_hours: Statement,
    work: work::WorkStatements,
}

impl PostgresStore {
    /// Connects, applies missing migrations and prepares the statements.
    pub fn open(target: PostgresTarget) -> Result<Self, StoreError> {
        match Self::open_or_away(target)? {
            (store, None) => Ok(store),
            (_, Some(away)) => Err(away),
        }
    }

    /// As [`open`](Self::open), but a server that cannot be reached (or
    /// refuses the login) is not fatal: the store comes back unconnected,
    /// with the reason, and each later use tries again. A schema newer than
    /// this binary still is.
    pub fn open_or_away(target: PostgresTarget) -> Result<(Self, Option<StoreError>), StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError {
                path: target.name.clone(),
                source: e.into(),
            })?;
        let mut store = PostgresStore {
            target,
            runtime: Some(runtime),
            connection: None,
        };
        match store.connect() {
            Ok(()) => Ok((store, None)),
            Err(Unconnected::Away(error)) => Ok((store, Some(error))),
            Err(Unconnected::Refused(error)) => Err(error),
        }
    }

    fn error(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError {
            path: self.target.name.clone(),
            source: source.into(),
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime is only taken when dropping")
    }

    fn connect(&mut self) -> Result<(), Unconnected> {
        let mut config = self.target.config.clone();
        if let Some(file) = &self.target.password_file {
            match read_password(file) {
                Ok(password) => {
                    config.password(password);
                }
                Err(message) => return Err(Unconnected::Away(self.error(message))),
            }
        }
        let verify_server = self.target.verify_server;
        let connected = self.runtime().block_on(async move {
            let client = if config.get_ssl_mode() == SslMode::Disable {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(drive(connection));
                client
            } else {
                let (client, connection) = config.connect(tls(verify_server)).await?;
                tokio::spawn(drive(connection));
                client
            };
            migrate(&client).await?;
            let statements = Statements::prepare(&client).await?;
            Ok::<_, MigrateError>(Connection { client, statements })
        });
        match connected {
            Ok(connection) => {
                self.connection = Some(connection);
                Ok(())
            }
            Err(MigrateError::Postgres(e)) => Err(Unconnected::Away(self.error(explained(&e)))),
            Err(MigrateError::Newer { found, known }) => Err(Unconnected::Refused(self.error(format!(
                "the database's schema is version {found}, newer than this mirrorgate's {known}: \
                 upgrade mirrorgate (or point it at another database)"
            )))),
        }
    }

    /// Runs `work` on a live connection, opening one first if the last
    /// dropped.
    fn with<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut Connection) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        if self.connection.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.connection = None;
            self.connect().map_err(Unconnected::into_error)?;
        }
        let runtime = self.runtime.as_ref().expect("the runtime is only taken when dropping");
        let connection = self.connection.as_mut().expect("connected above");
        let result = runtime.block_on(work(connection));
        result.map_err(|e| self.error(explained(&e)))
    }
}

/// The driver's error with its causes: its own text stops at "error
/// performing TLS handshake" or "db error", which tells an operator nothing.
fn explained(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    if let Some(db) = error.as_db_error() {
        text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
}

fn sql_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Int => "bigint",
        ColumnType::Int32 => "int",
        ColumnType::Text => "text",
        ColumnType::Bytes => "bytea",
        ColumnType::Bool => "bool",
    }
}

fn push<T>(column: &mut Vec<T>, value: T) -> bool {
    column.push(value);
    true
}

/// One column of copied rows, as the array its UNNEST parameter takes.
enum ColumnArray {
    Int(Vec<Option<i64>>),
    Int32(Vec<Option<i32>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Bool(Vec<Option<bool>>),
}

impl ColumnArray {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            ColumnArray::Int(v) => v,
            ColumnArray::Int32(v) => v,
            ColumnArray::Text(v) => v,
            ColumnArray::Bytes(v) => v,
            ColumnArray::Bool(v) => v,
        }
    }
}

/// The rows turned into one array per column; a value of the wrong kind
/// names its table, column and row.
fn column_arrays(table: &Table, rows: &[Vec<Cell>]) -> Result<Vec<ColumnArray>, String> {
    let mut arrays: Vec<ColumnArray> = table
        .columns
        .iter()
        .map(|(_, kind)| match kind {
            ColumnType::Int => ColumnArray::Int(Vec::with_capacity(rows.len())),
            ColumnType::Int32 => ColumnArray::Int32(Vec::with_capacity(rows.len())),
            ColumnType::Text => ColumnArray::Text(Vec::with_capacity(rows.len())),
            ColumnType::Bytes => ColumnArray::Bytes(Vec::with_capacity(rows.len())),
            ColumnType::Bool => ColumnArray::Bool(Vec::with_capacity(rows.len())),
        })
        .collect();
    for (number, row) in rows.iter().enumerate() {
        for ((array, cell), (column, _)) in arrays.iter_mut().zip(row).zip(table.columns) {
            let fits = match (array, cell) {
                (ColumnArray::Int(v), Cell::Null) => push(v, None),
                (ColumnArray::Int(v), Cell::Int(i)) => push(v, Some(*i)),
                (ColumnArray::Int32(v), Cell::Null) => push(v, None),
                (ColumnArray::Int32(v), Cell::Int(i)) => i32::try_from(*i).is_ok_and(|i| push(v, Some(i))),
                (ColumnArray::Text(v), Cell::Null) => push(v, None),
                (ColumnArray::Text(v), Cell::Text(t)) => push(v, Some(t.clone())),
                (ColumnArray::Bytes(v), Cell::Null) => push(v, None),
                (ColumnArray::Bytes(v), Cell::Bytes(b)) => push(v, Some(b.clone())),
                (ColumnArray::Bool(v), Cell::Null) => push(v, None),
                (ColumnArray::Bool(v), Cell::Bool(b)) => push(v, Some(*b)),
                (ColumnArray::Bool(v), Cell::Int(i)) => push(v, Some(*i != 0)),
                _ => false,
            };
            if !fits {
                return Err(format!(
                    "{}.{column}: row {} holds {cell:?}, which this column cannot take",
                    table.name,
                    number + 1
                ));
            }
        }
    }
    Ok(arrays)
}

/// Runs a connection until it ends (the client then reads as closed).
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::debug!(%error, "PostgreSQL connection ended");
    }
}

/// TLS as libpq does it: `prefer` and `require` encrypt without checking
/// who answers (a self-signed server certificate is the common case);
/// `verify-ca` and `verify-full` check the certificate against the
/// system's roots and the host name.
fn tls(verify_server: bool) -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions");
    let config = if verify_server {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(certificate);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Accepts any server certificate but still checks the handshake's
/// signatures, so the session is encrypted to whoever holds the key.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The store may be dropped on an async thread (the writer's task),
        // where a runtime must not block to shut down.
        self.connection = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Why there is no connection: the server is away (try again later), or
/// it was reached and must not be used (its schema is newer).
enum Unconnected {
    Away(StoreError),
    Refused(StoreError),
}

impl Unconnected {
    fn into_error(self) -> StoreError {
        match self {
            Unconnected::Away(e) | Unconnected::Refused(e) => e,
        }
    }
}

enum MigrateError {
    Postgres(tokio_postgres::Error),
    Newer { found: i64, known: i64 },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Postgres(e)
    }
}

/// Brings the schema to the newest version this binary knows.
async fn migrate(client: &Client) -> Result<(), MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS mirrorgate_schema (version BIGINT NOT NULL)")
            .await?;
        let found: i64 = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM mirrorgate_schema", &[])
            .await?
            .get(0);
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(MigrateError::Newer { found, known });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let next = version as i64 + 1;
            let step = format!("BEGIN; {migration}; INSERT INTO mirrorgate_schema (version) VALUES ({next}); COMMIT;");
            if let Err(e) = client.batch_execute(&step).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e.into());
            }
            tracing::info!(version = next, "PostgreSQL schema migrated");
        }
        Ok(())
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Statements {
            probes: client
                .prepare(
                    "INSERT INTO probes (site, base, article, at, outcome, http_status, latency_ms, raw_hash, hash, page_class)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[],
                                          $7::bigint[], $8::bytea[], $9::bytea[], $10::text[])",
                )
                .await?,
            latest: client
                .prepare(
                    "INSERT INTO latest AS l (site, base, article, is_primary, at, outcome, http_status, latency_ms, raw_hash,
                                              hash, last_ok_at, text_len, title_words, page_flags, page_class, rules)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[], $6::text[], $7::int[],
                                          $8::bigint[], $9::bytea[], $10::bytea[], $11::bigint[], $12::bigint[], $13::bigint[],
                                          $14::int[], $15::text[], $16::bigint[])
                     ON CONFLICT (site, base, article) DO UPDATE SET
                       is_primary = excluded.is_primary, at = excluded.at, outcome = excluded.outcome,
                       http_status = excluded.http_status, latency_ms = excluded.latency_ms,
                       raw_hash = excluded.raw_hash, hash = excluded.hash, last_ok_at = excluded.last_ok_at,
                       text_len = excluded.text_len, title_words = excluded.title_words,
                       page_flags = excluded.page_flags, page_class = excluded.page_class, rules = excluded.rules
                     WHERE excluded.at >= l.at",
                )
                .await?,
            versions: client
                .prepare(
                    "INSERT INTO versions AS v (site, article, hash, first_seen, last_seen, text_len, title_words, page_flags, rules)
                     SELECT site, article, hash, at, at, text_len, title_words, page_flags, rules
                     FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[],
                                 $8::bigint[]) AS u(site, article, hash, at, text_len, title_words, page_flags, rules)
                     ON CONFLICT (site, article, hash) DO UPDATE SET
                       last_seen = GREATEST(v.last_seen, excluded.last_seen), rules = excluded.rules",
                )
                .await?,
            minutes: client
                .prepare(
                    "INSERT INTO base_minutes AS m (base, minute, probes, ok)
                     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                     ON CONFLICT (base, minute) DO UPDATE SET probes = m.probes + excluded.probes, ok = m.ok + excluded.ok",
                )
                .await?,
            base_hours: client
                .prepare(
                    "INSERT INTO base_hours AS h (site, base, hour, outcome, verdict, probes, latency_sum_ms,
                         ms_le_50, ms_le_100, ms_le_250, ms_le_500, ms_le_1000, ms_le_2500, ms_le_5000, ms_over_5000)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
                         $13::bigint[], $14::bigint[], $15::bigint[])
                     ON CONFLICT (site, base, hour, outcome, verdict) DO UPDATE SET
                       probes = h.probes + excluded.probes, latency_sum_ms = h.latency_sum_ms + excluded.latency_sum_ms,
                       ms_le_50 = h.ms_le_50 + excluded.ms_le_50, ms_le_100 = h.ms_le_100 + excluded.ms_le_100,
                       ms_le_250 = h.ms_le_250 + excluded.ms_le_250, ms_le_500 = h.ms_le_500 + excluded.ms_le_500,
                       ms_le_1000 = h.ms_le_1000 + excluded.ms_le_1000, ms_le_2500 = h.ms_le_2500 + excluded.ms_le_2500,
                       ms_le_5000 = h.ms_le_5000 + excluded.ms_le_5000,
                       ms_over_5000 = h.ms_over_5000 + excluded.ms_over_5000",
                )
                .await?,
            article_ids: client
                .prepare(
                    "INSERT INTO article_ids (site, article) SELECT * FROM UNNEST($1::text[], $2::text[])
                     ON CONFLICT (site, article) DO NOTHING",
                )
                .await?,
            find_article_ids: client
                .prepare(
                    "SELECT a.id, a.site, a.article FROM article_ids a
                     JOIN UNNEST($1::text[], $2::text[]) AS u(site, article) ON a.site = u.site AND a.article = u.article",
                )
                .await?,
            article_hours: client
                .prepare(
                    "INSERT INTO article_hours AS h (article_id, hour, probes, ok, same, stale, diverged, missing, unknown,
                                                     unreachable, latency_sum_ms)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                          $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
                     ON CONFLICT (hour, article_id) DO UPDATE SET
                       probes = h.probes + excluded.probes, ok = h.ok + excluded.ok,
                       same = h.same + excluded.same, stale = h.stale + excluded.stale,
                       diverged = h.diverged + excluded.diverged, missing = h.missing + excluded.missing,
                       unknown = h.unknown + excluded.unknown, unreachable = h.unreachable + excluded.unreachable,
                       latency_sum_ms = h.latency_sum_ms + excluded.latency_sum_ms",
                )
                .await?,
            work: work::WorkStatements::prepare(client).await?,
        })
    }
}

fn bytes(hash: Option<[u8; 32]>) -> Option<Vec<u8>> {
    hash.map(|h| h.to_vec())
}

fn hash_column(bytes: Option<Vec<u8>>) -> Option<Hash> {
    let bytes: [u8; 32] = bytes?.try_into().ok()?;
    Some(Hash(bytes))
}

fn class_parse(name: Option<String>) -> Option<PageClass> {
    use PageClass as C;
    [C::BlockPage, C::Parked, C::Soft404, C::NotHtml, C::Truncated]
        .into_iter()
        .find(|c| name.as_deref() == Some(c.as_str()))
}

/// One batch as column arrays, one statement per table. Rows an upsert
/// would touch twice in one statement (PostgreSQL refuses that) are folded
/// first: the newest result per (site, base, article), the newest sighting
/// per version, the sum per minute.
#[derive(Default)]
struct Columns {
    probes: ProbeColumns,
    /// The batch index of the newest record per key.
    latest: HashMap<LatestKey, usize>,
    versions: HashMap<VersionKey, usize>,
    /// Probes and successes per base and minute.
    minutes: HashMap<(Arc<str>, i64), (i64, i64)>,
}

/// Site, base, article.
type LatestKey = (Arc<str>, Arc<str>, Arc<str>);
/// Site, article, fingerprint.
type VersionKey = (Arc<str>, Arc<str>, [u8; 32]);

#[derive(Default)]
struct ProbeColumns {
    site: Vec<String>,
    base: Vec<String>,
    article: Vec<String>,
    at: Vec<i64>,
    outcome: Vec<String>,
    http_status: Vec<Option<i32>>,
    latency_ms: Vec<i64>,
    raw_hash: Vec<Option<Vec<u8>>>,
    hash: Vec<Option<Vec<u8>>>,
    page_class: Vec<Option<String>>,
}

impl Columns {
    fn of(batch: &[ProbeRecord]) -> Self {
        let mut columns = Columns::default();
        for (index, record) in batch.iter().enumerate() {
            let o = &record.observation;
            let p = &mut columns.probes;
            p.site.push(record.site.to_string());
            p.base.push(record.base.to_string());
            p.article.push(record.article.to_string());
            p.at.push(o.checked_at);
            p.outcome.push(o.outcome.as_str().to_string());
            p.http_status.push(o.http_status.map(i32::from));
            p.latency_ms.push(i64::from(o.latency_ms));
            p.raw_hash.push(bytes(o.raw_hash.map(|h| h.0)));
            p.hash.push(bytes(o.hash.map(|h| h.0)));
            p.page_class.push(o.page.class.map(|c| c.as_str().to_string()));
            let key = (record.site.clone(), record.base.clone(), record.article.clone());
            let newest = columns.latest.entry(key).or_insert(index);
            if batch[*newest].observation.checked_at <= o.checked_at {
                *newest = index;
            }
            if record.trusted
                && o.is_ok()
                && let Some(hash) = o.hash
            {
                let key = (record.site.clone(), record.article.clone(), hash.0);
                let newest = columns.versions.entry(key).or_insert(index);
                if batch[*newest].observation.checked_at <= o.checked_at {
                    *newest = index;
                }
            }
            let minute = columns
                .minutes
                .entry((record.base.clone(), o.checked_at.div_euclid(60_000)))
                .or_default();
            minute.0 += 1;
            minute.1 += i64::from(o.is_ok());
        }
        columns
    }
}

async fn write(connection: &mut Connection, batch: &[ProbeRecord]) -> Result<(), tokio_postgres::Error> {
    let s = &connection.statements;
    let tx = connection.client.transaction().await?;
    let kept = work::complete(&tx, &s.work, batch).await?;
    let fenced: Vec<ProbeRecord>;
    let batch = if kept.iter().all(|k| *k) {
        batch
    } else {
        fenced = batch
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r.clone())
            .collect();
        &fenced
    };
    let columns = Columns::of(batch);
    let mut rollups = Rollups::default();
    for record in batch {
        rollups.add(record);
    }
    let p = &columns.probes;
    tx.execute(
        &s.probes,
        &[
            &p.site,
            &p.base,
            &p.article,
            &p.at,
            &p.outcome,
            &p.http_status,
            &p.latency_ms,
            &p.raw_hash,
            &p.hash,
            &p.page_class,
        ],
    )
    .await?;

    let latest: Vec<&ProbeRecord> = columns.latest.values().map(|&i| &batch[i]).collect();
    let text = |f: &dyn Fn(&ProbeRecord) -> String| latest.iter().map(|r| f(r)).collect::<Vec<String>>();
    let site = text(&|r| r.site.to_string());
    let base = text(&|r| r.base.to_string());
    let article = text(&|r| r.article.to_string());
    let outcome = text(&|r| r.observation.outcome.as_str().to_string());
    let is_primary: Vec<bool> = latest.iter().map(|r| r.is_primary).collect();
    let at: Vec<i64> = latest.iter().map(|r| r.observation.checked_at).collect();
    let http_status: Vec<Option<i32>> = latest
        .iter()
        .map(|r| r.observation.http_status.map(i32::from))
        .collect();
    let latency: Vec<i64> = latest.iter().map(|r| i64::from(r.observation.latency_ms)).collect();
    let raw: Vec<Option<Vec<u8>>> = latest
        .iter()
        .map(|r| bytes(r.observation.raw_hash.map(|h| h.0)))
        .collect();
    let hash: Vec<Option<Vec<u8>>> = latest.iter().map(|r| bytes(r.observation.hash.map(|h| h.0))).collect();
    let last_ok: Vec<Option<i64>> = latest.iter().map(|r| r.observation.last_ok_at).collect();
    let text_len: Vec<i64> = latest.iter().map(|r| i64::from(r.observation.page.text_len)).collect();
    let title_words: Vec<i64> = latest
        .iter()
        .map(|r| i64::from(r.observation.page.title_words))
        .collect();
    let flags: Vec<i32> = latest.iter().map(|r| i32::from(r.observation.page.flags)).collect();
    let class: Vec<Option<String>> = latest
        .iter()
        .map(|r| r.observation.page.class.map(|c| c.as_str().to_string()))
        .collect();
    let rules: Vec<i64> = latest.iter().map(|r| r.observation.rules as i64).collect();
    tx.execute(
        &s.latest,
        &[
            &site,
            &base,
            &article,
            &is_primary,
            &at,
            &outcome,
            &http_status,
            &latency,
            &raw,
            &hash,
            &last_ok,
            &text_len,
            &title_words,
            &flags,
            &class,
            &rules,
        ],
    )
    .await?;

    let versions: Vec<&ProbeRecord> = columns.versions.values().map(|&i| &batch[i]).collect();
    let site: Vec<String> = versions.iter().map(|r| r.site.to_string()).collect();
    let article: Vec<String> = versions.iter().map(|r| r.article.to_string()).collect();
    let hash: Vec<Vec<u8>> = versions
        .iter()
        .filter_map(|r| r.observation.hash.map(|h| h.0.to_vec()))
        .collect();
    let at: Vec<i64> = versions.iter().map(|r| r.observation.checked_at).collect();
    let text_len: Vec<i64> = versions
        .iter()
        .map(|r| i64::from(r.observation.page.text_len))
        .collect();
    let title_words: Vec<i64> = versions
        .iter()
        .map(|r| i64::from(r.observation.page.title_words))
        .collect();
    let flags: Vec<i32> = versions.iter().map(|r| i32::from(r.observation.page.flags)).collect();
    let rules: Vec<i64> = versions.iter().map(|r| r.observation.rules as i64).collect();
    tx.execute(
        &s.versions,
        &[&site, &article, &hash, &at, &text_len, &title_words, &flags, &rules],
    )
    .await?;

    let (mut base, mut minute, mut probes, mut ok) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((b, m), (n, k)) in &columns.minutes {
        base.push(b.to_string());
        minute.push(*m);
        probes.push(*n);
        ok.push(*k);
    }
    tx.execute(&s.minutes, &[&base, &minute, &probes, &ok]).await?;

    write_rollups(&tx, s, rollups).await?;
    tx.commit().await
}

async fn write_rollups(
    tx: &tokio_postgres::Transaction<'_>,
    s: &Statements,
    rollups: Rollups,
) -> Result<(), tokio_postgres::Error> {
    let mut site = Vec::new();
    let mut base = Vec::new();
    let mut hour = Vec::new();
    let mut outcome = Vec::new();
    let mut verdict = Vec::new();
    let mut probes = Vec::new();
    let mut latency = Vec::new();
    let mut buckets: [Vec<i64>; 8] = Default::default();
    for ((s, b, h, o, v), counts) in rollups.bases {
        site.push(s.to_string());
        base.push(b.to_string());
        hour.push(h);
        outcome.push(o.as_str().to_string());
        verdict.push(v.map_or("", Verdict::as_str).to_string());
        probes.push(counts.probes);
        latency.push(counts.latency_sum_ms);
        for (column, count) in buckets.iter_mut().zip(counts.buckets) {
            column.push(count);
        }
    }
    let [b0, b1, b2, b3, b4, b5, b6, b7] = &buckets;
    tx.execute(
        &s.base_hours,
        &[
            &site, &base, &hour, &outcome, &verdict, &probes, &latency, b0, b1, b2, b3, b4, b5, b6, b7,
        ],
    )
    .await?;

    let articles: Vec<_> = rollups.articles.into_iter().collect();
    let sites: Vec<String> = articles.iter().map(|((s, _, _), _)| s.to_string()).collect();
    let paths: Vec<String> = articles.iter().map(|((_, a, _), _)| a.to_string()).collect();
    tx.execute(&s.article_ids, &[&sites, &paths]).await?;
    let ids: HashMap<(String, String), i64> = tx
        .query(&s.find_article_ids, &[&sites, &paths])
        .await?
        .into_iter()
        .map(|row| ((row.get(1), row.get(2)), row.get(0)))
        .collect();
    let mut columns: [Vec<i64>; 11] = Default::default();
    for ((site, article, hour), h) in &articles {
        let Some(&id) = ids.get(&(site.to_string(), article.to_string())) else {
            continue;
        };
        let v = h.verdicts;
        let row = [
            id,
            *hour,
            h.probes,
            h.ok,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            h.latency_sum_ms,
        ];
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10] = &columns;
    tx.execute(&s.article_hours, &[c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10])
        .await?;
    Ok(())
}

/// The columns [`latest_record`] reads, in its order.
const LATEST_COLUMNS: &str =
    "SELECT site, base, article, is_primary, at, outcome, http_status, latency_ms, raw_hash, hash,
    last_ok_at, text_len, title_words, page_flags, page_class, rules";

/// Sites and bases repeat on every row of `latest`; a restore of millions
/// of rows shares one allocation per distinct name instead of one per row.
#[derive(Default)]
struct SharedNames(Vec<Arc<str>>);

impl SharedNames {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.iter().find(|known| &***known == name) {
            return known.clone();
        }
        let new: Arc<str> = name.into();
        // A catalog has a few sites and bases; a store left by a bigger
        // one must not make each lookup a long scan.
        if self.0.len() < 64 {
            self.0.push(new.clone());
        }
        new
    }
}

/// Reads `latest` rows as they arrive rather than buffering them: a
/// buffered row costs several times the record made from it, and a
/// restore of millions of rows spent most of its time faulting in that
/// memory.
async fn latest_records(
    client: &Client,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<ProbeRecord>, tokio_postgres::Error> {
    use futures_util::TryStreamExt;
    let sql = format!("{LATEST_COLUMNS} FROM latest {filter}");
    let rows = client.query_raw(sql.as_str(), params.iter().copied()).await?;
    let mut rows = std::pin::pin!(rows);
    let mut names = SharedNames::default();
    let mut records = Vec::new();
    while let Some(row) = rows.try_next().await? {
        records.push(latest_record(&row, &mut names));
    }
    Ok(records)
}

fn latest_record(row: &tokio_postgres::Row, names: &mut SharedNames) -> ProbeRecord {
    let outcome: &str = row.get(5);
    ProbeRecord {
        site: names.get(row.get(0)),
        base: names.get(row.get(1)),
        article: row.get::<_, &str>(2).into(),
        is_primary: row.get(3),
        trusted: false,
        observation: Observation {
            outcome: Outcome::parse(outcome).unwrap_or(Outcome::Connect),
            http_status: row.get::<_, Option<i32>>(6).and_then(|s| u16::try_from(s).ok()),
            latency_ms: u32::try_from(row.get::<_, i64>(7)).unwrap_or(u32::MAX),
            raw_hash: hash_column(row.get(8)).map(|h| RawHash(h.0)),
            hash: hash_column(row.get(9)),
            page: PageFacts {
                text_len: u32::try_from(row.get::<_, i64>(11)).unwrap_or(u32::MAX),
                title_words: u32::try_from(row.get::<_, i64>(12)).unwrap_or(0),
                flags: u8::try_from(row.get::<_, i32>(13)).unwrap_or(0),
                class: class_parse(row.get(14)),
            },
            rules: row.get::<_, i64>(15) as u64,
            checked_at: row.get(4),
            last_ok_at: row.get(10),
            validators: None,
        },
        verdict: None,
        lease: None,
        period_ms: None,
    }
}

async fn load(client: &Client, latencies_per_base: usize) -> Result<StoredState, tokio_postgres::Error> {
    let mut state = StoredState {
        latest: latest_records(client, "", &[]).await?,
        ..StoredState::default()
    };
    let rows = client
        .query(
            "SELECT site, article, hash, last_seen, text_len, title_words, page_flags, rules FROM versions",
            &[],
        )
        .await?;
    for row in rows {
        if let Some(hash) = hash_column(row.get(2)) {
            state.versions.push(StoredVersion {
                site: row.get(0),
                article: row.get(1),
                hash,
                page: PageFacts {
                    text_len: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
                    title_words: u32::try_from(row.get::<_, i64>(5)).unwrap_or(0),
                    flags: u8::try_from(row.get::<_, i32>(6)).unwrap_or(0),
                    class: None,
                },
                rules: row.get::<_, i64>(7) as u64,
                last_seen: row.get(3),
            });
        }
    }
    let rows = client
        .query(
            "SELECT base, minute, probes, ok FROM base_minutes ORDER BY base, minute",
            &[],
        )
        .await?;
    for row in rows {
        state.minutes.push(MinuteCount {
            base: row.get(0),
            minute: row.get(1),
            probes: u32::try_from(row.get::<_, i64>(2)).unwrap_or(u32::MAX),
            ok: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
        });
    }
    let limit = latencies_per_base as i64;
    let rows = client
        .query(
            "SELECT b.base, p.latency_ms FROM (SELECT DISTINCT base FROM latest) b
             CROSS JOIN LATERAL (SELECT latency_ms, id FROM probes
                                 WHERE probes.base = b.base AND outcome = 'ok' ORDER BY id DESC LIMIT $1) p
             ORDER BY b.base, p.id",
            &[&limit],
        )
        .await?;
    let mut latencies: Vec<(String, Vec<u32>)> = Vec::new();
    for row in rows {
        let base: String = row.get(0);
        let sample = u32::try_from(row.get::<_, i64>(1)).unwrap_or(u32::MAX);
        match latencies.last_mut() {
            Some((last, samples)) if *last == base => samples.push(sample),
            _ => latencies.push((base, vec![sample])),
        }
    }
    state.latencies = latencies;
    Ok(state)
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn record_round(&mut self, batch: &[ProbeRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with(async |connection| write(connection, batch).await)
    }

    fn load_snapshot(&mut self, latencies_per_base: usize) -> Result<StoredState, StoreError> {
        self.with(async |connection| load(&connection.client, latencies_per_base).await)
    }

    fn prune(&mut self, raw_before: UnixMillis, before: UnixMillis) -> Result<u64, StoreError> {
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            let hour = before.div_euclid(HOUR_MS);
            let minute = before.div_euclid(60_000);
            let mut removed = tx
                .execute("DELETE FROM probes WHERE at < $1", &[&raw_before.max(before)])
                .await?;
            removed += tx
                .execute("DELETE FROM versions WHERE last_seen < $1", &[&before])
                .await?;
            removed += tx
                .execute("DELETE FROM base_minutes WHERE minute < $1", &[&minute])
                .await?;
            removed += tx.execute("DELETE FROM base_hours WHERE hour < $1", &[&hour]).await?;
            removed += tx
                .execute("DELETE FROM article_hours WHERE hour < $1", &[&hour])
                .await?;
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn save_discovered(&mut self, site: &str, found: &[DiscoveredArticle]) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            let first_seen: HashMap<String, i64> = tx
                .query("SELECT path, first_seen FROM discovered WHERE site = $1", &[&site])
                .await?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            tx.execute("DELETE FROM discovered WHERE site = $1", &[&site]).await?;
            let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
            let positions: Vec<i64> = (0..found.len() as i64).collect();
            let dates: Vec<Option<i64>> = found.iter().map(|f| f.date).collect();
            let sources: Vec<&str> = found.iter().map(|f| f.source.as_str()).collect();
            let seen: Vec<i64> = found
                .iter()
                .map(|f| first_seen.get(&f.path).copied().unwrap_or(now))
                .collect();
            tx.execute(
                "INSERT INTO discovered (site, path, position, date, source, first_seen)
                 SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[])",
                &[&site, &paths, &positions, &dates, &sources, &seen],
            )
            .await?;
            tx.commit().await
        })
    }

    fn save_kept(&mut self, kind: &str, entries: &[Kept]) -> Result<(), StoreError> {
        // A key given twice keeps the last value, as SQLite's INSERT OR REPLACE.
        let mut by_key: HashMap<&str, &str> = HashMap::new();
        for entry in entries {
            by_key.insert(&entry.key, &entry.value);
        }
        let (keys, values): (Vec<&str>, Vec<&str>) = by_key.into_iter().unzip();
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            tx.execute("DELETE FROM kept WHERE kind = $1", &[&kind]).await?;
            tx.execute(
                "INSERT INTO kept (kind, key, value) SELECT $1, * FROM UNNEST($2::text[], $3::text[])",
                &[&kind, &keys, &values],
            )
            .await?;
            tx.commit().await
        })
    }

    fn load_kept(&mut self) -> Result<Vec<Kept>, StoreError> {
        self.with(async |connection| {
            let rows = connection
                .client
                .query(
                    "SELECT kind, key, value FROM kept ORDER BY kind COLLATE \"C\", key COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|row| Kept {
                    kind: row.get(0),
                    key: row.get(1),
                    value: row.get(2),
                })
                .collect())
        })
    }

    fn read_rows(&mut self, table: &'static Table, offset: u64, limit: u64) -> Result<Vec<Vec<Cell>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
            table.column_list(),
            table.name,
            table.order_by
        );
        let (limit, offset) = (limit as i64, offset as i64);
        self.with(async |connection| {
            let rows = connection.client.query(&sql, &[&limit, &offset]).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut cells = Vec::with_capacity(table.columns.len());
                for (index, (_, kind)) in table.columns.iter().enumerate() {
                    cells.push(match kind {
                        ColumnType::Int => row.try_get::<_, Option<i64>>(index)?.map_or(Cell::Null, Cell::Int),
                        ColumnType::Int32 => row
                            .try_get::<_, Option<i32>>(index)?
                            .map_or(Cell::Null, |i| Cell::Int(i64::from(i))),
                        ColumnType::Text => row.try_get::<_, Option<String>>(index)?.map_or(Cell::Null, Cell::Text),
                        ColumnType::Bytes => row
                            .try_get::<_, Option<Vec<u8>>>(index)?
                            .map_or(Cell::Null, Cell::Bytes),
                        ColumnType::Bool => row.try_get::<_, Option<bool>>(index)?.map_or(Cell::Null, Cell::Bool),
                    });
                }
                out.push(cells);
            }
            Ok(out)
        })
    }

    fn write_rows(&mut self, table: &'static Table, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
        let columns = column_arrays(table, rows).map_err(|message| self.error(message))?;
        let casts: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| format!("${}::{}[]", i + 1, sql_type(*kind)))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
            table.name,
            table.column_list(),
            casts.join(", ")
        );
        self.with(async |connection| {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                columns.iter().map(ColumnArray::as_sql).collect();
            let tx = connection.client.transaction().await?;
            tx.execute(&sql, &params).await?;
            tx.commit().await
        })
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            for table in TABLES {
                tx.execute(&format!("DELETE FROM {}", table.name), &[]).await?;
            }
            tx.commit().await
        })
    }

    fn ids_copied(&mut self) -> Result<(), StoreError> {
        self.with(async |connection| {
            for table in TABLES {
                if let Some(column) = table.serial {
                    let name = table.name;
                    connection
                        .client
                        .execute(
                            &format!(
                                "SELECT setval(pg_get_serial_sequence('{name}', '{column}'),
                                               COALESCE((SELECT MAX({column}) FROM {name}), 0) + 1, false)"
                            ),
                            &[],
                        )
                        .await?;
                }
            }
            Ok(())
        })
    }

    fn heartbeat(&mut self, beat: &Beat) -> Result<Cluster, StoreError> {
        let probes = beat.probes_last_interval as i64;
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            // The database's clock, so instances with skewed clocks agree.
            let now: i64 = tx
                .query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", &[])
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO instances (name, last_seen, config_hash, probes_last_interval) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen,
                   config_hash = excluded.config_hash, probes_last_interval = excluded.probes_last_interval",
                &[&beat.instance, &now, &beat.config_hash, &probes],
            )
            .await?;
            let expires = now + MEMBER_TTL_MS;
            tx.execute(
                "INSERT INTO leader AS l (id, instance, expires_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, expires_at = excluded.expires_at
                 WHERE l.instance = excluded.instance OR l.expires_at < $3",
                &[&beat.instance, &expires, &now],
            )
            .await?;
            // Instances gone for a day are forgotten.
            tx.execute("DELETE FROM instances WHERE last_seen < $1", &[&(now - 86_400_000)])
                .await?;
            let leader: Option<String> = tx
                .query_opt("SELECT instance FROM leader WHERE expires_at >= $1", &[&now])
                .await?
                .map(|row| row.get(0));
            let members = tx
                .query(
                    "SELECT name, last_seen, probes_last_interval, config_hash FROM instances
                     WHERE last_seen >= $1 ORDER BY name",
                    &[&(now - MEMBER_TTL_MS)],
                )
                .await?
                .into_iter()
                .map(|row| {
                    let name: String = row.get(0);
                    Member {
                        leader: leader.as_deref() == Some(name.as_str()),
                        name,
                        last_seen: row.get(1),
                        probes_last_interval: row.get::<_, i64>(2) as u64,
                        config_hash: row.get(3),
                    }
                })
                .collect();
            tx.commit().await?;
            Ok(Cluster { leader, members })
        })
    }

    fn latest_since(&mut self, since: UnixMillis) -> Result<Vec<ProbeRecord>, StoreError> {
        self.with(async |connection| latest_records(&connection.client, "WHERE at > $1", &[&since]).await)
    }

    fn leave(&mut self, instance: &str) -> Result<(), StoreError> {
        self.with(async |connection| {
            let tx = connection.client.transaction().await?;
            tx.execute("DELETE FROM leader WHERE instance = $1", &[&instance])
                .await?;
            tx.execute("DELETE FROM instances WHERE name = $1", &[&instance])
                .await?;
            work::give_up(&tx, instance).await?;
            tx.commit().await
        })
    }

    fn shares_work(&self) -> bool {
        true
    }

    fn sync_work(&mut self, pairs: &[WorkPair], interval_ms: i64) -> Result<(), StoreError> {
        self.with(async |c| work::sync(&c.client, &c.statements.work, pairs, interval_ms).await)
    }

    fn claim_work(&mut self, instance: &str, limits: ClaimLimits) -> Result<Vec<Claim>, StoreError> {
        self.with(async |c| work::claim(&c.client, &c.statements.work, instance, limits).await)
    }

    fn release_work(&mut self, tokens: &[i64], now: bool) -> Result<(), StoreError> {
        self.with(async |c| work::release(&c.client, &c.statements.work, tokens, now).await)
    }

    fn work_due_now(&mut self, site: &str, base: &str) -> Result<(), StoreError> {
        self.with(async |c| work::due_now(&c.client, site, base).await)
    }

    fn row_counts(&mut self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        self.with(async |connection| {
            let mut counts = Vec::new();
            for table in super::TABLES {
                let table = table.name;
                let row = connection
                    .client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await?;
                counts.push((table, row.get::<_, i64>(0) as u64));
            }
            Ok(counts)
        })
    }

    fn load_discovered(&mut self) -> Result<HashMap<String, Vec<DiscoveredArticle>>, StoreError> {
        self.with(async |connection| {
            let rows = connection
                .client
                .query(
                    "SELECT site, path, date, source FROM discovered ORDER BY site, position",
                    &[],
                )
                .await?;
            let mut found: HashMap<String, Vec<DiscoveredArticle>> = HashMap::new();
            for row in rows {
                found.entry(row.get(0)).or_default().push(DiscoveredArticle {
                    path: row.get(1),
                    date: row.get(2),
                    source: row.get(3),
                });
            }
            Ok(found)
        })
    }
}
