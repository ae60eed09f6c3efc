//! Merge laws, checked on random layer sets: no lower layer lifts a restriction from above,
//! adding restrictions never turns a deny into an allow, a user layer widens only through BYOK,
//! and compiling (or merging a file with an identical copy of itself) is idempotent.
//!
//! Layers are drawn from small alphabets (five models, a few globs, two base URLs, three MCP
//! servers) so that lists overlap often; every law is checked on every request of a fixed grid:
//! five scopes (no project, the project, below the outer folder only, below both nested folders, an
//! unknown project) × five model ids × four key modes and base URLs, plus MCP servers by name, URL
//! and command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use strata_policy::decide::McpRef;
use strata_policy::{
    Bundle, Decision, Effect, FileTree, KeyMode, ProjectTrees, Provider, Request, Snapshot, Target,
    compile, decide,
};

const MODELS: [&str; 5] = ["alpha-1", "alpha-2", "beta-1", "beta-2", "delta"];
const PATTERNS: [&str; 9] = [
    "alpha-1", "alpha-2", "beta-1", "beta-2", "delta", "alpha-*", "beta-*", "*", "ALPHA-1",
];
const URLS: [&str; 2] = ["https://gw.acme.internal/v1", "https://api.example.com/v1"];
const URL_GLOBS: [&str; 2] = ["https://gw.acme.internal/**", "https://api.example.com/**"];
const PROVIDERS: [&str; 3] = ["anthropic", "openai", "generic-chat-completion-api"];
/// the servers the org's mcp.json defines: name, URL or command line
const SERVERS: [&str; 3] = ["docs", "gh", "tools"];
const MCP_ENTRIES: [&str; 4] = [
    "docs.acme.internal",
    "tools.web.internal",
    "npx -y *",
    "*.acme.internal",
];
const USER: &str = "u";
const PROJECT: &str = "p";
const OUTER: &str = "svc";
const FOLDER: &str = "svc/a";

