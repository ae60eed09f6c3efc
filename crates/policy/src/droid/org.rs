//! The org level Strata serves Droid (`GET /api/organization/managed-settings`, a plain URL, or
//! a file for MDM): the active revision compiled for one person, so that Droid refuses locally
//! what the bundle forbids. Droid keeps only the exact catalogue ids in its model lists, matches
//! MCP servers by its own looser rule, and knows only the keys of its schema; everything here is
//! rendered in those terms, and `problems` says where Droid still reads the bundle differently.
//!
//! Which scopes a document covers: a token bound to projects gets those projects (and their
//! folders). Droid does not say which project it runs in when it fetches the document, so an
//! unbound token gets the union of the org scope and every project that adds models or defines
//! MCP servers: Droid refuses what no scope of this person allows, and the gateway refuses, per
//! request, what the request's own scope does not (`docs/merge.md`, "Strata and Droid").

use serde_json::{Map, Value, json};

use crate::compile::{CompiledProject, Snapshot};
use crate::compiled::CompiledLayer;
use crate::decide::decide;
use crate::decision::{KeyMode, McpRef, Request, Target};
use crate::droid::catalogue;
use crate::files::settings::Provider;
use crate::listing::models;
use crate::matchers::mcp::{McpEntry, McpTarget, droid_admits_entry, droid_normalise};
use crate::problem::{Problem, warn_at};

/// Who the document is for
#[derive(Clone, Debug)]
pub struct OrgRequest<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// the projects the caller's token is bound to (`None`: unbound)
    pub token_projects: Option<&'a [String]>,
    /// this gateway's URL as Droid reaches it: custom models point here, and it is the base URL
    /// every model in the document is decided with
    pub gateway_url: &'a str,
}

/// The document, and where Droid reads the bundle differently from Strata
#[derive(Clone, Debug, Default)]
pub struct OrgDocument {
    pub settings: Map<String, Value>,
    pub problems: Vec<Problem>,
}

/// Keys Strata computes for the person rather than passing the org's value through
/// (`mcpServers`: the org level cannot define servers in Droid)
const COMPUTED: &[&str] = &[
    "modelPolicy",
    "userModelPolicies",
    "customModels",
    "mcpPolicy",
    "mcpServers",
];

/// The org level for `req`, from the active revision
pub fn org_document(snap: &Snapshot, req: &OrgRequest<'_>) -> OrgDocument {
    let mut out = OrgDocument::default();
    passthrough(snap, &mut out);
    let scopes = scopes(snap, req);
    let custom = custom_models(snap, req);
    out.settings.insert(
        "modelPolicy".into(),
        model_policy(snap, req, &scopes, !custom.is_empty()),
    );
    out.settings
        .insert("customModels".into(), Value::Array(custom));
    if let Some(mcp) = mcp_policy(snap, &scopes, &mut out.problems) {
        out.settings.insert("mcpPolicy".into(), mcp);
    }
    out
}

