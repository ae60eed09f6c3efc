//! From the rules that fired to a [`Decision`]: each determining rule mapped back to the layer,
//! file, JSON pointer and line it came from, and the one sentence that says why.

use crate::compile::{Matcher, Snapshot};
use crate::compiled::UrlList;
use crate::decision::KeyMode;
use crate::decision::{Decision, Determining, Effect, McpRef, Obligations, Request, RuleEffect};
use crate::eval::native::Outcome;
use crate::facts::{McpFacts, ModelFacts};
use crate::origin::{Level, Origin, Spanned};
use crate::rules::{Field, RuleKey};
use crate::scope::ScopeRef;
use cedar_policy::PolicyId;

/// What a base rule says about this request: (origin, matched entry, reason)
pub type Provenance = (Option<Origin>, Option<String>, String);

pub(crate) fn finish(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    req: &Request,
    out: Outcome,
    what: &str,
    prov: impl Fn(RuleKey) -> Provenance,
) -> Decision {
    let _ = (scope, req);
    let determined_by: Vec<Determining> = out
        .reasons
        .iter()
        .filter_map(|id| determining(snap, id, &prov))
        .collect();
    let reason = match (out.effect, determined_by.first()) {
        (Effect::Allow, Some(d)) => format!("{what} is allowed: {}", d.reason),
        (Effect::Allow, None) => format!("{what} is allowed"),
        (Effect::Deny, Some(d)) => format!(
            "{what} is denied: {} (rule `{}`, {})",
            d.reason,
            d.rule,
            where_(d)
        ),
        (Effect::Deny, None) => {
            format!("{what} is denied: no rule permits it (it is not in any allowed list in scope)")
        }
    };
    Decision {
        effect: out.effect,
        determined_by,
        reason,
        canonical_model: None,
        admitted_by: Vec::new(),
        obligations: Obligations::default(),
        revision: snap.revision.clone(),
        errors: out.errors,
    }
}

fn where_(d: &Determining) -> String {
    match (&d.file, d.line) {
        (Some(f), Some(l)) if l > 0 => format!("{} {f}:{l}", d.level),
        (Some(f), _) => format!("{} {f}", d.level),
        _ => d.level.to_string(),
    }
}

pub(crate) fn determining(
    snap: &Snapshot,
    id: &PolicyId,
    prov: &impl Fn(RuleKey) -> Provenance,
) -> Option<Determining> {
    let info = snap.rule(id)?;
    let (origin, matched, reason) = match (info.key, &info.hand) {
        (Some(key), _) => prov(key),
        (None, Some(o)) => (
            Some(o.clone()),
            None,
            format!(
                "hand-written {} rule",
                RuleEffect::from(info.effect).as_str()
            ),
        ),
        (None, None) => (None, None, String::new()),
    };
    Some(Determining {
        rule: info.name.clone(),
        level: info.level,
        file: origin.as_ref().map(|o| o.file.to_string()),
        pointer: origin.as_ref().map(|o| o.pointer.clone()),
        line: origin.as_ref().map(|o| o.line),
        effect: info.effect.into(),
        matched,
        reason,
        enforced_by: info
            .key
            .map(RuleKey::enforced_by)
            .unwrap_or_else(|| crate::rules::enforced_by(&info.name)),
    })
}

impl RuleEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleEffect::Permit => "permit",
            RuleEffect::Forbid => "forbid",
        }
    }
}

fn list_hit(m: Option<&Matcher>, s: &str, verb: &str, field: &str) -> Option<Provenance> {
    let m = m?;
    let e = m.first_match(s)?;
    let how = if e.value.eq_ignore_ascii_case(s) {
        String::new()
    } else {
        format!(" (matches `{}`)", e.value)
    };
    Some((
        Some(e.origin.clone()),
        Some(e.value.clone()),
        format!("`{s}` is {verb} by {field}{how}"),
    ))
}

