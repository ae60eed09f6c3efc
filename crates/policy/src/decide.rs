//! `decide(snapshot, request) -> Decision`: pure, no I/O, no locks. Glob matching computes which
//! lists the model (or MCP server) belongs to and which request conditions hold; Cedar combines
//! them with the hand-written rules; the determining policies are mapped back to their files.

use std::collections::HashMap;
use std::sync::LazyLock;

use cedar_policy::{
    Context, Effect as CedarEffect, Entity, EntityId, EntityUid, RestrictedExpression,
};
use serde::Serialize;

use crate::FastSet;

use crate::compile::{CompiledLayer, Matcher, Revision, ScopeSets, Snapshot};
use crate::eval::Mode;
use crate::eval::cedar_subset as hand;
use crate::eval::native::evaluate;
use crate::files::mcp::{McpServer, url_host};
use crate::files::settings::{ApiKey, CustomModel, Provider};
use crate::origin::Level;
use crate::provenance::{finish, mcp_provenance, model_provenance};
use crate::rules::{Field, RuleKey};

/// Whose key pays: the org's (through the gateway) or the person's own
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    #[default]
    Central,
    Byok,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Central => "central",
            KeyMode::Byok => "byok",
        }
    }
}

/// An MCP server as a request names it: by name (from `mcp.json`), by URL, or by command
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl McpRef {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.url.clone())
            .or_else(|| self.command.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Target {
    /// invoke a model (with the central key, or the person's own: BYOK)
    #[serde(rename = "model")]
    Model {
        model: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        provider: Option<Provider>,
        #[serde(rename = "keyMode")]
        key_mode: KeyMode,
        #[serde(rename = "baseUrl", skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        /// MCP servers the request body references; each must be allowed too
        #[serde(rename = "mcpServers", skip_serializing_if = "Vec::is_empty")]
        mcp_servers: Vec<McpRef>,
    },
    /// connect an MCP server
    #[serde(rename = "mcp")]
    Mcp { server: McpRef },
}

/// One decision request
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub user: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// path below the project root (monorepo folder)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(flatten)]
    pub target: Target,
}

impl Target {
    /// A target that names nothing: for requests that only select a scope (effective settings,
    /// model listings)
    pub fn none() -> Target {
        Target::Model {
            model: String::new(),
            provider: None,
            key_mode: KeyMode::Central,
            base_url: None,
            mcp_servers: Vec::new(),
        }
    }
}

impl Request {
    /// A request that selects a scope only (user, groups, project, folder), for
    /// [`crate::explain::effective_settings`] and [`crate::explain::models`]
    pub fn scope(
        user: String,
        groups: Vec<String>,
        project: Option<String>,
        folder: Option<String>,
    ) -> Request {
        Request {
            user,
            groups,
            project,
            folder,
            gateway: None,
            target: Target::none(),
        }
    }