/// The document as it may be served: rendered, then checked against Droid's schema. A
/// document Droid would reject makes it drop the whole org level and run unrestricted, so it is
/// never served: the errors name the org file and line of the value Droid rejects.
pub fn render(snap: &Snapshot, req: &OrgRequest<'_>) -> Result<OrgDocument, Vec<Problem>> {
    let doc = org_document(snap, req);
    let errors = schema_errors(snap, &doc);
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

/// Droid's schema errors in the org's own keys that the document passes through (hooks,
/// autonomy, command lists, `env`, ...): what no person's document can be rendered without. The
/// keys Strata computes are valid by construction (tests check every rendered document).
pub fn passthrough_errors(snap: &Snapshot) -> Vec<Problem> {
    let mut doc = OrgDocument::default();
    passthrough(snap, &mut doc);
    schema_errors(snap, &doc)
}

/// Droid's schema errors in `doc`, each at the org file and line it comes from (a computed
/// key's error is Strata's own fault: it names the key)
pub fn schema_errors(snap: &Snapshot, doc: &OrgDocument) -> Vec<Problem> {
    let value = Value::Object(doc.settings.clone());
    crate::droid::schema::validate(&value)
        .into_iter()
        .map(|e| {
            let origin = locate(snap, &e.path).unwrap_or_else(|| crate::origin::Origin {
                level: crate::origin::Level::Org,
                file: std::sync::Arc::from("(the org document Strata renders for Droid)"),
                pointer: e.path.clone(),
                line: 0,
                col: 0,
            });
            crate::problem::at(
                crate::problem::Severity::Error,
                &origin,
                "droid.schema",
                format!(
                    "Droid {} would reject this and ignore the whole org level: {}",
                    crate::droid::catalogue::DROID_VERSION,
                    e.message
                ),
            )
        })
        .collect()
}

/// The org's own settings keys that Droid applies as they are (hooks, command lists, autonomy,
/// `env`, `telemetry`, ...): `settings.local.json` replaces `settings.json` key by key, as in
/// Droid. Strata is not Factory's cloud: unless the org says otherwise, Droid is told not to
/// upload sessions (`cloudSessionSync: false`), which it would otherwise send to this server.
fn passthrough(snap: &Snapshot, out: &mut OrgDocument) {
    for source in snap.org.layer.sources.iter().filter(|s| !s.legacy) {
        let Some(root) = source.doc.value.as_object() else {
            continue;
        };
        for (k, v) in root {
            if !COMPUTED.contains(&k.as_str()) && !out.settings.contains_key(k) {
                out.settings.insert(k.clone(), v.clone());
            }
        }
    }
    out.settings
        .entry("cloudSessionSync")
        .or_insert(Value::Bool(false));
}

/// The org file and line of a passed-through value, for an error Droid's schema finds in it
pub fn locate(snap: &Snapshot, pointer: &str) -> Option<crate::origin::Origin> {
    let key = pointer.trim_start_matches('/').split('/').next()?;
    snap.org
        .layer
        .sources
        .iter()
        .filter(|s| !s.legacy)
        .find(|s| s.doc.value.get(key).is_some())
        .map(|s| s.doc.origin(pointer))
}

/// One scope the document covers: a request that names no target yet
fn scope(req: &OrgRequest<'_>, project: Option<&str>, folder: Option<&str>) -> Request {
    Request {
        user: req.user.to_string(),
        groups: req.groups.to_vec(),
        project: project.map(str::to_string),
        folder: folder.map(str::to_string),
        // no URL (`policy explain` without a gateway): decided as a request that names none
        gateway: (!req.gateway_url.is_empty()).then(|| req.gateway_url.to_string()),
        token_projects: req.token_projects.map(<[String]>::to_vec),
        target: Target::none(),
    }
}

/// Does this layer change what Droid may be told (models added, rules, MCP servers defined)
fn shapes_droid(l: &CompiledLayer) -> bool {
    l.allowed.is_some()
        || !l.custom_models.is_empty()
        || !l.layer.cedar.is_empty()
        || !l.mcp_servers.is_empty()
}

fn project_scopes<'a>(
    req: &'a OrgRequest<'_>,
    p: &'a CompiledProject,
) -> impl Iterator<Item = Request> + 'a {
    std::iter::once(scope(req, Some(&p.id), None)).chain(
        p.folders
            .iter()
            .map(move |(f, _, _)| scope(req, Some(&p.id), Some(f))),
    )
}

/// The scopes the document covers (see the module's comment), in a stable order. A bound
/// project the bundle does not have is still covered: the gateway decides its requests with the
/// org's layer alone.
fn scopes(snap: &Snapshot, req: &OrgRequest<'_>) -> Vec<Request> {
    if let Some(bound) = req.token_projects {
        let mut bound: Vec<&String> = bound.iter().collect();
        bound.sort();
        bound.dedup();
        return bound
            .into_iter()
            .flat_map(|id| match snap.projects.get(id).map(|p| &**p) {
                Some(p) => project_scopes(req, p).collect::<Vec<_>>(),
                None => vec![scope(req, Some(id), None)],
            })
            .collect();
    }
    let mut projects: Vec<&CompiledProject> = snap
        .projects
        .values()
        .map(|p| &**p)
        .filter(|p| shapes_droid(&p.layer) || p.folders.iter().any(|(_, l, _)| shapes_droid(l)))
        .collect();
    projects.sort_by(|a, b| a.id.cmp(&b.id));
    std::iter::once(scope(req, None, None))
        .chain(projects.into_iter().flat_map(|p| project_scopes(req, p)))
        .collect()
}

