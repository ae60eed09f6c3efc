//! `settings.json`, `settings.local.json` and the legacy `config.json`, read as Droid reads them:
//! fields Strata does not govern are ignored; fields it governs must have the right type.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::json::{Doc, Reader, child};
use crate::origin::Level;
use crate::origin::{Origin, Spanned};
use crate::problem::{Problems, Severity};

/// The three wire APIs Droid speaks
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Provider {
    #[serde(rename = "anthropic")]
    Anthropic,
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "generic-chat-completion-api")]
    GenericChatCompletion,
}

impl Provider {
    pub const ALL: [Provider; 3] = [
        Provider::Anthropic,
        Provider::OpenAi,
        Provider::GenericChatCompletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::GenericChatCompletion => "generic-chat-completion-api",
        }
    }

    /// Provider values Droid's own schema accepts (0.225.2: `tests/droid/`) that are not an API
    /// the gateway speaks: accepted with a warning, never routed
    pub const DROID_ONLY: [&'static str; 5] =
        ["factory", "google", "xai", "voyage", "bedrock-converse"];

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The message for a value that is not one of the three
    pub fn invalid_message(got: &str) -> String {
        format!(
            "invalid provider `{got}`: expected one of `anthropic` (Messages API), `openai` (Responses API), `generic-chat-completion-api` (Chat Completions API)"
        )
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as configured; the clear value is never kept
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ApiKey {
    /// `${VAR}`: read from the environment at use
    Env { var: String },
    /// a literal key; only a masked hint is kept
    Literal { hint: String },
}

impl ApiKey {
    pub fn mask(key: &str) -> String {
        let n = key.chars().count();
        if n <= 8 {
            return "****".to_string();
        }
        let tail: String = key.chars().skip(n - 4).collect();
        format!("…{tail}")
    }
}

/// One `customModels` entry
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomModel {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    pub origin: Origin,
}

/// A list of strings from one file, with the list's own origin and each entry's
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct List {
    pub origin: Origin,
    pub entries: Vec<Spanned<String>>,
}

impl List {
    pub(crate) fn read(
        r: &mut Reader<'_>,
        m: &Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<List> {
        let (items, pointer) = r.field_strings(m, key, base)?;
        let doc = r.doc;
        Some(List {
            origin: doc.origin(&pointer),
            entries: items
                .into_iter()
                .map(|(s, p)| Spanned::new(s, doc.origin(&p)))
                .collect(),
        })
    }

    /// `self` followed by the entries of `other` it does not already have (same level: union)
    fn union(self, other: List) -> List {
        let mut out = self;
        for e in other.entries {
            if !out.entries.iter().any(|x| x.value == e.value) {
                out.entries.push(e);
            }
        }
        out
    }
}

fn union_opt(a: Option<List>, b: Option<List>) -> Option<List> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPolicy {
    pub allowed_model_ids: Option<List>,
    pub blocked_model_ids: Option<List>,
    pub allow_custom_models: Option<Spanned<bool>>,
    pub allowed_base_urls: Option<List>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserModelPolicy {
    pub allowed_model_ids: Option<List>,
    pub blocked_model_ids: Option<List>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct McpPolicy {
    pub enabled: Option<Spanned<bool>>,
    pub allowlist: Option<List>,
}

/// The governed part of one level's settings (`settings.local.json` over `settings.json` over
/// `config.json`)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub model_policy: ModelPolicy,
    pub user_model_policies: BTreeMap<String, UserModelPolicy>,
    pub mcp_policy: McpPolicy,
    pub custom_models: Vec<CustomModel>,
}

/// The keys of `modelPolicy` (and of each `userModelPolicies` entry) that Factory's org schema
/// accepts; anything else is a typo, an error in the org layer and a warning below
pub const MODEL_POLICY_KEYS: &[&str] = &[
    "allowedModelIds",
    "blockedModelIds",
    "allowCustomModels",
    "allowedBaseUrls",
    "allowAllFactoryModels",
    "isFastModelsAllowed",
    "requireExplicitOptInModelIds",
    "allowFactoryRouterByok",
    "factoryRouterByokOnly",
];

/// The keys of `mcpPolicy`
pub const MCP_POLICY_KEYS: &[&str] = &["enabled", "allowlist"];

/// Unknown governed keys: the org's policy would silently be absent, so there it is an error
fn governed_severity(doc: &Doc) -> Severity {
    if doc.level == Level::Org {
        Severity::Error
    } else {
        Severity::Warning
    }
}

/// Looks up environment variables for `${VAR}` expansion
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    /// Read a `settings.json` or `settings.local.json`
    pub fn read(doc: &Doc, env: EnvLookup<'_>, problems: &mut Problems) -> Settings {
        let mut r = Reader::new(doc, problems);
        let mut out = Settings::default();
        let Some(root) = r.root() else { return out };
        let severity = governed_severity(doc);
        if let Some(mp) = r.field_object(root, "modelPolicy", "") {
            let base = "/modelPolicy";
            r.check_keys(mp, base, MODEL_POLICY_KEYS, severity);
            out.model_policy = ModelPolicy {
                allowed_model_ids: List::read(&mut r, mp, "allowedModelIds", base),
                blocked_model_ids: List::read(&mut r, mp, "blockedModelIds", base),
                allow_custom_models: r
                    .field_bool(mp, "allowCustomModels", base)
                    .map(|(b, p)| Spanned::new(b, doc.origin(&p))),
                allowed_base_urls: List::read(&mut r, mp, "allowedBaseUrls", base),
            };
        }
        if let Some(ump) = r.field_object(root, "userModelPolicies", "") {
            for (user, v) in ump {
                let base = child("/userModelPolicies", user);
                if let Some(m) = r.object(v, &base) {
                    r.check_keys(m, &base, MODEL_POLICY_KEYS, severity);
                    out.user_model_policies.insert(
                        user.clone(),
                        UserModelPolicy {
                            allowed_model_ids: List::read(&mut r, m, "allowedModelIds", &base),
                            blocked_model_ids: List::read(&mut r, m, "blockedModelIds", &base),
                        },
                    );
                }
            }
        }
        if let Some(mcp) = r.field_object(root, "mcpPolicy", "") {
            r.check_keys(mcp, "/mcpPolicy", MCP_POLICY_KEYS, severity);
            out.mcp_policy = McpPolicy {
                enabled: r
                    .field_bool(mcp, "enabled", "/mcpPolicy")
                    .map(|(b, p)| Spanned::new(b, doc.origin(&p))),
                allowlist: List::read(&mut r, mcp, "allowlist", "/mcpPolicy"),
            };
        }
        if let Some(v) = root.get("customModels") {
            out.custom_models = read_custom_models(&mut r, v, "/customModels", &CAMEL, Some(env));
        }
        out
    }

    /// A project's or folder's `settings.local.json` is git-ignored and never reviewed: it may
    /// restrict, but what would widen model access (`allowedModelIds` additions, `customModels`)
    /// is dropped, each with a warning
    pub fn without_widening(mut self, doc: &Doc, problems: &mut Problems) -> Settings {
        let note = |o: &Origin, what: String| {
            doc.problem(
                Severity::Warning,
                "merge.local_widening",
                &o.pointer,
                format!("{what} in a settings.local.json, which cannot widen model access; put it in settings.json"),
            )
        };
        for e in self
            .model_policy
            .allowed_model_ids
            .take()
            .into_iter()
            .flat_map(|l| l.entries)
        {
            problems.push(note(&e.origin, format!("`{}` is added", e.value)));
        }
        for m in std::mem::take(&mut self.custom_models) {
            problems.push(note(
                &m.origin,
                format!("custom model `{}` is defined", m.model),
            ));
        }
        self
    }

    /// Forget the governed values read under these top-level keys (the level's
    /// `settings.local.json` replaces them: [`crate::merge::local_replaces`])
    pub fn drop_keys(&mut self, keys: &[String]) {
        for k in keys {
            match k.as_str() {
                "modelPolicy" => self.model_policy = ModelPolicy::default(),
                "userModelPolicies" => self.user_model_policies.clear(),
                "mcpPolicy" => self.mcp_policy = McpPolicy::default(),
                "customModels" => self.custom_models.clear(),
                _ => {}
            }
        }
    }

    /// Read the legacy `config.json` (snake_case, no `${VAR}` expansion)
    pub fn read_legacy(doc: &Doc, problems: &mut Problems) -> Settings {
        let mut r = Reader::new(doc, problems);
        let mut out = Settings::default();
        let Some(root) = r.root() else { return out };
        if let Some(v) = root.get("custom_models") {
            out.custom_models = read_custom_models(&mut r, v, "/custom_models", &SNAKE, None);
        }
        out
    }

    /// Combine two files of the same level; `self` has priority
    pub fn overlay(self, lower: Settings) -> Settings {
        let mut user_model_policies = lower.user_model_policies;
        for (user, p) in self.user_model_policies {
            let merged = match user_model_policies.remove(&user) {
                Some(l) => UserModelPolicy {
                    allowed_model_ids: union_opt(p.allowed_model_ids, l.allowed_model_ids),
                    blocked_model_ids: union_opt(p.blocked_model_ids, l.blocked_model_ids),
                },
                None => p,
            };
            user_model_policies.insert(user, merged);
        }
        let mut custom_models = self.custom_models;
        for m in lower.custom_models {
            if !custom_models
                .iter()
                .any(|x| x.model.eq_ignore_ascii_case(&m.model))
            {
                custom_models.push(m);
            }
        }
        Settings {
            model_policy: ModelPolicy {
                allowed_model_ids: union_opt(
                    self.model_policy.allowed_model_ids,
                    lower.model_policy.allowed_model_ids,
                ),
                blocked_model_ids: union_opt(
                    self.model_policy.blocked_model_ids,
                    lower.model_policy.blocked_model_ids,
                ),
                // restrictive: `false` in either file of the level wins
                allow_custom_models: crate::merge::algebra::sticky(
                    "/modelPolicy/allowCustomModels",
                    self.model_policy.allow_custom_models,
                    lower.model_policy.allow_custom_models,
                ),
                allowed_base_urls: union_opt(
                    self.model_policy.allowed_base_urls,
                    lower.model_policy.allowed_base_urls,
                ),
            },
            user_model_policies,
            mcp_policy: McpPolicy {
                enabled: crate::merge::algebra::sticky(
                    "/mcpPolicy/enabled",
                    self.mcp_policy.enabled,
                    lower.mcp_policy.enabled,
                ),
                allowlist: union_opt(self.mcp_policy.allowlist, lower.mcp_policy.allowlist),
            },
            custom_models,
        }
    }
}

/// Field names of a custom model entry in one of the two spellings
pub struct CustomModelFields {
    pub model: &'static str,
    pub display_name: &'static str,
    pub base_url: &'static str,
    pub api_key: &'static str,
    pub provider: &'static str,
    pub max_tokens: &'static str,
}

pub const CAMEL: CustomModelFields = CustomModelFields {
    model: "model",
    display_name: "displayName",
    base_url: "baseUrl",
    api_key: "apiKey",
    provider: "provider",
    max_tokens: "maxOutputTokens",
};

pub const SNAKE: CustomModelFields = CustomModelFields {
    model: "model",
    display_name: "model_display_name",
    base_url: "base_url",
    api_key: "api_key",
    provider: "provider",
    max_tokens: "max_tokens",
};

// Longer than a screen: one field of a `customModels` entry after another, each with its own checks
// and messages, so that every problem in the array is reported; the fields share the entry's
// pointer and reader.
fn read_custom_models<'d>(
    r: &mut Reader<'d>,
    v: &'d Value,
    base: &str,
    f: &CustomModelFields,
    env: Option<EnvLookup<'_>>,
) -> Vec<CustomModel> {
    let Value::Array(items) = v else {
        if !v.is_null() {
            r.error(
                "json.type",
                base,
                format!("expected an array, found {}", crate::json::type_name(v)),
            );
        }
        return Vec::new();
    };
    let mut out: Vec<CustomModel> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("{base}/{i}");
        let Some(m) = r.object(item, &ptr) else {
            continue;
        };
        let Some((model, _)) = r.field_str(m, f.model, &ptr) else {
            if !m.contains_key(f.model) {
                r.error(
                    "settings.missing_field",
                    &ptr,
                    format!("custom model has no `{}`", f.model),
                );
            }
            continue;
        };
        let provider = match r.field_str(m, f.provider, &ptr) {
            Some((s, p)) => match Provider::parse(s) {
                Some(provider) => Some(provider),
                None if Provider::DROID_ONLY.contains(&s) => {
                    r.warn(
                        "settings.provider_not_gateway",
                        &p,
                        format!("provider `{s}` is one Droid accepts, but not an API the gateway speaks (`anthropic`, `openai`, `generic-chat-completion-api`): custom model `{model}` is valid, and its requests through a Strata gateway are refused as an unknown endpoint"),
                    );
                    None
                }
                None => {
                    r.error(
                        "settings.invalid_provider",
                        &p,
                        Provider::invalid_message(s),
                    );
                    None
                }
            },
            None => {
                if !m.contains_key(f.provider) {
                    r.error(
                        "settings.missing_field",
                        &ptr,
                        format!("custom model `{model}` has no `{}`", f.provider),
                    );
                }
                None
            }
        };
        let api_key = r
            .field_str(m, f.api_key, &ptr)
            .and_then(|(s, p)| match env {
                Some(env) => read_api_key(r, s, &p, env),
                None => Some(ApiKey::Literal {
                    hint: ApiKey::mask(s),
                }),
            });
        let entry = CustomModel {
            model: model.to_string(),
            id: r.field_str(m, "id", &ptr).map(|(s, _)| s.to_string()),
            display_name: r
                .field_str(m, f.display_name, &ptr)
                .map(|(s, _)| s.to_string()),
            base_url: r.field_str(m, f.base_url, &ptr).and_then(|(s, p)| {
                // parsed as Droid's client parses it: userinfo, a query or a fragment would make
                // the URL Strata checks differ from where the traffic goes
                match crate::matchers::url::BaseUrl::parse(s) {
                    Ok(_) => Some(s.to_string()),
                    Err(e) => {
                        r.error(e.code(), &p, format!("invalid base URL: {e}"));
                        None
                    }
                }
            }),
            provider,
            api_key,
            max_output_tokens: r.field_u64(m, f.max_tokens, &ptr),
            origin: r.doc.origin(&ptr),
        };
        if let Some(first) = out
            .iter()
            .find(|x| x.model.eq_ignore_ascii_case(&entry.model))
        {
            let line = first.origin.line;
            r.warn(
                "settings.duplicate_model",
                &ptr,
                format!("custom model `{model}` is already defined at line {line} of this file; this entry is ignored"),
            );
            continue;
        }
        out.push(entry);
    }
    out
}

/// An org entry's `${VAR}` names the gateway's secret for that model's upstream, so it must be
/// set where the bundle is compiled. Below the org the key is the person's own, expanded by Droid
/// on their machine (which sends an unset variable as written): it is only referenced, never
/// expanded here, and never injected by the gateway.
fn read_api_key(
    r: &mut Reader<'_>,
    raw: &str,
    pointer: &str,
    env: EnvLookup<'_>,
) -> Option<ApiKey> {
    let whole_var = || {
        raw.strip_prefix("${")
            .and_then(|s| s.strip_suffix('}'))
            .filter(|v| is_var_name(v))
    };
    if r.doc.level != Level::Org {
        return Some(match whole_var() {
            Some(var) => ApiKey::Env {
                var: var.to_string(),
            },
            None => ApiKey::Literal {
                hint: ApiKey::mask(raw),
            },
        });
    }
    match expand(raw, env, false) {
        Ok(expanded) => Some(match whole_var() {
            Some(var) => ApiKey::Env {
                var: var.to_string(),
            },
            None => ApiKey::Literal {
                hint: ApiKey::mask(&expanded),
            },
        }),
        Err(var) => {
            r.error(
                "settings.unset_variable",
                pointer,
                format!("environment variable `{var}` is not set"),
            );
            None
        }
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expand `${VAR}` (and, with `defaults`, `${VAR:-default}`); `Err(name)` for the first unset variable
pub fn expand(s: &str, env: EnvLookup<'_>, defaults: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) if defaults => (n, Some(d)),
            _ => (inner, None),
        };
        if !is_var_name(name) {
            out.push_str(&rest[start..start + 3 + end]);
        } else {
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(name.to_string()),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_and_defaults() {
        let env = |k: &str| (k == "HOME").then(|| "/h".to_string());
        assert_eq!(expand("${HOME}/x", &env, false), Ok("/h/x".to_string()));
        assert_eq!(expand("${NOPE:-d}", &env, true), Ok("d".to_string()));
        assert_eq!(
            expand("${NOPE:-d}", &env, false),
            Ok("${NOPE:-d}".to_string()),
            "defaults are not read in settings.json"
        );
        assert_eq!(expand("a${NOPE}", &env, true), Err("NOPE".to_string()));
        assert_eq!(expand("no vars", &env, true), Ok("no vars".to_string()));
    }

    #[test]
    fn masks_keys() {
        assert_eq!(ApiKey::mask("sk-ant-1234567890abcd"), "…abcd");
        assert_eq!(ApiKey::mask("short"), "****");
    }
}
