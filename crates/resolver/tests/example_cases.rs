//! The example bundle's own decision cases (`policies/examples/acme/org/tests/*.json`, which
//! `policy test` runs against the local view: org, project, folder and the people's own files)
//! run against the resolver's view: the bundle published over the real gRPC API (org and
//! project `web` with its folder `services/billing`; a published bundle has no user layers),
//! every case asked through `Decide`.
//!
//! Every case must get its expected decision and determining rules, except the cases that only
//! the client (Droid, which reads the person's own files) can enforce: [`CLIENT_SIDE`]. The test
//! checks that list both ways: each case on it depends on a person's files (an expected rule of
//! the `user` level, or a local decision that changes without the user layers), and each case
//! that depends on a person's files is on it. And the resolver's answer is, for every case, the
//! local view's answer without the user layers: same decision, same rules. See `docs/merge.md`,
//! "Strata and Droid".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use strata_policy::testcase::{TestFile, test_files};
use strata_policy::{Bundle, Effect, FileTree, ProjectTrees, Snapshot, compile, decide};
use strata_proto::v1::{
    self, admin_service_client::AdminServiceClient, policy_service_client::PolicyServiceClient,
};

#[path = "support/server.rs"]
mod server;
use server::{ADMIN, SERVICE, Server, auth};

/// The cases only the client can enforce, by file and name, with why
const CLIENT_SIDE: [(&str, &str, &str); 7] = [
    (
        "byok.json",
        "a personal custom model through the gateway URL is allowed with the user's own key",
        "the base URL and provider come from alice's own customModels entry; without it the \
         request names neither, and the BYOK provider and base-URL lists cannot admit it",
    ),
    (
        "byok.json",
        "a personal custom model pointed straight at api.anthropic.com is denied",
        "denied either way, but the rules differ: the api.anthropic.com base URL comes from \
         alice's own customModels entry",
    ),
    (
        "byok.json",
        "a personal key for a provider outside byok.allowedProviders (legacy config.json entry) is denied",
        "denied either way, but the rules differ: the provider and base URL come from alice's \
         legacy config.json",
    ),
    (
        "byok.json",
        "the billing folder switches personal keys off (allowCustomModels false)",
        "denied either way, but the rules differ: alice's own entry supplies the base URL and \
         provider that pass every other BYOK list",
    ),
    (
        "mcp.json",
        "the user opts out of an org server",
        "`user#mcpServers.disabled`: alice's own mcp.json",
    ),
    (
        "mcp.json",
        "the user opts in to `git` (allowed by the allowlist)",
        "alice's own mcp.json lifts the org's `disabled`; without it the org's default holds",
    ),
    (
        "models.json",
        "the user's own blockedModelIds (settings.local.json) restricts that user",
        "`user#modelPolicy.blockedModelIds`: alice's own settings.local.json",
    ),
];

fn example_org() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples/acme/org")
}

fn files(dir: &Path) -> Vec<v1::File> {
    strata_proto::files(&FileTree::read_path(dir).unwrap())
}

