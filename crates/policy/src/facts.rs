//! What a request resolves to before any rule is evaluated: the lists the model or MCP server
//! belongs to (its Cedar parents), the request conditions that hold (triggers), and the
//! Cedar entities and context built from them when Cedar runs.

use cedar_policy::{Context, Entity, EntityId, EntityUid, RestrictedExpression};

use crate::FastSet;
use crate::compile::{CompiledLayer, Snapshot};
use crate::compiled::{McpList, UrlList};
use crate::decision::{KeyMode, McpRef, Request};
use crate::files::mcp::McpServer;
use crate::files::settings::{CustomModel, Provider};
use crate::matchers::mcp::McpTarget;
use crate::matchers::url::{BaseUrl, UrlError, mcp_host};
use crate::origin::Level;
use crate::rules::{Field, RuleKey};
use crate::scope::ScopeRef;

/// What one model request resolves to before Cedar sees it
pub(crate) struct ModelFacts<'s> {
    pub(crate) parents: FastSet<EntityUid>,
    pub(crate) triggers: Vec<RuleKey>,
    pub(crate) base_url: Option<String>,
    /// `base_url` parsed, once, when first asked for
    parsed_base_url: ParsedUrl,
    pub(crate) provider: Option<Provider>,
    pub(crate) entry: Option<(&'s CompiledLayer, &'s CustomModel)>,
}

type ParsedUrl = std::cell::OnceCell<Option<std::rc::Rc<Result<BaseUrl, UrlError>>>>;

/// `url` parsed as a client parses it (WHATWG), at most once per request, through
/// [`BaseUrl::parse_memo`]: a gateway sends the same base URL on nearly every request
fn parsed<'a>(cell: &'a ParsedUrl, url: Option<&str>) -> Option<&'a Result<BaseUrl, UrlError>> {
    cell.get_or_init(|| url.map(BaseUrl::parse_memo)).as_deref()
}

impl ModelFacts<'_> {
    /// The base URL parsed, or why it could not be; `None` without one
    pub(crate) fn parsed_base_url(&self) -> Option<&Result<BaseUrl, UrlError>> {
        parsed(&self.parsed_base_url, self.base_url.as_deref())
    }
}

// Longer than a screen: one walk over the scope that gives each base rule of rules.rs its list
// parent or trigger, level by level; the conditions sit side by side as the table they implement,
// and the BYOK default at the end reads the parents the walk collected.
pub(crate) fn model_facts<'s>(
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
    // one that does not parse, or has userinfo, a query or a fragment, is in no URL list;
    // parsed only when a URL list is consulted
    let parsed_url = ParsedUrl::new();
    let url_miss = |m: &UrlList| match parsed(&parsed_url, base_url.as_deref()) {
        Some(Ok(u)) => !m.is_match(u),
        _ => true,
    };

    for (i, (_, cat)) in snap.org_policy.categories.iter().enumerate() {
        if cat.is_match_canonical(model)
            && let Some(u) = uids.categories.get(i)
        {
            parents.insert(u.clone());
        }
    }
    if scope.org.allowed.is_none() {
        list(&mut parents, Level::Org, Field::NoAllowlist);
    }
    // as in Droid, a person's own `allowedModelIds` counts only where no level above sets a list
    // (the first level that sets one wins): the org's (or the org's list for this person,
    // `userModelPolicies`, which the org document serves as the person's `modelPolicy`), a
    // project's or a folder's. It only ever narrows: it is a forbid.
    let listed_above = scope
        .layers()
        .any(|l| l.level != Level::User && l.allowed.is_some())
        || scope
            .org
            .user_policies
            .get(&req.user)
            .is_some_and(|p| p.allowed.is_some());
    for l in scope.layers() {
        let level = l.level;
        if l.blocked
            .as_ref()
            .is_some_and(|m| m.is_match_canonical(model))
        {
            list(&mut parents, level, Field::Blocked);
        }
        if level == Level::User {
            if !listed_above
                && l.allowed
                    .as_ref()
                    .is_some_and(|m| !m.is_match_canonical(model))
            {
                triggers.push(RuleKey::new(level, Field::UserAllowlist));
            }
        } else if l.adds_models
            && l.allowed
                .as_ref()
                .is_some_and(|m| m.is_match_canonical(model))
        {
            list(&mut parents, level, Field::Allowed);
        }
        if l.adds_models && level != Level::User && l.custom_model_canonical(model).is_some() {
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
        if p.blocked
            .as_ref()
            .is_some_and(|m| m.is_match_canonical(model))
        {
            list(&mut parents, Level::Org, Field::UserPolicyBlocked);
        }
        if p.allowed
            .as_ref()
            .is_some_and(|m| !m.is_match_canonical(model))
        {
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
        // no list in scope allows it: the person's own model
        let listed = parents.iter().any(|u| {
            uids.list_keys.get(u).is_some_and(|k| {
                matches!(
                    k.field,
                    Field::NoAllowlist | Field::Allowed | Field::CustomModels
                )
            })
        });
        if !listed {
            triggers.push(RuleKey::new(Level::Org, Field::ByokDefault));
        }
    }
    triggers.sort();
    triggers.dedup();
    ModelFacts {
        parents,
        triggers,
        base_url,
        parsed_base_url: parsed_url,
        provider,
        entry,
    }
}

pub(crate) struct McpFacts<'s> {
    pub(crate) parents: FastSet<EntityUid>,
    pub(crate) triggers: Vec<RuleKey>,
    pub(crate) host: Option<String>,
    /// a stdio server's command and arguments
    pub(crate) command: Option<(String, Vec<String>)>,
    pub(crate) definition: Option<&'s McpServer>,
}