#[derive(Clone, Debug, Default)]
struct LayerSpec {
    allowed: Option<Vec<&'static str>>,
    blocked: Vec<&'static str>,
    allow_custom: Option<bool>,
    base_urls: Option<Vec<&'static str>>,
    custom: Vec<(&'static str, &'static str)>,
    mcp: Option<(bool, Vec<&'static str>)>,
    /// `disabled` set in the layer's mcp.json (an opt-in or opt-out below the org)
    toggles: Vec<(&'static str, bool)>,
}

#[derive(Clone, Debug, Default)]
struct OrgSpec {
    layer: LayerSpec,
    projects_may_add: Option<bool>,
    /// userModelPolicies[USER]: allowed, blocked
    user_policy: Option<(Option<Vec<&'static str>>, Vec<&'static str>)>,
    gateway: Option<Vec<&'static str>>,
    byok_providers: Option<Vec<&'static str>>,
    /// whether each of SERVERS is `disabled` in the org's mcp.json
    servers_disabled: [bool; 3],
}

#[derive(Clone, Debug, Default)]
struct World {
    org: OrgSpec,
    project: Option<LayerSpec>,
    /// the folder layer at OUTER
    outer: Option<LayerSpec>,
    /// the folder layer at FOLDER, below OUTER
    folder: Option<LayerSpec>,
    user: Option<LayerSpec>,
    /// every settings.json also ships as an identical settings.local.json
    local_copies: bool,
}

fn model_policy(l: &LayerSpec) -> Map<String, Value> {
    let mut mp = Map::new();
    if let Some(a) = &l.allowed {
        mp.insert("allowedModelIds".into(), json!(a));
    }
    if !l.blocked.is_empty() {
        mp.insert("blockedModelIds".into(), json!(l.blocked));
    }
    if let Some(b) = l.allow_custom {
        mp.insert("allowCustomModels".into(), json!(b));
    }
    if let Some(u) = &l.base_urls {
        mp.insert("allowedBaseUrls".into(), json!(u));
    }
    mp
}

fn settings(l: &LayerSpec, extra: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut s = Map::new();
    let mp = model_policy(l);
    if !mp.is_empty() {
        s.insert("modelPolicy".into(), Value::Object(mp));
    }
    if let Some((enabled, list)) = &l.mcp {
        s.insert(
            "mcpPolicy".into(),
            json!({"enabled": enabled, "allowlist": list}),
        );
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
    Value::Object(s)
}

fn files(settings: Value, mcp: Option<Value>, local_copies: bool) -> Vec<(String, Vec<u8>)> {
    let text = serde_json::to_vec_pretty(&settings).unwrap();
    let mut out = vec![("settings.json".to_string(), text.clone())];
    if local_copies {
        out.push(("settings.local.json".to_string(), text));
    }
    if let Some(m) = mcp {
        out.push((
            "mcp.json".to_string(),
            serde_json::to_vec_pretty(&m).unwrap(),
        ));
    }
    out
}

fn toggles(l: &LayerSpec) -> Option<Value> {
    if l.toggles.is_empty() {
        return None;
    }
    let servers: Map<String, Value> = l
        .toggles
        .iter()
        .map(|(n, d)| (n.to_string(), json!({"disabled": d})))
        .collect();
    Some(json!({"mcpServers": servers}))
}

fn layer_tree(root: &str, l: &LayerSpec, local_copies: bool) -> FileTree {
    FileTree::from_files(root, files(settings(l, |_| {}), toggles(l), local_copies)).unwrap()
}

impl World {
    fn bundle(&self) -> Bundle {
        let o = &self.org;
        let org_settings = settings(&o.layer, |s| {
            if let Some((allowed, blocked)) = &o.user_policy {
                let mut p = Map::new();
                if let Some(a) = allowed {
                    p.insert("allowedModelIds".into(), json!(a));
                }
                if !blocked.is_empty() {
                    p.insert("blockedModelIds".into(), json!(blocked));
                }
                s.insert("userModelPolicies".into(), json!({USER: p}));
            }
        });
        let d = o.servers_disabled;
        let org_mcp = json!({"mcpServers": {
            "docs": {"type": "http", "url": "https://docs.acme.internal/mcp", "disabled": d[0]},
            "gh": {"command": "npx", "args": ["-y", "gh-server"], "disabled": d[1]},
            "tools": {"type": "sse", "url": "https://tools.web.internal/sse", "disabled": d[2]},
        }});
        let mut policy = Map::new();
        if let Some(b) = o.projects_may_add {
            policy.insert("projectsMayAddModels".into(), json!(b));
        }
        if let Some(g) = &o.gateway {
            policy.insert("gateway".into(), json!({"requiredBaseUrls": g}));
        }
        if let Some(p) = &o.byok_providers {
            policy.insert("byok".into(), json!({"allowedProviders": p}));
        }
        let mut org_files = files(org_settings, Some(org_mcp), self.local_copies);
        org_files.push((
            "policy.json".to_string(),
            serde_json::to_vec_pretty(&Value::Object(policy)).unwrap(),
        ));
        let projects = self
            .project
            .iter()
            .map(|p| ProjectTrees {
                id: PROJECT.to_string(),
                project: layer_tree("project", p, self.local_copies),
                // inner folder first: the order of the bundle must not matter
                folders: [(FOLDER, &self.folder), (OUTER, &self.outer)]
                    .into_iter()
                    .filter_map(|(path, f)| {
                        let f = f.as_ref()?;
                        Some((path.to_string(), layer_tree(path, f, self.local_copies)))
                    })
                    .collect(),
            })
            .collect();
        Bundle {
            org: FileTree::from_files("org", org_files).unwrap(),
            projects,
            users: self
                .user
                .iter()
                .map(|u| (USER.to_string(), layer_tree("user", u, self.local_copies)))
                .collect(),
        }
    }

    fn compile(&self) -> Snapshot {
        compile(&self.bundle(), &|_| None)
            .unwrap_or_else(|p| panic!("{self:#?}\ndoes not compile: {p:#?}"))
    }
}

// ---- strategies

fn pats() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(PATTERNS.to_vec(), 0..=3)
}

fn customs() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    (
        prop::sample::subsequence(MODELS.to_vec(), 0..=2),
        prop::collection::vec(prop::sample::select(URLS.to_vec()), 2),
    )
        .prop_map(|(ms, us)| ms.into_iter().zip(us).collect())
}

fn layer() -> impl Strategy<Value = LayerSpec> {
    (
        prop::option::of(pats()),
        pats(),
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.3, prop::sample::subsequence(URL_GLOBS.to_vec(), 0..=2)),
        customs(),
        prop::option::weighted(
            0.3,
            (
                any::<bool>(),
                prop::sample::subsequence(MCP_ENTRIES.to_vec(), 0..=2),
            ),
        ),
        (
            prop::sample::subsequence(SERVERS.to_vec(), 0..=2),
            prop::collection::vec(any::<bool>(), 2),
        )
            .prop_map(|(ns, ds)| ns.into_iter().zip(ds).collect::<Vec<_>>()),
    )
        .prop_map(
            |(allowed, blocked, allow_custom, base_urls, custom, mcp, toggles)| LayerSpec {
                allowed,
                blocked,
                allow_custom,
                base_urls,
                custom,
                mcp,
                toggles,
            },
        )
}

