//! The response body the client reads: the upstream's chunks passed through unchanged, with the
//! request's record (first byte, usage) kept up to date and ended when the body ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::{Pending, UsageReader, ms};

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