/// Can the gateway carry Droid's built-in model `id`: Droid sends Gemini models to Google's own
/// API (`/api/llm/g/v1/generate`), which the gateway does not speak; every other catalogue model
/// goes to `/api/llm/a/…` (Messages) or `/api/llm/o/…` (Responses, Chat Completions), which it
/// serves. A model it cannot carry is blocked in the document, so Droid says so before a request
/// fails.
pub fn gateway_carries(id: &str) -> bool {
    !id.starts_with("gemini-")
}

/// Would some scope the document covers let `id` through the gateway
fn allowed_somewhere(snap: &Snapshot, scopes: &[Request], id: &str) -> bool {
    gateway_carries(id)
        && scopes
            .iter()
            .any(|s| decide(snap, &model_request(s, id)).allowed())
}

/// Does the org level Strata serves this person let Droid use catalogue model `id`; `None` for
/// an id outside Droid's catalogue (Droid's id lists never govern it)
pub fn droid_allows_model(snap: &Snapshot, req: &OrgRequest<'_>, id: &str) -> Option<bool> {
    catalogue::known_model_id(id).then(|| allowed_somewhere(snap, &scopes(snap, req), id))
}

/// The `mcpPolicy.allowlist` of the org level Strata serves this person (`None`: it sets no
/// `mcpPolicy`, and Droid takes the first level of its own files that enables one)
pub fn droid_mcp_allowlist(snap: &Snapshot, req: &OrgRequest<'_>) -> Option<Vec<String>> {
    let mut problems = Vec::new();
    let v = mcp_policy(snap, &scopes(snap, req), &mut problems)?;
    serde_json::from_value(v["allowlist"].clone()).ok()
}

fn model_request(scope: &Request, model: &str) -> Request {
    Request {
        target: Target::Model {
            model: model.to_string(),
            provider: None,
            key_mode: KeyMode::Central,
            base_url: scope.gateway.clone(),
            mcp_servers: Vec::new(),
        },
        ..scope.clone()
    }
}

/// Droid's `modelPolicy` for this person: every catalogue id, allowed when some covered scope
/// allows it through this gateway and blocked otherwise. Both lists are sent: an empty or
/// all-unknown allowlist means "no allowlist" to Droid, the blocklist still holds.
fn model_policy(snap: &Snapshot, req: &OrgRequest<'_>, scopes: &[Request], custom: bool) -> Value {
    let (mut allowed, mut blocked) = (Vec::new(), Vec::new());
    for id in catalogue::model_ids() {
        if allowed_somewhere(snap, scopes, id) {
            allowed.push(id)
        } else {
            blocked.push(id)
        }
    }
    let mut mp = json!({
        "allowedModelIds": allowed,
        "blockedModelIds": blocked,
        "allowCustomModels": custom || byok_allowed(snap),
    });
    if let Some(urls) = base_urls(snap, req.gateway_url) {
        mp["allowedBaseUrls"] = json!(urls);
    }
    mp
}

/// May a person use a model with their own key at all (a provider is allowed)
fn byok_allowed(snap: &Snapshot) -> bool {
    snap.org_policy
        .byok_providers
        .as_ref()
        .is_none_or(|p| !p.value.is_empty())
}

/// Droid's `allowedBaseUrls`: this gateway, and the org's own base-URL list in Droid's form
/// (origin plus a path prefix). `None` when the org does not restrict base URLs: Droid then
/// admits any, as Strata does.
fn base_urls(snap: &Snapshot, gateway_url: &str) -> Option<Vec<String>> {
    let org = &snap.org.layer;
    let list = org
        .settings
        .model_policy
        .allowed_base_urls
        .as_ref()
        .or(org.policy.gateway_required_base_urls.as_ref())?;
    let gateway = gateway_url.trim_end_matches('/').to_string();
    let mut out = vec![gateway];
    for e in &list.entries {
        if let Some(u) = droid_base_url(&e.value)
            && !out.contains(&u)
        {
            out.push(u);
        }
    }
    Some(out)
}

/// A Strata URL pattern as Droid's prefix rule reads it: `…/**` is its prefix; a pattern with
/// `*` anywhere else has no Droid form and is left out (Droid is then stricter)
fn droid_base_url(pattern: &str) -> Option<String> {
    let base = pattern.strip_suffix("/**").unwrap_or(pattern);
    (!base.contains('*')).then(|| base.trim_end_matches('/').to_string())
}

