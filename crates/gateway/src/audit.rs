//! The audit log: one record per request, written off the request path to daily JSON-lines
//! files (`audit-YYYY-MM-DD.jsonl`) or to PostgreSQL ([`pg`]), with retention. No prompt content;
//! keys only as masked hints.

pub mod pg;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::io::{BufWriter, Write as _};
use std::sync::mpsc as std_mpsc;

use crate::metrics::Metrics;

/// Token usage as the upstream reported it
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
}

/// One request
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC
    pub time: String,
    pub unix_ms: i64,
    pub decision_id: String,
    pub user: String,
    pub project: String,
    /// the client, from User-Agent
    pub client: String,
    pub api: String,
    pub provider: String,
    pub model: String,
    pub key_mode: String,
    /// the last characters of the key that was used, never the key
    pub key_hint: String,
    /// `allow`, `deny`; or, without a decision: `unauthenticated`, `unavailable` (the resolver
    /// did not answer), `invalid` (the request was refused before a decision)
    pub decision: String,
    /// the stable code of an error the gateway returned or met (`invalid_json`,
    /// `upstream_unreachable`, `upstream_broke_off`, ...)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rules: Vec<String>,
    pub revision: String,
    pub upstream_status: Option<u16>,
    /// the status the client got
    pub status: u16,
    pub decision_ms: f64,
    /// from sending the request upstream to its response headers
    #[serde(default)]
    pub upstream_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
    pub usage: Option<Usage>,
    pub stream: bool,
    /// the client went away before the response ended
    #[serde(default)]
    pub client_disconnected: bool,
}

pub fn key_hint(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".to_string();
    }
    format!("…{}", key.chars().skip(n - 4).collect::<String>())
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (RFC 3339 time, unix ms, `YYYY-MM-DD`)
pub fn now() -> (String, i64, String) {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (time, day) = format_ms(ms);
    (time, ms, day)
}

/// (RFC 3339 time, `YYYY-MM-DD`) of a unix time in ms, UTC; written digit by digit (this runs on
/// every request)
pub fn format_ms(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut time = String::with_capacity(24);
    let mut digits = |n: i64, width: u32, after: char| {
        for p in (0..width).rev() {
            let digit = (n / 10i64.pow(p)).rem_euclid(10) as u32;
            time.push(char::from_digit(digit, 10).unwrap_or('0'));
        }
        time.push(after);
    };
    digits(y, 4, '-');
    digits(m, 2, '-');
    digits(d, 2, 'T');
    digits(rem / 3600, 2, ':');
    digits(rem % 3600 / 60, 2, ':');
    digits(rem % 60, 2, '.');
    digits(ms.rem_euclid(1000), 3, 'Z');
    let day = time.get(..10).unwrap_or_default().to_string();
    (time, day)
}

/// The writer's queue, in records, unless configured (`[audit] queue`); past it, records are
/// dropped and counted
pub const QUEUE: usize = 65_536;
/// Records written per batch at most
const BATCH: usize = 1024;
/// How long the writer lets records gather after writing a batch: a record reaches the file at
/// most this much later, and a busy gateway wakes the writer ~100 times a second, not per request
const LINGER: Duration = Duration::from_millis(10);
/// Written records reach the disk (`fsync`) at least this often
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Dropped records are logged at most this often (the metric counts every one)
const DROP_LOG_EVERY_MS: i64 = 10_000;

/// What travels to a writer thread. Records travel boxed: the channel allocates all its slots
/// up front.
pub enum Msg {
    Record(Box<Record>),
    /// answer once every record sent before this one is written (or given up on)
    Flush(std_mpsc::SyncSender<()>),
}

/// Where records go: the metrics, and the audit log if configured
pub struct Telemetry {
    pub metrics: Metrics,
    tx: Option<std_mpsc::SyncSender<Msg>>,
    /// when a drop was last logged (unix ms)
    drop_logged_ms: AtomicI64,
}