impl McpFacts<'_> {
    /// The server as the lists see it: remote by its host, else stdio by its command
    pub(crate) fn target(&self) -> Option<McpTarget<'_>> {
        match (&self.host, &self.command) {
            (Some(host), _) => Some(McpTarget::Remote { host }),
            (None, Some((command, args))) => Some(McpTarget::Stdio { command, args }),
            (None, None) => None,
        }
    }

    /// `command arg1 arg2 ...`, for Cedar's `resource.command` and for people
    pub(crate) fn command_line(&self) -> Option<String> {
        self.command.as_ref().map(|(c, args)| {
            std::iter::once(c.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
    }
}

pub(crate) fn mcp_facts<'s>(
    snap: &'s Snapshot,
    scope: &ScopeRef<'s>,
    server: &McpRef,
) -> McpFacts<'s> {
    let definition = server.name.as_deref().and_then(|n| scope.mcp_definition(n));
    let host = server
        .url
        .as_deref()
        .and_then(mcp_host)
        .or_else(|| definition.and_then(McpServer::host));
    let command = server
        .command
        .as_ref()
        .map(|c| (c.clone(), server.args.clone()))
        .or_else(|| {
            if server.url.is_none() {
                definition.and_then(|d| d.command.clone().map(|c| (c, d.args.clone())))
            } else {
                None
            }
        });
    let facts = McpFacts {
        parents: FastSet::default(),
        triggers: Vec::new(),
        host,
        command,
        definition,
    };
    let target = facts.target();
    let hit = |m: &McpList| target.as_ref().is_some_and(|t| m.is_match(t));
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
    if snap.org_policy.mcp_exec_env_deny.is_some()
        && definition.is_some_and(|d| d.origin.level != Level::Org && d.exec_env().is_some())
    {
        triggers.push(RuleKey::new(Level::Org, Field::McpExecEnv));
    }
    triggers.sort();
    triggers.dedup();
    McpFacts {
        parents,
        triggers,
        ..facts
    }
}

pub(crate) fn euid(ty: &cedar_policy::EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

pub(crate) fn context(
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

pub(crate) fn principal(snap: &Snapshot, req: &Request) -> (EntityUid, Entity) {
    let uid = euid(&snap.uids.user_type, &req.user);
    let groups = req
        .groups
        .iter()
        .map(|g| euid(&snap.uids.group_type, g))
        .collect();
    (uid.clone(), Entity::new_no_attrs(uid, groups))
}
