//! The settings endpoints, answered from the resolver's effective settings for the caller rather
//! than by forwarding: `GET /v1/models` (only the models this user may use) and
//! `GET /strata/v1/droid-settings`. Every ask carries the upstreams' model catalogues
//! ([`crate::catalogue`]) as candidates, so that models allowed by a pattern are listed too.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Response};
use strata_proto::v1;

use super::authenticate::{Caller, caller};
use super::{FOLDER, PROJECT, header_text};
use crate::audit::Pending;
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// `GET /strata/v1/droid-settings`: Droid `customModels` for exactly the models the caller may
/// use, pointed at this gateway with the caller's own gateway token
pub async fn droid_settings(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    let Some(caller) = caller(&headers) else {
        return GatewayError::MissingApiKey.response(false);
    };
    let mut settings = match resolve(&gw, &caller, &headers).await {
        Ok(s) => s,
        Err(e) => return e.response(false),
    };
    // a model known from a catalogue has no entry to say its provider: the upstream that lists it
    for m in settings.models.iter_mut().filter(|m| m.provider.is_empty()) {
        if let Some(p) = gw.catalogues.provider_of(&m.model) {
            m.provider = p;
        }
    }
    let body = serde_json::json!({ "customModels": crate::droid::custom_models(&settings.models, &gw.public_base_url, &caller.token) });
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The caller's effective settings, from the resolver
async fn resolve(
    gw: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<v1::ResolveSettingsResponse, GatewayError> {
    let req = v1::ResolveSettingsRequest {
        identity: Some(v1::resolve_settings_request::Identity::Token(
            caller.token.clone(),
        )),
        project: header_text(headers, &PROJECT)
            .unwrap_or_default()
            .to_string(),
        folder: header_text(headers, &FOLDER)
            .unwrap_or_default()
            .to_string(),
        base_url: gw.public_base_url.clone(),
        candidate_models: gw.catalogues.ids(),
    };
    let mut client = gw.policy.clone();
    let deadline = Duration::from_millis(gw.cfg.decision_timeout_ms.max(1000));
    match tokio::time::timeout(deadline, client.resolve_settings(gw.grpc(req))).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => Err(GatewayError::InvalidApiKey),
        Ok(Err(s)) => Err(GatewayError::PolicyUnavailable(s.message().to_string())),
        Err(_) => Err(GatewayError::PolicyUnavailable(
            "no answer in time".to_string(),
        )),
    }
}

/// `GET /v1/models`: only what this user may use, in the shape the client speaks. With an id
/// (`GET /v1/models/{id}`), that model alone, or 404 when it is not one this user may use.
pub async fn models(
    gw: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
    anthropic: bool,
    id: Option<String>,
    pending: &mut Pending,
) -> Result<Response<Body>, GatewayError> {
    let settings = resolve(gw, caller, headers).await?;
    pending.set(|r| {
        r.decision = "allow".to_string();
        r.revision = settings.revision.clone();
    });
    let listed: Vec<(String, String)> = settings
        .models
        .iter()
        .filter(|m| m.key_mode == "central" || caller.byok)
        .map(|m| {
            let name = if m.display_name.is_empty() {
                &m.model
            } else {
                &m.display_name
            };
            (m.model.clone(), name.clone())
        })
        .collect();
    let object = |(id, name): &(String, String)| {
        if anthropic {
            serde_json::json!({"type": "model", "id": id, "display_name": name, "created_at": "1970-01-01T00:00:00Z"})
        } else {
            serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "strata"})
        }
    };
    let body = if let Some(id) = id {
        match listed.iter().find(|m| m.0 == id) {
            Some(m) => object(m),
            None => {
                pending.set(|r| {
                    r.model = id.clone();
                    r.decision = "deny".to_string();
                });
                return Err(GatewayError::ModelNotFound(id));
            }
        }
    } else if anthropic {
        let data: Vec<_> = listed.iter().map(object).collect();
        serde_json::json!({ "data": data, "has_more": false, "first_id": listed.first().map(|m| &m.0), "last_id": listed.last().map(|m| &m.0) })
    } else {
        let data: Vec<_> = listed.iter().map(object).collect();
        serde_json::json!({ "object": "list", "data": data })
    };
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&settings.revision) {
        r.headers_mut().insert("x-strata-revision", v);
    }
    Ok(r)
}
