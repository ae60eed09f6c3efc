//! One answer everywhere (issue 15): the models a listing offers for a scope are exactly the
//! models the gateway allows there, checked on random bundles, tokens and scopes.
//!
//! A listing is [`strata_policy::explain::models`], which `policy explain settings`,
//! `ResolveSettings`, the gateway's `GET /v1/models` and `/strata/v1/droid-settings` all read.
//! A per-request decision is [`decide`] for a central-key request in the same scope, by the same
//! person, with the same token binding, through the same base URL (`via`: the gateway's public
//! URL, which is what the gateway puts in every `DecideRequest`; or none, the local view, where a
//! model's own `customModels` entry supplies it).
//!
//! For every generated case, scope and `via`:
//!
//! - every listed model is allowed by `decide`, every hidden one is denied;
//! - every candidate id (each exact id and custom model anywhere in the bundle, in several
//!   spellings, and a few ids the bundle never names) that `decide` allows is listed, if a list in
//!   scope permits it by name: an exact allowlist entry (or an exact member of a category the
//!   allowlist names) or a custom model, of a layer whose additions count;
//! - a listed model is never one `decide` denies, whatever its spelling.
//!
//! Every listing is made twice: without a catalogue, and with a generated one (ids the caller
//! knows of, as a gateway passes its upstreams' model catalogues, in several spellings, with
//! blanks). With it, every catalogue id `decide` allows is listed, whatever made it allowed (a
//! pattern such as `alpha-*`, a category member that is a glob, or no allowlist at all), and every
//! one it denies is hidden.
//!
//! What is not checked: a model allowed only by a pattern and named neither by a list in scope
//! nor by the catalogue: nothing can list a model nobody names. Those are counted, as are the
//! models that must be listed and those listed from the catalogue alone, and the test fails if
//! the generated cases never exercise each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use strata_policy::explain::models;
use strata_policy::matchers::model_id::canonical_str;
use strata_policy::{
    Bundle, Decision, Effect, FileTree, KeyMode, ProjectTrees, Request, Snapshot, Target, compile,
    decide,
};

/// exact ids, in the spellings a bundle may use
const IDS: [&str; 8] = [
    "alpha-1",
    "alpha-2",
    "beta-1",
    "beta-2",
    "delta",
    "ALPHA-1",
    "openai/beta-2",
    "gpt-x",
];
const PATTERNS: [&str; 3] = ["alpha-*", "beta-*", "*-2"];
/// custom model ids (fine-tunes) only the customModels entries name
const CUSTOM: [&str; 4] = ["ft-org", "ft-proj", "ft-fold", "alpha-2"];
/// ids no list names; `alpha-9` and `beta-7` match patterns
const OUTSIDE: [&str; 3] = ["alpha-9", "beta-7", "omega"];
/// what a catalogue may hold: ids in and out of the bundle, other spellings, a blank
const CATALOGUE: [&str; 9] = [
    "alpha-9",
    "Alpha-9",
    "openai/beta-7",
    "omega",
    "beta-1",
    "ft-org",
    "ALPHA-1",
    "delta",
    "  ",
];
const CATEGORY: &str = "cat";
const CATEGORY_MEMBERS: [&str; 3] = ["beta-1", "delta", "alpha-*"];
const GW: &str = "https://gw.acme.internal/v1";
const URLS: [&str; 2] = [GW, "https://api.example.com/v1"];
const URL_GLOBS: [&str; 2] = ["https://gw.acme.internal/**", "https://api.example.com/**"];
const PROJECT: &str = "p";
const OTHER_PROJECT: &str = "q";
const FOLDER: &str = "svc";
const USERS: [&str; 2] = ["u", "v"];
const GROUPS: [&str; 2] = ["leads", "eng"];

#[derive(Clone, Debug, Default)]
struct LayerSpec {
    allowed: Option<Vec<&'static str>>,
    blocked: Vec<&'static str>,
    custom: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Debug)]
struct World {
    org: LayerSpec,
    category: Option<Vec<&'static str>>,
    /// a hand-written org rule: the category is for `leads` only
    leads_only: bool,
    projects_may_add: Option<bool>,
    patterns_ok: bool,
    /// userModelPolicies["u"]: allowed, blocked
    user_policy: Option<(Option<Vec<&'static str>>, Vec<&'static str>)>,
    gateway: Option<Vec<&'static str>>,
    project: Option<LayerSpec>,
    folder: Option<LayerSpec>,
}