    pub fn model(user: &str, model: &str) -> Request {
        Request {
            user: user.to_string(),
            groups: Vec::new(),
            project: None,
            folder: None,
            gateway: None,
            target: Target::Model {
                model: model.to_string(),
                provider: None,
                key_mode: KeyMode::Central,
                base_url: None,
                mcp_servers: Vec::new(),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleEffect {
    Permit,
    Forbid,
}

impl From<CedarEffect> for RuleEffect {
    fn from(e: CedarEffect) -> Self {
        match e {
            CedarEffect::Permit => RuleEffect::Permit,
            CedarEffect::Forbid => RuleEffect::Forbid,
        }
    }
}

/// A rule that determined a decision, with where it comes from
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Determining {
    /// the Cedar policy id, e.g. `org#modelPolicy.blockedModelIds`
    pub rule: String,
    pub level: Level,
    pub file: Option<String>,
    pub pointer: Option<String>,
    pub line: Option<u32>,
    pub effect: RuleEffect,
    /// the list entry that matched, if the rule is about a list
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// what the rule says about this request, in words
    pub reason: String,
}

/// What the gateway must do with an allowed request
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Obligations {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// the environment variable holding the key to inject (never the key itself)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

/// The outcome of one request; a deny is an ordinary value
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub effect: Effect,
    /// empty with `Deny`: nothing permitted it
    pub determined_by: Vec<Determining>,
    /// one sentence saying why
    pub reason: String,
    pub obligations: Obligations,
    pub revision: Revision,
    /// Cedar evaluation errors (a forbid that errors counts as a deny)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// The layers that apply to one request
pub struct ScopeRef<'s> {
    pub org: &'s CompiledLayer,
    pub project: Option<&'s CompiledLayer>,
    pub folders: Vec<&'s CompiledLayer>,
    pub user: Option<&'s CompiledLayer>,
    pub sets: &'s ScopeSets,
}

impl<'s> ScopeRef<'s> {
    /// From org down to the user
    pub fn layers(&self) -> impl Iterator<Item = &'s CompiledLayer> + '_ {
        std::iter::once(self.org)
            .chain(self.project)
            .chain(self.folders.iter().copied())
            .chain(self.user)
    }

    pub(crate) fn at(&self, level: Level) -> impl Iterator<Item = &'s CompiledLayer> + '_ {
        self.layers().filter(move |l| l.level == level)
    }

    /// The custom model entry for `model`: the user's own for BYOK, else the org's, project's or folder's
    pub fn custom_entry(
        &self,
        model: &str,
        key_mode: KeyMode,
    ) -> Option<(&'s CompiledLayer, &'s CustomModel)> {
        match key_mode {
            KeyMode::Byok => self
                .user
                .and_then(|u| u.custom_model(model).map(|c| (u, c))),
            KeyMode::Central => None,
        }
        .or_else(|| {
            self.layers()
                .filter(|l| l.level != Level::User && l.adds_models)
                .find_map(|l| l.custom_model(model).map(|c| (l, c)))
        })
    }

    /// The definition of MCP server `name` (the highest layer that defines it)
    pub fn mcp_definition(&self, name: &str) -> Option<&'s McpServer> {
        self.layers()
            .find_map(|l| l.mcp_servers.get(name).filter(|s| !s.toggle_only))
    }

    /// The lowest layer that says whether `name` is disabled, and what it says
    pub fn mcp_disabled(&self, name: &str) -> Option<(Level, &'s McpServer)> {
        let mut out = None;
        for l in self.layers() {
            if let Some(s) = l.mcp_servers.get(name).filter(|s| s.disabled.is_some()) {
                out = Some((l.level, s));
            }
        }
        out
    }
}

impl Snapshot {
    /// The layers that apply to `req`. An unknown project gets the org's layer alone.
    pub fn scope(&self, req: &Request) -> ScopeRef<'_> {
        let user = self.users.get(&req.user);
        let Some(p) = req.project.as_deref().and_then(|id| self.projects.get(id)) else {
            return ScopeRef {
                org: &self.org,
                project: None,
                folders: Vec::new(),
                user,
                sets: &self.org_sets,
            };
        };
        let mut folders: Vec<(&str, &CompiledLayer, &ScopeSets)> = Vec::new();
        if let Some(req_folder) = req.folder.as_deref().map(|f| f.trim_matches('/')) {
            folders = p
                .folders
                .iter()
                .filter(|(path, _, _)| is_path_prefix(path, req_folder))
                .map(|(p, l, s)| (p.as_str(), l, s))
                .collect();
            folders.sort_by_key(|(p, _, _)| p.len());
        }
        // the innermost folder's sets hold the rules of every folder on the path
        let sets = folders.last().map(|(_, _, s)| *s).unwrap_or(&p.sets);
        let folders = folders.into_iter().map(|(_, l, _)| l).collect();
        ScopeRef {
            org: &self.org,
            project: Some(&p.layer),
            folders,
            user,
            sets,
        }
    }
}

pub(crate) fn is_path_prefix(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What one model request resolves to before Cedar sees it
pub(crate) struct ModelFacts<'s> {
    pub(crate) parents: FastSet<EntityUid>,
    pub(crate) triggers: Vec<RuleKey>,
    pub(crate) base_url: Option<String>,
    pub(crate) provider: Option<Provider>,
    pub(crate) entry: Option<(&'s CompiledLayer, &'s CustomModel)>,
}

fn model_facts<'s>(
    snap: &'s Snapshot,
    scope: &ScopeRef<'s>,
    req: &Request,
    model: &str,
    provider: Option<Provider>,
    key_mode: KeyMode,
    base_url: Option<&str>,
) -> ModelFacts<'s> {
    let uids = &snap.uids;
    let mut parents = FastSet::default();
    let mut triggers = Vec::new();
    let list = |parents: &mut FastSet<EntityUid>, level: Level, field: Field| {
        if let Some(u) = uids.lists.get(&RuleKey::new(level, field)) {
            parents.insert(u.clone());
        }
    };
    let entry = scope.custom_entry(model, key_mode);
    let base_url = base_url
        .map(str::to_string)
        .or_else(|| entry.and_then(|(_, c)| c.base_url.clone()));
    let provider = provider.or_else(|| entry.and_then(|(_, c)| c.provider));
    let url_miss = |m: &Matcher| base_url.as_deref().is_none_or(|u| !m.is_match(u));