/// The models this person may use with the gateway's keys, as Droid `customModels` pointed at
/// this gateway with the gateway token Droid already holds (`${FACTORY_API_KEY}`, expanded by
/// Droid; the document never carries a secret). A token bound to projects gets each project's
/// models with its `X-Strata-Project` header.
fn custom_models(snap: &Snapshot, req: &OrgRequest<'_>) -> Vec<Value> {
    let projects: Vec<Option<&str>> = match req.token_projects {
        Some(bound) => bound.iter().map(|p| Some(p.as_str())).collect(),
        None => vec![None],
    };
    let several = projects.len() > 1;
    let mut out = Vec::new();
    for project in projects {
        // catalogue ids are not custom models: Droid offers them itself
        let (shown, _) = models(snap, &scope(req, project, None), Some(req.gateway_url), &[]);
        for m in shown.iter().filter(|m| m.key_mode == KeyMode::Central) {
            if catalogue::known_model_id(&m.model) {
                // a catalogue id is offered by Droid itself (and listed in modelPolicy)
                continue;
            }
            let provider = m.provider.unwrap_or(if m.model.starts_with("claude") {
                Provider::Anthropic
            } else {
                Provider::OpenAi
            });
            let name = m.display_name.as_deref().unwrap_or(&m.model);
            let name = match project {
                Some(p) if several => format!("{name} (Strata, {p})"),
                _ => format!("{name} (Strata)"),
            };
            let mut entry = json!({
                "model": m.model,
                "displayName": name,
                "baseUrl": gateway_base(req.gateway_url, provider),
                "apiKey": "${FACTORY_API_KEY}",
                "provider": provider.as_str(),
                "maxOutputTokens": m.max_output_tokens.unwrap_or(16_384),
            });
            if let Some(p) = project {
                entry["extraHeaders"] = json!({ "X-Strata-Project": p });
            }
            out.push(entry);
        }
    }
    out
}

/// Droid's Anthropic client appends `/v1/messages`; the OpenAI ones `/responses` or
/// `/chat/completions`
pub fn gateway_base(gateway_url: &str, provider: Provider) -> String {
    let gateway_url = gateway_url.trim_end_matches('/');
    match provider {
        Provider::Anthropic => gateway_url.to_string(),
        _ => format!("{gateway_url}/v1"),
    }
}

/// An MCP server known to the bundle, with Strata's verdict over the covered scopes
struct Known<'s> {
    name: &'s str,
    host: Option<String>,
    command: Option<(&'s str, &'s [String])>,
    origin: &'s crate::origin::Origin,
    allowed: bool,
}

impl Known<'_> {
    fn target(&self) -> Option<McpTarget<'_>> {
        match (&self.host, self.command) {
            (Some(host), _) => Some(McpTarget::Remote { host }),
            (None, Some((command, args))) => Some(McpTarget::Stdio { command, args }),
            _ => None,
        }
    }
}