/// A test file and its path
fn read(path: &Path) -> TestFile {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The project layers a test file names, read from disk
fn project_trees(dir: &Path, spec: &TestFile) -> Vec<ProjectTrees> {
    spec.projects
        .iter()
        .map(|(id, p)| ProjectTrees {
            id: id.clone(),
            project: FileTree::read_path(&dir.join(&p.path)).unwrap(),
            folders: p
                .folders
                .iter()
                .map(|(path, d)| (path.clone(), FileTree::read_path(&dir.join(d)).unwrap()))
                .collect(),
        })
        .collect()
}

/// The local view of a test file: with the people's own layers (what `policy test` decides
/// with), or without them (what a published bundle holds)
fn local(dir: &Path, spec: &TestFile, with_users: bool) -> Snapshot {
    let users = if with_users {
        spec.users
            .iter()
            .map(|(u, p)| (u.clone(), FileTree::read_path(&dir.join(p)).unwrap()))
            .collect()
    } else {
        Vec::new()
    };
    let bundle = Bundle {
        org: FileTree::read_path(dir).unwrap(),
        projects: project_trees(dir, spec),
        users,
    };
    let env = |k: &str| spec.env.get(k).cloned();
    compile(&bundle, &env).unwrap_or_else(|p| panic!("{p:?}"))
}

/// Publish the org and the projects a test file names, as `policy publish` does: no user layers
async fn publish(s: &Server, dir: &Path, spec: &TestFile) {
    let mut admin = AdminServiceClient::new(s.channel().await);
    admin
        .publish_org(auth(
            ADMIN,
            v1::PublishOrgRequest {
                files: files(dir),
                message: "acme".into(),
            },
        ))
        .await
        .unwrap();
    for (id, p) in &spec.projects {
        admin
            .publish_project(auth(
                ADMIN,
                v1::PublishProjectRequest {
                    project_id: id.clone(),
                    files: files(&dir.join(&p.path)),
                    folders: p
                        .folders
                        .iter()
                        .map(|(path, d)| v1::FolderLayer {
                            path: path.clone(),
                            files: files(&dir.join(d)),
                        })
                        .collect(),
                    message: String::new(),
                },
            ))
            .await
            .unwrap();
    }
}

type Answer = (Effect, BTreeSet<String>);

fn answer(d: &strata_policy::Decision) -> Answer {
    (
        d.effect,
        d.determined_by.iter().map(|r| r.rule.clone()).collect(),
    )
}

#[tokio::test]
async fn example_cases_against_the_resolver() {
    let started = std::time::Instant::now();
    let dir = example_org();
    let paths = test_files(&dir);
    assert!(!paths.is_empty(), "no tests/*.json in {}", dir.display());
    let specs: Vec<(String, TestFile)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(p),
            )
        })
        .collect();
    // one bundle for every file: the same projects, no environment of their own
    let projects = |s: &TestFile| -> BTreeMap<String, (String, BTreeMap<String, String>)> {
        s.projects
            .iter()
            .map(|(id, p)| (id.clone(), (p.path.clone(), p.folders.clone())))
            .collect()
    };
    for (name, s) in &specs {
        assert_eq!(
            projects(s),
            projects(&specs[0].1),
            "{name} names other projects"
        );
        assert!(
            s.env.is_empty(),
            "{name} sets an environment a resolver does not have"
        );
    }
    assert!(
        specs[0].1.projects.contains_key("web"),
        "the example bundle's project is `web`"
    );

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    publish(&server, &dir, &specs[0].1).await;
    let mut policy = PolicyServiceClient::new(server.channel().await);

    let mut cases = 0;
    let mut differ: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut depends_on_users: BTreeSet<(String, String)> = BTreeSet::new();
    let mut report = Vec::new();
    for (file, spec) in &specs {
        let with_users = local(&dir, spec, true);
        let without_users = local(&dir, spec, false);
        for case in &spec.cases {
            cases += 1;
            let key = (file.clone(), case.name.clone());
            let req = case.request.to_request().unwrap();
            let d = policy
                .decide(auth(SERVICE, strata_proto::decide_request(&req)))
                .await
                .unwrap_or_else(|e| panic!("{file} :: {}: {e}", case.name))
                .into_inner();
            let effect = if d.effect == v1::Effect::Allow as i32 {
                Effect::Allow
            } else {
                Effect::Deny
            };
            let resolver: Answer = (
                effect,
                d.determined_by.iter().map(|r| r.rule.clone()).collect(),
            );
            // the resolver's view is the local view without the people's files, exactly
            let published = answer(&decide(&without_users, &req));
            assert_eq!(
                resolver, published,
                "{file} :: {}: the resolver and the local view without user layers disagree",
                case.name
            );
            let personal = answer(&decide(&with_users, &req));
            let wanted_rules: Option<BTreeSet<String>> = case
                .expect
                .determined_by
                .as_ref()
                .map(|r| r.iter().cloned().collect());
            let user_rule = wanted_rules
                .iter()
                .flatten()
                .any(|r| r.starts_with("user#"));
            if user_rule || personal != published {
                depends_on_users.insert(key.clone());
            }
            let effect_ok = resolver.0 == case.expect.decision;
            let rules_ok = wanted_rules.as_ref().is_none_or(|w| *w == resolver.1);
            if !(effect_ok && rules_ok) {
                differ.insert(
                    key.clone(),
                    format!(
                        "expected {:?} by {:?}, the resolver says {:?} by {:?}: {}",
                        case.expect.decision, wanted_rules, resolver.0, resolver.1, d.reason
                    ),
                );
            }
            report.push(format!(
                "{} {file} :: {}",
                match (effect_ok, rules_ok) {
                    (true, true) => "same     ",
                    (true, false) => "rules    ",
                    (false, _) => "decision ",
                },
                case.name
            ));
        }
    }
    server.stop().await;
    eprintln!("{}", report.join("\n"));
    for ((file, name), why) in &differ {
        eprintln!("client-side {file} :: {name}: {why}");
    }

    let listed: BTreeMap<(String, String), &str> = CLIENT_SIDE
        .iter()
        .map(|(f, n, why)| ((f.to_string(), n.to_string()), *why))
        .collect();
    for key in listed.keys() {
        assert!(
            specs
                .iter()
                .any(|(f, s)| *f == key.0 && s.cases.iter().any(|c| c.name == key.1)),
            "CLIENT_SIDE names a case that does not exist: {key:?}"
        );
    }
    // every case the resolver answers otherwise is one only the client can enforce
    for (key, why) in &differ {
        assert!(
            listed.contains_key(key),
            "{} :: {}: the resolver disagrees and the case is not client-side: {why}",
            key.0,
            key.1
        );
    }
    // the list is exactly the cases that depend on the people's own files
    let client_side: BTreeSet<(String, String)> = listed.keys().cloned().collect();
    assert_eq!(
        client_side, depends_on_users,
        "CLIENT_SIDE must be exactly the cases whose expected rules are the user's own or whose \
         local decision changes without the user layers"
    );
    eprintln!(
        "{cases} cases in {:?}: {} only the client enforces, {} of them answered otherwise by \
         the resolver",
        started.elapsed(),
        client_side.len(),
        differ.len()
    );
    assert!(cases > client_side.len());
}
