//! Incremental compiles decide as full ones: on a random sequence of publishes (the org, one
//! project at a time, a project removed), the snapshot that `recompile` builds from the one before
//! has the same revision, the same warnings and the same decision (effect, deciding rules,
//! provenance) on every request of a grid as `compile` of the whole bundle.
//!
//! Layers come from small alphabets (models, globs, MCP servers, one hand-written Cedar rule per
//! scope) so that projects often agree (and share the org's sets) and often do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use strata_policy::compile::recompile;
use strata_policy::decide::McpRef;
use strata_policy::{
    Bundle, FileTree, KeyMode, ProjectTrees, Request, Snapshot, Target, compile, decide,
};

const MODELS: [&str; 4] = ["alpha-1", "alpha-2", "beta-1", "delta"];
const PATTERNS: [&str; 5] = ["alpha-1", "beta-1", "alpha-*", "delta", "beta-*"];
const PROJECTS: [&str; 4] = ["web", "api", "svc/a", "svc"];
const SERVERS: [&str; 2] = ["docs", "tools"];

#[derive(Clone, Debug)]
struct LayerSpec {
    allowed: Option<Vec<&'static str>>,
    blocked: Vec<&'static str>,
    /// an MCP server this layer defines (by index into SERVERS) and whether it is disabled
    server: Option<(usize, bool)>,
    /// a hand-written rule forbidding models like this pattern
    forbid: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct OrgSpec {
    layer: LayerSpec,
    projects_may_add: Option<bool>,
    mcp_allowlist: Option<Vec<&'static str>>,
}

#[derive(Clone, Debug)]
enum Step {
    Org(OrgSpec),
    /// project (index into PROJECTS), its layer, its folder `svc` layer
    Project(usize, LayerSpec, Option<LayerSpec>),
    Remove(usize),
}

fn settings(l: &LayerSpec, mcp_allowlist: Option<&Vec<&'static str>>) -> Value {
    let mut mp = Map::new();
    if let Some(a) = &l.allowed {
        mp.insert("allowedModelIds".into(), json!(a));
    }
    if !l.blocked.is_empty() {
        mp.insert("blockedModelIds".into(), json!(l.blocked));
    }
    let mut s = Map::new();
    if !mp.is_empty() {
        s.insert("modelPolicy".into(), Value::Object(mp));
    }
    if let Some(list) = mcp_allowlist {
        s.insert(
            "mcpPolicy".into(),
            json!({"enabled": true, "allowlist": list}),
        );
    }
    Value::Object(s)
}

fn layer_files(l: &LayerSpec, mcp_allowlist: Option<&Vec<&'static str>>) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "settings.json".to_string(),
        serde_json::to_vec_pretty(&settings(l, mcp_allowlist)).unwrap(),
    )];
    if let Some((i, disabled)) = l.server {
        let name = SERVERS[i];
        let mcp = json!({"mcpServers": {
            name: {"type": "http", "url": format!("https://{name}.acme.internal/mcp"), "disabled": disabled}
        }});
        files.push(("mcp.json".to_string(), serde_json::to_vec(&mcp).unwrap()));
    }
    if let Some(p) = l.forbid {
        let rule = format!(
            "@id(\"guard\")\nforbid (principal, action in Action::\"use_model\", resource)\nwhen {{ resource.id like \"{p}\" }};\n"
        );
        files.push(("policies/local.cedar".to_string(), rule.into_bytes()));
    }
    files
}

fn org_tree(o: &OrgSpec) -> FileTree {
    let mut files = layer_files(&o.layer, o.mcp_allowlist.as_ref());
    let mut policy = Map::new();
    if let Some(b) = o.projects_may_add {
        policy.insert("projectsMayAddModels".into(), json!(b));
    }
    files.push((
        "policy.json".to_string(),
        serde_json::to_vec(&Value::Object(policy)).unwrap(),
    ));
    FileTree::from_files("org", files).unwrap()
}

fn project_trees(i: usize, l: &LayerSpec, folder: &Option<LayerSpec>) -> ProjectTrees {
    let id = PROJECTS[i];
    ProjectTrees {
        id: id.to_string(),
        project: FileTree::from_files(format!("projects/{id}"), layer_files(l, None)).unwrap(),
        folders: folder
            .iter()
            .map(|f| {
                let root = format!("projects/{id}/svc");
                (
                    "svc".to_string(),
                    FileTree::from_files(&root, layer_files(f, None)).unwrap(),
                )
            })
            .collect(),
    }
}

fn layer() -> impl Strategy<Value = LayerSpec> {
    (
        prop::option::of(prop::collection::vec(
            prop::sample::select(&PATTERNS[..]),
            0..3,
        )),
        prop::collection::vec(prop::sample::select(&PATTERNS[..]), 0..2),
        prop::option::of((0..SERVERS.len(), any::<bool>())),
        prop::option::weighted(
            0.3,
            prop::sample::select(&["alpha*", "delta", "beta-1"][..]),
        ),
    )
        .prop_map(|(allowed, blocked, server, forbid)| LayerSpec {
            allowed,
            blocked,
            server,
            forbid,
        })
}