/// The MCP servers the org, the covered projects and their folders define, each allowed when
/// some covered scope allows it
fn known_servers<'s>(snap: &'s Snapshot, scopes: &[Request]) -> Vec<Known<'s>> {
    let mut out: Vec<Known<'s>> = Vec::new();
    for s in scopes {
        let sc = snap.scope(s);
        for l in sc
            .layers()
            .filter(|l| l.level != crate::origin::Level::User)
        {
            for (name, def) in l.mcp_servers.iter().filter(|(_, d)| !d.toggle_only) {
                let req = Request {
                    target: Target::Mcp {
                        server: McpRef {
                            name: Some(name.clone()),
                            ..Default::default()
                        },
                    },
                    ..s.clone()
                };
                let allowed = decide(snap, &req).allowed();
                match out.iter_mut().find(|k| k.name == name) {
                    Some(k) => k.allowed |= allowed,
                    None => out.push(Known {
                        name,
                        host: def.host(),
                        command: def.command.as_deref().map(|c| (c, def.args.as_slice())),
                        origin: &def.origin,
                        allowed,
                    }),
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}

/// Is any MCP restriction in the covered scopes
fn mcp_governed(snap: &Snapshot, scopes: &[Request]) -> bool {
    snap.org_policy.mcp_blocklist.is_some()
        || snap.org_policy.mcp_exec_env_deny.is_some()
        || scopes.iter().any(|s| {
            snap.scope(s)
                .layers()
                .any(|l| l.mcp_enabled.as_ref().is_some_and(|b| b.value))
        })
}

/// Droid's `mcpPolicy`: the org's host entries where Droid reads them as Strata does, and one
/// entry per server of the bundle Strata allows. An entry that would let Droid start a server
/// Strata denies is replaced by the allowed servers it covers; a server no entry can admit
/// without admitting a denied one is left out (Droid is then stricter) with a warning.
fn mcp_policy(snap: &Snapshot, scopes: &[Request], problems: &mut Vec<Problem>) -> Option<Value> {
    if !mcp_governed(snap, scopes) {
        return None;
    }
    let known = known_servers(snap, scopes);
    let denied: Vec<&Known> = known.iter().filter(|k| !k.allowed).collect();
    let blocked = blocked_hosts(snap);
    let admits_denied = |entry: &str| {
        denied
            .iter()
            .any(|k| k.target().is_some_and(|t| droid_admits_entry(entry, &t)))
            || blocked
                .iter()
                .any(|host| droid_admits_entry(entry, &McpTarget::Remote { host }))
    };
    let mut entries: Vec<String> = Vec::new();
    let mut push = |e: String| {
        if !entries.contains(&e) {
            entries.push(e)
        }
    };
    if let Some(list) = snap.org.mcp_allowlist.as_ref() {
        for (m, e) in &list.entries {
            if matches!(m, McpEntry::Host(_)) && !admits_denied(&e.value) {
                push(e.value.trim().to_string());
            }
        }
    }
    for k in known.iter().filter(|k| k.allowed) {
        match server_entry(k, &admits_denied) {
            Some(e) => push(e),
            None => problems.push(warn_at(
                k.origin,
                "droid.mcp_unexpressible",
                format!(
                    "Droid cannot be told to start MCP server `{}` without also starting one Strata denies: Droid will not start it",
                    k.name
                ),
            )),
        }
    }
    Some(json!({ "enabled": true, "allowlist": entries }))
}

/// A host each `mcpBlocklist` host entry denies (a subdomain for `*.d`): an allowlist entry that
/// would let Droid reach one of them is not sent as it is
fn blocked_hosts(snap: &Snapshot) -> Vec<String> {
    use crate::matchers::mcp::HostRule;
    let Some(list) = snap.org_policy.mcp_blocklist.as_ref() else {
        return Vec::new();
    };
    list.entries
        .iter()
        .filter_map(|(m, _)| match m {
            McpEntry::Host(h) => match &h.rule {
                HostRule::Domain(d) | HostRule::Exact(d) => Some(d.clone()),
                HostRule::Subdomains(d) => Some(format!("strata-blocked.{d}")),
                HostRule::Any => None,
            },
            _ => None,
        })
        .collect()
}

/// One Droid allowlist entry that admits `k` and no denied server: a remote server by its
/// host, a stdio server by the longest of its words no denied server contains
fn server_entry(k: &Known<'_>, admits_denied: &dyn Fn(&str) -> bool) -> Option<String> {
    if let Some(host) = &k.host {
        return (!admits_denied(host)).then(|| host.clone());
    }
    let (command, args) = k.command?;
    let mut words: Vec<String> = std::iter::once(command)
        .chain(args.iter().map(String::as_str))
        .map(droid_normalise)
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    words.into_iter().find(|w| !admits_denied(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_in_droids_prefix_form() {
        assert_eq!(
            droid_base_url("http://127.0.0.1:8787/**").as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(
            droid_base_url("https://gw.acme.internal/v1/").as_deref(),
            Some("https://gw.acme.internal/v1")
        );
        assert_eq!(droid_base_url("https://*.acme.internal/**"), None);
    }

    #[test]
    fn gateway_base_follows_what_droid_appends() {
        assert_eq!(
            gateway_base("http://gw:8787/", Provider::Anthropic),
            "http://gw:8787"
        );
        assert_eq!(
            gateway_base("http://gw:8787", Provider::OpenAi),
            "http://gw:8787/v1"
        );
    }
}