/// Who asks, with what token, where
#[derive(Clone, Debug)]
struct Asker {
    user: &'static str,
    groups: Vec<&'static str>,
    token: Option<Vec<&'static str>>,
}

fn settings(l: &LayerSpec, extra: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let mut s = Map::new();
    let mut mp = Map::new();
    if let Some(a) = &l.allowed {
        mp.insert("allowedModelIds".into(), json!(a));
    }
    if !l.blocked.is_empty() {
        mp.insert("blockedModelIds".into(), json!(l.blocked));
    }
    if !mp.is_empty() {
        s.insert("modelPolicy".into(), Value::Object(mp));
    }
    if !l.custom.is_empty() {
        let cms: Vec<Value> = l
            .custom
            .iter()
            .map(|(m, u)| json!({"model": m, "baseUrl": u, "provider": "openai", "apiKey": "sk-test-0000000000"}))
            .collect();
        s.insert("customModels".into(), Value::Array(cms));
    }
    extra(&mut s);
    serde_json::to_vec_pretty(&Value::Object(s)).unwrap()
}

fn tree(root: &str, files: Vec<(&str, Vec<u8>)>) -> FileTree {
    FileTree::from_files(root, files.into_iter().map(|(p, b)| (p.to_string(), b))).unwrap()
}

impl World {
    fn bundle(&self) -> Bundle {
        let org_settings = settings(&self.org, |s| {
            if let Some((allowed, blocked)) = &self.user_policy {
                let mut p = Map::new();
                if let Some(a) = allowed {
                    p.insert("allowedModelIds".into(), json!(a));
                }
                if !blocked.is_empty() {
                    p.insert("blockedModelIds".into(), json!(blocked));
                }
                s.insert("userModelPolicies".into(), json!({ USERS[0]: p }));
            }
        });
        let mut policy = Map::new();
        if let Some(c) = &self.category {
            policy.insert("modelCategories".into(), json!({ CATEGORY: c }));
        }
        if let Some(b) = self.projects_may_add {
            policy.insert("projectsMayAddModels".into(), json!(b));
        }
        if self.patterns_ok {
            policy.insert("projectsMayAddModelPatterns".into(), json!(true));
        }
        if let Some(g) = &self.gateway {
            policy.insert("gateway".into(), json!({ "requiredBaseUrls": g }));
        }
        let mut org = vec![
            ("settings.json", org_settings),
            (
                "policy.json",
                serde_json::to_vec_pretty(&Value::Object(policy)).unwrap(),
            ),
        ];
        if self.leads_only && self.category.is_some() {
            org.push((
                "policies/leads.cedar",
                format!(
                    "@id(\"leads-only\")\nforbid (principal, action in Action::\"use_model\", resource in Category::\"{CATEGORY}\")\nunless {{ principal in Group::\"leads\" }};\n"
                )
                .into_bytes(),
            ));
        }
        let projects = self
            .project
            .iter()
            .map(|p| ProjectTrees {
                id: PROJECT.to_string(),
                project: tree("project", vec![("settings.json", settings(p, |_| {}))]),
                folders: self
                    .folder
                    .iter()
                    .map(|f| {
                        (
                            FOLDER.to_string(),
                            tree(FOLDER, vec![("settings.json", settings(f, |_| {}))]),
                        )
                    })
                    .collect(),
            })
            .collect();
        Bundle {
            org: tree("org", org),
            projects,
            users: Vec::new(),
        }
    }

    fn compile(&self) -> Snapshot {
        compile(&self.bundle(), &|_| None)
            .unwrap_or_else(|p| panic!("{self:#?}\ndoes not compile: {p:#?}"))
    }

    /// Every id the bundle names exactly, in every spelling, and the outside ids
    fn candidates(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let layers = [Some(&self.org), self.project.as_ref(), self.folder.as_ref()];
        for l in layers.into_iter().flatten() {
            out.extend(l.allowed.iter().flatten().copied());
            out.extend(l.blocked.iter().copied());
            out.extend(l.custom.iter().map(|(m, _)| *m));
        }
        out.extend(self.category.iter().flatten().copied());
        out.extend(IDS);
        out.extend(CUSTOM);
        out.extend(OUTSIDE);
        out.retain(|m| !is_pattern(m) && *m != CATEGORY);
        out.sort();
        out.dedup();
        out
    }