fn org() -> impl Strategy<Value = OrgSpec> {
    (
        layer(),
        prop::option::of(any::<bool>()),
        prop::option::weighted(
            0.3,
            prop::collection::vec(
                prop::sample::select(&["docs.acme.internal", "*.acme.internal"][..]),
                0..2,
            ),
        ),
    )
        .prop_map(|(layer, projects_may_add, mcp_allowlist)| OrgSpec {
            layer,
            projects_may_add,
            mcp_allowlist,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => org().prop_map(Step::Org),
        6 => (0..PROJECTS.len(), layer(), prop::option::weighted(0.3, layer()))
            .prop_map(|(i, l, f)| Step::Project(i, l, f)),
        1 => (0..PROJECTS.len()).prop_map(Step::Remove),
    ]
}

fn requests() -> Vec<Request> {
    let mut scopes: Vec<(Option<&str>, Option<&str>)> = vec![(None, None), (Some("none"), None)];
    for p in PROJECTS {
        scopes.push((Some(p), None));
        scopes.push((Some(p), Some("svc/x")));
    }
    let mut out = Vec::new();
    for (project, folder) in scopes {
        let base = |target: Target| Request {
            user: "u".to_string(),
            groups: Vec::new(),
            project: project.map(str::to_string),
            folder: folder.map(str::to_string),
            gateway: None,
            token_projects: None,
            target,
        };
        for m in MODELS {
            out.push(base(Target::Model {
                model: m.to_string(),
                provider: None,
                key_mode: KeyMode::Central,
                base_url: None,
                mcp_servers: Vec::new(),
            }));
        }
        for s in SERVERS {
            out.push(base(Target::Mcp {
                server: McpRef {
                    name: Some(s.to_string()),
                    ..Default::default()
                },
            }));
        }
    }
    out
}

/// Whether two snapshots are the same revision, with the same warnings and decisions
fn same(incremental: &Snapshot, full: &Snapshot, requests: &[Request]) -> Result<(), String> {
    if incremental.revision != full.revision {
        return Err(format!(
            "revision {} incrementally, {} in full",
            incremental.revision, full.revision
        ));
    }
    if incremental.diagnostics() != full.diagnostics() {
        return Err(format!(
            "warnings {:#?} incrementally, {:#?} in full",
            incremental.diagnostics(),
            full.diagnostics()
        ));
    }
    for r in requests {
        let (a, b) = (decide(incremental, r), decide(full, r));
        let (a, b) = (format!("{a:?}"), format!("{b:?}"));
        if a != b {
            return Err(format!("{r:?}:\nincrementally {a}\nin full {b}"));
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn incremental_compiles_decide_as_full_ones(first in org(), steps in prop::collection::vec(step(), 1..10)) {
        let env = |_: &str| None;
        let requests = requests();
        let mut org = org_tree(&first);
        let mut projects: BTreeMap<usize, ProjectTrees> = BTreeMap::new();
        let bundle = |org: &FileTree, projects: &BTreeMap<usize, ProjectTrees>| Bundle {
            org: org.clone(),
            projects: projects.values().cloned().collect(),
            users: Vec::new(),
        };
        let mut snap = compile(&bundle(&org, &projects), &env).ok();
        for step in &steps {
            let (next, full) = match step {
                Step::Org(o) => {
                    org = org_tree(o);
                    let full = compile(&bundle(&org, &projects), &env);
                    (full.clone(), full)
                }
                Step::Project(i, l, f) => {
                    let trees = project_trees(*i, l, f);
                    projects.insert(*i, trees.clone());
                    let full = compile(&bundle(&org, &projects), &env);
                    let Some(prev) = &snap else { snap = full.ok(); continue };
                    (recompile(prev, &[trees], &[], &env), full)
                }
                Step::Remove(i) => {
                    projects.remove(i);
                    let full = compile(&bundle(&org, &projects), &env);
                    let Some(prev) = &snap else { snap = full.ok(); continue };
                    (recompile(prev, &[], &[PROJECTS[*i].to_string()], &env), full)
                }
            };
            match (next, full) {
                (Ok(next), Ok(full)) => {
                    if let Err(e) = same(&next, &full, &requests) {
                        return Err(TestCaseError::fail(format!("after {step:?}: {e}")));
                    }
                    snap = Some(next);
                }
                (Err(a), Err(b)) => {
                    // both refuse, with the same errors; the last good snapshot stays
                    let errors = |p: &strata_policy::Problems| p.errors().cloned().collect::<Vec<_>>();
                    prop_assert_eq!(errors(&a), errors(&b));
                    snap = None;
                }
                (a, b) => {
                    return Err(TestCaseError::fail(format!(
                        "after {step:?}: incrementally {:?}, in full {:?}",
                        a.err(), b.err()
                    )));
                }
            }
        }
    }
}
