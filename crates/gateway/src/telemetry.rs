//! Where a request's record goes when it ends: the metrics, then the audit writer (files or
//! PostgreSQL), through a bounded queue that drops (and counts) rather than slow a request.
//!
//! This is the one module that knows both [`crate::audit`] and [`crate::metrics`]; neither knows
//! the other's writer.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use crate::audit::{self, Msg, Pending, QUEUE, Record, Sink, writer};
use crate::metrics::Metrics;

/// Dropped records are logged at most this often (the metric counts every one)
const DROP_LOG_EVERY_MS: i64 = 10_000;

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
        let tx = writer::start(dir, retention_days, queue)?;
        Ok(Telemetry {
            metrics: Metrics::default(),
            tx: Some(tx),
            drop_logged_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// Metrics, and audit records in the PostgreSQL database at `url` (table `strata_audit`,
    /// created by a migration), kept for `retention_days`, written by their own thread; see
    /// [`audit::pg`]. A database that cannot be reached now is not an error (records wait, then are
    /// dropped, until it can); one that refuses this gateway (authentication, permissions, a
    /// newer schema) is.
    pub fn with_postgres(
        url: &str,
        retention_days: u32,
        queue: usize,
    ) -> Result<Telemetry, audit::pg::AuditStoreError> {
        let metrics = Metrics::default();
        let (tx, rx) = std_mpsc::sync_channel(queue.max(1));
        audit::pg::start(url, retention_days, rx, metrics.audit_dropped_counter())?;
        Ok(Telemetry {
            metrics,
            tx: Some(tx),
            drop_logged_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// A request begins; its record is written when the returned [`Pending`] ends or is dropped
    pub fn begin(self: &Arc<Self>, record: Record) -> Pending {
        self.metrics.started();
        Pending::new(record, Arc::clone(self) as Arc<dyn Sink>)
    }

    /// A [`Pending`] with no record, for a response outside the request path
    pub fn detached(self: &Arc<Self>) -> Pending {
        Pending::detached(Arc::clone(self) as Arc<dyn Sink>)
    }

    /// A log line for dropped records, at most once per [`DROP_LOG_EVERY_MS`]
    fn log_drop(&self, total: u64) {
        let (_, now, _) = audit::now();
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

impl Sink for Telemetry {
    fn end(&self, r: Record) {
        self.metrics.ended(&r);
        if let Some(tx) = &self.tx
            && tx.try_send(Msg::Record(Box::new(r))).is_err()
        {
            let total = self.metrics.audit_dropped();
            self.log_drop(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
