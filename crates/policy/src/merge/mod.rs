//! Factory's extension-only merge algebra, implemented once.
//!
//! Every value of a layer merges with the layers above it by one of four rules, and the table
//! [`RULES`] says which rule a JSON pointer follows (anything not in it is a scalar if it is a
//! scalar, a union if it is an array, and merged key by key if it is an object):
//!
//! | kind | rule |
//! |---|---|
//! | [`Kind::Scalar`] | the first level (from org down) that sets it wins; a lower value is reported as `merge.locked_key` |
//! | [`Kind::Restrictive`] | a boolean whose restrictive value sticks once any level (or file of a level) sets it |
//! | [`Kind::Union`] | arrays: union, nothing is removed below |
//! | [`Kind::Keyed`] | arrays of objects keyed by a field (`customModels` by `model`): keys set above are locked |
//!
//! Two consumers read the result: [`lock`] drops what a compiled lower layer may not redefine
//! (custom models, MCP servers, org droids and commands) before the decision rules are built, and
//! [`view`] builds the effective-settings view, every value with its provenance, that `policy
//! explain settings` prints. Both report a redefinition with [`locked`].

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::compiled::CompiledLayer;
use crate::layer::Layer;
use crate::layer::SettingsSource;
use crate::origin::{Level, Origin};
use crate::problem::{Problem, Problems, Severity, warn_at};

pub use algebra::{
    Kind, ORG_ONLY_KEYS, RULES, SESSION_DEFAULTS, default_rank, kind_at, local_replaces,
    restrictive_value, sticky,
};

pub mod algebra;

/// The effective settings of a scope: every leaf `{value, level, file, pointer, line}`, and the
/// merge diagnostics found on the way
pub struct View {
    pub settings: Value,
    pub diagnostics: Vec<Problem>,
}

/// Merge the settings files of `layers` (org first) into the effective-settings view
pub fn view<'a>(layers: impl Iterator<Item = &'a CompiledLayer>) -> View {
    let mut merger = Merger {
        diagnostics: Vec::new(),
    };
    let mut root = Node::Object(BTreeMap::new());
    for l in layers {
        for SettingsSource {
            doc,
            legacy,
            replaced,
        } in &l.layer.sources
        {
            if *legacy {
                let v = legacy_value(&doc.value);
                merger.insert(&mut root, "", &v, &|p: &str| doc.origin(&legacy_pointer(p)));
            } else {
                // the keys the level's settings.local.json replaces are not read here
                let v = match &doc.value {
                    Value::Object(m) if !replaced.is_empty() => Value::Object(
                        m.iter()
                            .filter(|(k, _)| !replaced.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    v => v.clone(),
                };
                merger.insert(&mut root, "", &v, &|p: &str| doc.origin(p));
            }
        }
    }
    View {
        settings: node_json(&root),
        diagnostics: merger.diagnostics,
    }
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Value, Origin),
    Array(Vec<(Value, Origin)>),
    Keyed(Vec<(String, Value, Origin)>),
    Object(BTreeMap<String, Node>),
}

/// Keys whose values are secrets: shown masked
fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "apiKey" | "api_key" | "extraHeaders" | "extra_headers" | "headers" | "env"
    )
}

fn mask(v: &Value) -> Value {
    match v {
        Value::String(s) if s.starts_with("${") => Value::String(s.clone()),
        Value::String(s) => Value::String(crate::files::settings::ApiKey::mask(s)),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask(v))).collect()),
        other => other.clone(),
    }
}

fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if is_secret_key(k) { mask(v) } else { redact(v) },
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

struct Merger {
    diagnostics: Vec<Problem>,
}

