//! The probe work instances share: one row per (site, article, base) with
//! when it is due and who holds its lease. An instance claims a batch of
//! due pairs (`FOR UPDATE SKIP LOCKED`, so claims never wait on each
//! other or take the same row), probes them with no transaction open, and
//! its results complete the leases in the transaction that stores them —
//! fenced by the claim's token, so a result that comes back after its
//! lease ran out and another instance took the pair is not stored. Every
//! time is the database's, so instances with skewed clocks agree.

use tokio_postgres::{Client, Statement, Transaction};

use crate::store::{Claim, ClaimLimits, ProbeRecord, WorkPair};

/// The schema of the work queue (migration 4).
pub const MIGRATION: &str = "
CREATE TABLE work (
    site TEXT NOT NULL,
    article TEXT NOT NULL,
    base TEXT NOT NULL,
    host TEXT NOT NULL,
    interval_ms BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    owner TEXT,
    token BIGINT NOT NULL DEFAULT 0,
    claimed_at BIGINT,
    expires_at BIGINT,
    PRIMARY KEY (site, article, base)
);
CREATE INDEX work_due ON work (due_at);
CREATE INDEX work_token ON work (token);
CREATE SEQUENCE work_tokens;
";

const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Pairs sent to the server per statement when syncing a catalog.
const SYNC_CHUNK: usize = 10_000;

pub struct WorkStatements {
    sync: Statement,
    claim: Statement,
    complete: Statement,
    release: Statement,
}

impl WorkStatements {
    pub async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(WorkStatements {
            // A shorter interval from a reload applies to the pairs' next
            // due time too, not only after their next probe.
            sync: client
                .prepare(&format!(
                    "INSERT INTO work AS w (site, article, base, host, interval_ms, due_at)
                     SELECT u.site, u.article, u.base, u.host, $5, {NOW_MS}
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(site, article, base, host)
                     ON CONFLICT (site, article, base) DO UPDATE SET host = excluded.host, interval_ms = excluded.interval_ms,
                       due_at = LEAST(w.due_at, COALESCE(w.claimed_at, w.due_at) + excluded.interval_ms)
                     WHERE w.host <> excluded.host OR w.interval_ms <> excluded.interval_ms"
                ))
                .await?,
            // Locks only what it scans (at most $3 due rows), skipping rows
            // another claim holds; the window caps each host's share so a
            // rate-limited host cannot hold leases longer than they last.
            claim: client
                .prepare(&format!(
                    "WITH now AS (SELECT {NOW_MS} AS ms),
                     due AS (
                         SELECT w.site, w.article, w.base, w.host, w.owner, w.due_at FROM work w, now
                         WHERE w.due_at <= now.ms AND (w.owner IS NULL OR w.expires_at <= now.ms)
                         ORDER BY w.due_at
                         LIMIT $3
                         FOR UPDATE OF w SKIP LOCKED
                     ),
                     chosen AS (
                         SELECT site, article, base, owner FROM (
                             SELECT due.*, row_number() OVER (PARTITION BY host ORDER BY due_at) AS nth FROM due
                         ) d
                         WHERE nth <= $4
                         ORDER BY due_at
                         LIMIT $2
                     )
                     UPDATE work w SET owner = $1, token = nextval('work_tokens'), claimed_at = now.ms,
                                       expires_at = now.ms + $5
                     FROM chosen, now
                     WHERE w.site = chosen.site AND w.article = chosen.article AND w.base = chosen.base
                     RETURNING w.site, w.article, w.base, w.token, chosen.owner IS NOT NULL"
                ))
                .await?,
            // Due one period after the claim, not after the result: the
            // period stays the same however long the probe took. The period
            // is the article's tier's, else the interval.
            complete: client
                .prepare(
                    "UPDATE work w SET owner = NULL, expires_at = NULL,
                       due_at = w.claimed_at + COALESCE(d.period_ms, w.interval_ms)
                     FROM UNNEST($1::bigint[], $2::bigint[]) AS d(token, period_ms)
                     WHERE w.token = d.token AND w.owner IS NOT NULL
                     RETURNING w.token",
                )
                .await?,
            release: client
                .prepare(
                    "UPDATE work SET owner = NULL, expires_at = NULL,
                       due_at = CASE WHEN $2 THEN due_at ELSE claimed_at + interval_ms END
                     WHERE token = ANY($1::bigint[]) AND owner IS NOT NULL",
                )
                .await?,
        })
    }
}

