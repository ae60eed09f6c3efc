//! Explanations: a decision with every rule considered, the merge diagnostics that touch the
//! request, and the effective settings of a scope with the provenance of every value.

use serde::Serialize;
use serde_json::Value;

use crate::compile::{CompiledLayer, Snapshot};
use crate::decide::{
    Decision, Determining, Effect, KeyMode, McpRef, Request, RuleEffect, ScopeRef, Target, decide,
};
use crate::origin::{Level, Origin};
use crate::problem::{Problem, Severity};
use crate::rules::{Field, RuleKey};

pub use crate::listing::{ModelView, models};

/// A rule that was evaluated but did not determine the decision
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Considered {
    pub rule: String,
    pub level: Level,
    pub effect: RuleEffect,
    pub file: Option<String>,
    pub pointer: Option<String>,
    pub line: Option<u32>,
}

/// `policy explain model|mcp`: stable JSON shape, read by other tools
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub decision: Effect,
    pub request: Request,
    pub reason: String,
    /// the model id the rules compared, when it differs from the one asked about
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_model: Option<String>,
    pub determined_by: Vec<Determining>,
    /// the restrictions an allowed request passed, each with the entry that admitted it
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admitted_by: Vec<Determining>,
    pub considered: Vec<Considered>,
    /// for an MCP server: what Droid itself does, by its own rule (it decides which servers it
    /// starts); absent when no level in scope enables `mcpPolicy`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub droid: Option<crate::droid::DroidMcpVerdict>,
    /// for a model of Droid's catalogue: whether Droid refuses it locally under the org level
    /// Strata serves this person (absent for other ids: Droid's id lists never govern them)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub droid_model: Option<crate::droid::DroidModelVerdict>,
    pub diagnostics: Vec<Problem>,
    pub obligations: crate::decide::Obligations,
    pub revision: String,
    /// Cedar evaluation errors (a forbid that errored counts as a deny)
    pub errors: Vec<String>,
}

/// Where a base rule's field sits in this scope, if it is defined there
fn field_origin(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    req: &Request,
    key: RuleKey,
) -> Option<Origin> {
    let mut at = scope.layers().filter(|l| l.level == key.level);
    let op = &snap.org_policy;
    match key.field {
        Field::Blocked => at.find_map(|l| l.blocked.as_ref().map(|m| m.origin.clone())),
        Field::Allowed | Field::UserAllowlist => {
            at.find_map(|l| l.allowed.as_ref().map(|m| m.origin.clone()))
        }
        Field::CustomModels => at.find_map(|l| l.custom_models.first().map(|c| c.origin.clone())),
        Field::AllowCustomModels => {
            at.find_map(|l| l.allow_custom_models.as_ref().map(|b| b.origin.clone()))
        }
        Field::AllowedBaseUrls => {
            at.find_map(|l| l.allowed_base_urls.as_ref().map(|m| m.origin.clone()))
        }
        Field::McpAllowlist => at.find_map(|l| {
            l.mcp_allowlist
                .as_ref()
                .map(|m| m.origin.clone())
                .or_else(|| l.mcp_enabled.as_ref().map(|b| b.origin.clone()))
        }),
        Field::McpDisabled => at.find_map(|l| {
            l.mcp_servers
                .values()
                .find(|s| s.disabled.is_some())
                .map(|s| s.origin.clone())
        }),
        Field::UserPolicyBlocked => scope
            .org
            .user_policies
            .get(&req.user)
            .and_then(|p| p.blocked.as_ref())
            .map(|m| m.origin.clone()),
        Field::UserPolicyAllowed => scope
            .org
            .user_policies
            .get(&req.user)
            .and_then(|p| p.allowed.as_ref())
            .map(|m| m.origin.clone()),
        Field::GatewayRequired => op.gateway_required.as_ref().map(|m| m.origin.clone()),
        Field::ByokProviders => op.byok_providers.as_ref().map(|p| p.origin.clone()),
        Field::ByokBaseUrls => op.byok_base_urls.as_ref().map(|m| m.origin.clone()),
        Field::McpBlocklist => op.mcp_blocklist.as_ref().map(|m| m.origin.clone()),
        Field::McpExecEnv => op.mcp_exec_env_deny.clone(),
        Field::NoAllowlist | Field::McpDefault | Field::ByokDefault => None,
    }
}

