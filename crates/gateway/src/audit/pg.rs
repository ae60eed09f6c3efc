//! Audit records in PostgreSQL, for several gateways and volumes that daily files do not suit.
//!
//! - **Table** `strata_audit`, one row per request with the fields of [`Record`], created by the
//!   versioned migrations in `migrations/` (recorded in `strata_audit_migrations`, apart from the
//!   resolver's `strata_migrations`, so both can share one database), applied at start in one
//!   transaction under an advisory lock. A database whose audit schema is newer than this
//!   gateway is refused.
//! - **Writer**: one thread with a single-threaded Tokio runtime of its own, fed by the same
//!   bounded queue as the file writer (requests never wait: a full queue drops the record and
//!   counts it). It takes up to [`BATCH`] records at a time and writes them with one binary
//!   `COPY`, one round-trip per batch.
//! - **Outage**: while the database cannot be reached, the writer keeps its current batch and
//!   retries with backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`], with jitter), reconnecting; records
//!   meanwhile wait in the queue and, once it is full, are dropped and counted. So does a
//!   database that refuses the connection (credentials, permissions). A batch the database
//!   refuses for another reason (a constraint, a changed table) is dropped, counted and logged,
//!   so that one bad batch cannot stop the log.
//! - **Retention**: rows older than `retention_days` whole UTC days are deleted at connect and
//!   then every [`PRUNE_EVERY`], in chunks, at most [`PRUNE_BUDGET`] at a time.
//! - **Reading**: [`query`] answers `policy audit --store` with the same filters as the files.
//!
//! Delivery is at least once: a batch whose `COPY` committed but whose answer was lost with the
//! connection is written again.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_pg::{MigrateError, Migration, Schema, Target};
use tokio::time::timeout;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{Msg, Query, Record, Usage, format_ms};

/// How long to wait for a connection to the database
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one batch (or a migration, or a retention round) may take
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The first and the longest wait before trying the database again
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Records per `COPY` at most
pub const BATCH: usize = 4096;
/// How often old rows are deleted
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per statement, and the longest a retention round may hold the writer
const PRUNE_CHUNK: i64 = 10_000;
pub const PRUNE_BUDGET: Duration = Duration::from_secs(2);

/// Refused batches are logged at most this often (the metric counts every record)
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Every audit schema version this gateway knows, oldest first
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "strata_audit: one row per request, indexed by time, user, project, model, decision",
        sql: include_str!("../../migrations/0001_audit.sql"),
    },
    Migration {
        version: 2,
        name: "strata_audit.canonical_model: the model id the rules compared",
        sql: include_str!("../../migrations/0002_audit_canonical_model.sql"),
    },
    Migration {
        version: 3,
        name: "strata_audit.org_settings_loaded: whether the token had loaded Droid's org level",
        sql: include_str!("../../migrations/0003_audit_org_settings_loaded.sql"),
    },
];

/// The audit schema, recorded in `strata_audit_migrations`; migrated under the advisory lock
/// "STRAUD"
pub const SCHEMA: Schema = Schema {
    table: "strata_audit_migrations",
    lock: 0x5354_5241_5544,
    migrations: MIGRATIONS,
};

/// The columns a batch writes, in `COPY` order, with their types
const COLUMNS: &str = "at, decision_id, user_name, project, client, api, provider, model, \
    key_mode, key_hint, decision, error, rules, revision, upstream_status, status, decision_ms, \
    upstream_ms, first_byte_ms, total_ms, input_tokens, output_tokens, cache_read_tokens, \
    cache_write_tokens, stream, client_disconnected, canonical_model, org_settings_loaded";
const TYPES: [Type; 28] = [
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::BOOL,
    Type::TEXT,
    Type::BOOL,
];

/// Why the audit database cannot be used
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    #[error("invalid PostgreSQL connection string: {0}")]
    Url(String),
    /// the database answered, and refused: wrong credentials, no such database, no right to
    /// create the table, a newer schema
    #[error("PostgreSQL at {target}: {message}")]
    Refused { target: String, message: String },
    /// the database cannot be reached (now)
    #[error("PostgreSQL at {target}: {message}")]
    Unavailable { target: String, message: String },
    #[error("cannot start the audit writer: {0}")]
    Start(String),
}