fn org() -> impl Strategy<Value = OrgSpec> {
    (
        layer(),
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.4, (prop::option::of(pats()), pats())),
        prop::option::weighted(0.2, prop::sample::subsequence(URL_GLOBS.to_vec(), 0..=2)),
        prop::option::weighted(0.3, prop::sample::subsequence(PROVIDERS.to_vec(), 0..=2)),
        any::<[bool; 3]>(),
    )
        .prop_map(
            |(
                mut layer,
                projects_may_add,
                user_policy,
                gateway,
                byok_providers,
                servers_disabled,
            )| {
                // org mcp.json defines the servers; toggles are for the layers below
                layer.toggles.clear();
                OrgSpec {
                    layer,
                    projects_may_add,
                    user_policy,
                    gateway,
                    byok_providers,
                    servers_disabled,
                }
            },
        )
}

fn world() -> impl Strategy<Value = World> {
    (
        org(),
        prop::option::of(layer()),
        prop::option::of(layer()),
        prop::option::of(layer()),
        prop::option::of(layer()),
    )
        .prop_map(|(org, project, outer, folder, user)| {
            let (outer, folder) = if project.is_some() {
                (outer, folder)
            } else {
                (None, None)
            };
            World {
                org,
                project,
                outer,
                folder,
                user,
                local_copies: false,
            }
        })
}