impl Telemetry {
    /// Metrics only; no audit files
    pub fn without_audit() -> Telemetry {
        Telemetry {
            metrics: Metrics::default(),
            tx: None,
            drop_logged_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// Metrics, and audit files in `dir` kept for `retention_days`, written by their own thread
    pub fn with_audit(dir: PathBuf, retention_days: u32) -> std::io::Result<Telemetry> {
        Self::with_audit_dir(dir, retention_days, QUEUE)
    }

    /// As [`Telemetry::with_audit`], with at most `queue` records waiting for the writer
    pub fn with_audit_dir(
        dir: PathBuf,
        retention_days: u32,
        queue: usize,
    ) -> std::io::Result<Telemetry> {
        std::fs::create_dir_all(&dir)?;
        // a directory we cannot write to is an error at start, not a silent loss later
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")?;
        let _ = std::fs::remove_file(&probe);
        let (tx, rx) = std_mpsc::sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("audit writer".to_string())
            .spawn(move || writer(dir, retention_days, rx))?;
        Ok(Telemetry {
            metrics: Metrics::default(),
            tx: Some(tx),
            drop_logged_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// Metrics, and audit records in the PostgreSQL database at `url` (table `strata_audit`,
    /// created by a migration), kept for `retention_days`, written by their own thread; see
    /// [`pg`]. A database that cannot be reached now is not an error (records wait, then are
    /// dropped, until it can); one that refuses this gateway (authentication, permissions, a
    /// newer schema) is.
    pub fn with_postgres(
        url: &str,
        retention_days: u32,
        queue: usize,
    ) -> Result<Telemetry, pg::AuditStoreError> {
        let metrics = Metrics::default();
        let (tx, rx) = std_mpsc::sync_channel(queue.max(1));
        pg::start(url, retention_days, rx, metrics.audit_dropped_counter())?;
        Ok(Telemetry {
            metrics,
            tx: Some(tx),
            drop_logged_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// A request begins; its record is written when the returned [`Pending`] ends or is dropped
    pub fn begin(self: &Arc<Self>, record: Record) -> Pending {
        self.metrics.started();
        Pending {
            open: Some((record, Instant::now())),
            tel: Arc::clone(self),
        }
    }

    fn end(&self, r: Record) {
        self.metrics.ended(&r);
        if let Some(tx) = &self.tx
            && tx.try_send(Msg::Record(Box::new(r))).is_err()
        {
            let total = self.metrics.audit_dropped();
            self.log_drop(total);
        }
    }

    /// A log line for dropped records, at most once per [`DROP_LOG_EVERY_MS`]
    fn log_drop(&self, total: u64) {
        let (_, now, _) = now();
        let last = self.drop_logged_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= DROP_LOG_EVERY_MS
            && self
                .drop_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = total,
                "audit records dropped: the audit writer is behind or its database is unavailable (strata_gateway_audit_dropped_total)"
            );
        }
    }

    /// Wait up to `wait` for the writer to write every record handed to it so far; false if it
    /// did not in time. Blocks: for shutdown, off the async workers.
    pub fn flush(&self, wait: Duration) -> bool {
        let Some(tx) = &self.tx else {
            return true;
        };
        let (done_tx, done) = std_mpsc::sync_channel(1);
        let until = Instant::now() + wait;
        let mut msg = Msg::Flush(done_tx);
        // the queue may be full: retry until the deadline
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(std_mpsc::TrySendError::Full(m)) if Instant::now() < until => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return false,
            }
        }
        done.recv_timeout(until.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

/// The record of a request in progress. Ending it (or dropping it, when the client goes away
/// first) writes the record once.
pub struct Pending {
    open: Option<(Record, Instant)>,
    tel: Arc<Telemetry>,
}

impl Pending {
    /// Fill in the record as the request goes (nothing, once detached)
    pub fn set(&mut self, f: impl FnOnce(&mut Record)) {
        if let Some((r, _)) = self.open.as_mut() {
            f(r);
        }
    }

    /// Time since the request began
    pub fn elapsed(&self) -> Duration {
        self.open
            .as_ref()
            .map(|(_, t)| t.elapsed())
            .unwrap_or_default()
    }

    /// A `Pending` with no record (for requests that are not audited)
    pub fn detached(tel: &Arc<Telemetry>) -> Pending {
        Pending {
            open: None,
            tel: Arc::clone(tel),
        }
    }

    /// Move the open record into a new `Pending` (e.g. to the response body), leaving this one
    /// detached: ending it does nothing
    pub fn detach(&mut self) -> Pending {
        Pending {
            open: self.open.take(),
            tel: Arc::clone(&self.tel),
        }
    }

    /// The request ended with `status` returned to the client
    pub fn end(mut self, status: u16) {
        self.close(status, false);
    }

    fn close(&mut self, status: u16, disconnected: bool) {
        if let Some((mut r, t)) = self.open.take() {
            if status != 0 {
                r.status = status;
            }
            if disconnected && r.status == 0 {
                // no response was sent (nginx's "client closed request")
                r.status = 499;
            }
            r.total_ms = ms(t.elapsed());
            r.client_disconnected = disconnected;
            self.tel.end(r);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // still open: the handler or the body was dropped because the client went away
        self.close(0, true);
    }
}

/// The writer thread: appends each batch to the day's file and flushes it to the OS (so a
/// crashed process loses nothing written), `fsync`s at least once per [`SYNC_EVERY`]
fn writer(dir: PathBuf, retention_days: u32, rx: std_mpsc::Receiver<Msg>) {
    let mut current: Option<(String, BufWriter<std::fs::File>)> = None;
    let mut synced = Instant::now();
    let mut dirty = false;
    loop {
        let first = if dirty {
            match rx.recv_timeout(SYNC_EVERY) {
                Ok(r) => r,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    sync(&mut current);
                    synced = Instant::now();
                    dirty = false;
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        let (batch, flushes) = take_batch(first, &rx, BATCH);
        let batch_len = batch.len();
        for r in batch {
            let day = r.time.get(..10).unwrap_or("unknown").to_string();
            if current.as_ref().is_none_or(|(d, _)| *d != day) {
                sync(&mut current);
                let path = dir.join(format!("audit-{day}.jsonl"));
                match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    Ok(f) => current = Some((day.clone(), BufWriter::new(f))),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot open the audit log");
                        current = None;
                        continue;
                    }
                }
                prune(&dir, retention_days, &day);
            }
            let Ok(mut line) = serde_json::to_vec(&r) else {
                continue;
            };
            line.push(b'\n');
            if let Some((_, f)) = current.as_mut()
                && let Err(e) = f.write_all(&line)
            {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        if let Some((_, f)) = current.as_mut()
            && let Err(e) = f.flush()
        {
            tracing::error!(error = %e, "cannot write the audit log");
        }
        dirty = true;
        if synced.elapsed() >= SYNC_EVERY || !flushes.is_empty() {
            sync(&mut current);
            synced = Instant::now();
            dirty = false;
        }
        let flushed = !flushes.is_empty();
        for f in flushes {
            let _ = f.send(());
        }
        if batch_len < BATCH && !flushed {
            // under load, let the next records gather rather than have every request wake this
            // thread (a context switch each, on the cores that serve the requests)
            std::thread::sleep(LINGER);
        }
    }
    sync(&mut current);
}

/// `first` and what else is waiting, up to `limit` records; and the flush asked for among them
/// (answered once the records are written)
#[expect(
    clippy::vec_box,
    reason = "records arrive boxed through the queue; unboxing each would copy it"
)]
fn take_batch(
    first: Msg,
    rx: &std_mpsc::Receiver<Msg>,
    limit: usize,
) -> (Vec<Box<Record>>, Vec<std_mpsc::SyncSender<()>>) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    let mut next = Some(first);
    while let Some(m) = next.take() {
        match m {
            Msg::Record(r) => batch.push(r),
            // records sent after a flush may wait for the next batch
            Msg::Flush(f) => {
                flushes.push(f);
                break;
            }
        }
        if batch.len() < limit {
            next = rx.try_recv().ok();
        }
    }
    (batch, flushes)
}

fn sync(current: &mut Option<(String, BufWriter<std::fs::File>)>) {
    if let Some((_, f)) = current.as_mut() {
        let _ = f.flush();
        if let Err(e) = f.get_ref().sync_data() {
            tracing::error!(error = %e, "cannot sync the audit log");
        }
    }
}

/// Delete daily files older than the retention
fn prune(dir: &Path, retention_days: u32, today: &str) {
    let Some(today_days) = day_number(today) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(day) = name
            .strip_prefix("audit-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if day_number(day).is_some_and(|d| today_days - d > i64::from(retention_days)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD`
pub fn day_number(day: &str) -> Option<i64> {
    let mut it = day.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// What `policy audit` asks for; every filter that is set must match
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub user: Option<String>,
    pub project: Option<String>,
    pub model: Option<String>,
    pub decision: Option<String>,
    /// unix ms, inclusive
    pub since_ms: Option<i64>,
    /// unix ms, exclusive
    pub until_ms: Option<i64>,
    /// the most recent `limit` records
    pub limit: Option<usize>,
}

impl Query {
    fn matches(&self, r: &Record) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.user, &r.user)
            && eq(&self.project, &r.project)
            && eq(&self.model, &r.model)
            && eq(&self.decision, &r.decision)
            && self.since_ms.is_none_or(|t| r.unix_ms >= t)
            && self.until_ms.is_none_or(|t| r.unix_ms < t)
    }
}

/// The records of `dir` that match, oldest first, and the number of lines that could not be
/// read (a line torn by a crash mid-write)
pub fn query(dir: &Path, q: &Query) -> std::io::Result<(Vec<Record>, usize)> {
    let day_of = |ms: i64| ms.div_euclid(86_400_000);
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let day = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
            Some((day_number(day)?, e.path()))
        })
        .filter(|(d, _)| q.since_ms.is_none_or(|t| *d >= day_of(t)))
        .filter(|(d, _)| q.until_ms.is_none_or(|t| *d <= day_of(t)))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut bad = 0;
    for (_, path) in files {
        let text = std::fs::read(&path)?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) if q.matches(&r) => out.push(r),
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        }
    }
    out.sort_by_key(|r| r.unix_ms);
    if let Some(n) = q.limit {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok((out, bad))
}

/// A time for `--since` / `--until`: `2026-11-30`, `2026-11-30T14:05:00Z` (UTC), or a span
/// before now: `90s`, `15m`, `2h`, `7d`
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "invalid time `{s}`: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a span such as 15m, 2h, 7d"
        )
    };
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        let per = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => 86_400_000,
        };
        return n.checked_mul(per).map(|d| now_ms - d).ok_or_else(bad);
    }
    let (date, time) = s.split_once('T').unwrap_or((s, ""));
    if date.len() != 10 {
        return Err(bad());
    }
    let days = day_number(date).ok_or_else(bad)?;
    let mut ms = days * 86_400_000;
    if !time.is_empty() {
        let t = time.strip_suffix('Z').ok_or_else(bad)?;
        let t = t.split_once('.').map_or(t, |(a, _)| a);
        let parts: Vec<i64> = t
            .split(':')
            .map(|p| p.parse::<i64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let [h, m, sec] = parts[..] else {
            return Err(bad());
        };
        if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&sec) {
            return Err(bad());
        }
        ms += (h * 3600 + m * 60 + sec) * 1000;
    }
    Ok(ms)
}

