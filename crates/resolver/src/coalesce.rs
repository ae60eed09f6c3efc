//! Fewer, larger writes on a busy HTTP/2 connection.
//!
//! Two things made the resolver write one response per `writev` under load, so that a quarter
//! of its time went to the kernel:
//!
//! - h2 sends a DATA payload of 256 bytes or more without copying it when the connection supports
//!   vectored writes, and flushes after each such frame. A `Decide` response is about 600 bytes.
//!   Without vectored writes h2 copies payloads under 1 KiB into its write buffer, so responses
//!   queue up in it; [`Coalesced`] reports no vectored writes.
//! - hyper runs every request as its own task. A request that finishes wakes the connection task,
//!   and tokio runs a task woken that way next, before the other requests that are ready, so the
//!   connection flushed after each one. [`Coalesced`] holds the first write of each flush until
//!   the worker has run the tasks that are ready (`tokio::task::yield_now`: woken when the
//!   worker's queue is empty), and the next poll writes every response they produced at once.
//!   On an idle connection that costs one extra poll, and no other worker is woken for it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An I/O stream that writes without vectored I/O and holds each flush until the tasks that are
/// ready have run (see the module docs)
#[derive(Debug)]
pub struct Coalesced<T> {
    inner: T,
    hold: Hold,
}

#[derive(Debug)]
enum Hold {
    /// the next write starts a flush: hold it
    Idle,
    /// held until the runtime wakes this
    Waiting(Arc<Turn>),
    /// writing until the flush completes
    Open,
}

/// Woken by the runtime once the worker has run the tasks that were ready
#[derive(Debug)]
struct Turn {
    done: AtomicBool,
    task: Waker,
}

impl Wake for Turn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.done.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl<T> Coalesced<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hold: Hold::Idle,
        }
    }

    /// `true` when the caller may write now; otherwise the task is woken when it may
    fn may_write(&mut self, cx: &mut Context<'_>) -> bool {
        match &self.hold {
            Hold::Open => true,
            Hold::Waiting(turn) => {
                // polled again before the turn came (another request finished), or by a task
                // that is not the one the turn wakes: write now rather than risk no wake-up
                if turn.done.load(Ordering::Acquire) || !turn.task.will_wake(cx.waker()) {
                    self.hold = Hold::Open;
                    return true;
                }
                false
            }
            Hold::Idle => {
                let turn = Arc::new(Turn {
                    done: AtomicBool::new(false),
                    task: cx.waker().clone(),
                });
                let waker = Waker::from(turn.clone());
                let mut yield_cx = Context::from_waker(&waker);
                let mut turn_ends = std::pin::pin!(tokio::task::yield_now());
                if turn_ends.as_mut().poll(&mut yield_cx).is_ready() {
                    self.hold = Hold::Open;
                    return true;
                }
                self.hold = Hold::Waiting(turn);
                false
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.may_write(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.may_write(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    /// h2 copies small DATA payloads into its write buffer only without vectored I/O
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if r.is_ready() {
            self.hold = Hold::Idle;
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Coalesced<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The first write of a flush waits for the task that became ready after it; a plain stream
    /// would have written before that task ran
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_waits_for_the_tasks_that_are_ready() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = Coalesced::new(a);
        let o = order.clone();
        let writer = tokio::spawn(async move {
            w.write_all(b"response").await.unwrap();
            w.flush().await.unwrap();
            o.lock().unwrap().push("written");
            w
        });
        let o = order.clone();
        let other = tokio::spawn(async move { o.lock().unwrap().push("other request") });
        let w = writer.await.unwrap();
        other.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["other request", "written"]);
        let mut got = [0u8; 8];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"response");

        // the next flush is held again, and a plain stream is not
        let (plain, _rx) = tokio::io::duplex(1 << 16);
        for (mut s, expected) in [
            (
                Box::new(w) as Box<dyn AsyncWrite + Unpin + Send>,
                ["other", "written"],
            ),
            (Box::new(plain), ["written", "other"]),
        ] {
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = order.clone();
            let writer = tokio::spawn(async move {
                s.write_all(b"again").await.unwrap();
                s.flush().await.unwrap();
                o.lock().unwrap().push("written");
            });
            let o = order.clone();
            let other = tokio::spawn(async move { o.lock().unwrap().push("other") });
            writer.await.unwrap();
            other.await.unwrap();
            assert_eq!(*order.lock().unwrap(), expected);
        }
    }

    /// Every byte arrives in order across many flushes, on the multi-thread runtime too
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_byte_arrives_in_order() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut w = Coalesced::new(a);
        assert!(!w.is_write_vectored());
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(777) {
                w.write_all(chunk).await.unwrap();
                w.flush().await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, expected);
    }
}