    /// Whether a list of a layer in `scope` whose additions count names `model` exactly: then a
    /// listing must offer it when `decide` allows it
    fn named_in_scope(&self, scope: Scope, model: &str) -> bool {
        let canon = canonical_str(model);
        let same = |e: &str| !is_pattern(e) && canonical_str(e) == canon;
        let project_adds = self.projects_may_add != Some(false);
        let names = |l: &LayerSpec, adds: bool| {
            adds && (l.custom.iter().any(|(m, _)| same(m))
                || l.allowed.iter().flatten().any(|e| {
                    same(e) || (*e == CATEGORY && self.category.iter().flatten().any(|c| same(c)))
                }))
        };
        let project = self
            .project
            .as_ref()
            .filter(|_| scope.project() == Some(PROJECT));
        let folder = self
            .folder
            .as_ref()
            .filter(|_| project.is_some() && scope == Scope::Folder);
        names(&self.org, true)
            || project.is_some_and(|p| names(p, project_adds))
            || folder.is_some_and(|f| names(f, project_adds))
    }
}

fn is_pattern(e: &str) -> bool {
    e.contains('*') || e == CATEGORY
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Org,
    Project,
    Folder,
    /// a project the bundle does not have (the org's layer alone)
    Other,
}

const SCOPES: [Scope; 4] = [Scope::Org, Scope::Project, Scope::Folder, Scope::Other];

impl Scope {
    fn project(self) -> Option<&'static str> {
        match self {
            Scope::Org => None,
            Scope::Project | Scope::Folder => Some(PROJECT),
            Scope::Other => Some(OTHER_PROJECT),
        }
    }

    fn folder(self) -> Option<&'static str> {
        (self == Scope::Folder).then_some("svc/deep")
    }
}

// ---- strategies

fn ids() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(IDS.to_vec(), 0..=3)
}

fn ids_and_patterns() -> impl Strategy<Value = Vec<&'static str>> {
    let all: Vec<&'static str> = IDS
        .iter()
        .chain(PATTERNS.iter())
        .chain(std::iter::once(&CATEGORY))
        .copied()
        .collect();
    prop::sample::subsequence(all, 0..=4)
}

fn customs(own: &'static str) -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    let names: Vec<&'static str> = vec![own, "alpha-2", "ALPHA-1", "openai/beta-2"];
    (
        prop::sample::subsequence(names, 0..=2),
        prop::collection::vec(prop::sample::select(URLS.to_vec()), 2),
    )
        .prop_map(|(ms, us)| ms.into_iter().zip(us).collect())
}

fn org_layer() -> impl Strategy<Value = LayerSpec> {
    (
        prop::option::weighted(0.7, ids_and_patterns()),
        ids_and_patterns(),
        customs("ft-org"),
    )
        .prop_map(|(allowed, blocked, custom)| LayerSpec {
            allowed,
            blocked,
            custom,
        })
}

fn project_layer(own: &'static str) -> impl Strategy<Value = LayerSpec> {
    (
        prop::option::of(ids_and_patterns()),
        ids_and_patterns(),
        customs(own),
    )
        .prop_map(|(allowed, blocked, custom)| LayerSpec {
            allowed,
            blocked,
            custom,
        })
}

fn world() -> impl Strategy<Value = World> {
    (
        org_layer(),
        prop::option::weighted(
            0.6,
            prop::sample::subsequence(CATEGORY_MEMBERS.to_vec(), 1..=3),
        ),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, (prop::option::of(ids_and_patterns()), ids())),
        prop::option::weighted(0.4, prop::sample::subsequence(URL_GLOBS.to_vec(), 1..=2)),
        prop::option::weighted(0.8, project_layer("ft-proj")),
        prop::option::weighted(0.6, project_layer("ft-fold")),
    )
        .prop_map(
            |(
                org,
                category,
                leads_only,
                projects_may_add,
                patterns_ok,
                user_policy,
                gateway,
                project,
                folder,
            )| World {
                org,
                category,
                leads_only,
                projects_may_add,
                patterns_ok,
                user_policy,
                gateway,
                folder: folder.filter(|_| project.is_some()),
                project,
            },
        )
}

fn catalogue() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(CATALOGUE.to_vec(), 0..=5)
}

