//! Stage 6: relay the upstream's answer to the client chunk by chunk, as it arrives, and account
//! for it: the response's status in the audit record, then, as the body streams, its first byte
//! and token usage; the record ends when the body does (or when the client leaves).

use axum::body::Body;
use axum::http::{HeaderValue, Response};
use strata_proto::v1;

use super::route::hop_by_hop;
use super::stamp;
use crate::audit::{Audited, Pending};
use crate::error::{GatewayError, Source};
use crate::upstream::UpstreamBody;

/// The client's response to an upstream answer; it carries the request's audit record
pub fn account(
    upstream: Response<UpstreamBody>,
    decision: &v1::DecideResponse,
    pending: &mut Pending,
) -> Result<Response<Body>, GatewayError> {
    let status = upstream.status();
    pending.set(|r| {
        r.upstream_status = Some(status.as_u16());
        r.status = status.as_u16();
    });
    let sse = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut resp = Response::builder().status(status.as_u16());
    if let Some(h) = resp.headers_mut() {
        for (k, v) in upstream.headers() {
            if !hop_by_hop(k) {
                h.append(k.clone(), v.clone());
            }
        }
        stamp(h, &decision.decision_id, &decision.revision);
        if status.is_client_error() || status.is_server_error() {
            h.insert(
                "x-strata-error-source",
                HeaderValue::from_static(Source::Upstream.as_str()),
            );
        }
    }
    // chunk by chunk as the upstream sends them; the body carries the audit record and ends it
    // when it ends. A client that goes away drops the body, which drops the upstream request.
    let body = Audited::new(upstream.into_body(), sse, pending.detach());
    resp.body(Body::from_stream(body))
        .map_err(|_| GatewayError::BadUpstreamResponse)
}
