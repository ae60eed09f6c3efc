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
use crate::peek::{OutputLimits, Peeked};

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
        if !decision.canonical_model.is_empty() {
            r.canonical_model = Some(decision.canonical_model.clone());
        }
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

/// A body that asks for more output tokens than the obligations' `max_output_tokens` (the
/// model's `maxOutputTokens`) is refused, naming the cap and the rule that set it. It is refused
/// rather than clamped: the body goes upstream as the bytes it arrived in. A body that asks for
/// no limit goes as it is.
/// Whether the caller's token loaded Droid's org level from this gateway: counted (and marked in
/// the audit) when it never did, refused when the org requires it
pub fn org_level(
    gw: &Gateway,
    caller: &Caller,
    decision: &v1::DecideResponse,
    pending: &mut Pending,
) -> Result<(), GatewayError> {
    let loaded = gw
        .org_fetches
        .last(&crate::org_fetches::token_hash(&caller.token))
        .is_some();
    pending.set(|r| r.org_settings_loaded = Some(loaded));
    if loaded {
        return Ok(());
    }
    gw.telemetry.metrics.without_org_settings();
    if decision
        .obligations
        .as_ref()
        .is_some_and(|o| o.require_org_settings)
    {
        return Err(GatewayError::OrgSettingsNotLoaded {
            gateway: gw.public_base_url.clone(),
        });
    }
    Ok(())
}

pub fn cap(
    decision: &v1::DecideResponse,
    api: Api,
    limits: OutputLimits,
    model: &str,
) -> Result<(), GatewayError> {
    let Some(cap) = decision
        .obligations
        .as_ref()
        .map(|o| o.max_output_tokens)
        .filter(|&c| c > 0)
    else {
        return Ok(());
    };
    match limits.asked(api) {
        Some((field, asked)) if asked > cap => Err(GatewayError::MaxTokensExceeded {
            field,
            asked,
            cap,
            model: model.to_string(),
            rule: cap_rule(decision),
        }),
        _ => Ok(()),
    }
}

/// The rule that set a model's output cap: its `customModels` entry, among the rules that
/// allowed it, with file, line and the key
fn cap_rule(decision: &v1::DecideResponse) -> String {
    let Some(r) = decision
        .determined_by
        .iter()
        .find(|r| r.rule.ends_with("#customModels"))
    else {
        return "the model's customModels entry (maxOutputTokens)".to_string();
    };
    let mut s = format!("`{}`", r.rule);
    if !r.file.is_empty() {
        s.push_str(&format!(" ({}", r.file));
        if r.line > 0 {
            s.push_str(&format!(":{}", r.line));
        }
        if !r.pointer.is_empty() {
            s.push_str(&format!(", {}/maxOutputTokens", r.pointer));
        }
        s.push(')');
    }
    s
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
