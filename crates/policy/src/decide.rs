//! `decide(snapshot, request) -> Decision`: pure, no I/O, no locks. Glob matching computes which
//! lists the model (or MCP server) belongs to and which request conditions hold; Cedar combines
//! them with the hand-written rules; the determining policies are mapped back to their files.

use std::collections::HashMap;

use crate::FastSet;
use std::sync::LazyLock;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect as CedarEffect, Entities, Entity,
    EntityId, EntityUid, PolicyId, PolicySet, Request as CedarRequest, RestrictedExpression,
};
use serde::Serialize;

use crate::compile::{CompiledLayer, Matcher, Revision, ScopeSets, Snapshot};
use crate::files::mcp::{McpServer, url_host};
use crate::files::settings::{ApiKey, CustomModel, Provider};
use crate::hand::{self, HandRule, Verdict};
use crate::origin::{Level, Origin};
use crate::rules::{Field, RuleKey};

static AUTHORIZER: LazyLock<Authorizer> = LazyLock::new(Authorizer::new);

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

    fn at(&self, level: Level) -> impl Iterator<Item = &'s CompiledLayer> + '_ {
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
struct ModelFacts<'s> {
    parents: FastSet<EntityUid>,
    triggers: Vec<RuleKey>,
    base_url: Option<String>,
    provider: Option<Provider>,
    entry: Option<(&'s CompiledLayer, &'s CustomModel)>,
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

struct McpFacts<'s> {
    parents: FastSet<EntityUid>,
    triggers: Vec<RuleKey>,
    host: Option<String>,
    command: Option<String>,
    definition: Option<&'s McpServer>,
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

/// The raw Cedar outcome of one evaluation
struct Outcome {
    effect: Effect,
    reasons: Vec<PolicyId>,
    errors: Vec<String>,
}

/// What Cedar needs for one evaluation, built only when Cedar runs
type CedarInputs = Result<((EntityUid, Entity), Entity, Context), String>;

/// Decide with the base rules natively — each is "the resource is in list X" or "trigger X
/// holds", both computed already — and with Cedar for the hand-written rules that can apply to
/// the action. Same semantics as one Cedar evaluation of the scope's whole set: any forbid
/// denies, else any permit allows, else deny; the determining rules are the forbids that fired
/// (deny) or the permits that fired (allow).
#[allow(clippy::too_many_arguments)]
fn evaluate(
    snap: &Snapshot,
    sets: &ScopeSets,
    idx: usize,
    parents: &FastSet<EntityUid>,
    triggers: &[RuleKey],
    action: &EntityUid,
    hf: &hand::Facts<'_>,
    native: bool,
    inputs: impl FnOnce() -> CedarInputs,
) -> Outcome {
    let mut forbids = Vec::new();
    let mut permits = Vec::new();
    // a rule without a condition (the default MCP permit) fires whenever it is in the set
    let unconditional = RuleKey::new(Level::Org, Field::McpDefault);
    let fired = parents
        .iter()
        .filter_map(|u| snap.uids.list_keys.get(u).copied())
        .chain(triggers.iter().copied())
        .chain(std::iter::once(unconditional));
    for key in fired {
        if !sets.base[idx].contains(&key) {
            continue;
        }
        match snap.uids.base_ids.get(&key) {
            Some((id, CedarEffect::Forbid)) => forbids.push(id.clone()),
            Some((id, CedarEffect::Permit)) => permits.push(id.clone()),
            None => {}
        }
    }
    let mut errors = Vec::new();
    let rules = &sets.hand_rules[idx];
    if !rules.is_empty() {
        // hand-written rules: a rule whose scope does not match is false; one whose condition
        // is in the native subset is evaluated here; Cedar evaluates the others, or all of them
        // as soon as one would be an error (so errors and fail-closed forbids are Cedar's)
        let mut hits: Vec<&HandRule> = Vec::new();
        let mut cedar = false;
        let mut unsure = !native;
        if native {
            for r in rules.iter() {
                match r.verdict(hf) {
                    Verdict::No => {}
                    Verdict::Fired => hits.push(r),
                    Verdict::Cedar => cedar = true,
                    Verdict::Unsure => {
                        unsure = true;
                        break;
                    }
                }
            }
        }
        let set = if unsure {
            Some(&sets.hand[idx])
        } else {
            for r in hits {
                match r.effect {
                    CedarEffect::Forbid => forbids.push(r.id.clone()),
                    CedarEffect::Permit => permits.push(r.id.clone()),
                }
            }
            cedar.then_some(&sets.cedar_only[idx])
        };
        if let Some(set) = set {
            let out = match inputs() {
                Ok((principal, resource, ctx)) => {
                    cedar_eval(snap, set, principal, action, resource, Ok(ctx))
                }
                // the request cannot be put to Cedar: fail closed
                Err(e) => {
                    return Outcome {
                        effect: Effect::Deny,
                        reasons: Vec::new(),
                        errors: vec![e],
                    };
                }
            };
            errors = out.errors;
            match out.effect {
                Effect::Deny => forbids.extend(out.reasons),
                Effect::Allow => permits.extend(out.reasons),
            }
        }
    }
    let (effect, mut reasons) = if !forbids.is_empty() {
        (Effect::Deny, forbids)
    } else if !permits.is_empty() {
        (Effect::Allow, permits)
    } else {
        (Effect::Deny, Vec::new())
    };
    reasons.sort();
    reasons.dedup();
    Outcome {
        effect,
        reasons,
        errors,
    }
}

fn cedar_eval(
    snap: &Snapshot,
    set: &PolicySet,
    principal: (EntityUid, Entity),
    action: &EntityUid,
    resource: Entity,
    ctx: Result<Context, String>,
) -> Outcome {
    let fail = |e: String| Outcome {
        effect: Effect::Deny,
        reasons: Vec::new(),
        errors: vec![e],
    };
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot build the request context: {e}")),
    };
    let resource_uid = resource.uid();
    let entities = match Entities::from_entities(
        // the request's own action entity carries its parents (`use_model`): the others are not needed
        snap.uids
            .actions
            .iter()
            .filter(|a| a.uid() == *action)
            .cloned()
            .chain([principal.1, resource]),
        None,
    ) {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot build the request entities: {e}")),
    };
    let request = match CedarRequest::new(principal.0, action.clone(), resource_uid, ctx, None) {
        Ok(r) => r,
        Err(e) => return fail(format!("invalid request: {e}")),
    };
    let response = AUTHORIZER.is_authorized(&request, set, &entities);
    let mut reasons: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
    let mut errors = Vec::new();
    let mut effect = match response.decision() {
        CedarDecision::Allow => Effect::Allow,
        CedarDecision::Deny => Effect::Deny,
    };
    for e in response.diagnostics().errors() {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
        let id = pe.policy_id();
        errors.push(e.to_string());
        // Cedar skips a policy that errors; a skipped forbid must not become an allow
        if set
            .policy(id)
            .is_some_and(|p| p.effect() == CedarEffect::Forbid)
        {
            if effect == Effect::Allow {
                reasons.clear();
            }
            effect = Effect::Deny;
            reasons.push(id.clone());
        }
    }
    if effect == Effect::Deny {
        reasons.retain(|id| {
            set.policy(id)
                .is_some_and(|p| p.effect() == CedarEffect::Forbid)
        });
    }
    reasons.sort();
    Outcome {
        effect,
        reasons,
        errors,
    }
}

