//! Compile layers into an immutable [`Snapshot`]: glob matchers for every list, one Cedar policy
//! set per scope and action, validated against the schema, with a revision that is the content
//! hash of everything that went in.

use std::collections::HashMap;

use crate::{FastMap, FastSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Effect as CedarEffect, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use crate::eval::cedar_subset::{self as hand, HandRule};
use crate::files::cedar::{self, HandPolicy};
use crate::files::settings::EnvLookup;
use crate::layer::{FileTree, Layer};
use crate::origin::{Level, Origin};
use crate::problem::{Problem, Problems, Severity};
use crate::rules::{self, Field, RuleKey, Scope};

/// A snapshot's revision: the sha-256 of every input, hex
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Revision(pub Arc<str>);

impl Revision {
    /// The first 12 hex digits, for people
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::compiled::{CompiledLayer, CompiledUserPolicy, MatchKind, Matcher, OrgPolicy};

/// A policy of the compiled set and where it came from
#[derive(Clone, Debug)]
pub struct RuleInfo {
    pub id: PolicyId,
    /// `id` as text, formatted once (decisions name their rules)
    pub name: String,
    pub effect: CedarEffect,
    pub level: Level,
    /// a base rule: which field it enforces
    pub key: Option<RuleKey>,
    /// a hand-written rule: its file and line
    pub hand: Option<Origin>,
    pub text: String,
}

/// The Cedar policy sets of one scope, one per action
#[derive(Clone, Debug)]
pub struct ScopeSets {
    /// every policy of the scope (base and hand-written), by action: what `explain` lists
    pub invoke_model: Arc<PolicySet>,
    pub use_byok: Arc<PolicySet>,
    pub connect_mcp: Arc<PolicySet>,
    /// the base rules present in the scope, by action ([`ACTIONS`] order); `decide` evaluates
    /// them natively from the list memberships and triggers it computes anyway
    pub base: [FastSet<RuleKey>; 3],
    /// the hand-written policies that can apply to each action: what Cedar evaluates when a
    /// rule cannot be decided natively
    pub hand: [Arc<PolicySet>; 3],
    /// the same rules compiled for `decide` (scope test, native condition), by action
    pub hand_rules: [Arc<[Arc<HandRule>]>; 3],
    /// the hand-written policies of each action whose condition only Cedar evaluates
    pub cedar_only: [Arc<PolicySet>; 3],
}

impl ScopeSets {
    /// Every policy of the scope that can apply to action `ACTIONS[idx]`
    pub fn all(&self, idx: usize) -> &PolicySet {
        match idx {
            0 => &self.invoke_model,
            1 => &self.use_byok,
            _ => &self.connect_mcp,
        }
    }
}

/// The actions, in the order [`ScopeSets`] indexes them
pub const ACTIONS: [&str; 3] = ["invoke_model", "use_byok", "connect_mcp"];

/// Whether a policy's action constraint can match action `ACTIONS[idx]`
fn applies_to(policy: &Policy, idx: usize) -> bool {
    let name = ACTIONS[idx];
    let is = |uid: &EntityUid| {
        let id = uid.id().unescaped();
        id == name || (id == "use_model" && idx < 2)
    };
    match policy.action_constraint() {
        cedar_policy::ActionConstraint::Any => true,
        cedar_policy::ActionConstraint::Eq(uid) => is(&uid),
        cedar_policy::ActionConstraint::In(uids) => uids.iter().any(is),
    }
}

/// A project's layers, compiled
#[derive(Clone, Debug)]
pub struct CompiledProject {
    pub id: String,
    pub layer: CompiledLayer,
    /// folder path below the project root → its layer and sets
    pub folders: Vec<(String, CompiledLayer, ScopeSets)>,
    pub sets: ScopeSets,
}

/// The input of [`compile`]: the org bundle, project layers by project id (each with its
/// folders), user layers by user id
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    pub org: FileTree,
    pub projects: Vec<ProjectTrees>,
    pub users: Vec<(String, FileTree)>,
}

#[derive(Clone, Debug, Default)]
pub struct ProjectTrees {
    pub id: String,
    pub project: FileTree,
    /// (path below the project root, e.g. `services/billing`, its `.factory/` tree)
    pub folders: Vec<(String, FileTree)>,
}

/// Pre-built entity ids, so the decision path parses nothing
#[derive(Clone, Debug)]
pub struct Uids {
    /// the action entities (and their `use_model` group), from the schema
    pub actions: Vec<cedar_policy::Entity>,
    pub lists: FastMap<RuleKey, EntityUid>,
    /// the other way: list entity → base rule
    pub list_keys: FastMap<EntityUid, RuleKey>,
    /// base rule → its policy id and effect
    pub base_ids: FastMap<RuleKey, (PolicyId, CedarEffect)>,
    pub categories: Vec<EntityUid>,
    pub invoke_model: EntityUid,
    pub use_byok: EntityUid,
    pub connect_mcp: EntityUid,
    pub user_type: EntityTypeName,
    pub group_type: EntityTypeName,
    pub model_type: EntityTypeName,
    pub mcp_type: EntityTypeName,
    pub project_type: EntityTypeName,
}

/// Everything a decision needs, compiled once and never changed
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub revision: Revision,
    pub org: CompiledLayer,
    pub org_policy: OrgPolicy,
    pub projects: FastMap<String, CompiledProject>,
    pub users: FastMap<String, CompiledLayer>,
    pub org_sets: ScopeSets,
    pub rules: FastMap<PolicyId, RuleInfo>,
    pub uids: Uids,
    /// warnings found while compiling (locked keys, ignored additions, ...)
    pub diagnostics: Vec<Problem>,
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(ty).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn type_name(ty: &str) -> Result<EntityTypeName, String> {
    EntityTypeName::from_str(ty).map_err(|e| e.to_string())
}

fn internal(message: String) -> Problems {
    Problems {
        problems: vec![Problem {
            severity: Severity::Error,
            code: "internal",
            file: rules::BASE_RULES_FILE.to_string(),
            line: 0,
            col: 0,
            pointer: String::new(),
            message,
        }],
    }
}

/// The schema, parsed
pub fn schema() -> Result<Schema, Problems> {
    Schema::from_cedarschema_str(rules::SCHEMA_SRC)
        .map(|(s, _)| s)
        .map_err(|e| internal(format!("the built-in schema does not parse: {e}")))
}

/// The base rules, parsed, with their keys
pub fn base_rules() -> Result<Vec<(RuleKey, Policy)>, Problems> {
    let file: Arc<str> = Arc::from(rules::BASE_RULES_FILE);
    let (policies, problems) = cedar::read(Level::Org, &file, "", rules::BASE_RULES_SRC.as_bytes());
    if !problems.is_empty() {
        return Err(Problems { problems });
    }
    let mut out = Vec::new();
    for p in policies {
        let id = p.id.to_string();
        let id = id.trim_start_matches('/');
        let key = RuleKey::parse(id)
            .ok_or_else(|| internal(format!("base rule `{id}` names no known field")))?;
        out.push((key, p.policy.new_id(PolicyId::new(id))));
    }
    Ok(out)
}

fn hash_tree(h: &mut Sha256, tag: &str, tree: &FileTree) {
    h.update((tag.len() as u64).to_le_bytes());
    h.update(tag.as_bytes());
    for (path, bytes) in &tree.files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
}

/// The revision of a bundle: sha-256 over the schema, the base rules and every file
pub fn revision_of(bundle: &Bundle) -> Revision {
    revision_with(bundle, &[])
}

/// The revision of a bundle and of the values its `${VAR}`s expanded to where governance matches
/// on them (MCP server URLs, commands, arguments): the same files in another environment can
/// decide differently, so they are another revision. (API key values are never part of it.)
pub fn revision_with(bundle: &Bundle, expanded: &[String]) -> Revision {
    let mut h = Sha256::new();
    for e in expanded {
        h.update((e.len() as u64).to_le_bytes());
        h.update(e.as_bytes());
    }
    h.update(rules::SCHEMA_SRC.as_bytes());
    h.update(rules::BASE_RULES_SRC.as_bytes());
    hash_tree(&mut h, "org", &bundle.org);
    for p in &bundle.projects {
        hash_tree(&mut h, &format!("project:{}", p.id), &p.project);
        for (path, t) in &p.folders {
            hash_tree(&mut h, &format!("folder:{}:{path}", p.id), t);
        }
    }
    for (u, t) in &bundle.users {
        hash_tree(&mut h, &format!("user:{u}"), t);
    }
    Revision(Arc::from(hex::encode(h.finalize())))
}

struct Compiler {
    problems: Problems,
    base: Vec<(RuleKey, Policy)>,
    rules: FastMap<PolicyId, RuleInfo>,
    /// hand-written rules compiled for `decide`, by id (ids are unique in a bundle that compiles)
    hand_rules: HashMap<PolicyId, Arc<HandRule>>,
    all: PolicySet,
    /// the org's `policy.json` lets projects and folders add model patterns
    patterns_ok: bool,
    /// the org's category names (a category in a lower list is a pattern)
    categories: Vec<String>,
    /// the org's `policy.json` denies stdio servers below it whose env changes what runs
    exec_env_deny: bool,
}

impl Compiler {
    /// Read a layer; `scope` names its project (and folder) so hand-written rule ids are unique
    /// across the bundle, e.g. `project:web#policies/x.cedar/rule`
    fn load(
        &mut self,
        level: Level,
        tree: &FileTree,
        env: EnvLookup<'_>,
        scope: Option<&str>,
    ) -> Arc<Layer> {
        let (mut layer, problems) = Layer::load(level, tree, env);
        self.problems.extend(problems);
        crate::merge::check_exec_env(&layer, self.exec_env_deny, &mut self.problems);
        crate::merge::limit_additions(
            &mut layer,
            self.patterns_ok,
            &self.categories,
            &mut self.problems,
        );
        if let Some(scope) = scope {
            let from = format!("{level}#");
            let to = format!("{level}:{scope}#");
            for h in &mut layer.cedar {
                if let Some(rest) = h.id.to_string().strip_prefix(&from) {
                    h.id = PolicyId::new(format!("{to}{rest}"));
                    h.policy = h.policy.new_id(h.id.clone());
                }
            }
        }
        Arc::new(layer)
    }

    fn add_hand(&mut self, hand: &[HandPolicy]) {
        for h in hand {
            if self.rules.contains_key(&h.id) {
                continue;
            }
            self.rules.insert(
                h.id.clone(),
                RuleInfo {
                    id: h.id.clone(),
                    name: h.id.to_string(),
                    effect: h.effect(),
                    level: h.origin.level,
                    key: None,
                    hand: Some(h.origin.clone()),
                    text: h.text.clone(),
                },
            );
            self.hand_rules
                .insert(h.id.clone(), Arc::new(HandRule::compile(&h.policy)));
            if let Err(e) = self.all.add(h.policy.clone()) {
                self.problems.push(cedar::problem(
                    &h.origin.file,
                    h.origin.line,
                    h.origin.col,
                    "cedar.duplicate_id",
                    e.to_string(),
                ));
            }
        }
    }

    /// The sets of a scope: the base rules that have something to enforce there, plus hand-written ones
    fn sets(
        &self,
        layers: &[&CompiledLayer],
        org_policy: &OrgPolicy,
        hand: &[&HandPolicy],
        users: &[&CompiledLayer],
    ) -> ScopeSets {
        let mut by_action = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut base: [FastSet<RuleKey>; 3] = Default::default();
        let mut hand_sets = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut cedar_only = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut hand_rules: [Vec<Arc<HandRule>>; 3] = Default::default();
        for (key, policy) in &self.base {
            let present = match key.field {
                Field::GatewayRequired => org_policy.gateway_required.is_some(),
                Field::ByokProviders => org_policy.byok_providers.is_some(),
                Field::ByokBaseUrls => org_policy.byok_base_urls.is_some(),
                Field::McpBlocklist => org_policy.mcp_blocklist.is_some(),
                Field::McpExecEnv => org_policy.mcp_exec_env_deny.is_some(),
                // user layers are chosen per request: keep a rule wherever some user layer needs it
                field if key.level == Level::User => users.iter().any(|u| u.defines(field)),
                field => layers
                    .iter()
                    .any(|l| l.level == key.level && l.defines(field)),
            };
            if !present {
                continue;
            }
            // the rule's own action constraint says which actions it is about
            for t in (0..ACTIONS.len()).filter(|t| applies_to(policy, *t)) {
                let _ = by_action[t].add(policy.clone());
                base[t].insert(*key);
            }
        }
        for h in hand {
            for set in by_action.iter_mut() {
                let _ = set.add(h.policy.clone());
            }
            let rule = self
                .hand_rules
                .get(&h.id)
                .cloned()
                .unwrap_or_else(|| Arc::new(HandRule::compile(&h.policy)));
            for (idx, set) in hand_sets.iter_mut().enumerate() {
                if applies_to(&h.policy, idx) {
                    let _ = set.add(h.policy.clone());
                    if !rule.native() {
                        let _ = cedar_only[idx].add(h.policy.clone());
                    }
                    hand_rules[idx].push(rule.clone());
                }
            }
        }
        let [invoke_model, use_byok, connect_mcp] = by_action;
        ScopeSets {
            invoke_model: Arc::new(invoke_model),
            use_byok: Arc::new(use_byok),
            connect_mcp: Arc::new(connect_mcp),
            base,
            hand: hand_sets.map(Arc::new),
            hand_rules: hand_rules.map(Arc::from),
            cedar_only: cedar_only.map(Arc::new),
        }
    }

    fn validate(&mut self, schema: &Schema) {
        let result = Validator::new(schema.clone()).validate(&self.all, ValidationMode::Strict);
        // the validator reports a problem once per action a rule applies to: keep one
        let mut seen = std::collections::HashSet::new();
        let mut found: Vec<_> = result.validation_errors().collect();
        found.sort_by_key(|e| (e.policy_id().to_string(), e.to_string()));
        for e in found {
            let id = e.policy_id();
            let text = e.to_string();
            let key = ["invoke_model", "use_byok", "connect_mcp"]
                .iter()
                .fold(text, |t, a| {
                    t.replace(&format!("Action::\"{a}\""), "Action")
                });
            if !seen.insert((id.to_string(), key)) {
                continue;
            }
            let (file, line, col) = match self.rules.get(id).and_then(|r| r.hand.clone()) {
                Some(o) => {
                    let (dl, dc) = e
                        .labels()
                        .and_then(|mut l| l.next())
                        .map(|l| {
                            let text = self.rules.get(id).map(|r| r.text.as_str()).unwrap_or("");
                            crate::json::line_col(text.as_bytes(), l.offset())
                        })
                        .unwrap_or((1, 1));
                    let line = o.line + dl - 1;
                    let col = if dl == 1 { o.col + dc - 1 } else { dc };
                    (o.file.to_string(), line, col)
                }
                None => (rules::BASE_RULES_FILE.to_string(), 0, 0),
            };
            let mut message = format!("policy `{id}` does not match the schema: {e}");
            if let Some(help) = e.help() {
                message.push_str(&format!(" ({help})"));
            }
            self.problems.push(Problem {
                severity: Severity::Error,
                code: "cedar.schema",
                file,
                line,
                col,
                pointer: String::new(),
                message,
            });
        }
    }
}

/// Read, merge, compile and validate a bundle. Errors: every problem found. On success the
/// snapshot carries the warnings.
pub fn compile(bundle: &Bundle, env: EnvLookup<'_>) -> Result<Snapshot, Problems> {
    let schema = schema()?;
    let mut c = Compiler::new(base_rules()?);

    let org_layer = c.load(Level::Org, &bundle.org, env, None);
    let org_policy = c.org_policy(&org_layer);
    let cats = org_layer.policy.model_categories.clone();
    let may_add = org_policy
        .projects_may_add_models
        .as_ref()
        .is_none_or(|b| b.value);
    let org = CompiledLayer::build(org_layer.clone(), &cats, true, &mut c.problems);
    let org_hand: Vec<HandPolicy> = org_layer.cedar.clone();
    c.add_hand(&org_hand);

    let mut users = FastMap::default();
    for (id, tree) in &bundle.users {
        let layer = c.load(Level::User, tree, env, None);
        let mut cl = CompiledLayer::build(layer, &cats, false, &mut c.problems);
        crate::merge::lock(&mut c.problems, &[&org], &mut cl);
        users.insert(id.clone(), cl);
    }
    let user_layers: Vec<CompiledLayer> = users.values().cloned().collect();
    let any_users: Vec<&CompiledLayer> = user_layers.iter().collect();

    let org_scope = OrgScope {
        env,
        layer: &org,
        policy: &org_policy,
        categories: &cats,
        hand: &org_hand,
        may_add,
        users: &any_users,
    };
    let projects = c.projects(&bundle.projects, &org_scope);
    let org_refs: Vec<&HandPolicy> = org_hand.iter().collect();
    let org_sets = c.sets(&[&org], &org_policy, &org_refs, &any_users);

    c.validate(&schema);
    // one stable order whatever order the checks ran in (Cedar's validator iterates a hash map)
    c.problems.problems.sort_by(|a, b| {
        (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
    });
    c.problems.problems.dedup();
    if c.problems.has_errors() {
        return Err(c.problems);
    }
    let expanded = mcp_server_lines(&org, &projects, &users);
    let mut uids = build_uids(&c.base, &org_policy).map_err(internal)?;
    uids.actions = schema
        .action_entities()
        .map_err(|e| internal(e.to_string()))?
        .iter()
        .cloned()
        .collect();
    Ok(Snapshot {
        revision: revision_with(bundle, &expanded),
        org,
        org_policy,
        projects,
        users,
        org_sets,
        rules: c.rules,
        uids,
        diagnostics: c.problems.problems,
    })
}

/// What a project's compilation reads from the org level and the users
struct OrgScope<'a> {
    env: EnvLookup<'a>,
    layer: &'a CompiledLayer,
    policy: &'a OrgPolicy,
    categories: &'a [(String, crate::files::settings::List)],
    hand: &'a [HandPolicy],
    /// the org lets projects and folders add models
    may_add: bool,
    users: &'a [&'a CompiledLayer],
}

