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

use crate::buckets::BUCKETS;
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
    /// sha-256 of the project's files and expanded MCP server lines (its part of the revision)
    pub digest: [u8; 32],
    /// the project's (and its folders') hand-written rules
    pub rules: FastMap<PolicyId, RuleInfo>,
    /// the warnings compiling the project found
    pub diagnostics: Vec<Problem>,
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
    /// by id, in buckets; a project publish replaces one entry and shares every other bucket
    /// (and every other project) with the revision before (`Arc`)
    pub projects: CompiledProjects,
    /// the digest of each bucket of `projects` (what the revision hashes): a project publish
    /// recomputes its bucket's alone
    pub bucket_digests: Arc<[[u8; 32]]>,
    pub users: FastMap<String, CompiledLayer>,
    pub org_sets: ScopeSets,
    /// the base rules and the org's hand-written ones (a project's are in the project: see
    /// [`Snapshot::rule`])
    pub rules: FastMap<PolicyId, RuleInfo>,
    pub uids: Uids,
    /// what [`recompile`] compiles a changed project against
    pub compiled_org: Arc<CompiledOrg>,
    /// every warning, gathered from the org and the projects when first asked for
    /// ([`Snapshot::diagnostics`]): a project publish does not gather every project's
    warnings: std::sync::OnceLock<Vec<Problem>>,
}

/// A snapshot's compiled projects, by id, in shared buckets
pub type CompiledProjects = crate::buckets::Buckets<Arc<CompiledProject>>;

impl Snapshot {
    /// The warnings compiling found (locked keys, ignored additions, ...): the org's and every
    /// project's, sorted; gathered on the first call
    pub fn diagnostics(&self) -> &[Problem] {
        self.warnings.get_or_init(|| {
            let mut all: Vec<Problem> = (self.compiled_org.diagnostics.iter())
                .chain(self.projects.values().flat_map(|p| p.diagnostics.iter()))
                .cloned()
                .collect();
            sort_problems(&mut all);
            all
        })
    }

    /// The rule with id `id`, wherever it was compiled: a project's or folder's hand-written
    /// rule is found in its project, which the id names (`project:<id>#…`, `folder:<id>/<path>#…`,
    /// where a project id may hold `/` too)
    pub fn rule(&self, id: &PolicyId) -> Option<&RuleInfo> {
        if let Some(r) = self.rules.get(id) {
            return Some(r);
        }
        let text: &str = id.as_ref();
        let (scope, _) = text.split_once('#')?;
        let (_, path) = scope.split_once(':')?;
        std::iter::once(path.len())
            .chain(path.rmatch_indices('/').map(|(i, _)| i))
            .find_map(|end| self.projects.get(&path[..end])?.rules.get(id))
    }
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

fn hash_lines(h: &mut Sha256, lines: &[String]) {
    h.update((lines.len() as u64).to_le_bytes());
    for e in lines {
        h.update((e.len() as u64).to_le_bytes());
        h.update(e.as_bytes());
    }
}

/// The revision of a compiled bundle: sha-256 over a version tag, the schema, the base rules,
/// the org's digest and the digest of every bucket of projects, in bucket order
/// ([`bucket_digest`]). A digest covers a part's files and the values its `${VAR}`s expanded to
/// where governance matches on them (MCP server URLs, commands, arguments): the same files in
/// another environment can decide differently, so they are another revision. (API key values
/// are never part of it.) Hashing digests, not files, keeps a project publish from rehashing
/// every other project, and hashing per bucket keeps it from rehashing every other digest.
fn revision_of(org: &CompiledOrg, bucket_digests: &[[u8; 32]]) -> Revision {
    let mut h = Sha256::new();
    h.update(REVISION_FORMULA);
    h.update(rules::SCHEMA_SRC.as_bytes());
    h.update(rules::BASE_RULES_SRC.as_bytes());
    h.update(org.digest);
    for d in bucket_digests {
        h.update(d);
    }
    Revision(Arc::from(hex::encode(h.finalize())))
}

/// Names the way [`revision_of`] hashes: a snapshot of the same inputs compiled by a version that
/// hashed otherwise (before buckets: every project digest in one list) has another revision
const REVISION_FORMULA: &[u8] = b"strata revision v2: 64 project buckets\n";

/// The digest of one bucket of projects: sha-256 over each project's id and digest, by id
fn bucket_digest(bucket: &std::collections::BTreeMap<String, Arc<CompiledProject>>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (id, p) in bucket {
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
        h.update(p.digest);
    }
    h.finalize().into()
}

/// Whether base rule `key` has something to enforce in a scope of `layers`
fn present(
    key: &RuleKey,
    layers: &[&CompiledLayer],
    org_policy: &OrgPolicy,
    users: &[&CompiledLayer],
) -> bool {
    match key.field {
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
    }
}

/// Scope sets already built for scopes with no hand-written rule below the org, by the base
/// rules present there (indexes into the base rules): such sets depend on nothing else, so the
/// projects that only add or ban models share a handful of them
type SetsCache = std::sync::Mutex<FastMap<Vec<usize>, ScopeSets>>;

struct Compiler {
    problems: Problems,
    base: Arc<[(RuleKey, Policy)]>,
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

