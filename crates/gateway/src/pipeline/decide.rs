//! Stage 3: ask the resolver for a decision, within the decision deadline. No answer, a
//! resolver error or a late answer refuses the request (fail closed).

use std::time::Duration;

use axum::http::HeaderMap;
use strata_proto::v1;

use super::authenticate::Caller;
use super::{FOLDER, PROJECT, allowed, header_text};
use crate::api::Api;
use crate::audit::{self, Pending};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::peek::Peeked;

/// The resolver's decision on a request, noted in its audit record (allow or deny, the rules
/// that decided, the revision, the user, how long it took)
pub async fn decide(
    gw: &Gateway,
    api: Api,
    caller: &Caller,
    headers: &HeaderMap,
    peeked: Peeked,
    pending: &mut Pending,
) -> Result<v1::DecideResponse, GatewayError> {
    let asked = ask(gw, request(gw, api, caller, headers, peeked)).await;
    let decision_ms = audit::ms(pending.elapsed());
    pending.set(|r| r.decision_ms = decision_ms);
    let decision = asked?;
    pending.set(|r| {
        r.decision_id = decision.decision_id.clone();
        r.user = decision
            .principal
            .as_ref()
            .map(|p| p.user.clone())
            .unwrap_or_default();
        r.rules = decision
            .determined_by
            .iter()
            .map(|r| r.rule.clone())
            .collect();
        r.revision = decision.revision.clone();
        r.decision = if allowed(&decision) { "allow" } else { "deny" }.to_string();
    });
    Ok(decision)
}

/// A deny becomes a refusal naming the rule and the decision
pub fn enforce(decision: &v1::DecideResponse) -> Result<(), GatewayError> {
    if allowed(decision) {
        return Ok(());
    }
    Err(GatewayError::PolicyDenied {
        reason: decision.reason.clone(),
        decision_id: decision.decision_id.clone(),
    })
}

/// What the resolver is asked: the token, the scope, the model and the MCP servers
fn request(
    gw: &Gateway,
    api: Api,
    caller: &Caller,
    headers: &HeaderMap,
    peeked: Peeked,
) -> v1::DecideRequest {
    v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Token(caller.token.clone())),
        project: header_text(headers, &PROJECT)
            .unwrap_or_default()
            .to_string(),
        folder: header_text(headers, &FOLDER)
            .unwrap_or_default()
            .to_string(),
        gateway: gw.public_base_url.clone(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: peeked.model,
            provider: api.provider().to_string(),
            key_mode: if caller.byok {
                v1::KeyMode::Byok as i32
            } else {
                v1::KeyMode::Central as i32
            },
            base_url: gw.public_base_url.clone(),
            mcp_servers: peeked
                .mcp_servers
                .into_iter()
                .map(|m| v1::McpServerRef {
                    name: m.name,
                    url: m.url,
                    ..Default::default()
                })
                .collect(),
        })),
    }
}

/// The decider's answer within the deadline; a resolver's refusal mapped to the gateway's
async fn ask(gw: &Gateway, req: v1::DecideRequest) -> Result<v1::DecideResponse, GatewayError> {
    let deadline = Duration::from_millis(gw.cfg.decision_timeout_ms);
    match tokio::time::timeout(deadline, gw.decider.decide(req)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(s)) => Err(from_status(&s)),
        Err(_) => Err(GatewayError::PolicyUnavailable(format!(
            "no decision within {} ms",
            gw.cfg.decision_timeout_ms
        ))),
    }
}

/// A resolver's gRPC status as the gateway's refusal
pub fn from_status(s: &tonic::Status) -> GatewayError {
    match s.code() {
        tonic::Code::Unauthenticated => GatewayError::InvalidApiKey,
        tonic::Code::InvalidArgument => GatewayError::InvalidRequest(s.message().to_string()),
        _ => GatewayError::PolicyUnavailable(s.message().to_string()),
    }
}