/// Reads token usage out of a response as it streams by: SSE `data:` lines (Anthropic
/// `message_start` / `message_delta`, OpenAI Responses `response.completed`, Chat Completions'
/// final chunk) or, for a plain JSON body, the body's `usage` at the end
#[derive(Default)]
pub struct UsageReader {
    sse: bool,
    line: Vec<u8>,
    body: Vec<u8>,
    usage: Option<Usage>,
}

/// The most of a non-streamed body kept to read its usage
const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

impl UsageReader {
    pub fn new(sse: bool) -> Self {
        UsageReader {
            sse,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.body.len() + chunk.len() <= MAX_JSON_BODY {
                self.body.extend_from_slice(chunk);
            }
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                if let Some(data) = line.strip_prefix(b"data:") {
                    self.take(data.trim_ascii());
                }
                // keep the line's buffer for the next one
                self.line = line;
                self.line.clear();
            } else if self.line.len() < MAX_JSON_BODY {
                self.line.push(b);
            }
        }
    }

    /// Read the usage of one JSON document (a body, or one event's data). Only the `usage`
    /// objects are decoded: the rest (the completion itself) is skipped without being built.
    fn take(&mut self, doc: &[u8]) {
        /// The three places providers put usage: the top level, Anthropic's `message_start`
        /// (`message.usage`), OpenAI Responses' `response.completed` (`response.usage`)
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow, default)]
            usage: Option<&'a RawValue>,
            #[serde(borrow, default)]
            message: Option<&'a RawValue>,
            #[serde(borrow, default)]
            response: Option<&'a RawValue>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow, default)]
            usage: Option<&'a RawValue>,
        }
        let Ok(env) = serde_json::from_slice::<Envelope<'_>>(doc) else {
            return;
        };
        fn nested(raw: Option<&RawValue>) -> Option<&RawValue> {
            serde_json::from_str::<Inner<'_>>(raw?.get()).ok()?.usage
        }
        let raw = env
            .usage
            .or_else(|| nested(env.message))
            .or_else(|| nested(env.response));
        /// A usage object's counts, each read only if it is a whole number
        #[derive(serde::Deserialize)]
        struct Counts<'a> {
            #[serde(borrow, default)]
            input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            prompt_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            output_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            completion_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            cache_read_input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            cache_creation_input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            input_tokens_details: Option<&'a RawValue>,
            #[serde(borrow, default)]
            prompt_tokens_details: Option<&'a RawValue>,
        }
        #[derive(serde::Deserialize)]
        struct Details<'a> {
            #[serde(borrow, default)]
            cached_tokens: Option<&'a RawValue>,
        }
        let Some(u) = raw.and_then(|r| serde_json::from_str::<Counts<'_>>(r.get()).ok()) else {
            return;
        };
        let n = |v: Option<&RawValue>| v.and_then(|v| v.get().parse::<u64>().ok());
        let cached = |v: Option<&RawValue>| {
            n(serde_json::from_str::<Details<'_>>(v?.get())
                .ok()?
                .cached_tokens)
        };
        let cur = self.usage.get_or_insert_with(Usage::default);
        if let Some(x) = n(u.input_tokens).or(n(u.prompt_tokens)) {
            cur.input_tokens = x;
        }
        if let Some(x) = n(u.output_tokens).or(n(u.completion_tokens)) {
            cur.output_tokens = x;
        }
        if let Some(x) = n(u.cache_read_input_tokens)
            .or_else(|| cached(u.input_tokens_details))
            .or_else(|| cached(u.prompt_tokens_details))
        {
            cur.cache_read_tokens = x;
        }
        if let Some(x) = n(u.cache_creation_input_tokens) {
            cur.cache_write_tokens = x;
        }
    }

    pub fn finish(mut self) -> Option<Usage> {
        if !self.sse && !self.body.is_empty() {
            let body = std::mem::take(&mut self.body);
            self.take(&body);
        }
        self.usage
    }
}