impl Merger {
    // Longer than a screen: one `match` over (node, value) pairs, the merge rule for each kind of
    // JSON node (object, array, leaf) next to the others.
    fn insert(
        &mut self,
        node: &mut Node,
        pointer: &str,
        v: &Value,
        origin: &dyn Fn(&str) -> Origin,
    ) {
        match (node, v) {
            (Node::Object(m), Value::Object(src)) => {
                for (k, child) in src {
                    let p = format!("{pointer}/{}", crate::origin::escape_token(k));
                    if is_secret_key(k) && pointer.is_empty() {
                        continue;
                    }
                    // as in Droid, read from the org level alone
                    if pointer.is_empty()
                        && ORG_ONLY_KEYS.contains(&k.as_str())
                        && origin(&p).level != Level::Org
                    {
                        continue;
                    }
                    match m.get_mut(k) {
                        Some(existing) => self.insert(existing, &p, child, origin),
                        None => {
                            let fresh = match fresh_node(&p, child) {
                                Some(mut container) => {
                                    self.insert(&mut container, &p, child, origin);
                                    container
                                }
                                None => Node::Leaf(child.clone(), origin(&p)),
                            };
                            m.insert(k.clone(), fresh);
                        }
                    }
                }
            }
            (Node::Array(items), Value::Array(src)) => {
                for (i, item) in src.iter().enumerate() {
                    if !items.iter().any(|(x, _)| x == item) {
                        items.push((item.clone(), origin(&format!("{pointer}/{i}"))));
                    }
                }
            }
            (Node::Keyed(items), Value::Array(src)) => {
                for (i, item) in src.iter().enumerate() {
                    let Kind::Keyed(field) = kind_at(pointer) else {
                        continue;
                    };
                    let Some(key) = item.get(field).and_then(Value::as_str) else {
                        continue;
                    };
                    let o = origin(&format!("{pointer}/{i}"));
                    // a key set above stays; compile reports the redefinition (merge.locked_key)
                    if !items.iter().any(|(k, _, _)| k.eq_ignore_ascii_case(key)) {
                        items.push((key.to_string(), redact(item), o));
                    }
                }
            }
            (Node::Leaf(cur, above), v) => {
                if cur == v {
                    return;
                }
                let o = origin(pointer);
                // a session default: the nearest level wins, the org's is only a default
                if kind_at(pointer) == Kind::Default {
                    if default_rank(o.level) < default_rank(above.level) {
                        *cur = v.clone();
                        *above = o;
                    } else if above.level != o.level {
                        self.diagnostics
                            .push(locked(&o, above, &format!("`{pointer}`")));
                    }
                    return;
                }
                if let Some(restrictive) = restrictive_value(pointer)
                    && v.as_bool() == Some(restrictive)
                {
                    *cur = v.clone();
                    *above = o;
                    return;
                }
                if above.level != o.level {
                    self.diagnostics
                        .push(locked(&o, above, &format!("`{pointer}`")));
                }
            }
            (_, v) => {
                let o = origin(pointer);
                self.diagnostics.push(Problem {
                    severity: Severity::Warning,
                    code: "merge.type_mismatch",
                    file: o.file.to_string(),
                    line: o.line,
                    col: o.col,
                    pointer: pointer.to_string(),
                    message: format!(
                        "{} here, but a level above set a value of another type; ignored",
                        crate::json::type_name(v)
                    ),
                });
            }
        }
    }
}

/// The one `merge.locked_key` warning: `what` at `o` is set above, at `above`
pub fn locked(o: &Origin, above: &Origin, what: &str) -> Problem {
    Problem {
        severity: Severity::Warning,
        code: "merge.locked_key",
        file: o.file.to_string(),
        line: o.line,
        col: o.col,
        pointer: o.pointer.clone(),
        message: format!(
            "{what} is set by {} at {}:{}; the {} value is ignored",
            above.level, above.file, above.line, o.level
        ),
    }
}

/// An empty container for `v`, or `None` for a scalar
fn fresh_node(pointer: &str, v: &Value) -> Option<Node> {
    match v {
        Value::Object(_) => Some(Node::Object(BTreeMap::new())),
        Value::Array(_) if matches!(kind_at(pointer), Kind::Keyed(_)) => {
            Some(Node::Keyed(Vec::new()))
        }
        Value::Array(_) => Some(Node::Array(Vec::new())),
        _ => None,
    }
}

