//! Stage 4: where an allowed request goes: the model's own upstream when the decision names one
//! (an org `customModels` entry's `baseUrl`, see [`crate::model_upstream`]), else its provider's
//! configured upstream; the API's own path after the upstream's base (whatever prefix the client
//! used), the query string as sent, and the client's headers minus hop-by-hop ones, governance
//! tokens and Strata's own; in central mode the client's key is replaced with the org's (or the
//! model entry's own).

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Uri};
use strata_proto::v1;

use super::authenticate::{Caller, GOVERNANCE_HEADERS};
use crate::api::Api;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::model_upstream::{Key, Target};
use crate::upstream::Base;

/// A request ready to send upstream, but for its body
pub struct Outgoing {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The upstream request for `parts`, allowed by `decision` for `model`: to the model's own
/// upstream with its own key when the decision's obligations name one (an org `customModels`
/// entry's `baseUrl`, and its `${VAR}` key in central mode), else to the provider's configured
/// upstream with the org's central key
pub fn route(
    gw: &Gateway,
    api: Api,
    caller: &Caller,
    parts: &Parts,
    decision: &v1::DecideResponse,
    model: &str,
) -> Result<Outgoing, GatewayError> {
    let provider = api.provider();
    let (base, key) = match own_upstream(gw, api, caller, decision, model)? {
        Some((base, key)) => (base, key),
        None => {
            let base = gw
                .bases
                .get(provider)
                .ok_or(GatewayError::NoUpstream { provider })?;
            let key = if caller.byok {
                None
            } else {
                let (name, value) = gw
                    .keys
                    .get(provider)
                    .ok_or(GatewayError::NoCentralKey { provider })?;
                Some((name.clone(), value.clone()))
            };
            (Own::Configured(base), key)
        }
    };
    // the query string goes along (Anthropic's `?beta=true`, Azure-style `?api-version=`)
    let uri = base
        .get()
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
    if let Some((name, value)) = key {
        headers.insert(name, value);
    }
    Ok(Outgoing { uri, headers })
}

/// A configured upstream's base, or a model's own
enum Own<'g> {
    Configured(&'g Base),
    Model(Arc<Base>),
}

impl Own<'_> {
    fn get(&self) -> &Base {
        match self {
            Own::Configured(b) => b,
            Own::Model(b) => b,
        }
    }
}

/// The model's own upstream and the key to send there (none in BYOK mode, where the client's
/// goes as sent, and none for an entry without a `${VAR}` key); `None` when the obligations name
/// no upstream, or name this gateway
fn own_upstream<'g>(
    gw: &'g Gateway,
    api: Api,
    caller: &Caller,
    decision: &v1::DecideResponse,
    model: &str,
) -> Result<Option<(Own<'g>, Option<Key>)>, GatewayError> {
    let Some(o) = decision
        .obligations
        .as_ref()
        .filter(|o| !o.upstream_base_url.is_empty())
    else {
        return Ok(None);
    };
    let anthropic = api.anthropic_shaped();
    let base = match gw.models.target(&o.upstream_base_url, anthropic) {
        Target::Gateway => return Ok(None),
        Target::Invalid(why) => {
            return Err(GatewayError::BadModelUpstream {
                model: model.to_string(),
                url: o.upstream_base_url.clone(),
                why,
            });
        }
        Target::Upstream(base) => base,
    };
    // the bytes go as they came: a body in another API than the upstream speaks would fail there
    if !o.provider.is_empty() && o.provider != api.provider() {
        return Err(GatewayError::WrongApiForModel {
            model: model.to_string(),
            path: provider_path(&o.provider),
            provider: o.provider.clone(),
            api_path: api.upstream_path(),
        });
    }
    let key = if caller.byok || o.credential_env.is_empty() {
        None
    } else {
        let key = gw.models.key(&o.credential_env, anthropic).ok_or_else(|| {
            GatewayError::MissingCredential {
                model: model.to_string(),
                var: o.credential_env.clone(),
            }
        })?;
        Some(key)
    };
    Ok(Some((Own::Model(base), key)))
}

/// The endpoint of a provider's API
fn provider_path(provider: &str) -> &'static str {
    match provider {
        "anthropic" => Api::Messages.upstream_path(),
        "openai" => Api::Responses.upstream_path(),
        _ => Api::ChatCompletions.upstream_path(),
    }
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