/// Where a base rule's field is in this request's scope, and what it says
pub(crate) fn model_provenance(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    req: &Request,
    key: RuleKey,
    model: &str,
    f: &ModelFacts<'_>,
) -> Provenance {
    let name = key.field.name(key.level);
    let mut layers = scope.at(key.level);
    let none = || (None, None, format!("{} says nothing here", key));
    match key.field {
        Field::Blocked => layers.find_map(|l| list_hit(l.blocked.as_ref(), model, "blocked", name)).unwrap_or_else(none),
        Field::Allowed => layers.find_map(|l| list_hit(l.allowed.as_ref(), model, "allowed", name)).unwrap_or_else(none),
        Field::CustomModels => layers
            .find_map(|l| l.custom_model(model))
            .map(|c| (Some(c.origin.clone()), Some(c.model.clone()), format!("`{model}` is a custom model of the {} layer", key.level)))
            .unwrap_or_else(none),
        Field::NoAllowlist => (None, None, "the org sets no `modelPolicy.allowedModelIds`, so every model it does not ban is allowed".to_string()),
        Field::ByokDefault => (None, None, format!("`{model}` is in no allowed list, so it counts as the person's own model: with their own key it is governed by the BYOK restrictions alone")),
        Field::UserPolicyBlocked | Field::UserPolicyAllowed => {
            let p = scope.org.user_policies.get(&req.user);
            if key.field == Field::UserPolicyBlocked {
                p.and_then(|p| list_hit(p.blocked.as_ref(), model, "blocked for this user", name)).unwrap_or_else(none)
            } else {
                p.and_then(|p| p.allowed.as_ref())
                    .map(|m| (Some(m.origin.clone()), None, format!("`{model}` is not in userModelPolicies[`{}`].allowedModelIds", req.user)))
                    .unwrap_or_else(none)
            }
        }
        Field::UserAllowlist => layers
            .find_map(|l| l.allowed.as_ref())
            .map(|m| (Some(m.origin.clone()), None, format!("`{model}` is not in the user's own allowedModelIds")))
            .unwrap_or_else(none),
        Field::AllowCustomModels => layers
            .find_map(|l| l.allow_custom_models.as_ref().filter(|b| !b.value))
            .map(|b| (Some(b.origin.clone()), None, format!("the {} layer sets `allowCustomModels` to false: personal keys (BYOK) are not allowed", key.level)))
            .unwrap_or_else(none),
        Field::AllowedBaseUrls => layers
            .find_map(|l| l.allowed_base_urls.as_ref())
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f, "allowedBaseUrls")))
            .unwrap_or_else(none),
        Field::ByokProviders => snap
            .org_policy
            .byok_providers
            .as_ref()
            .map(|p| {
                let listed = p.value.iter().map(|x| format!("`{}`", x.value)).collect::<Vec<_>>().join(", ");
                let got = f.provider.map(|p| format!("provider `{p}`")).unwrap_or_else(|| "an unknown provider".to_string());
                (Some(p.origin.clone()), f.provider.map(|p| p.to_string()), format!("personal keys may target only {listed}, not {got}"))
            })
            .unwrap_or_else(none),
        Field::ByokBaseUrls => snap
            .org_policy
            .byok_base_urls
            .as_ref()
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f, "policy.json byok.allowedBaseUrls")))
            .unwrap_or_else(none),
        Field::GatewayRequired => snap
            .org_policy
            .gateway_required
            .as_ref()
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f, "the org's required gateways (policy.json gateway.requiredBaseUrls)")))
            .unwrap_or_else(none),
        Field::McpDefault
        | Field::McpBlocklist
        | Field::McpExecEnv
        | Field::McpAllowlist
        | Field::McpDisabled => none(),
    }
}

fn url_reason(f: &ModelFacts<'_>, list: &str) -> String {
    match (f.base_url.as_deref(), f.parsed_base_url()) {
        (Some(u), Some(Err(e))) => format!(
            "base URL `{u}` is refused ({e}), so it is in no URL list; {list} cannot admit it"
        ),
        (Some(u), _) => format!("base URL `{u}` is not in {list}"),
        (None, _) => format!("the base URL is unknown, so it cannot be shown to be in {list}"),
    }
}