fn with_origin(v: Value, o: &Origin) -> Value {
    json!({ "value": v, "level": o.level, "file": &*o.file, "pointer": o.pointer, "line": o.line })
}

fn node_json(n: &Node) -> Value {
    match n {
        Node::Leaf(v, o) => with_origin(
            if o.pointer.ends_with("/apiKey") {
                mask(v)
            } else {
                v.clone()
            },
            o,
        ),
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|(v, o)| with_origin(v.clone(), o))
                .collect(),
        ),
        Node::Keyed(items) => Value::Array(
            items
                .iter()
                .map(|(_, v, o)| with_origin(v.clone(), o))
                .collect(),
        ),
        Node::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), node_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

const LEGACY_FIELDS: &[(&str, &str)] = &[
    ("model_display_name", "displayName"),
    ("base_url", "baseUrl"),
    ("api_key", "apiKey"),
    ("max_tokens", "maxOutputTokens"),
    ("supports_images", "supportsImages"),
    ("extra_args", "extraArgs"),
    ("extra_headers", "extraHeaders"),
];

/// The legacy file's `custom_models` as camelCase `customModels`
fn legacy_value(v: &Value) -> Value {
    let items = v
        .get("custom_models")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let converted = items
        .into_iter()
        .map(|item| match item {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        (
                            LEGACY_FIELDS
                                .iter()
                                .find(|(s, _)| *s == k)
                                .map(|(_, c)| c.to_string())
                                .unwrap_or(k),
                            v,
                        )
                    })
                    .collect(),
            ),
            other => other,
        })
        .collect();
    json!({ "customModels": Value::Array(converted) })
}

fn legacy_pointer(p: &str) -> String {
    let mut out = p.replacen("/customModels", "/custom_models", 1);
    for (snake, camel) in LEGACY_FIELDS {
        if let Some(stripped) = out.strip_suffix(&format!("/{camel}")) {
            out = format!("{stripped}/{snake}");
        }
    }
    out
}

/// Drop what a lower layer may not redefine, with a warning for each
// Longer than a screen: one block per kind of thing a lower layer may not redefine (custom models,
// MCP servers, droids and commands, added models), each with its warning; together they are the
// lock rules of docs/merge.md, in one place.
pub fn lock(problems: &mut Problems, upper: &[&CompiledLayer], lower: &mut CompiledLayer) {
    let level = lower.level;
    // what the org sets is locked; below the org the nearer level's entry wins, as in Droid (a
    // folder's over its project's)
    lower.custom_models.retain(|m| {
        let above = upper
            .iter()
            .filter(|u| u.level == Level::Org)
            .find_map(|u| u.custom_model(&m.model).map(|x| (u.level, x)));
        match above {
            Some((l, x)) => {
                problems.push(warn_at(
                    &m.origin,
                    "merge.locked_key",
                    format!("custom model `{}` is defined by {l} at {}:{}; the {level} entry is ignored", m.model, x.origin.file, x.origin.line),
                ));
                false
            }
            None => true,
        }
    });
    let mut kept = BTreeMap::new();
    for (name, s) in std::mem::take(&mut lower.mcp_servers) {
        let above = upper.iter().find_map(|u| {
            u.mcp_servers
                .get(&name)
                .filter(|x| !x.toggle_only)
                .map(|x| (u.level, x))
        });
        match above {
            // a folder's own definition of a project's server replaces it, as in Droid
            Some((l, x)) if !s.toggle_only && !s.same_definition(x) && l != Level::Org => {
                kept.insert(name, s);
            }
            Some((l, x)) if !s.toggle_only && !s.same_definition(x) => {
                problems.push(warn_at(
                    &s.origin,
                    "merge.locked_key",
                    format!("MCP server `{name}` is defined by {l} at {}:{}; the {level} definition is ignored (only `disabled` may be set below)", x.origin.file, x.origin.line),
                ));
                if let Some(d) = s.disabled {
                    let mut toggle = x.clone();
                    toggle.disabled = Some(d);
                    toggle.toggle_only = true;
                    toggle.origin = s.origin.clone();
                    kept.insert(name, toggle);
                }
            }
            Some(_) => {
                let mut t = s;
                t.toggle_only = true;
                kept.insert(name, t);
            }
            None => {
                if s.toggle_only && level != Level::User {
                    problems.push(warn_at(
                        &s.origin,
                        "merge.unknown_server",
                        format!(
                            "`{name}` sets only `disabled` but no layer above defines that server"
                        ),
                    ));
                }
                kept.insert(name, s);
            }
        }
    }
    lower.mcp_servers = kept;
    for (kind, list) in [
        ("droid", &mut lower.droids),
        ("command", &mut lower.commands),
    ] {
        list.retain(|a| {
            let above = upper.iter().filter(|u| u.level == Level::Org).find_map(|u| {
                let l = if kind == "droid" { &u.droids } else { &u.commands };
                l.iter().find(|x| x.name == a.name)
            });
            match above {
                Some(x) if x.digest != a.digest => {
                    problems.push(warn_at(
                        &a.origin,
                        "merge.locked_key",
                        format!("{kind} `{}` is published by the org at {}; it cannot be redefined below and this file is ignored", a.name, x.origin.file),
                    ));
                    false
                }
                Some(_) => false,
                None => true,
            }
        });
    }
    if !lower.adds_models && level != Level::User {
        let lists = [
            lower.allowed.as_ref().map(|m| &m.origin),
            lower.custom_models.first().map(|m| &m.origin),
        ];
        for o in lists.into_iter().flatten() {
            problems.push(warn_at(o, "merge.projects_may_not_add", format!("the org's policy.json sets `projectsMayAddModels` to false: models this {level} adds are not allowed")));
        }
    }
}