impl Compiler {
    /// A compiler that starts from the base rules
    fn new(base: Vec<(RuleKey, Policy)>) -> Compiler {
        let mut c = Compiler {
            problems: Problems::default(),
            base,
            rules: FastMap::default(),
            hand_rules: HashMap::new(),
            all: PolicySet::new(),
            patterns_ok: false,
            categories: Vec::new(),
            exec_env_deny: false,
        };
        for (key, p) in &c.base {
            c.rules.insert(
                p.id().clone(),
                RuleInfo {
                    id: p.id().clone(),
                    name: p.id().to_string(),
                    effect: p.effect(),
                    level: key.level,
                    key: Some(*key),
                    hand: None,
                    text: p.to_string(),
                },
            );
            let _ = c.all.add(p.clone());
        }
        c
    }

    /// The org's `policy.json` compiled, and the switches it sets for the layers below
    fn org_policy(&mut self, org_layer: &Layer) -> OrgPolicy {
        let pf = &org_layer.policy;
        let mut scratch = Problems::default();
        let categories: Vec<(String, Matcher)> = pf
            .model_categories
            .iter()
            .map(|(n, l)| {
                (
                    n.clone(),
                    Matcher::build(l, MatchKind::Model, &[], &mut scratch),
                )
            })
            .collect();
        let org_policy = OrgPolicy {
            categories,
            projects_may_add_models: pf.projects_may_add_models.clone(),
            byok_providers: pf.byok_allowed_providers.clone(),
            byok_base_urls: pf
                .byok_allowed_base_urls
                .as_ref()
                .map(|l| crate::compiled::UrlList::build(l, &mut scratch)),
            mcp_exec_env_deny: pf
                .mcp_exec_env_deny
                .as_ref()
                .filter(|b| b.value)
                .map(|b| b.origin.clone()),
            mcp_blocklist: pf
                .mcp_blocklist
                .as_ref()
                .map(crate::compiled::McpList::build),
            gateway_required: pf
                .gateway_required_base_urls
                .as_ref()
                .map(|l| crate::compiled::UrlList::build(l, &mut scratch)),
            require_org_settings: pf
                .require_org_settings
                .as_ref()
                .filter(|b| b.value)
                .map(|b| b.origin.clone()),
        };
        self.problems.extend(scratch);
        self.categories = pf.model_categories.iter().map(|(n, _)| n.clone()).collect();
        self.exec_env_deny = pf.mcp_exec_env_deny.as_ref().is_some_and(|b| b.value);
        self.patterns_ok = pf
            .projects_may_add_model_patterns
            .as_ref()
            .is_some_and(|b| b.value);
        org_policy
    }