fn asker() -> impl Strategy<Value = Asker> {
    (
        prop::sample::select(USERS.to_vec()),
        prop::sample::subsequence(GROUPS.to_vec(), 0..=2),
        prop::option::of(prop::sample::subsequence(
            vec![PROJECT, OTHER_PROJECT],
            1..=2,
        )),
    )
        .prop_map(|(user, groups, token)| Asker {
            user,
            groups,
            token,
        })
}

// ---- the property

/// Models that had to be listed, and models allowed by a pattern alone (not checked)
static MUST_LIST: AtomicUsize = AtomicUsize::new(0);
static PATTERN_ONLY: AtomicUsize = AtomicUsize::new(0);
/// models listed because the catalogue names them, and no list in scope
static FROM_CATALOGUE: AtomicUsize = AtomicUsize::new(0);
/// listings that offered at least one model
static NON_EMPTY: AtomicUsize = AtomicUsize::new(0);

fn base(a: &Asker, scope: Scope) -> Request {
    let mut r = Request::scope(
        a.user.to_string(),
        a.groups.iter().map(|g| g.to_string()).collect(),
        scope.project().map(str::to_string),
        scope.folder().map(str::to_string),
    );
    r.token_projects = a
        .token
        .as_ref()
        .map(|t| t.iter().map(|p| p.to_string()).collect());
    r
}

/// What the gateway asks the resolver for one request of `model` (central key) through `via`
fn through(base: &Request, model: &str, via: Option<&str>) -> Request {
    Request {
        gateway: via.map(str::to_string),
        target: Target::Model {
            model: model.to_string(),
            provider: None,
            key_mode: KeyMode::Central,
            base_url: via.map(str::to_string),
            mcp_servers: Vec::new(),
        },
        ..base.clone()
    }
}

fn check(w: &World, a: &Asker, snap: &Snapshot, cat: &[&str]) -> Result<(), TestCaseError> {
    let mut candidates = w.candidates();
    candidates.extend(cat.iter().filter(|m| !m.trim().is_empty()));
    candidates.sort();
    candidates.dedup();
    let cat: Vec<String> = cat.iter().map(|m| m.to_string()).collect();
    for scope in SCOPES {
        for via in [Some(GW), None] {
            for known in [&[][..], &cat[..]] {
                check_listing(w, snap, &base(a, scope), scope, via, &candidates, known)?;
            }
        }
    }
    Ok(())
}

/// One listing of `scope` through `via`, given the catalogue `known`, against the decisions
fn check_listing(
    w: &World,
    snap: &Snapshot,
    base: &Request,
    scope: Scope,
    via: Option<&str>,
    candidates: &[&str],
    known: &[String],
) -> Result<(), TestCaseError> {
    let (shown, hidden) = models(snap, base, via, known);
    let ctx = || format!("scope {scope:?}, via {via:?}, catalogue {known:?}");
    let in_catalogue = |m: &str| {
        let c = canonical_str(m);
        known.iter().any(|k| canonical_str(k) == c)
    };
    if !shown.is_empty() {
        NON_EMPTY.fetch_add(1, Ordering::Relaxed);
    }
    // each candidate decided once (a case stays cheap); a listed id the candidates do
    // not hold is decided on its own
    let decided: Vec<(&str, Decision)> = candidates
        .iter()
        .map(|m| (*m, decide(snap, &through(base, m, via))))
        .collect();
    let decision = |m: &str| {
        decided
            .iter()
            .find(|(c, _)| *c == m)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| decide(snap, &through(base, m, via)))
    };
    for v in &shown {
        prop_assert_eq!(v.key_mode, KeyMode::Central);
        prop_assert!(
            !v.model.trim().is_empty(),
            "{}: a blank id is listed",
            ctx()
        );
        let d = decision(&v.model);
        prop_assert_eq!(
            d.effect,
            Effect::Allow,
            "{}: `{}` is listed but the gateway denies it: {}",
            ctx(),
            v.model,
            d.reason
        );
    }
    for v in &hidden {
        let d = decision(&v.model);
        prop_assert_eq!(
            d.effect,
            Effect::Deny,
            "{}: `{}` is hidden but the gateway allows it: {}",
            ctx(),
            v.model,
            d.reason
        );
    }
    let listed = |m: &str| {
        let c = canonical_str(m);
        shown.iter().any(|v| canonical_str(&v.model) == c)
    };
    let is_hidden = |m: &str| {
        let c = canonical_str(m);
        hidden.iter().any(|v| canonical_str(&v.model) == c)
    };
    for (m, d) in &decided {
        if d.effect == Effect::Deny {
            prop_assert!(
                !listed(m),
                "{}: `{}` is denied but listed (in another spelling): {}",
                ctx(),
                m,
                d.reason
            );
            prop_assert!(
                !in_catalogue(m) || is_hidden(m),
                "{}: the catalogue's `{}` is denied ({}) but not among the hidden models",
                ctx(),
                m,
                d.reason
            );
            continue;
        }
        if !w.named_in_scope(scope, m) {
            if !in_catalogue(m) {
                PATTERN_ONLY.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            FROM_CATALOGUE.fetch_add(1, Ordering::Relaxed);
        }
        MUST_LIST.fetch_add(1, Ordering::Relaxed);
        prop_assert!(
            listed(m),
            "{}: the gateway allows `{}` ({}) but the listing does not offer it; listed: {:?}",
            ctx(),
            m,
            d.reason,
            shown.iter().map(|v| v.model.as_str()).collect::<Vec<_>>()
        );
    }
    // the listing offers each model once, whatever spellings the bundle uses
    let mut seen: Vec<String> = shown
        .iter()
        .map(|v| canonical_str(&v.model).into_owned())
        .collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    prop_assert_eq!(seen.len(), n, "{}: a model is listed twice", ctx());
    Ok(())
}