/// Decide `req` and say everything about how
// Longer than a screen: it gathers every part of an `Explanation` (the decision, the rules
// considered with their origins, the diagnostics that name the request, Droid's own verdict) from
// one decision and one scope; each part is a short block over the same locals.
pub fn explain(snap: &Snapshot, req: &Request) -> Explanation {
    let decision = decide(snap, req);
    let scope = snap.scope(req);
    let set = match &req.target {
        Target::Model {
            key_mode: KeyMode::Central,
            ..
        } => &scope.sets.invoke_model,
        Target::Model {
            key_mode: KeyMode::Byok,
            ..
        } => &scope.sets.use_byok,
        Target::Mcp { .. } => &scope.sets.connect_mcp,
    };
    let mut considered = Vec::new();
    for p in set.policies() {
        let id = p.id().to_string();
        if decision.determined_by.iter().any(|d| d.rule == id) {
            continue;
        }
        let Some(info) = snap.rule(p.id()) else {
            continue;
        };
        let origin = match (info.key, &info.hand) {
            (Some(key), _) => field_origin(snap, &scope, req, key),
            (None, hand) => hand.clone(),
        };
        considered.push(Considered {
            rule: id,
            level: info.level,
            effect: info.effect.into(),
            file: origin.as_ref().map(|o| o.file.to_string()),
            pointer: origin.as_ref().map(|o| o.pointer.clone()),
            line: origin.as_ref().map(|o| o.line),
        });
    }
    considered.sort_by(|a, b| (a.level, &a.rule).cmp(&(b.level, &b.rule)));
    let names: Vec<String> = match &req.target {
        Target::Model {
            model, mcp_servers, ..
        } => std::iter::once(model.clone())
            .chain(mcp_servers.iter().map(McpRef::label))
            .collect(),
        Target::Mcp { server } => vec![server.label()],
    };
    let diagnostics = snap
        .diagnostics()
        .iter()
        .filter(|p| {
            p.severity == Severity::Error
                || names.iter().any(|n| p.message.contains(&format!("`{n}`")))
                || p.code == "merge.projects_may_not_add"
        })
        .cloned()
        .collect();
    // the gateway Droid is pointed at: the request's, else the base URL its traffic goes to
    let via = req.gateway.as_deref().or(match &req.target {
        Target::Model { base_url, .. } => base_url.as_deref(),
        Target::Mcp { .. } => None,
    });
    let served = crate::droid::org::OrgRequest {
        user: &req.user,
        groups: &req.groups,
        token_projects: req.token_projects.as_deref(),
        gateway_url: via.unwrap_or_default(),
    };
    let (droid, droid_model) = match &req.target {
        Target::Mcp { server } => {
            let facts = crate::facts::mcp_facts(snap, &scope, server);
            let list = crate::droid::org::droid_mcp_allowlist(snap, &served);
            let v = facts
                .target()
                .and_then(|t| crate::droid::mcp_verdict(&scope, &t, list.as_deref()));
            (v, None)
        }
        Target::Model { model, .. } => {
            let id = decision.canonical_model.as_deref().unwrap_or(model);
            let v = crate::droid::org::droid_allows_model(snap, &served, id).map(|ok| {
                let why = if !crate::droid::org::gateway_carries(id) {
                    "Droid sends this model to Google's own API, which the gateway does not carry: the org level blocks it"
                } else if ok {
                    "a scope this person may be in allows it through the gateway"
                } else {
                    "no scope this person may be in allows it through the gateway: the org level blocks it"
                };
                crate::droid::DroidModelVerdict {
                    refuses: !ok,
                    why: why.to_string(),
                }
            });
            (None, v)
        }
    };
    let Decision {
        effect,
        determined_by,
        reason,
        canonical_model,
        admitted_by,
        obligations,
        revision,
        errors,
    } = decision;
    Explanation {
        decision: effect,
        request: req.clone(),
        reason,
        canonical_model,
        determined_by,
        admitted_by,
        considered,
        droid,
        droid_model,
        diagnostics,
        obligations,
        revision: revision.to_string(),
        errors,
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedView {
    pub name: String,
    pub level: Level,
    pub file: String,
    pub line: u32,
    pub decision: Effect,
    pub reason: String,
}

/// `policy explain settings`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSettings {
    pub user: String,
    pub project: Option<String>,
    pub revision: String,
    /// the merged settings; every leaf is `{value, level, file, pointer, line}`
    pub settings: Value,
    /// models this user may use
    pub models: Vec<ModelView>,
    /// models named in scope (or in the catalogue asked about) that this user may not use, with
    /// the reason
    pub hidden_models: Vec<ModelView>,
    pub mcp_servers: Vec<NamedView>,
    pub droids: Vec<NamedView>,
    pub commands: Vec<NamedView>,
    pub diagnostics: Vec<Problem>,
}

fn named(name: &str, o: &Origin, d: &Decision) -> NamedView {
    NamedView {
        name: name.to_string(),
        level: o.level,
        file: o.file.to_string(),
        line: o.line,
        decision: d.effect,
        reason: d.reason.clone(),
    }
}

/// The effective settings of `base`'s scope; `catalogue` as for [`models`]
// Longer than a screen: the parts of the effective settings (models, MCP servers, droids and
// commands, each decided as the gateway would) assembled from one scope and one merged view.
pub fn effective_settings(
    snap: &Snapshot,
    base: &Request,
    via: Option<&str>,
    catalogue: &[String],
) -> EffectiveSettings {
    let scope = snap.scope(base);
    let view = crate::merge::view(scope.layers());
    let (models, hidden_models) = models(snap, base, via, catalogue);

    let mut mcp_servers = Vec::new();
    let mut seen = Vec::new();
    for l in scope.layers() {
        for (name, s) in &l.mcp_servers {
            if seen.contains(name) || s.toggle_only {
                continue;
            }
            seen.push(name.clone());
            let req = Request {
                target: Target::Mcp {
                    server: McpRef {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                },
                ..base.clone()
            };
            mcp_servers.push(named(name, &s.origin, &decide(snap, &req)));
        }
    }
    let artifacts = |pick: fn(&CompiledLayer) -> &Vec<crate::files::markdown::Artifact>| {
        let mut out = Vec::new();
        for l in scope.layers() {
            for a in pick(l) {
                let d = match &a.model {
                    Some(m) => {
                        let mut d = decide(
                            snap,
                            &Request {
                                target: Target::Model {
                                    model: m.clone(),
                                    provider: None,
                                    key_mode: KeyMode::Central,
                                    base_url: via.map(str::to_string),
                                    mcp_servers: Vec::new(),
                                },
                                ..base.clone()
                            },
                        );
                        if !d.allowed() {
                            d.reason = format!(
                                "pinned to a model this user may not use, so it falls back to its parent's model ({})",
                                d.reason
                            );
                            d.effect = Effect::Allow;
                        } else {
                            d.reason = format!("runs on `{m}`");
                        }
                        d
                    }
                    None => Decision {
                        effect: Effect::Allow,
                        determined_by: Vec::new(),
                        reason: "runs on its parent's model".to_string(),
                        canonical_model: None,
                        admitted_by: Vec::new(),
                        obligations: Default::default(),
                        revision: snap.revision.clone(),
                        errors: Vec::new(),
                    },
                };
                out.push(named(&a.name, &a.origin, &d));
            }
        }
        out
    };
    let droids = artifacts(|l| &l.droids);
    let commands = artifacts(|l| &l.commands);
    let mut diagnostics = view.diagnostics;
    diagnostics.extend(snap.diagnostics().iter().cloned());
    EffectiveSettings {
        user: base.user.clone(),
        project: base.project.clone(),
        revision: snap.revision.to_string(),
        settings: view.settings,
        models,
        hidden_models,
        mcp_servers,
        droids,
        commands,
        diagnostics,
    }
}