    /// Every project of the bundle by id; an id given twice is an error
    fn projects(
        &mut self,
        trees: &[ProjectTrees],
        org: &OrgScope<'_>,
    ) -> FastMap<String, CompiledProject> {
        let mut projects = FastMap::default();
        for pt in trees {
            let project = self.project(pt, org);
            if projects.contains_key(&pt.id) {
                self.problems.push(cedar::problem(
                    &Arc::from(pt.project.root.as_str()),
                    0,
                    0,
                    "bundle.duplicate_project",
                    format!("project `{}` is given twice", pt.id),
                ));
            }
            projects.insert(pt.id.clone(), project);
        }
        projects
    }

    /// A project and its folders: each layer loaded, locked under the layers above it, and the
    /// sets of every scope
    fn project(&mut self, pt: &ProjectTrees, org: &OrgScope<'_>) -> CompiledProject {
        let (env, cats, may_add) = (org.env, org.categories, org.may_add);
        let layer = self.load(Level::Project, &pt.project, env, Some(&pt.id));
        let mut pl = CompiledLayer::build(layer.clone(), cats, may_add, &mut self.problems);
        crate::merge::lock(&mut self.problems, &[org.layer], &mut pl);
        self.add_hand(&layer.cedar);
        let mut folders = Vec::new();
        for (path, tree) in &pt.folders {
            let path = path.trim_matches('/').to_string();
            let fl = self.load(Level::Folder, tree, env, Some(&format!("{}/{path}", pt.id)));
            let mut cf = CompiledLayer::build(fl, cats, may_add, &mut self.problems);
            crate::merge::lock(&mut self.problems, &[org.layer, &pl], &mut cf);
            self.add_hand(&cf.layer.cedar.clone());
            folders.push((path, cf));
        }
        let project_hand: Vec<&HandPolicy> = org.hand.iter().chain(layer.cedar.iter()).collect();
        let sets = self.sets(&[org.layer, &pl], org.policy, &project_hand, org.users);
        // a folder's scope holds every folder layer on its path, outermost first
        let folder_sets: Vec<ScopeSets> = folders
            .iter()
            .map(|(path, _)| {
                let on_path: Vec<&CompiledLayer> = folders
                    .iter()
                    .filter(|(p, _)| crate::layer::is_path_prefix(p, path))
                    .map(|(_, l)| l)
                    .collect();
                let mut layers = vec![org.layer, &pl];
                layers.extend(on_path.iter().copied());
                let hand: Vec<&HandPolicy> = project_hand
                    .iter()
                    .copied()
                    .chain(on_path.iter().flat_map(|l| l.layer.cedar.iter()))
                    .collect();
                self.sets(&layers, org.policy, &hand, org.users)
            })
            .collect();
        let folders = folders
            .into_iter()
            .zip(folder_sets)
            .map(|((path, cf), s)| (path, cf, s))
            .collect();
        CompiledProject {
            id: pt.id.clone(),
            layer: pl,
            folders,
            sets,
        }
    }
}