#[test]
fn listings_agree_with_decisions() {
    // PROPTEST_CASES (256 unless set) as every proptest of the workspace
    let config = Config {
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let result = runner.run(&(world(), asker(), catalogue()), |(w, a, cat)| {
        let snap = w.compile();
        check(&w, &a, &snap, &cat)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let must = MUST_LIST.load(Ordering::Relaxed);
    let pattern = PATTERN_ONLY.load(Ordering::Relaxed);
    let non_empty = NON_EMPTY.load(Ordering::Relaxed);
    let from_catalogue = FROM_CATALOGUE.load(Ordering::Relaxed);
    eprintln!(
        "{} cases in {:?}: {must} models had to be listed ({from_catalogue} known from the catalogue alone), {pattern} allowed by a pattern and named nowhere (not checked), {non_empty} non-empty listings",
        runner.config().cases,
        started.elapsed()
    );
    assert!(
        must > 0,
        "no generated case had a model that must be listed"
    );
    assert!(
        pattern > 0,
        "no generated case had a model allowed by a pattern alone"
    );
    assert!(non_empty > 0, "every listing was empty");
    assert!(
        from_catalogue > 0,
        "no generated case listed a model only the catalogue names"
    );
}

// ---- what the property found, kept as plain tests

fn assert_agrees(w: World, a: Asker) {
    let snap = w.compile();
    if let Err(e) = check(&w, &a, &snap, &CATALOGUE) {
        panic!("{e}");
    }
}

fn plain() -> World {
    World {
        org: LayerSpec::default(),
        category: None,
        leads_only: false,
        projects_may_add: None,
        patterns_ok: false,
        user_policy: None,
        gateway: None,
        project: None,
        folder: None,
    }
}

fn anyone() -> Asker {
    Asker {
        user: USERS[0],
        groups: Vec::new(),
        token: None,
    }
}

/// `beta-2` in the allowlist and `openai/beta-2` as a custom model are one model to every rule;
/// the listing offered it twice
#[test]
fn a_model_in_two_spellings_is_listed_once() {
    assert_agrees(
        World {
            org: LayerSpec {
                allowed: Some(vec!["beta-2"]),
                custom: vec![("openai/beta-2", GW)],
                ..LayerSpec::default()
            },
            ..plain()
        },
        anyone(),
    );
}

/// The project may not add models, so its `customModels` entry for `alpha-2` governs nothing:
/// a request for `alpha-2` names no base URL and the org's gateway requirement denies it. The
/// listing took the base URL from that ignored entry and offered the model.
#[test]
fn an_entry_whose_additions_do_not_count_supplies_no_base_url() {
    assert_agrees(
        World {
            projects_may_add: Some(false),
            gateway: Some(vec!["https://api.example.com/**"]),
            project: Some(LayerSpec {
                custom: vec![("alpha-2", "https://api.example.com/v1")],
                ..LayerSpec::default()
            }),
            ..plain()
        },
        anyone(),
    );
}

/// `alpha-9` is allowed by the pattern `alpha-*` alone: no list names it, so it is listed only
/// once a catalogue names it (in the catalogue's spelling, once for all its spellings); a
/// catalogue id the org bans is hidden with the ban as its reason; a catalogue id a custom model
/// already names is that custom model, listed once with its entry
#[test]
fn a_catalogue_lists_what_patterns_allow_and_hides_what_is_banned() {
    let w = World {
        org: LayerSpec {
            allowed: Some(vec!["alpha-*", "beta-*", "ft-org"]),
            blocked: vec!["beta-*"],
            custom: vec![("ft-org", GW)],
        },
        ..plain()
    };
    let snap = w.compile();
    let base = base(&anyone(), Scope::Org);
    let ids = |v: &[strata_policy::explain::ModelView]| {
        v.iter().map(|m| m.model.clone()).collect::<Vec<_>>()
    };

    let (shown, hidden) = models(&snap, &base, Some(GW), &[]);
    assert_eq!(ids(&shown), ["ft-org"]);
    assert!(hidden.is_empty(), "{:?}", ids(&hidden));

    let catalogue: Vec<String> = ["Alpha-9", "openai/alpha-9", "beta-7", "FT-ORG", " ", ""]
        .map(String::from)
        .to_vec();
    let (shown, hidden) = models(&snap, &base, Some(GW), &catalogue);
    assert_eq!(ids(&shown), ["ft-org", "Alpha-9"]);
    assert_eq!(shown[0].base_url.as_deref(), Some(GW));
    assert_eq!(shown[1].level, strata_policy::Level::Org);
    assert_eq!(ids(&hidden), ["beta-7"]);
    assert_eq!(hidden[0].decision, Effect::Deny);
    assert!(
        hidden[0].reason.contains("blockedModelIds") && hidden[0].reason.contains("beta-*"),
        "{}",
        hidden[0].reason
    );
    assert_agrees(w, anyone());
}

// ---- the org level Strata serves Droid, on the same generated bundles

/// The document rendered for a generated person is one Droid accepts, and it agrees with the
/// decisions: a catalogue id it allows is allowed through the gateway in some scope the person
/// may be in, one it blocks in none; every custom model it offers is allowed through the gateway
/// in the scope its header names (the org's without one)
fn check_org_document(a: &Asker, snap: &Snapshot) -> Result<(), TestCaseError> {
    use strata_policy::droid::org::{OrgRequest, render};
    let groups: Vec<String> = a.groups.iter().map(|g| g.to_string()).collect();
    let bound: Option<Vec<String>> = a
        .token
        .as_ref()
        .map(|t| t.iter().map(|p| p.to_string()).collect());
    let doc = render(
        snap,
        &OrgRequest {
            user: a.user,
            groups: &groups,
            token_projects: bound.as_deref(),
            gateway_url: GW,
        },
    )
    .map_err(|e| TestCaseError::fail(format!("not renderable for Droid: {e:?}")))?;
    let v = Value::Object(doc.settings);
    let allowed_somewhere = |model: &str| {
        SCOPES
            .iter()
            .any(|s| decide(snap, &through(&base(a, *s), model, Some(GW))).allowed())
    };
    let list = |key: &str| -> Vec<String> {
        v["modelPolicy"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for id in list("allowedModelIds") {
        prop_assert!(allowed_somewhere(&id), "Droid allows `{id}`, no scope does");
    }
    for id in list("blockedModelIds") {
        // a Gemini model goes to Google's own API from Droid, which the gateway cannot carry
        prop_assert!(
            !allowed_somewhere(&id) || !strata_policy::droid::org::gateway_carries(&id),
            "Droid blocks `{id}`, a scope allows it"
        );
    }
    for m in v["customModels"].as_array().into_iter().flatten() {
        let model = m["model"].as_str().unwrap_or_default();
        let mut b = base(a, Scope::Org);
        b.project = m["extraHeaders"]["X-Strata-Project"]
            .as_str()
            .map(str::to_string);
        prop_assert!(
            decide(snap, &through(&b, model, Some(GW))).allowed(),
            "Droid offers `{model}` ({m}), the gateway refuses it"
        );
    }
    Ok(())
}

#[test]
fn org_documents_agree_with_decisions_and_droids_schema() {
    let config = Config {
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(world(), asker()), |(w, a)| {
        check_org_document(&a, &w.compile())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