    for (i, (_, cat)) in snap.org_policy.categories.iter().enumerate() {
        if cat.is_match(model)
            && let Some(u) = uids.categories.get(i)
        {
            parents.insert(u.clone());
        }
    }
    if scope.org.allowed.is_none() {
        list(&mut parents, Level::Org, Field::NoAllowlist);
    }
    for l in scope.layers() {
        let level = l.level;
        if l.blocked.as_ref().is_some_and(|m| m.is_match(model)) {
            list(&mut parents, level, Field::Blocked);
        }
        if level == Level::User {
            if l.allowed.as_ref().is_some_and(|m| !m.is_match(model)) {
                triggers.push(RuleKey::new(level, Field::UserAllowlist));
            }
        } else if l.adds_models && l.allowed.as_ref().is_some_and(|m| m.is_match(model)) {
            list(&mut parents, level, Field::Allowed);
        }
        if (l.adds_models || level == Level::User) && l.custom_model(model).is_some() {
            list(&mut parents, level, Field::CustomModels);
        }
        if key_mode == KeyMode::Byok {
            if l.allow_custom_models.as_ref().is_some_and(|b| !b.value) {
                triggers.push(RuleKey::new(level, Field::AllowCustomModels));
            }
            if l.allowed_base_urls.as_ref().is_some_and(url_miss) {
                triggers.push(RuleKey::new(level, Field::AllowedBaseUrls));
            }
        }
    }
    if let Some(p) = scope.org.user_policies.get(&req.user) {
        if p.blocked.as_ref().is_some_and(|m| m.is_match(model)) {
            list(&mut parents, Level::Org, Field::UserPolicyBlocked);
        }
        if p.allowed.as_ref().is_some_and(|m| !m.is_match(model)) {
            triggers.push(RuleKey::new(Level::Org, Field::UserPolicyAllowed));
        }
    }
    let op = &snap.org_policy;
    if op.gateway_required.as_ref().is_some_and(url_miss) {
        triggers.push(RuleKey::new(Level::Org, Field::GatewayRequired));
    }
    if key_mode == KeyMode::Byok {
        if op
            .byok_providers
            .as_ref()
            .is_some_and(|ps| provider.is_none_or(|p| !ps.value.iter().any(|x| x.value == p)))
        {
            triggers.push(RuleKey::new(Level::Org, Field::ByokProviders));
        }
        if op.byok_base_urls.as_ref().is_some_and(url_miss) {
            triggers.push(RuleKey::new(Level::Org, Field::ByokBaseUrls));
        }
    }
    triggers.sort();
    triggers.dedup();
    ModelFacts {
        parents,
        triggers,
        base_url,
        provider,
        entry,
    }
}

pub(crate) struct McpFacts<'s> {
    pub(crate) parents: FastSet<EntityUid>,
    pub(crate) triggers: Vec<RuleKey>,
    pub(crate) host: Option<String>,
    pub(crate) command: Option<String>,
    pub(crate) definition: Option<&'s McpServer>,
}