pub(crate) fn mcp_provenance(
    scope: &ScopeRef<'_>,
    snap: &Snapshot,
    key: RuleKey,
    server: &McpRef,
    f: &McpFacts<'_>,
) -> Provenance {
    let label = server.label();
    let target = match (&f.host, f.command_line()) {
        (Some(h), _) => format!("host `{h}`"),
        (None, Some(c)) => format!("command `{c}`"),
        (None, None) => "an unknown host and command".to_string(),
    };
    let server_target = f.target();
    let none = || (None, None, format!("{key} says nothing here"));
    match key.field {
        Field::McpDefault => (None, None, format!("MCP server `{label}` is usable unless a rule forbids it")),
        Field::McpBlocklist => snap
            .org_policy
            .mcp_blocklist
            .as_ref()
            .and_then(|m| {
                let e = server_target.as_ref().and_then(|t| m.first_match(t))?;
                Some((Some(e.origin.clone()), Some(e.value.clone()), format!("{target} matches `{}` in the org's mcpBlocklist", e.value)))
            })
            .unwrap_or_else(none),
        Field::McpExecEnv => f
            .definition
            .and_then(|d| d.exec_env().map(|(e, why)| (d, e, why)))
            .map(|(d, e, why)| {
                let deny = snap.org_policy.mcp_exec_env_deny.clone();
                (deny.or(Some(e.origin.clone())), Some(e.value.clone()), format!("`{label}` is a stdio server defined by the {} at {}:{} whose env sets `{}` ({why}); the org's policy.json `mcpExecEnv` denies that", d.origin.level, e.origin.file, e.origin.line, e.value))
            })
            .unwrap_or_else(none),
        Field::McpAllowlist => scope
            .at(key.level)
            .find(|l| l.mcp_enabled.as_ref().is_some_and(|b| b.value))
            .map(|l| {
                let origin = l.mcp_allowlist.as_ref().map(|m| m.origin.clone()).or_else(|| l.mcp_enabled.as_ref().map(|b| b.origin.clone()));
                let why = match &l.mcp_allowlist {
                    Some(m) if !m.entries.is_empty() => format!("{target} is not in the {} layer's mcpPolicy.allowlist", key.level),
                    _ => format!("the {} layer enables mcpPolicy with an empty allowlist, which blocks every server", key.level),
                };
                (origin, None, why)
            })
            .unwrap_or_else(none),
        Field::McpDisabled => server
            .name
            .as_deref()
            .and_then(|n| scope.mcp_disabled(n))
            .map(|(level, s)| (Some(s.origin.clone()), None, format!("`{label}` is disabled in the {level} layer's mcp.json")))
            .unwrap_or_else(none),
        _ => none(),
    }
}

/// A restriction an allowed request passed, with the entry that admitted it
fn admission(key: RuleKey, entry: &Spanned<String>, reason: String) -> Determining {
    Determining {
        rule: key.id(),
        level: key.level,
        file: Some(entry.origin.file.to_string()),
        pointer: Some(entry.origin.pointer.clone()),
        line: Some(entry.origin.line),
        effect: RuleEffect::Forbid,
        matched: Some(entry.value.clone()),
        reason,
        enforced_by: key.enforced_by(),
    }
}

/// The base-URL lists an allowed model request passed (per level with BYOK, and the org's
/// gateway requirement), each with its entry
pub(crate) fn model_admissions(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    key_mode: KeyMode,
    f: &ModelFacts<'_>,
) -> Vec<Determining> {
    let (Some(u), Some(Ok(parsed))) = (f.base_url.as_deref(), f.parsed_base_url()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut passed = |key: RuleKey, list: Option<&UrlList>, what: &str| {
        if let Some(e) = list.and_then(|l| l.first_match(parsed)) {
            out.push(admission(
                key,
                e,
                format!("base URL `{u}` is admitted by `{}` in {what}", e.value),
            ));
        }
    };
    if key_mode == KeyMode::Byok {
        for l in scope.layers() {
            passed(
                RuleKey::new(l.level, Field::AllowedBaseUrls),
                l.allowed_base_urls.as_ref(),
                &format!("the {} layer's allowedBaseUrls", l.level),
            );
        }
        passed(
            RuleKey::new(Level::Org, Field::ByokBaseUrls),
            snap.org_policy.byok_base_urls.as_ref(),
            "policy.json byok.allowedBaseUrls",
        );
    }
    passed(
        RuleKey::new(Level::Org, Field::GatewayRequired),
        snap.org_policy.gateway_required.as_ref(),
        "the org's required gateways",
    );
    out
}

/// The MCP allowlists an allowed server passed, each with the entry that admitted it
pub(crate) fn mcp_admissions(scope: &ScopeRef<'_>, f: &McpFacts<'_>) -> Vec<Determining> {
    let Some(target) = f.target() else {
        return Vec::new();
    };
    let what = match (&f.host, f.command_line()) {
        (Some(h), _) => format!("host `{h}`"),
        (None, Some(c)) => format!("command `{c}`"),
        (None, None) => String::new(),
    };
    scope
        .layers()
        .filter(|l| l.mcp_enabled.as_ref().is_some_and(|b| b.value))
        .filter_map(|l| {
            let e = l.mcp_allowlist.as_ref()?.first_match(&target)?;
            Some(admission(
                RuleKey::new(l.level, Field::McpAllowlist),
                e,
                format!(
                    "{what} is admitted by `{}` in the {} layer's mcpPolicy.allowlist",
                    e.value, l.level
                ),
            ))
        })
        .collect()
}
