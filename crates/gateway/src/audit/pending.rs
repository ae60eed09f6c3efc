//! The record of a request in progress, ended exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Record, ms};

/// Where ended records go (the gateway's [`crate::telemetry::Telemetry`]: metrics, then the
/// audit writer)
pub trait Sink: Send + Sync {
    /// A request ended; its record is complete
    fn end(&self, record: Record);
}

/// The record of a request in progress. Ending it (or dropping it, when the client goes away
/// first) writes the record once.
pub struct Pending {
    open: Option<(Record, Instant)>,
    sink: Arc<dyn Sink>,
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

    /// A request's record, to end in `sink`
    pub fn new(record: Record, sink: Arc<dyn Sink>) -> Pending {
        Pending {
            open: Some((record, Instant::now())),
            sink,
        }
    }

    /// A `Pending` with no record (for requests that are not audited)
    pub fn detached(sink: Arc<dyn Sink>) -> Pending {
        Pending { open: None, sink }
    }

    /// Move the open record into a new `Pending` (e.g. to the response body), leaving this one
    /// detached: ending it does nothing
    pub fn detach(&mut self) -> Pending {
        Pending {
            open: self.open.take(),
            sink: Arc::clone(&self.sink),
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
            self.sink.end(r);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // still open: the handler or the body was dropped because the client went away
        self.close(0, true);
    }
}
