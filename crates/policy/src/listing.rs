//! Model listings: the models a person may use in a scope, and the ones hidden from them with the
//! reason, each decided exactly as a request through the gateway would be. What `/v1/models`,
//! `policy explain settings`, `policy up`'s snippet and the org level Strata serves Droid list.

use serde::Serialize;

use crate::compile::Snapshot;
use crate::decide::{Effect, KeyMode, Request, ScopeRef, Target, decide};
use crate::matchers::model_id::canonical_str;
use crate::origin::Level;

/// One model the user may (or may not) use, for `explain settings` and model listings
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<crate::Provider>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// the environment variable a gateway reads this model's key from (an org entry's `${VAR}`
    /// `apiKey`, central key), as a decision's obligations name it
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_env: Option<String>,
    pub key_mode: KeyMode,
    /// the level that defines or lists it; `org` for a model known only from a catalogue
    pub level: Level,
    pub decision: Effect,
    pub reason: String,
}

/// Candidate models of a scope: every custom model, every literal entry of an allow list, then
/// every id of `catalogue` (ids the caller knows of, e.g. an upstream's model catalogue) that is
/// not one of those; each model once, by its canonical id
fn candidates<'s>(
    snap: &'s Snapshot,
    scope: &ScopeRef<'s>,
    catalogue: &[String],
) -> Vec<(
    String,
    Option<&'s crate::files::settings::CustomModel>,
    Level,
)> {
    type Cand<'a> = (
        String,
        Option<&'a crate::files::settings::CustomModel>,
        Level,
    );
    let mut out: Vec<Cand<'s>> = Vec::new();
    // one entry per model as the rules see it: `openai/gpt-4o` and `GPT-4o` are one model, listed
    // once (in the first spelling met, org first); a person's own model stays beside the org's
    let mut seen: Vec<(String, bool)> = Vec::new();
    let mut push = |m: &str, c: Option<&'s crate::files::settings::CustomModel>, l: Level| {
        let key = (
            canonical_str(m).into_owned(),
            c.is_some() && l == Level::User,
        );
        if !seen.contains(&key) {
            seen.push(key);
            out.push((m.to_string(), c, l));
        }
    };
    for l in scope.layers() {
        for c in &l.custom_models {
            push(&c.model, Some(c), l.level);
        }
        if l.level != Level::User
            && let Some(m) = &l.allowed
        {
            for lit in m.literals() {
                if !snap.org_policy.categories.iter().any(|(n, _)| n == lit) {
                    push(lit, None, l.level);
                }
            }
        }
    }
    for (_, cat) in &snap.org_policy.categories {
        for lit in cat.literals() {
            push(lit, None, Level::Org);
        }
    }
    for m in catalogue.iter().filter(|m| !m.trim().is_empty()) {
        push(m, None, Level::Org);
    }
    out
}

/// The models `base` (user, groups, project, folder) may use, and the ones hidden from them.
/// `via` is the gateway URL the traffic would go through: every model is then decided as a
/// gateway decides a request, with `via` as its base URL and gateway (a model's own `baseUrl`
/// is not where that traffic goes). Without it, each model is decided as a request that names
/// no base URL: the `customModels` entry that governs the model in this scope supplies it, as
/// it does for any such request (an entry of a layer whose additions do not count supplies
/// nothing, there or here).
///
/// The candidates are the models the scope names (custom models, exact allowlist and category
/// entries) and the ids of `catalogue` (what the caller knows exists, e.g. the upstreams' own
/// model lists), so that a model allowed only by a pattern (`claude-sonnet-4-*`) is listed once
/// someone knows of it. Every candidate is decided exactly as a request for it would be.
pub fn models(
    snap: &Snapshot,
    base: &Request,
    via: Option<&str>,
    catalogue: &[String],
) -> (Vec<ModelView>, Vec<ModelView>) {
    let scope = snap.scope(base);
    let mut shown = Vec::new();
    let mut hidden = Vec::new();
    for (model, custom, level) in candidates(snap, &scope, catalogue) {
        let key_mode = if level == Level::User && custom.is_some() {
            KeyMode::Byok
        } else {
            KeyMode::Central
        };
        // the entry a request for this model is decided with (and forwarded by)
        let found = scope.custom_entry(&model, key_mode);
        let entry = found.map(|(_, c)| c);
        let req = Request {
            target: Target::Model {
                model: model.clone(),
                provider: None,
                key_mode,
                base_url: via.map(str::to_string),
                mcp_servers: Vec::new(),
            },
            gateway: via.map(str::to_string).or_else(|| base.gateway.clone()),
            ..base.clone()
        };
        let d = decide(snap, &req);
        let view = ModelView {
            model,
            display_name: entry.and_then(|c| c.display_name.clone()),
            provider: entry.and_then(|c| c.provider),
            base_url: entry.and_then(|c| c.base_url.clone()),
            max_output_tokens: entry.and_then(|c| c.max_output_tokens),
            credential_env: found.and_then(|(l, c)| crate::decide::credential_env(l, c, key_mode)),
            key_mode,
            level,
            decision: d.effect,
            reason: d.reason,
        };
        if d.effect == Effect::Allow {
            shown.push(view)
        } else {
            hidden.push(view)
        }
    }
    (shown, hidden)
}