fn mcp_facts<'s>(snap: &'s Snapshot, scope: &ScopeRef<'s>, server: &McpRef) -> McpFacts<'s> {
    let definition = server.name.as_deref().and_then(|n| scope.mcp_definition(n));
    let host = server
        .url
        .as_deref()
        .and_then(url_host)
        .or_else(|| definition.and_then(McpServer::host));
    let command = server
        .command
        .as_ref()
        .map(|c| {
            std::iter::once(c.as_str())
                .chain(server.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .or_else(|| {
            if server.url.is_none() {
                definition.and_then(McpServer::command_line)
            } else {
                None
            }
        });
    let hit = |m: &Matcher| {
        host.as_deref().is_some_and(|h| m.is_match(h))
            || command.as_deref().is_some_and(|c| m.is_match(c))
    };
    let mut parents = FastSet::default();
    let mut triggers = Vec::new();
    if snap.org_policy.mcp_blocklist.as_ref().is_some_and(hit)
        && let Some(u) = snap
            .uids
            .lists
            .get(&RuleKey::new(Level::Org, Field::McpBlocklist))
    {
        parents.insert(u.clone());
    }
    for l in scope.layers() {
        if l.mcp_enabled.as_ref().is_some_and(|b| b.value)
            && !l.mcp_allowlist.as_ref().is_some_and(hit)
        {
            triggers.push(RuleKey::new(l.level, Field::McpAllowlist));
        }
    }
    if let Some((level, s)) = server.name.as_deref().and_then(|n| scope.mcp_disabled(n))
        && s.disabled == Some(true)
    {
        triggers.push(RuleKey::new(level, Field::McpDisabled));
    }
    triggers.sort();
    triggers.dedup();
    McpFacts {
        parents,
        triggers,
        host,
        command,
        definition,
    }
}

fn euid(ty: &cedar_policy::EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn context(
    snap: &Snapshot,
    req: &Request,
    key_mode: KeyMode,
    provider: Option<Provider>,
    base_url: Option<&str>,
    triggers: &[RuleKey],
) -> Result<Context, String> {
    let s = |v: &str| RestrictedExpression::new_string(v.to_string());
    Context::from_pairs([
        (
            "project".to_string(),
            RestrictedExpression::new_entity_uid(euid(
                &snap.uids.project_type,
                req.project.as_deref().unwrap_or(""),
            )),
        ),
        ("folder".to_string(), s(req.folder.as_deref().unwrap_or(""))),
        ("keyMode".to_string(), s(key_mode.as_str())),
        (
            "provider".to_string(),
            s(provider.map(Provider::as_str).unwrap_or("")),
        ),
        ("baseUrl".to_string(), s(base_url.unwrap_or(""))),
        (
            "gateway".to_string(),
            s(req.gateway.as_deref().unwrap_or("")),
        ),
        (
            "triggers".to_string(),
            RestrictedExpression::new_set(triggers.iter().map(|t| s(&t.id()))),
        ),
    ])
    .map_err(|e| e.to_string())
}

fn principal(snap: &Snapshot, req: &Request) -> (EntityUid, Entity) {
    let uid = euid(&snap.uids.user_type, &req.user);
    let groups = req
        .groups
        .iter()
        .map(|g| euid(&snap.uids.group_type, g))
        .collect();
    (uid.clone(), Entity::new_no_attrs(uid, groups))
}

/// Decide one request against a snapshot
pub fn decide(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::Native)
}

/// [`decide`] with every hand-written rule evaluated by Cedar: the reference the native
/// evaluation of hand-written rules is tested against
#[doc(hidden)]
pub fn decide_cedar(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::CedarHand)
}

/// [`decide`] with every rule of the scope, base rules included, evaluated by Cedar's
/// `Authorizer`: the reference the native evaluation of the base rules is tested against
#[doc(hidden)]
pub fn decide_reference(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::Cedar)
}

fn decide_with(snap: &Snapshot, req: &Request, native: Mode) -> Decision {
    let scope = snap.scope(req);
    match &req.target {
        Target::Model {
            model,
            provider,
            key_mode,
            base_url,
            mcp_servers,
        } => {
            let facts = model_facts(
                snap,
                &scope,
                req,
                model,
                *provider,
                *key_mode,
                base_url.as_deref(),
            );
            let (idx, action) = match key_mode {
                KeyMode::Central => (0, &snap.uids.invoke_model),
                KeyMode::Byok => (1, &snap.uids.use_byok),
            };
            let attrs = [("id", model.as_str())];
            let hf = hand::Facts {
                resource_type: hand::MODEL,
                resource_id: model,
                parents: &facts.parents,
                resource_attrs: &attrs,
                key_mode: key_mode.as_str(),
                provider: facts.provider.map(Provider::as_str).unwrap_or(""),
                base_url: facts.base_url.as_deref().unwrap_or(""),
                triggers: &facts.triggers,
                ..request_facts(req)
            };
            let out = evaluate(
                snap,
                scope.sets,
                idx,
                &facts.parents,
                &facts.triggers,
                action,
                &hf,
                native,
                || {
                    let ctx = context(
                        snap,
                        req,
                        *key_mode,
                        facts.provider,
                        facts.base_url.as_deref(),
                        &facts.triggers,
                    )?;
                    let attrs = HashMap::from([(
                        "id".to_string(),
                        RestrictedExpression::new_string(model.clone()),
                    )]);
                    let resource = Entity::new(
                        euid(&snap.uids.model_type, model),
                        attrs,
                        facts.parents.iter().cloned().collect(),
                    )
                    .map_err(|e| format!("cannot build the model entity: {e}"))?;
                    Ok((principal(snap, req), resource, ctx))
                },
            );
            let what = format!("model `{model}`");
            let mut d = finish(snap, &scope, req, out, &what, |key| {
                model_provenance(snap, &scope, req, key, model, &facts)
            });
            if d.allowed() {
                if let Some((_, c)) = facts.entry {
                    d.obligations = Obligations {
                        upstream_base_url: c.base_url.clone(),
                        provider: c.provider,
                        credential_env: match &c.api_key {
                            Some(ApiKey::Env { var }) if *key_mode == KeyMode::Central => {
                                Some(var.clone())
                            }
                            _ => None,
                        },
                        max_output_tokens: c.max_output_tokens,
                    };
                }
                for server in mcp_servers {
                    let md = decide_mcp(snap, &scope, req, server, native);
                    if !md.allowed() {
                        return Decision {
                            obligations: Obligations::default(),
                            ..md
                        };
                    }
                }
            }
            d
        }
        Target::Mcp { server } => decide_mcp(snap, &scope, req, server, native),
    }
}

/// The parts of [`hand::Facts`] that come from the request alone
fn request_facts(req: &Request) -> hand::Facts<'_> {
    static NO_PARENTS: LazyLock<FastSet<EntityUid>> = LazyLock::new(FastSet::default);
    hand::Facts {
        user: &req.user,
        groups: &req.groups,
        resource_type: hand::MODEL,
        resource_id: "",
        parents: &NO_PARENTS,
        resource_attrs: &[],
        project: req.project.as_deref().unwrap_or(""),
        folder: req.folder.as_deref().unwrap_or(""),
        key_mode: KeyMode::Central.as_str(),
        provider: "",
        base_url: "",
        gateway: req.gateway.as_deref().unwrap_or(""),
        triggers: &[],
    }
}