/// Restrictions only: each, added to a world, may only take permissions away
#[derive(Clone, Debug)]
struct Restriction {
    /// blocked entries added at org, project, outer folder, folder, user
    blocks: [Vec<&'static str>; 5],
    /// an org allowlist where there is none
    org_allowlist: Option<Vec<&'static str>>,
    no_project_adds: bool,
    /// the user's own allowlist where there is none
    user_allowlist: Option<Vec<&'static str>>,
    /// allowCustomModels false at this level (0 org, 1 project, 2 outer folder, 3 folder, 4 user)
    byok_off: Option<usize>,
    /// allowedBaseUrls where the level has none
    base_urls: Option<(usize, Vec<&'static str>)>,
    /// mcpPolicy enforced at this level (with this allowlist where it had none)
    mcp: Option<(usize, Vec<&'static str>)>,
    /// a server disabled at this level where the level says nothing about it
    disable: Option<(usize, &'static str)>,
    user_policy_block: Vec<&'static str>,
    gateway: Option<Vec<&'static str>>,
    byok_providers: Option<Vec<&'static str>>,
}

fn restriction() -> impl Strategy<Value = Restriction> {
    (
        [pats(), pats(), pats(), pats(), pats()],
        prop::option::weighted(0.3, pats()),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, pats()),
        prop::option::weighted(0.3, 0..5usize),
        prop::option::weighted(
            0.3,
            (
                0..5usize,
                prop::sample::subsequence(URL_GLOBS.to_vec(), 0..=2),
            ),
        ),
        prop::option::weighted(
            0.3,
            (
                0..5usize,
                prop::sample::subsequence(MCP_ENTRIES.to_vec(), 0..=2),
            ),
        ),
        prop::option::weighted(0.3, (0..5usize, prop::sample::select(SERVERS.to_vec()))),
        prop::option::weighted(0.3, pats()).prop_map(Option::unwrap_or_default),
        prop::option::weighted(0.2, prop::sample::subsequence(URL_GLOBS.to_vec(), 0..=2)),
        prop::option::weighted(0.2, prop::sample::subsequence(PROVIDERS.to_vec(), 0..=2)),
    )
        .prop_map(
            |(
                blocks,
                org_allowlist,
                no_project_adds,
                user_allowlist,
                byok_off,
                base_urls,
                mcp,
                disable,
                user_policy_block,
                gateway,
                byok_providers,
            )| {
                Restriction {
                    blocks,
                    org_allowlist,
                    no_project_adds,
                    user_allowlist,
                    byok_off,
                    base_urls,
                    mcp,
                    disable,
                    user_policy_block,
                    gateway,
                    byok_providers,
                }
            },
        )
}

impl World {
    /// The layer at `level` (0 org, 1 project, 2 outer folder, 3 folder, 4 user), created empty
    /// if the world has none
    fn level_mut(&mut self, level: usize) -> &mut LayerSpec {
        match level {
            0 => &mut self.org.layer,
            1 => self.project.get_or_insert_with(LayerSpec::default),
            2 => {
                self.project.get_or_insert_with(LayerSpec::default);
                self.outer.get_or_insert_with(LayerSpec::default)
            }
            3 => {
                self.project.get_or_insert_with(LayerSpec::default);
                self.folder.get_or_insert_with(LayerSpec::default)
            }
            _ => self.user.get_or_insert_with(LayerSpec::default),
        }
    }

    fn restricted(&self, r: &Restriction) -> World {
        let mut w = self.clone();
        for (level, blocks) in r.blocks.iter().enumerate() {
            if !blocks.is_empty() {
                w.level_mut(level).blocked.extend(blocks.iter().copied());
            }
        }
        if let Some(a) = &r.org_allowlist {
            w.org.layer.allowed.get_or_insert_with(|| a.clone());
        }
        if r.no_project_adds {
            w.org.projects_may_add = Some(false);
        }
        if let Some(a) = &r.user_allowlist {
            w.level_mut(4).allowed.get_or_insert_with(|| a.clone());
        }
        if let Some(level) = r.byok_off {
            w.level_mut(level).allow_custom = Some(false);
        }
        if let Some((level, urls)) = &r.base_urls {
            w.level_mut(*level)
                .base_urls
                .get_or_insert_with(|| urls.clone());
        }
        if let Some((level, entries)) = &r.mcp {
            let l = w.level_mut(*level);
            let list = l
                .mcp
                .take()
                .map(|(_, list)| list)
                .unwrap_or_else(|| entries.clone());
            l.mcp = Some((true, list));
        }
        if let Some((level, server)) = r.disable {
            if level == 0 {
                let i = SERVERS.iter().position(|s| *s == server).unwrap();
                w.org.servers_disabled[i] = true;
            } else {
                let l = w.level_mut(level);
                if !l.toggles.iter().any(|(n, _)| *n == server) {
                    l.toggles.push((server, true));
                }
            }
        }
        if !r.user_policy_block.is_empty() {
            let p = w.org.user_policy.get_or_insert_with(Default::default);
            p.1.extend(r.user_policy_block.iter().copied());
        }
        if let Some(g) = &r.gateway {
            w.org.gateway.get_or_insert_with(|| g.clone());
        }
        if let Some(p) = &r.byok_providers {
            w.org.byok_providers.get_or_insert_with(|| p.clone());
        }
        w
    }
}

// ---- the request grid

fn scopes() -> [(Option<&'static str>, Option<&'static str>); 5] {
    [
        (None, None),
        (Some(PROJECT), None),
        (Some(PROJECT), Some("svc/x")),
        (Some(PROJECT), Some("svc/a/deep")),
        (Some("unknown"), None),
    ]
}

fn model_ids() -> Vec<String> {
    MODELS.iter().map(|m| m.to_string()).collect()
}

fn model_request(
    scope: (Option<&str>, Option<&str>),
    model: &str,
    key_mode: KeyMode,
    provider: Option<Provider>,
    base_url: Option<&str>,
) -> Request {
    Request {
        user: USER.to_string(),
        groups: Vec::new(),
        project: scope.0.map(str::to_string),
        folder: scope.1.map(str::to_string),
        gateway: None,
        token_projects: None,
        target: Target::Model {
            model: model.to_string(),
            provider,
            key_mode,
            base_url: base_url.map(str::to_string),
            mcp_servers: Vec::new(),
        },
    }
}

/// (key mode, provider, base URL) variants of a model request
fn key_variants() -> Vec<(KeyMode, Option<Provider>, Option<&'static str>)> {
    vec![
        (KeyMode::Central, None, None),
        (KeyMode::Central, None, Some(URLS[0])),
        (KeyMode::Byok, Some(Provider::OpenAi), Some(URLS[0])),
        (KeyMode::Byok, Some(Provider::Anthropic), Some(URLS[1])),
    ]
}

fn model_requests() -> Vec<Request> {
    let mut out = Vec::new();
    for scope in scopes() {
        for m in model_ids() {
            for (k, p, u) in key_variants() {
                out.push(model_request(scope, &m, k, p, u));
            }
        }
    }
    out
}

fn mcp_refs() -> Vec<McpRef> {
    let name = |n: &str| McpRef {
        name: Some(n.to_string()),
        ..Default::default()
    };
    vec![
        name("docs"),
        name("gh"),
        name("tools"),
        McpRef {
            url: Some("https://wiki.acme.internal/mcp".to_string()),
            ..Default::default()
        },
        McpRef {
            command: Some("npx".to_string()),
            args: vec!["-y".to_string(), "other".to_string()],
            ..Default::default()
        },
    ]
}

fn mcp_requests() -> Vec<Request> {
    let mut out = Vec::new();
    for scope in scopes() {
        for server in mcp_refs() {
            let mut r = model_request(scope, "alpha-1", KeyMode::Central, None, None);
            r.target = Target::Mcp { server };
            out.push(r);
        }
    }
    out
}

fn all_requests() -> Vec<Request> {
    model_requests().into_iter().chain(mcp_requests()).collect()
}

fn rules(d: &Decision) -> Vec<&str> {
    let mut r: Vec<&str> = d.determined_by.iter().map(|x| x.rule.as_str()).collect();
    r.sort();
    r
}

// ---- an independent oracle for the pattern alphabet

fn matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(model),
    }
}

fn any_match(patterns: &[&str], model: &str) -> bool {
    patterns.iter().any(|p| matches(p, model))
}

/// The org bans `model` for USER: its blockedModelIds or userModelPolicies[USER].blockedModelIds
fn org_bans(o: &OrgSpec, model: &str) -> bool {
    any_match(&o.layer.blocked, model)
        || o.user_policy
            .as_ref()
            .is_some_and(|(_, b)| any_match(b, model))
}

fn describe(w: &World, r: &Request, d: &Decision) -> String {
    format!(
        "request {r:?}\ndecision {:?} by {:?}: {}\nworld {w:#?}",
        d.effect,
        rules(d),
        d.reason
    )
}

/// Compiling is the expensive part (tens of milliseconds in a debug build), so each property
/// compiles a few variants of one world and checks several laws on them. `PROPTEST_CASES` raises
/// the number of worlds for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    ProptestConfig {
        cases,
        max_shrink_iters: 128,
        ..ProptestConfig::default()
    }
}