/// A response body that passes every chunk through unchanged, notes the first byte, reads usage,
/// and ends the request's record when the body ends — or when it is dropped because the client
/// left (which also drops, and so cancels, the upstream request)
pub struct Audited<S> {
    inner: S,
    first_byte: bool,
    reader: Option<UsageReader>,
    pending: Pending,
}

impl<S> Audited<S> {
    pub fn new(inner: S, sse: bool, pending: Pending) -> Self {
        Audited {
            inner,
            first_byte: false,
            reader: Some(UsageReader::new(sse)),
            pending,
        }
    }

    fn usage(&mut self) {
        let usage = self.reader.take().and_then(UsageReader::finish);
        self.pending.set(|r| r.usage = usage);
    }
}

impl<S> Drop for Audited<S> {
    fn drop(&mut self) {
        // the client left mid-stream: keep what usage the stream had reported so far
        if self.reader.is_some() {
            self.usage();
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl<S, E> Stream for Audited<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if !this.first_byte {
                    this.first_byte = true;
                    let t = ms(this.pending.elapsed());
                    this.pending.set(|r| r.first_byte_ms = Some(t));
                }
                if let Some(r) = this.reader.as_mut() {
                    r.feed(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.usage();
                this.pending.detach().end(0);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // the upstream broke off mid-body
                this.usage();
                this.pending
                    .set(|r| r.error = Some("upstream_broke_off".to_string()));
                this.pending.detach().end(0);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_anthropic_sse_and_openai_json() {
        let mut r = UsageReader::new(true);
        r.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n");
        r.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_");
        r.feed(b"tokens\":40}}\n\n");
        assert_eq!(
            r.finish(),
            Some(Usage {
                input_tokens: 12,
                output_tokens: 40,
                cache_read_tokens: 5,
                cache_write_tokens: 2
            })
        );
        let mut j = UsageReader::new(false);
        j.feed(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}"#);
        assert_eq!(
            j.finish(),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 1,
                cache_read_tokens: 2,
                cache_write_tokens: 0
            })
        );
    }

    #[test]
    fn usage_skips_what_is_not_usage() {
        // Responses' `response.completed` event, a large body around the usage, and fields of
        // unexpected types that must not hide the usage
        let mut r = UsageReader::new(true);
        r.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"content\":\"x\\ny\"}],\"usage\":{\"input_tokens\":7,\"output_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":4}}}}\n\n");
        assert_eq!(
            r.finish(),
            Some(Usage {
                input_tokens: 7,
                output_tokens: 9,
                cache_read_tokens: 4,
                cache_write_tokens: 0
            })
        );
        let mut j = UsageReader::new(false);
        let text = "a\\\"b ".repeat(10_000);
        j.feed(format!(r#"{{"message":"not an object","content":[{{"text":"{text}"}}],"usage":{{"input_tokens":1,"output_tokens":2}}}}"#).as_bytes());
        assert_eq!(
            j.finish(),
            Some(Usage {
                input_tokens: 1,
                output_tokens: 2,
                ..Usage::default()
            })
        );
        // no usage, a usage of the wrong type, invalid JSON: nothing
        for body in [
            r#"{"id":"x"}"#,
            r#"{"usage":"many"}"#,
            r#"{"usage":null}"#,
            "{not json",
        ] {
            let mut j = UsageReader::new(false);
            j.feed(body.as_bytes());
            assert_eq!(j.finish(), None, "{body}");
        }
    }

    #[test]
    fn record_times() {
        assert_eq!(format_ms(0).0, "1970-01-01T00:00:00.000Z");
        let (time, day) = format_ms(1_796_083_199_999);
        assert_eq!(time, "2026-11-30T23:59:59.999Z");
        assert_eq!(day, "2026-11-30");
        assert_eq!(format_ms(1_796_000_000_042).0, "2026-11-30T00:53:20.042Z");
        assert_eq!(format_ms(-1).0, "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn dates() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2026-11-23").map(civil), Some((2026, 11, 23)));
        assert_eq!(key_hint("strata_gw_0123456789abcdef"), "…cdef");
    }

    #[test]
    fn times_for_since_and_until() {
        let now = day_number("2026-11-30").unwrap() * 86_400_000 + 3_600_000;
        assert_eq!(parse_time("2026-11-30", now), Ok(now - 3_600_000));
        assert_eq!(parse_time("2026-11-30T01:00:00Z", now), Ok(now));
        assert_eq!(parse_time("2026-11-30T01:00:00.250Z", now), Ok(now));
        assert_eq!(parse_time("15m", now), Ok(now - 900_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-30T25:00:00Z",
            "2026-11-30T01:00",
            "5w",
            "",
        ] {
            let e = parse_time(bad, now).unwrap_err();
            assert!(e.starts_with(&format!("invalid time `{bad}`")), "{e}");
        }
    }

    #[test]
    fn query_filters_skips_torn_lines_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |user: &str, day: &str, ms: i64, decision: &str| Record {
            user: user.into(),
            time: format!("{day}T00:00:00.000Z"),
            unix_ms: ms,
            decision: decision.into(),
            ..Default::default()
        };
        let d1 = day_number("2026-11-29").unwrap() * 86_400_000;
        let d2 = d1 + 86_400_000;
        let line = |r: &Record| serde_json::to_string(r).unwrap() + "\n";
        std::fs::write(
            dir.path().join("audit-2026-11-29.jsonl"),
            line(&rec("alice", "2026-11-29", d1 + 5, "allow"))
                + &line(&rec("bob", "2026-11-29", d1 + 9, "deny")),
        )
        .unwrap();
        // a crash mid-write leaves a torn last line
        std::fs::write(
            dir.path().join("audit-2026-11-30.jsonl"),
            line(&rec("alice", "2026-11-30", d2 + 1, "deny")) + "{\"time\":\"2026-11",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let all = query(dir.path(), &Query::default()).unwrap();
        assert_eq!(all.1, 1);
        assert_eq!(
            all.0.iter().map(|r| r.unix_ms).collect::<Vec<_>>(),
            [d1 + 5, d1 + 9, d2 + 1]
        );
        let q = Query {
            user: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 2);
        let q = Query {
            decision: Some("deny".into()),
            since_ms: Some(d2),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 1);
        let q = Query {
            until_ms: Some(d1 + 9),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0.len(), 1);
        let q = Query {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(query(dir.path(), &q).unwrap().0[0].user, "bob");
    }

    #[test]
    fn a_pending_record_is_written_once_and_marks_a_client_that_left() {
        let tel = Arc::new(Telemetry::without_audit());
        let mut p = tel.begin(Record {
            model: "m".into(),
            ..Default::default()
        });
        let mut body = p.detach();
        p.end(200); // detached: nothing
        body.set(|r| r.status = 200);
        drop(body); // the client went away mid-body
        let dropped = tel.begin(Record::default());
        drop(dropped); // ... or before any response
        let text = tel.metrics.render();
        assert!(
            text.contains("model=\"m\",decision=\"\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("model=\"\",decision=\"\",status=\"499\"} 1"),
            "{text}"
        );
        assert!(text.contains("strata_gateway_in_flight 0"), "{text}");
    }
}