/// A connection string, parsed (TLS as it says: `sslmode`, `sslrootcert`), with this gateway's
/// defaults
pub fn config(url: &str) -> Result<Target, AuditStoreError> {
    let mut db = Target::parse(url).map_err(|e| AuditStoreError::Url(e.0))?;
    if db.config.get_connect_timeout().is_none() {
        db.config.connect_timeout(CONNECT_TIMEOUT);
    }
    if db.config.get_application_name().is_none() {
        db.config.application_name("strata-gateway-audit");
    }
    Ok(db)
}

fn classify(target: &str, e: tokio_postgres::Error) -> AuditStoreError {
    match e.as_db_error() {
        // 08: connection exceptions, 57P: the server is shutting down or starting
        Some(db) if !db.code().code().starts_with("08") && !db.code().code().starts_with("57P") => {
            AuditStoreError::Refused {
                target: target.to_string(),
                message: db.to_string(),
            }
        }
        _ => AuditStoreError::Unavailable {
            target: target.to_string(),
            message: strata_transport::error_chain(&e),
        },
    }
}

fn unavailable(target: &str, message: String) -> AuditStoreError {
    AuditStoreError::Unavailable {
        target: target.to_string(),
        message,
    }
}

/// Connect, without applying anything
async fn connect(db: &Target, target: &str) -> Result<Client, AuditStoreError> {
    match timeout(CONNECT_TIMEOUT, db.connect()).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => Err(classify(target, e)),
        Err(_) => Err(unavailable(
            target,
            format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
        )),
    }
}

/// Apply the audit migrations this database lacks
async fn migrate(client: &mut Client, target: &str) -> Result<(), AuditStoreError> {
    match timeout(CALL_TIMEOUT, SCHEMA.migrate(client)).await {
        Ok(Ok(applied)) => {
            for m in applied {
                tracing::info!(
                    version = m.version,
                    name = m.name,
                    "applied an audit database migration"
                );
            }
            Ok(())
        }
        Ok(Err(MigrateError::Newer { found, known })) => Err(AuditStoreError::Refused {
            target: target.to_string(),
            message: format!(
                "the audit schema is at version {found}, newer than this gateway knows ({known}): upgrade the gateway"
            ),
        }),
        Ok(Err(MigrateError::Pg(e))) => Err(classify(target, e)),
        Err(_) => Err(unavailable(
            target,
            format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        )),
    }
}

/// Text PostgreSQL accepts: it refuses NUL characters, which a model name from a request body
/// can hold
fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn time_of(unix_ms: i64) -> SystemTime {
    if unix_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(unix_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(unix_ms.unsigned_abs())
    }
}

