//! Stage 2: read the request body, bounded in size and time, and peek at what the decision needs
//! (model, stream flag, MCP servers) without copying or re-serialising it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::header_text;
use crate::audit::Pending;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::peek::{Peeked, peek};

/// How long, and how many bytes, the rest of a refused body is read and thrown away
pub const LINGER: Duration = Duration::from_secs(5);
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The body and what it asks for, noted in the audit record; `body_read` tells whether the body
/// was read to its end
pub async fn read_model(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    pending: &mut Pending,
    body_read: &mut bool,
) -> Result<(Bytes, Peeked), GatewayError> {
    if let Some(encoding) = header_text(headers, &header::CONTENT_ENCODING)
        .filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        // the decision reads the model from the body: one it cannot read is refused, not passed on
        return Err(GatewayError::UnsupportedEncoding(
            encoding.chars().take(64).collect(),
        ));
    }
    let limit = gw.cfg.max_body_bytes;
    let mut stream = body.into_data_stream();
    let declared =
        header_text(headers, &header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // refused from its declared length, before a byte of it is kept
        linger(stream);
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let deadline = Duration::from_secs(gw.cfg.client_timeout_secs.max(1));
    let bytes = match tokio::time::timeout(deadline, read_body(&mut stream, limit, declared)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            linger(stream);
            return Err(GatewayError::BodyTooLarge { limit });
        }
        Ok(Err(BodyError::Broken)) => return Err(GatewayError::IncompleteBody),
        Err(_) => {
            return Err(GatewayError::BodyTimeout {
                secs: deadline.as_secs(),
            });
        }
    };
    *body_read = true;
    let peeked = peek(&bytes)?;
    pending.set(|r| {
        r.model = peeked.model.clone();
        r.stream = peeked.stream;
    });
    Ok((bytes, peeked))
}

/// Why a request body could not be read
enum BodyError {
    TooLarge,
    /// the client went away mid-body, or sent broken chunked framing
    Broken,
}

/// Read and discard the rest of a body refused as too large, for at most [`LINGER`] and
/// [`LINGER_BYTES`], while the refusal is written.
///
/// Closing a connection with unread bytes in its receive buffer makes the kernel answer with a
/// reset, and a client still sending its body then loses the 413 it was sent (the reset discards
/// what it had not read yet): it sees "connection reset" instead of the reason. So the gateway
/// keeps reading (and the connection open) a little longer, as web servers do with lingering
/// close; a client that sends more, or for longer, is cut off as before.
fn linger(mut stream: axum::body::BodyDataStream) {
    use futures::StreamExt;
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(chunk)) = stream.next().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    });
}

/// Read a request body of at most `max` bytes. A body that arrives in one piece is not copied;
/// one that arrives in several is copied once, into a buffer of its declared length (no regrowth)
async fn read_body(
    stream: &mut axum::body::BodyDataStream,
    max: usize,
    declared: Option<u64>,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    // the declared length is at most `max` here; a body longer than it declared is cut off by hyper
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(0).min(max));
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        len += chunk.len();
        if len > max {
            return Err(BodyError::TooLarge);
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.reserve_exact(capacity.max(f.len() + chunk.len()));
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}