/// Whether `r` asks for a model the org of `w` bans for USER
fn banned(w: &World, r: &Request) -> bool {
    matches!(&r.target, Target::Model { model, .. } if org_bans(&w.org, model))
}

proptest! {
    #![proptest_config(config())]

    /// No lower layer lifts a restriction from above.
    ///
    /// (a) A model the org bans stays denied whatever project, folder and user layers say, with
    /// the central key and with BYOK (checked with and without the user layer, and after the
    /// restrictions below are added).
    /// (a) Restrictions only take away: a request denied in a world stays denied once any mix of
    /// bans, allowlists, BYOK switches, base-URL lists, MCP policies, disabled servers, per-user
    /// bans and policy.json restrictions is added, at any level (creating the layer if needed).
    /// (c) A user layer widens only through BYOK: with the central key, adding the user's layer
    /// never turns a deny into an allow. For MCP, a user may opt in to a server disabled above,
    /// but never past an allowlist or the blocklist.
    #[test]
    fn no_lower_layer_lifts_a_restriction(w in world(), r in restriction()) {
        let tighter = w.restricted(&r);
        let full = w.compile();
        let without_user = World { user: None, ..w.clone() }.compile();
        let restricted = tighter.compile();
        for req in all_requests() {
            let d = decide(&full, &req);
            let d0 = decide(&without_user, &req);
            if banned(&w, &req) {
                for (what, x) in [("full", &d), ("without the user layer", &d0)] {
                    prop_assert_eq!(x.effect, Effect::Deny, "org ban lifted ({}): {}", what, describe(&w, &req, x));
                    prop_assert!(!x.determined_by.is_empty(), "a ban is a forbid that determines the deny: {}", describe(&w, &req, x));
                }
            }
            // The one exception, as in Droid (docs/merge.md, "Strata and Droid"): a person's own
            // allowedModelIds narrows only while no level above sets a list; an org allowlist
            // added above makes it moot (a client-side rule the gateway never sees)
            let moot = r.org_allowlist.is_some()
                && rules(&d) == ["user#modelPolicy.allowedModelIds"]
                && !banned(&tighter, &req);
            if (d.effect == Effect::Deny || banned(&tighter, &req)) && !moot {
                let d1 = decide(&restricted, &req);
                prop_assert_eq!(
                    d1.effect, Effect::Deny,
                    "a restriction lifted a deny\nbefore: {:?} {:?} {}\nafter: {}\nrestriction {:#?}", d.effect, rules(&d), d.reason, describe(&tighter, &req, &d1), r
                );
            }
            if d0.effect == Effect::Deny && d.effect == Effect::Allow {
                match &req.target {
                    Target::Model { key_mode: KeyMode::Central, .. } => {
                        prop_assert!(false, "the user layer lifted {:?}\n{}", rules(&d0), describe(&w, &req, &d));
                    }
                    Target::Mcp { .. } if rules(&d0).iter().any(|id| !id.ends_with("#mcpServers.disabled")) => {
                        prop_assert!(false, "the user layer lifted {:?}\n{}", rules(&d0), describe(&w, &req, &d));
                    }
                    _ => {}
                }
            }
        }
    }

    /// The evaluators cannot drift: on random bundles, for every request, `decide` (base rules
    /// natively) returns exactly what Cedar's `Authorizer` returns evaluating the scope's whole
    /// policy set, `policies/base.cedar` with its `when` bodies included.
    #[test]
    fn native_decisions_are_cedars(w in world()) {
        let snap = w.compile();
        for req in all_requests() {
            let native = decide(&snap, &req);
            let reference = strata_policy::decide::decide_reference(&snap, &req);
            prop_assert_eq!(&native, &reference, "{}", describe(&w, &req, &native));
        }
    }

    /// (a) With an org allowlist and projectsMayAddModels false, a model outside the org's
    /// allowedModelIds and customModels is never allowed with the central key, in any scope; with
    /// BYOK only as a personal model (`org#default.byok`). (Forced in half of the worlds.)
    /// (b) Compiling the same bundle twice gives the same revision and the same decisions; a
    /// settings.local.json identical to its settings.json changes no decision; an unknown project
    /// decides as no project; model ids are matched case-insensitively.
    #[test]
    fn merging_is_idempotent_and_the_allowlist_holds(mut w in world(), force in any::<bool>(), allowed in pats()) {
        if force {
            w.org.projects_may_add = Some(false);
            w.org.layer.allowed = Some(allowed);
        }
        let a = w.compile();
        let b = w.compile();
        prop_assert_eq!(&a.revision, &b.revision);
        let doubled = World { local_copies: true, ..w.clone() }.compile();
        prop_assert_ne!(&a.revision, &doubled.revision, "the revision is a hash of the files");
        for r in all_requests() {
            let da = decide(&a, &r);
            prop_assert_eq!(&da, &decide(&b, &r));
            let dd = decide(&doubled, &r);
            prop_assert_eq!((da.effect, rules(&da)), (dd.effect, rules(&dd)), "with settings.local.json copies: {}", describe(&w, &r, &dd));
        }
        if let (Some(false), Some(org_allowed)) = (w.org.projects_may_add, &w.org.layer.allowed) {
            for r in model_requests() {
                let Target::Model { model, key_mode, .. } = &r.target else { unreachable!() };
                let in_org = any_match(org_allowed, model) || w.org.layer.custom.iter().any(|(m, _)| m.eq_ignore_ascii_case(model));
                if in_org {
                    continue;
                }
                let d = decide(&a, &r);
                if d.effect == Effect::Allow {
                    prop_assert!(*key_mode == KeyMode::Byok, "{}", describe(&w, &r, &d));
                    prop_assert_eq!(rules(&d), vec!["org#default.byok"], "{}", describe(&w, &r, &d));
                }
            }
        }
        for r in model_requests() {
            if r.project.as_deref() == Some("unknown") {
                let none = Request { project: None, ..r.clone() };
                let (du, dn) = (decide(&a, &r), decide(&a, &none));
                prop_assert_eq!((du.effect, rules(&du)), (dn.effect, rules(&dn)));
            }
            let Target::Model { model, .. } = &r.target else { unreachable!() };
            let mut upper = r.clone();
            if let Target::Model { model: m, .. } = &mut upper.target {
                *m = model.to_ascii_uppercase();
            }
            let (d, du) = (decide(&a, &r), decide(&a, &upper));
            prop_assert_eq!((d.effect, rules(&d)), (du.effect, rules(&du)), "{} vs {}", model, model.to_ascii_uppercase());
        }
    }
}