fn ms_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One batch, one binary `COPY`
async fn write(client: &Client, batch: &[Box<Record>]) -> Result<(), tokio_postgres::Error> {
    let sink = client
        .copy_in(&format!(
            "COPY strata_audit ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
    for r in batch {
        let rules: Vec<std::borrow::Cow<'_, str>> = r.rules.iter().map(|s| text(s)).collect();
        let usage = r.usage.as_ref();
        let n = |f: fn(&Usage) -> u64| usage.map(|u| tokens(f(u)));
        let row: [&(dyn ToSql + Sync); 28] = [
            &time_of(r.unix_ms),
            &text(&r.decision_id),
            &text(&r.user),
            &text(&r.project),
            &text(&r.client),
            &text(&r.api),
            &text(&r.provider),
            &text(&r.model),
            &text(&r.key_mode),
            &text(&r.key_hint),
            &text(&r.decision),
            &r.error.as_deref().map(text),
            &rules,
            &text(&r.revision),
            &r.upstream_status.map(i32::from),
            &i32::from(r.status),
            &r.decision_ms,
            &r.upstream_ms,
            &r.first_byte_ms,
            &r.total_ms,
            &n(|u| u.input_tokens),
            &n(|u| u.output_tokens),
            &n(|u| u.cache_read_tokens),
            &n(|u| u.cache_write_tokens),
            &r.stream,
            &r.client_disconnected,
            &r.canonical_model.as_deref().map(text),
            &r.org_settings_loaded,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Start of the oldest UTC day kept, in unix ms: the file writer keeps day `d` while
/// `today - d <= retention_days`, and so does this one
fn cutoff_ms(now_ms: i64, retention_days: u32) -> i64 {
    (now_ms.div_euclid(86_400_000) - i64::from(retention_days)) * 86_400_000
}

/// Delete rows older than the retention, a chunk at a time, for at most [`PRUNE_BUDGET`];
/// returns the rows deleted and whether older ones remain
async fn prune(client: &Client, retention_days: u32) -> Result<(u64, bool), tokio_postgres::Error> {
    let (_, now, _) = super::now();
    let cutoff = time_of(cutoff_ms(now, retention_days));
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM strata_audit WHERE ctid IN
                   (SELECT ctid FROM strata_audit WHERE at < $1 LIMIT $2)",
                &[&cutoff, &PRUNE_CHUNK],
            )
            .await?;
        deleted += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok((deleted, false));
        }
        if started.elapsed() >= PRUNE_BUDGET {
            return Ok((deleted, true));
        }
    }
}

/// Check the database, apply migrations, and start the writer thread on `rx`. Returns once the
/// first connection has been tried: an error if the database refused this gateway, `Ok` if it
/// is ready or merely unreachable (then the writer keeps trying).
pub fn start(
    url: &str,
    retention_days: u32,
    rx: std_mpsc::Receiver<Msg>,
    dropped: Arc<AtomicU64>,
) -> Result<(), AuditStoreError> {
    let db = config(url)?;
    let target = db.describe();
    let (ready_tx, ready) = std_mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("audit writer (postgres)".to_string())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(AuditStoreError::Start(e.to_string())));
                    return;
                }
            };
            let mut w = Writer {
                rt,
                db,
                target,
                client: None,
                retention_days,
                dropped,
                next_prune: Instant::now(),
                down_since: None,
                refused_logged: None,
            };
            match w.open() {
                Ok(()) => {}
                Err(e @ AuditStoreError::Unavailable { .. }) => {
                    tracing::warn!(error = %e, "the audit database cannot be reached: requests are served, records wait in the queue (then are dropped and counted) until it can");
                    w.down_since = Some(Instant::now());
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            let _ = ready_tx.send(Ok(()));
            w.run(rx);
        })
        .map_err(|e| AuditStoreError::Start(e.to_string()))?;
    ready
        .recv()
        .map_err(|_| AuditStoreError::Start("the audit writer stopped".to_string()))?
}

struct Writer {
    rt: tokio::runtime::Runtime,
    db: Target,
    target: String,
    client: Option<Client>,
    retention_days: u32,
    dropped: Arc<AtomicU64>,
    next_prune: Instant,
    /// since when the database has been unavailable (for one log line per outage)
    down_since: Option<Instant>,
    /// when a refused batch was last logged
    refused_logged: Option<Instant>,
}

/// What became of a batch
enum Outcome {
    Written,
    /// the database cannot be reached: keep the batch, try again
    Retry(AuditStoreError),
    /// the database refused it: drop it
    Refused(AuditStoreError),
}

