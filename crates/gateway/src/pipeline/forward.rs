//! Stage 5: send the original bytes upstream and wait for the response head, within the
//! upstream timeout; a timeout is 504, anything else that fails (refused, reset, not HTTP) 502.

use axum::body::Bytes;
use axum::http::Response;

use super::route::Outgoing;
use crate::audit::{self, Pending};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::upstream::{SendError, UpstreamBody};

/// The upstream's response head (its body still to come), its latency noted in the audit record
pub async fn forward(
    gw: &Gateway,
    provider: &'static str,
    outgoing: Outgoing,
    body: Bytes,
    pending: &mut Pending,
) -> Result<Response<UpstreamBody>, GatewayError> {
    let sent_at = std::time::Instant::now();
    let sent = gw.http.post(outgoing.uri, outgoing.headers, body).await;
    let upstream_ms = audit::ms(sent_at.elapsed());
    pending.set(|r| r.upstream_ms = Some(upstream_ms));
    sent.map_err(|e| {
        let error = match e {
            SendError::Timeout => GatewayError::UpstreamTimeout {
                provider,
                secs: gw.cfg.upstream_timeout_secs,
            },
            SendError::Connect(_) => GatewayError::UpstreamUnreachable { provider },
            SendError::Failed(_) => GatewayError::UpstreamFailed { provider },
        };
        tracing::warn!(provider, error = %e, "{error}");
        error
    })
}
