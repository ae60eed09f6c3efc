//! The file writer: a thread that appends records to daily JSON-lines files
//! (`audit-YYYY-MM-DD.jsonl`), batched, `fsync`ed each second, and deletes files past the
//! retention.

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use super::Record;
use super::time::day_number;

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

/// What travels to a writer thread. Records travel boxed: the channel allocates all its slots
/// up front.
pub enum Msg {
    Record(Box<Record>),
    /// answer once every record sent before this one is written (or given up on)
    Flush(std_mpsc::SyncSender<()>),
}

/// Start a writer thread for `dir` (created if missing, and checked writable), keeping files for
/// `retention_days`; at most `queue` records wait for it
pub fn start(
    dir: PathBuf,
    retention_days: u32,
    queue: usize,
) -> std::io::Result<std_mpsc::SyncSender<Msg>> {
    std::fs::create_dir_all(&dir)?;
    // a directory we cannot write to is an error at start, not a silent loss later
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")?;
    let _ = std::fs::remove_file(&probe);
    let (tx, rx) = std_mpsc::sync_channel(queue.max(1));
    std::thread::Builder::new()
        .name("audit writer".to_string())
        .spawn(move || writer(dir, retention_days, rx))?;
    Ok(tx)
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
pub(super) fn take_batch(
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