fn decide_mcp(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    req: &Request,
    server: &McpRef,
    native: Mode,
) -> Decision {
    let facts = mcp_facts(snap, scope, server);
    let label = server.label();
    let transport = facts
        .definition
        .and_then(|d| d.transport)
        .map(|t| t.as_str())
        .unwrap_or(if server.url.is_some() { "http" } else { "" });
    let name = server.name.as_deref().unwrap_or("");
    let host = facts.host.as_deref().unwrap_or("");
    let command = facts.command.as_deref().unwrap_or("");
    let attrs = [
        ("name", name),
        ("transport", transport),
        ("host", host),
        ("command", command),
    ];
    let hf = hand::Facts {
        resource_type: hand::MCP_SERVER,
        resource_id: &label,
        parents: &facts.parents,
        resource_attrs: &attrs,
        triggers: &facts.triggers,
        ..request_facts(req)
    };
    let out = evaluate(
        snap,
        scope.sets,
        2,
        &facts.parents,
        &facts.triggers,
        &snap.uids.connect_mcp,
        &hf,
        native,
        || {
            let attrs = HashMap::from([
                (
                    "name".to_string(),
                    RestrictedExpression::new_string(server.name.clone().unwrap_or_default()),
                ),
                (
                    "transport".to_string(),
                    RestrictedExpression::new_string(transport.to_string()),
                ),
                (
                    "host".to_string(),
                    RestrictedExpression::new_string(facts.host.clone().unwrap_or_default()),
                ),
                (
                    "command".to_string(),
                    RestrictedExpression::new_string(facts.command.clone().unwrap_or_default()),
                ),
            ]);
            let resource = Entity::new(
                euid(&snap.uids.mcp_type, &label),
                attrs,
                facts.parents.iter().cloned().collect(),
            )
            .map_err(|e| format!("cannot build the MCP server entity: {e}"))?;
            let ctx = context(snap, req, KeyMode::Central, None, None, &facts.triggers)?;
            Ok((principal(snap, req), resource, ctx))
        },
    );
    finish(
        snap,
        scope,
        req,
        out,
        &format!("MCP server `{label}`"),
        |key| mcp_provenance(scope, snap, key, server, &facts),
    )
}