/// The revision names the snapshot's content: two snapshots with the same revision decide alike.
/// `${VAR}` in mcp.json is expanded while compiling, and the expanded URL is what the allowlist
/// matches, so the revision covers the expanded values too.
#[test]
fn same_revision_same_decisions_across_environments() {
    let org = FileTree::from_files(
        "org",
        [
            (
                "settings.json".to_string(),
                br#"{"mcpPolicy": {"enabled": true, "allowlist": ["docs.acme.internal"]}}"#
                    .to_vec(),
            ),
            (
                "mcp.json".to_string(),
                br#"{"mcpServers": {"docs": {"url": "https://${DOCS_HOST}/mcp"}}}"#.to_vec(),
            ),
        ],
    )
    .unwrap();
    let bundle = Bundle {
        org,
        ..Default::default()
    };
    let a = compile(&bundle, &|k| {
        (k == "DOCS_HOST").then(|| "docs.acme.internal".to_string())
    })
    .unwrap();
    let b = compile(&bundle, &|k| {
        (k == "DOCS_HOST").then(|| "evil.example.com".to_string())
    })
    .unwrap();
    let mut r = Request::model(USER, "x");
    r.target = Target::Mcp {
        server: McpRef {
            name: Some("docs".to_string()),
            ..Default::default()
        },
    };
    let (da, db) = (decide(&a, &r), decide(&b, &r));
    assert!(
        a.revision != b.revision || da.effect == db.effect,
        "same revision {}, but {:?} vs {:?}",
        a.revision,
        da.effect,
        db.effect
    );
}