/// Every MCP server of every layer as one line each, sorted: projects and users live in hash
/// maps, so one order whatever the iteration order (they go into the revision)
fn mcp_server_lines(
    org: &CompiledLayer,
    projects: &FastMap<String, CompiledProject>,
    users: &FastMap<String, CompiledLayer>,
) -> Vec<String> {
    let mut expanded: Vec<String> = std::iter::once(org)
        .chain(
            projects
                .values()
                .flat_map(|p| std::iter::once(&p.layer).chain(p.folders.iter().map(|(_, l, _)| l))),
        )
        .chain(users.values())
        .flat_map(|l| l.mcp_servers.values())
        .map(|s| {
            format!(
                "{}|{}|{}|{}",
                s.name,
                s.url.as_deref().unwrap_or(""),
                s.command.as_deref().unwrap_or(""),
                s.args.join(" ")
            )
        })
        .collect();
    expanded.sort();
    expanded
}

fn build_uids(base: &[(RuleKey, Policy)], org_policy: &OrgPolicy) -> Result<Uids, String> {
    let mut lists = FastMap::default();
    for (key, _) in base {
        let ty = if key.field.scope() == Scope::Mcp {
            "McpList"
        } else {
            "ModelList"
        };
        lists.insert(*key, uid(ty, &rules::list_id(*key))?);
    }
    let categories = org_policy
        .categories
        .iter()
        .map(|(n, _)| uid("Category", n))
        .collect::<Result<_, _>>()?;
    Ok(Uids {
        actions: Vec::new(),
        list_keys: lists.iter().map(|(k, u)| (u.clone(), *k)).collect(),
        base_ids: base
            .iter()
            .map(|(k, p)| (*k, (p.id().clone(), p.effect())))
            .collect(),
        lists,
        categories,
        invoke_model: uid("Action", "invoke_model")?,
        use_byok: uid("Action", "use_byok")?,
        connect_mcp: uid("Action", "connect_mcp")?,
        user_type: type_name(hand::USER)?,
        group_type: type_name(hand::GROUP)?,
        model_type: type_name(hand::MODEL)?,
        mcp_type: type_name(hand::MCP_SERVER)?,
        project_type: type_name(hand::PROJECT)?,
    })
}