/// A stdio server defined below the org whose `env` changes what runs: a warning naming the
/// variable, whether the org denies such servers (`policy.json` `mcpExecEnv: "deny"`) or not
pub fn check_exec_env(layer: &Layer, deny: bool, problems: &mut Problems) {
    if layer.level == Level::Org {
        return;
    }
    for s in layer.mcp_servers.values() {
        if let Some((e, why)) = s.exec_env() {
            let outcome = if deny {
                "the org's policy.json `mcpExecEnv` denies this server"
            } else {
                "it is allowed with this warning; the org's policy.json can deny it with `mcpExecEnv: \"deny\"`"
            };
            problems.push(warn_at(
                &e.origin,
                "mcp.exec_env",
                format!("stdio server `{}` sets `{}` in its env, which {why}: a command allowlist no longer says what runs; {outcome}", s.name, e.value),
            ));
        }
    }
}

/// Whether a model list entry is a pattern (a glob, or a category name standing for patterns)
/// rather than one exact id
pub fn is_pattern(entry: &str, categories: &[String]) -> bool {
    entry.contains(['*', '?', '[']) || categories.iter().any(|c| c == entry)
}

/// What a project or folder may add to the allowed set: exact ids and its own `customModels`
/// (a `settings.local.json` adds neither: [`crate::files::settings::Settings::without_widening`]).
/// A pattern addition needs the org's `projectsMayAddModelPatterns`. What is dropped is reported
/// with its file and line.
pub fn limit_additions(
    layer: &mut Layer,
    patterns_ok: bool,
    categories: &[String],
    problems: &mut Problems,
) {
    if !matches!(layer.level, Level::Project | Level::Folder) {
        return;
    }
    let level = layer.level;
    let s = &mut layer.settings;
    if let Some(list) = s.model_policy.allowed_model_ids.as_mut() {
        list.entries.retain(|e| {
            if !patterns_ok && is_pattern(&e.value, categories) {
                problems.push(warn_at(&e.origin, "merge.pattern_addition", format!("the {level} adds the pattern `{}`, which could allow models the org never listed; it is ignored (list exact ids, or set `projectsMayAddModelPatterns` in the org's policy.json)", e.value)));
                false
            } else {
                true
            }
        });
    }
}