impl Writer {
    /// Connect (reusing the open connection) and migrate
    fn open(&mut self) -> Result<(), AuditStoreError> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.client = None;
        let (db, target) = (&self.db, self.target.as_str());
        let client = self.rt.block_on(async {
            let mut c = connect(db, target).await?;
            migrate(&mut c, target).await?;
            Ok::<_, AuditStoreError>(c)
        })?;
        self.client = Some(client);
        if let Some(since) = self.down_since.take() {
            tracing::info!(database = %self.target, down_for_s = since.elapsed().as_secs(), "the audit database is back: writing the records that waited");
        }
        Ok(())
    }

    fn write(&mut self, batch: &[Box<Record>]) -> Outcome {
        // a database that refuses the connection (credentials, permissions, a newer schema)
        // is waited for like one that is away: an operator can fix it without losing the queue
        if let Err(e) = self.open() {
            return Outcome::Retry(e);
        }
        let Some(client) = self.client.as_ref() else {
            return Outcome::Retry(unavailable(&self.target, "not connected".to_string()));
        };
        let r = self
            .rt
            .block_on(async { timeout(CALL_TIMEOUT, write(client, batch)).await });
        match r {
            Ok(Ok(())) => Outcome::Written,
            Ok(Err(e)) => match classify(&self.target, e) {
                e @ AuditStoreError::Unavailable { .. } => {
                    self.client = None;
                    Outcome::Retry(e)
                }
                e => Outcome::Refused(e),
            },
            Err(_) => {
                // the connection may be stuck: drop it (and with it the COPY)
                self.client = None;
                Outcome::Retry(unavailable(
                    &self.target,
                    format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
                ))
            }
        }
    }

    fn prune_if_due(&mut self) {
        if Instant::now() < self.next_prune {
            return;
        }
        let Some(client) = self.client.as_ref().filter(|c| !c.is_closed()) else {
            return;
        };
        let days = self.retention_days;
        let r = self
            .rt
            .block_on(async { timeout(CALL_TIMEOUT, prune(client, days)).await });
        self.next_prune = Instant::now() + PRUNE_EVERY;
        match r {
            Ok(Ok((n, more))) => {
                if n > 0 {
                    tracing::info!(
                        rows = n,
                        retention_days = days,
                        "deleted audit records past the retention"
                    );
                }
                if more {
                    // the rest soon, between batches
                    self.next_prune = Instant::now() + Duration::from_secs(1);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %classify(&self.target, e), "cannot delete old audit records; trying again later");
                self.next_prune = Instant::now() + Duration::from_secs(60);
            }
            Err(_) => {
                self.client = None;
                self.next_prune = Instant::now() + Duration::from_secs(60);
            }
        }
    }

    /// Write `batch`, retrying while the database is unreachable; `closing`: the gateway is
    /// stopping, so give up at `give_up`
    #[expect(
        clippy::vec_box,
        reason = "records arrive boxed through the queue; unboxing each would copy it"
    )]
    fn write_until_done(&mut self, batch: Vec<Box<Record>>, give_up: Option<Instant>) {
        let mut backoff = strata_transport::Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            match self.write(&batch) {
                Outcome::Written => return,
                Outcome::Refused(e) => {
                    let total = self
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed)
                        + batch.len() as u64;
                    // at most one line per DROP_LOG_EVERY (every record is counted)
                    if self
                        .refused_logged
                        .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY)
                    {
                        self.refused_logged = Some(Instant::now());
                        tracing::error!(error = %e, records = batch.len(), dropped_total = total, "the audit database refused a batch of records: dropped (strata_gateway_audit_dropped_total)");
                    }
                    return;
                }
                Outcome::Retry(e) => {
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        tracing::warn!(error = %e, "lost the audit database: requests are served, records wait in the queue (then are dropped and counted); reconnecting");
                    }
                    if give_up.is_some_and(|t| Instant::now() >= t) {
                        self.dropped
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        tracing::error!(
                            records = batch.len(),
                            "stopping without the audit database: records dropped"
                        );
                        return;
                    }
                    std::thread::sleep(backoff.next_wait());
                }
            }
        }
    }

    fn run(&mut self, rx: std_mpsc::Receiver<Msg>) {
        let mut give_up = None;
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => m,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if self.down_since.is_some() && self.open().is_err() {
                        continue;
                    }
                    self.prune_if_due();
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let (batch, flushes) = super::writer::take_batch(first, &rx, BATCH);
            if !flushes.is_empty() && give_up.is_none() {
                // a flush comes at shutdown: an unreachable database gets a little longer
                give_up = Some(Instant::now() + Duration::from_secs(10));
            }
            if !batch.is_empty() {
                self.write_until_done(batch, give_up);
            }
            for f in flushes {
                let _ = f.send(());
            }
            self.prune_if_due();
        }
    }
}