    /// The sets of a scope: the base rules that have something to enforce there, plus hand-written
    /// ones; `cache` only where `hand` is the org's rules alone
    fn sets(
        &self,
        layers: &[&CompiledLayer],
        org_policy: &OrgPolicy,
        hand: &[&HandPolicy],
        users: &[&CompiledLayer],
        cache: Option<&SetsCache>,
    ) -> ScopeSets {
        let present: Vec<usize> = (0..self.base.len())
            .filter(|i| present(&self.base[*i].0, layers, org_policy, users))
            .collect();
        if let Some(hit) = cache.and_then(|c| c.lock().ok()?.get(&present).cloned()) {
            return hit;
        }
        let mut by_action = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut base: [FastSet<RuleKey>; 3] = Default::default();
        let mut hand_sets = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut cedar_only = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut hand_rules: [Vec<Arc<HandRule>>; 3] = Default::default();
        for (key, policy) in present.iter().map(|i| &self.base[*i]) {
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
        let sets = ScopeSets {
            invoke_model: Arc::new(invoke_model),
            use_byok: Arc::new(use_byok),
            connect_mcp: Arc::new(connect_mcp),
            base,
            hand: hand_sets.map(Arc::new),
            hand_rules: hand_rules.map(Arc::from),
            cedar_only: cedar_only.map(Arc::new),
        };
        if let Some(mut c) = cache.and_then(|c| c.lock().ok()) {
            c.insert(present, sets.clone());
        }
        sets
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
    let (org, mut problems) = compile_org(&bundle.org, &bundle.users, env)?;
    let mut projects = CompiledProjects::default();
    for pt in &bundle.projects {
        let (project, found) = compile_project(&org, pt, env);
        problems.extend(found);
        if projects.contains_key(&pt.id) {
            problems.push(cedar::problem(
                &Arc::from(pt.project.root.as_str()),
                0,
                0,
                "bundle.duplicate_project",
                format!("project `{}` is given twice", pt.id),
            ));
        }
        projects.insert(pt.id.clone(), Arc::new(project));
    }
    let digests = (0..BUCKETS)
        .map(|k| bucket_digest(projects.bucket(k)))
        .collect();
    finish(Arc::new(org), projects, digests, problems)
}

/// The snapshot `prev` with the projects of `changed` compiled anew (added or replaced) and those
/// of `removed` gone, against the org `prev` was compiled with: every other project's compiled
/// sets are reused, not rebuilt. Decides exactly as [`compile`] of the same bundle, with the same
/// revision. Errors: the problems of the org and of the changed projects.
pub fn recompile(
    prev: &Snapshot,
    changed: &[ProjectTrees],
    removed: &[String],
    env: EnvLookup<'_>,
) -> Result<Snapshot, Problems> {
    let org = prev.compiled_org.clone();
    let mut projects = prev.projects.clone();
    let mut touched = [false; BUCKETS];
    for id in removed {
        if projects.remove(id).is_some() {
            touched[projects.bucket_index(id)] = true;
        }
    }
    let mut problems = Problems {
        problems: org.diagnostics.clone(),
    };
    for pt in changed {
        let (project, found) = compile_project(&org, pt, env);
        problems.extend(found);
        touched[projects.bucket_index(&pt.id)] = true;
        projects.insert(pt.id.clone(), Arc::new(project));
    }
    let mut digests = prev.bucket_digests.to_vec();
    for k in (0..BUCKETS).filter(|k| touched[*k]) {
        digests[k] = bucket_digest(projects.bucket(k));
    }
    finish(org, projects, digests, problems)
}

/// One stable order whatever order the checks ran in (Cedar's validator iterates a hash map)
fn sort_problems(problems: &mut Vec<Problem>) {
    problems.sort_by(|a, b| {
        (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
    });
    problems.dedup();
}

/// The snapshot of a compiled org and projects, unless `problems` has errors
fn finish(
    org: Arc<CompiledOrg>,
    projects: CompiledProjects,
    bucket_digests: Vec<[u8; 32]>,
    mut problems: Problems,
) -> Result<Snapshot, Problems> {
    sort_problems(&mut problems.problems);
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(Snapshot {
        revision: revision_of(&org, &bucket_digests),
        bucket_digests: Arc::from(bucket_digests),
        org: org.layer.clone(),
        org_policy: org.policy.clone(),
        projects,
        users: org.users.clone(),
        org_sets: org.sets.clone(),
        rules: org.rules.clone(),
        uids: org.uids.clone(),
        compiled_org: org,
        warnings: std::sync::OnceLock::new(),
    })
}

/// The org level and the user layers, compiled: everything a project compiles against, kept in
/// the snapshot so that a project publish compiles that project alone
pub struct CompiledOrg {
    schema: Schema,
    base: Arc<[(RuleKey, Policy)]>,
    layer: CompiledLayer,
    policy: OrgPolicy,
    /// the org's model categories, as lists (a category in a lower list is a pattern)
    categories: Vec<(String, crate::files::settings::List)>,
    hand: Vec<HandPolicy>,
    /// the org lets projects and folders add models
    may_add: bool,
    patterns_ok: bool,
    exec_env_deny: bool,
    users: FastMap<String, CompiledLayer>,
    sets: ScopeSets,
    /// the base rules, the org's hand-written ones
    rules: FastMap<PolicyId, RuleInfo>,
    hand_rules: HashMap<PolicyId, Arc<HandRule>>,
    uids: Uids,
    diagnostics: Vec<Problem>,
    /// sha-256 of the org's and users' files and expanded MCP server lines
    digest: [u8; 32],
    sets_cache: SetsCache,
}

impl CompiledOrg {
    /// The warnings compiling the org and user layers found
    pub fn diagnostics(&self) -> &[Problem] {
        &self.diagnostics
    }
}

impl std::fmt::Debug for CompiledOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledOrg")
            .field("digest", &hex::encode(self.digest))
            .finish_non_exhaustive()
    }
}

/// Compile the org level and the user layers. `Err` only when the built-in schema or base rules
/// are broken; the layers' problems come back with the result.
fn compile_org(
    tree: &FileTree,
    user_trees: &[(String, FileTree)],
    env: EnvLookup<'_>,
) -> Result<(CompiledOrg, Problems), Problems> {
    let schema = schema()?;
    let mut c = Compiler::new(base_rules()?);
    let org_layer = c.load(Level::Org, tree, env, None);
    let policy = c.org_policy(&org_layer);
    let categories = org_layer.policy.model_categories.clone();
    let may_add = policy
        .projects_may_add_models
        .as_ref()
        .is_none_or(|b| b.value);
    let layer = CompiledLayer::build(org_layer.clone(), &categories, true, &mut c.problems);
    let hand: Vec<HandPolicy> = org_layer.cedar.clone();
    c.add_hand(&hand);
    let mut users = FastMap::default();
    for (id, tree) in user_trees {
        let user = c.load(Level::User, tree, env, None);
        let mut cl = CompiledLayer::build(user, &categories, false, &mut c.problems);
        crate::merge::lock(&mut c.problems, &[&layer], &mut cl);
        users.insert(id.clone(), cl);
    }
    let any_users: Vec<&CompiledLayer> = users.values().collect();
    let org_refs: Vec<&HandPolicy> = hand.iter().collect();
    let sets = c.sets(&[&layer], &policy, &org_refs, &any_users, None);
    c.validate(&schema);
    let mut uids = build_uids(&c.base, &policy).map_err(internal)?;
    uids.actions = schema
        .action_entities()
        .map_err(|e| internal(e.to_string()))?
        .iter()
        .cloned()
        .collect();
    let mut h = Sha256::new();
    hash_tree(&mut h, "org", tree);
    for (u, t) in user_trees {
        hash_tree(&mut h, &format!("user:{u}"), t);
    }
    hash_lines(
        &mut h,
        &mcp_server_lines(std::iter::once(&layer).chain(users.values())),
    );
    sort_problems(&mut c.problems.problems);
    let org = CompiledOrg {
        schema,
        base: c.base.clone(),
        layer,
        policy,
        categories,
        hand,
        may_add,
        patterns_ok: c.patterns_ok,
        exec_env_deny: c.exec_env_deny,
        users,
        sets,
        rules: std::mem::take(&mut c.rules),
        hand_rules: std::mem::take(&mut c.hand_rules),
        uids,
        diagnostics: c.problems.problems.clone(),
        digest: h.finalize().into(),
        sets_cache: SetsCache::default(),
    };
    Ok((org, c.problems))
}

/// Compile one project (with its folders) against a compiled org: its layers, its hand-written
/// rules validated, its sets, its digest. Reads nothing of any other project.
fn compile_project(
    org: &CompiledOrg,
    pt: &ProjectTrees,
    env: EnvLookup<'_>,
) -> (CompiledProject, Problems) {
    let mut c = Compiler::below(org);
    let mut project = c.project(pt, org, env);
    if c.all.policies().next().is_some() {
        c.validate(&org.schema);
    }
    sort_problems(&mut c.problems.problems);
    let mut h = Sha256::new();
    hash_tree(&mut h, &format!("project:{}", pt.id), &pt.project);
    for (path, t) in &pt.folders {
        hash_tree(&mut h, &format!("folder:{}:{path}", pt.id), t);
    }
    let layers = std::iter::once(&project.layer).chain(project.folders.iter().map(|(_, l, _)| l));
    hash_lines(&mut h, &mcp_server_lines(layers));
    project.digest = h.finalize().into();
    project.rules = std::mem::take(&mut c.rules);
    project.diagnostics = c.problems.problems.clone();
    (project, c.problems)
}

impl Compiler {
    /// A compiler that starts from the base rules
    fn new(base: Vec<(RuleKey, Policy)>) -> Compiler {
        let mut c = Compiler {
            problems: Problems::default(),
            base: Arc::from(base),
            rules: FastMap::default(),
            hand_rules: HashMap::new(),
            all: PolicySet::new(),
            patterns_ok: false,
            categories: Vec::new(),
            exec_env_deny: false,
        };
        for (key, p) in c.base.iter() {
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

    /// A compiler for one project below a compiled org: its rules and policy set start empty
    /// (the org's are validated already)
    fn below(org: &CompiledOrg) -> Compiler {
        Compiler {
            problems: Problems::default(),
            base: org.base.clone(),
            rules: FastMap::default(),
            hand_rules: org.hand_rules.clone(),
            all: PolicySet::new(),
            patterns_ok: org.patterns_ok,
            categories: org.categories.iter().map(|(n, _)| n.clone()).collect(),
            exec_env_deny: org.exec_env_deny,
        }
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

    /// A project and its folders: each layer loaded, locked under the layers above it, and the
    /// sets of every scope
    fn project(
        &mut self,
        pt: &ProjectTrees,
        org: &CompiledOrg,
        env: EnvLookup<'_>,
    ) -> CompiledProject {
        let (cats, may_add) = (&org.categories, org.may_add);
        let users: Vec<&CompiledLayer> = org.users.values().collect();
        let layer = self.load(Level::Project, &pt.project, env, Some(&pt.id));
        let mut pl = CompiledLayer::build(layer.clone(), cats, may_add, &mut self.problems);
        crate::merge::lock(&mut self.problems, &[&org.layer], &mut pl);
        self.add_hand(&layer.cedar);
        let mut folders = Vec::new();
        for (path, tree) in &pt.folders {
            let path = path.trim_matches('/').to_string();
            let fl = self.load(Level::Folder, tree, env, Some(&format!("{}/{path}", pt.id)));
            let mut cf = CompiledLayer::build(fl, cats, may_add, &mut self.problems);
            crate::merge::lock(&mut self.problems, &[&org.layer, &pl], &mut cf);
            self.add_hand(&cf.layer.cedar.clone());
            folders.push((path, cf));
        }
        let project_hand: Vec<&HandPolicy> = org.hand.iter().chain(layer.cedar.iter()).collect();
        // no hand-written rule below the org: sets shared with every project like it
        let cache =
            |hand: &[&HandPolicy]| (hand.len() == org.hand.len()).then_some(&org.sets_cache);
        let sets = self.sets(
            &[&org.layer, &pl],
            &org.policy,
            &project_hand,
            &users,
            cache(&project_hand),
        );
        // a folder's scope holds every folder layer on its path, outermost first
        let folder_sets: Vec<ScopeSets> = folders
            .iter()
            .map(|(path, _)| {
                let on_path: Vec<&CompiledLayer> = folders
                    .iter()
                    .filter(|(p, _)| crate::layer::is_path_prefix(p, path))
                    .map(|(_, l)| l)
                    .collect();
                let mut layers = vec![&org.layer, &pl];
                layers.extend(on_path.iter().copied());
                let hand: Vec<&HandPolicy> = project_hand
                    .iter()
                    .copied()
                    .chain(on_path.iter().flat_map(|l| l.layer.cedar.iter()))
                    .collect();
                self.sets(&layers, &org.policy, &hand, &users, cache(&hand))
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
            digest: [0; 32],
            rules: FastMap::default(),
            diagnostics: Vec::new(),
        }
    }
}

/// Every MCP server of `layers` as one line each, sorted (they go into the revision)
fn mcp_server_lines<'l>(layers: impl Iterator<Item = &'l CompiledLayer>) -> Vec<String> {
    let mut expanded: Vec<String> = layers
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
