//! Stage 4: where an allowed request goes: its provider's upstream, the API's own path after the
//! upstream's base (whatever prefix the client used), the query string as sent, and the client's
//! headers minus hop-by-hop ones, governance tokens and Strata's own; in central mode the
//! client's key is replaced with the org's.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Uri};

use super::authenticate::{Caller, GOVERNANCE_HEADERS};
use crate::api::Api;
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// A request ready to send upstream, but for its body
pub struct Outgoing {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The upstream request for `parts`
pub fn route(
    gw: &Gateway,
    api: Api,
    caller: &Caller,
    parts: &Parts,
) -> Result<Outgoing, GatewayError> {
    let provider = api.provider();
    let base = gw
        .bases
        .get(provider)
        .ok_or(GatewayError::NoUpstream { provider })?;
    // the query string goes along (Anthropic's `?beta=true`, Azure-style `?api-version=`)
    let uri = base
        .uri(api.upstream_path(), parts.uri.query())
        .map_err(GatewayError::InvalidQuery)?;
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 1);
    for (k, v) in &parts.headers {
        let n = k.as_str();
        if hop_by_hop(k)
            || GOVERNANCE_HEADERS.contains(&n)
            || n.starts_with("x-strata-")
            || (!caller.byok && (n == "authorization" || n == "x-api-key"))
        {
            continue;
        }
        headers.append(k.clone(), v.clone());
    }
    if !caller.byok {
        let (name, value) = gw
            .keys
            .get(provider)
            .ok_or(GatewayError::NoCentralKey { provider })?;
        headers.insert(name.clone(), value.clone());
    }
    Ok(Outgoing { uri, headers })
}

/// Headers that concern one connection, not the request: never relayed either way
pub fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}