pub async fn sync(
    client: &Client,
    statements: &WorkStatements,
    pairs: &[WorkPair],
    interval_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    for chunk in pairs.chunks(SYNC_CHUNK) {
        let column = |f: fn(&WorkPair) -> &str| chunk.iter().map(|p| f(p).to_string()).collect::<Vec<String>>();
        let (site, article, base, host) = (
            column(|p| &p.site),
            column(|p| &p.article),
            column(|p| &p.base),
            column(|p| &p.host),
        );
        client
            .execute(&statements.sync, &[&site, &article, &base, &host, &interval_ms])
            .await?;
    }
    Ok(())
}

pub async fn claim(
    client: &Client,
    statements: &WorkStatements,
    instance: &str,
    limits: ClaimLimits,
) -> Result<Vec<Claim>, tokio_postgres::Error> {
    let pairs = limits.pairs.max(1) as i64;
    // Enough rows to fill the batch when a few hosts dominate what is due.
    let scanned = pairs.saturating_mul(4);
    let per_host = limits.per_host.max(1) as i64;
    let rows = client
        .query(
            &statements.claim,
            &[&instance, &pairs, &scanned, &per_host, &limits.lease_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Claim {
            site: row.get(0),
            article: row.get(1),
            base: row.get(2),
            token: row.get(3),
            taken_over: row.get(4),
        })
        .collect())
}

/// Completes the leases of `batch`'s records in `tx` and says which
/// records may be stored: those probed under no lease, and those whose
/// lease is still the one they were probed under.
pub async fn complete(
    tx: &Transaction<'_>,
    statements: &WorkStatements,
    batch: &[ProbeRecord],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let leased = || batch.iter().filter(|r| r.lease.is_some());
    let tokens: Vec<i64> = leased().filter_map(|r| r.lease).collect();
    if tokens.is_empty() {
        return Ok(vec![true; batch.len()]);
    }
    let periods: Vec<Option<i64>> = leased().map(|r| r.period_ms).collect();
    let held: std::collections::HashSet<i64> = tx
        .query(&statements.complete, &[&tokens, &periods])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let kept: Vec<bool> = batch
        .iter()
        .map(|r| r.lease.is_none_or(|t| held.contains(&t)))
        .collect();
    let fenced = kept.iter().filter(|k| !**k).count();
    if fenced > 0 {
        tracing::info!(
            fenced,
            "results not stored: their leases ran out and another instance took the pairs"
        );
    }
    Ok(kept)
}

pub async fn release(
    client: &Client,
    statements: &WorkStatements,
    tokens: &[i64],
    due_now: bool,
) -> Result<(), tokio_postgres::Error> {
    if tokens.is_empty() {
        return Ok(());
    }
    client.execute(&statements.release, &[&tokens, &due_now]).await?;
    Ok(())
}

/// Every pair of `base` not leased now is due at once: its canaries
/// failed, and all its articles are probed again.
pub async fn due_now(client: &Client, site: &str, base: &str) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "UPDATE work SET due_at = {NOW_MS} WHERE site = $1 AND base = $2 AND owner IS NULL AND due_at > {NOW_MS}"
    );
    client.execute(&sql, &[&site, &base]).await?;
    Ok(())
}

/// At shutdown: what this instance still holds is due again at once, for
/// the others.
pub async fn give_up(tx: &Transaction<'_>, instance: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE work SET owner = NULL, expires_at = NULL WHERE owner = $1",
        &[&instance],
    )
    .await?;
    Ok(())
}