/// The records of the audit table at `url` that match `q`, oldest first (for `policy audit`)
pub async fn query(url: &str, q: &Query) -> Result<Vec<Record>, AuditStoreError> {
    let mut db = config(url)?;
    db.config.application_name("strata-audit-query");
    let target = db.describe();
    let client = connect(&db, &target).await?;
    let mut wheres: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (column, value) in [
        ("user_name", &q.user),
        ("project", &q.project),
        ("decision", &q.decision),
    ] {
        if let Some(v) = value {
            params.push(Box::new(v.clone()));
            wheres.push(format!("{column} = ${}", params.len()));
        }
    }
    if let Some(m) = &q.model {
        // a model as sent, or as the rules read it
        params.push(Box::new(m.clone()));
        let n = params.len();
        wheres.push(format!("(model = ${n} OR canonical_model = ${n})"));
    }
    if let Some(t) = q.since_ms {
        params.push(Box::new(time_of(t)));
        wheres.push(format!("at >= ${}", params.len()));
    }
    if let Some(t) = q.until_ms {
        params.push(Box::new(time_of(t)));
        wheres.push(format!("at < ${}", params.len()));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM strata_audit");
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    // the most recent N: newest first with a limit, turned around below
    match q.limit {
        Some(n) => {
            params.push(Box::new(i64::try_from(n).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" ORDER BY at DESC LIMIT ${}", params.len()));
        }
        None => sql.push_str(" ORDER BY at"),
    }
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = match timeout(CALL_TIMEOUT, client.query(&sql, &refs)).await {
        Ok(r) => r.map_err(|e| classify(&target, e))?,
        Err(_) => {
            return Err(unavailable(
                &target,
                format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            ));
        }
    };
    let mut out = rows
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| classify(&target, e))?;
    if q.limit.is_some() {
        out.reverse();
    }
    Ok(out)
}

fn record(row: &tokio_postgres::Row) -> Result<Record, tokio_postgres::Error> {
    let unix_ms = ms_of(row.try_get(0)?);
    let (time, _) = format_ms(unix_ms);
    let tok = |i: usize| -> Result<Option<u64>, tokio_postgres::Error> {
        Ok(row
            .try_get::<_, Option<i64>>(i)?
            .map(|n| u64::try_from(n).unwrap_or(0)))
    };
    let (input, output, read, write) = (tok(20)?, tok(21)?, tok(22)?, tok(23)?);
    let usage = match (input, output, read, write) {
        (None, None, None, None) => None,
        (i, o, r, w) => Some(Usage {
            input_tokens: i.unwrap_or(0),
            output_tokens: o.unwrap_or(0),
            cache_read_tokens: r.unwrap_or(0),
            cache_write_tokens: w.unwrap_or(0),
        }),
    };
    let status = |v: i32| u16::try_from(v).unwrap_or(0);
    Ok(Record {
        time,
        unix_ms,
        decision_id: row.try_get(1)?,
        user: row.try_get(2)?,
        project: row.try_get(3)?,
        client: row.try_get(4)?,
        api: row.try_get(5)?,
        provider: row.try_get(6)?,
        model: row.try_get(7)?,
        canonical_model: row.try_get(26)?,
        org_settings_loaded: row.try_get(27)?,
        key_mode: row.try_get(8)?,
        key_hint: row.try_get(9)?,
        decision: row.try_get(10)?,
        error: row.try_get(11)?,
        rules: row.try_get(12)?,
        revision: row.try_get(13)?,
        upstream_status: row.try_get::<_, Option<i32>>(14)?.map(status),
        status: status(row.try_get(15)?),
        decision_ms: row.try_get(16)?,
        upstream_ms: row.try_get(17)?,
        first_byte_ms: row.try_get(18)?,
        total_ms: row.try_get(19)?,
        usage,
        stream: row.try_get(24)?,
        client_disconnected: row.try_get(25)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_whole_days_as_the_files_do() {
        let day = 86_400_000;
        let now = 20_000 * day + 5_000;
        assert_eq!(cutoff_ms(now, 0), 20_000 * day);
        assert_eq!(cutoff_ms(now, 60), 19_940 * day);
    }

    #[test]
    fn times_round_trip_and_nul_is_replaced() {
        for ms in [0, 1, 1_764_460_800_123, -1] {
            assert_eq!(ms_of(time_of(ms)), ms);
        }
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert!(matches!(text("ab"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_url_is_described_without_its_password() {
        let c = config("postgres://u:s3cret@db.example:6543/audit").unwrap();
        assert_eq!(c.describe(), "db.example:6543/audit");
        assert!(config("not a url").is_err());
    }
}