/// Decide one request against a snapshot
pub fn decide(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, true)
}

/// [`decide`] with every hand-written rule evaluated by Cedar: the reference the native
/// evaluation of hand-written rules is tested against
#[doc(hidden)]
pub fn decide_cedar(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, false)
}

fn decide_with(snap: &Snapshot, req: &Request, native: bool) -> Decision {
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
    native: bool,
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

/// What a base rule says about this request: (origin, matched entry, reason)
pub type Provenance = (Option<Origin>, Option<String>, String);

fn finish(
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
    let info = snap.rules.get(id)?;
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
fn model_provenance(
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
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f.base_url.as_deref(), "allowedBaseUrls")))
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
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f.base_url.as_deref(), "policy.json byok.allowedBaseUrls")))
            .unwrap_or_else(none),
        Field::GatewayRequired => snap
            .org_policy
            .gateway_required
            .as_ref()
            .map(|m| (Some(m.origin.clone()), f.base_url.clone(), url_reason(f.base_url.as_deref(), "the org's required gateways (policy.json gateway.requiredBaseUrls)")))
            .unwrap_or_else(none),
        Field::McpDefault | Field::McpBlocklist | Field::McpAllowlist | Field::McpDisabled => none(),
    }
}

fn url_reason(url: Option<&str>, list: &str) -> String {
    match url {
        Some(u) => format!("base URL `{u}` is not in {list}"),
        None => format!("the base URL is unknown, so it cannot be shown to be in {list}"),
    }
}

fn mcp_provenance(
    scope: &ScopeRef<'_>,
    snap: &Snapshot,
    key: RuleKey,
    server: &McpRef,
    f: &McpFacts<'_>,
) -> Provenance {
    let label = server.label();
    let target = match (&f.host, &f.command) {
        (Some(h), _) => format!("host `{h}`"),
        (None, Some(c)) => format!("command `{c}`"),
        (None, None) => "an unknown host and command".to_string(),
    };
    let none = || (None, None, format!("{key} says nothing here"));
    match key.field {
        Field::McpDefault => (None, None, format!("MCP server `{label}` is usable unless a rule forbids it")),
        Field::McpBlocklist => snap
            .org_policy
            .mcp_blocklist
            .as_ref()
            .and_then(|m| {
                let e = f.host.as_deref().and_then(|h| m.first_match(h)).or_else(|| f.command.as_deref().and_then(|c| m.first_match(c)))?;
                Some((Some(e.origin.clone()), Some(e.value.clone()), format!("{target} matches `{}` in the org's mcpBlocklist", e.value)))
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
