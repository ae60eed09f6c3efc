//! The decision corpus: every `tests/corpus/*.json` file holds a bundle of layers inline and the
//! requests to decide against it, each with the expected decision **and** the exact set of rules
//! that determined it.
//!
//! File shape:
//!
//! ```json
//! {
//!   "description": "what the file is about",
//!   "env": {"VAR": "value"},
//!   "org": {"settings.json": {}, "policy.json": {}, "policies/x.cedar": "forbid (...);"},
//!   "projects": {"web": {"project": {"settings.json": {}}, "folders": {"svc/a": {}}}},
//!   "users": {"alice": {"settings.json": {}}},
//!   "diagnostics": [{"code": "merge.locked_key", "file": "users/alice/settings.json"}],
//!   "cases": [{"name": "...", "request": {"user": "alice", "model": "gpt-5"},
//!              "expect": {"decision": "deny", "determinedBy": ["org#modelPolicy.blockedModelIds"]}}]
//! }
//! ```
//!
//! A file's value that is a JSON string is the file's text as is (Cedar, Markdown, or JSON text
//! that must keep its exact bytes); any other JSON value is serialised, pretty-printed. Layer
//! roots are `org`, `projects/<id>`, `projects/<id>/<folder>` and `users/<id>`, so a file is
//! named e.g. `projects/web/settings.json` in diagnostics and provenance.
//!
//! `diagnostics` lists every warning the compiled snapshot must carry (and no others). A case
//! may also check the provenance of determining rules, and carry `"bug": "..."`: the case states
//! the documented behaviour of a known defect of the core and is expected to fail (an expected
//! failure); once the core is fixed it passes, and the test asks for the marker to be removed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use strata_policy::testcase::CaseRequest;
use strata_policy::{Bundle, Effect, FileTree, ProjectTrees, Snapshot, compile, decide};

type Files = BTreeMap<String, Value>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    org: Files,
    #[serde(default)]
    projects: BTreeMap<String, ProjectSpec>,
    #[serde(default)]
    users: BTreeMap<String, Files>,
    #[serde(default)]
    diagnostics: Vec<DiagSpec>,
    cases: Vec<CaseSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSpec {
    #[serde(default)]
    project: Files,
    #[serde(default)]
    folders: BTreeMap<String, Files>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DiagSpec {
    code: String,
    file: String,
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    message_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    request: CaseRequest,
    expect: ExpectSpec,
    /// a known defect: the case states the documented behaviour, which the core does not have yet
    #[serde(default)]
    bug: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExpectSpec {
    decision: Effect,
    /// compared as a set, exactly
    determined_by: Vec<String>,
    /// for the rules named here: where they come from
    #[serde(default)]
    provenance: Vec<ProvenanceSpec>,
    #[serde(default)]
    reason_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvenanceSpec {
    rule: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    matched: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus files in {}",
        corpus_dir().display()
    );
    files
}

fn load(path: &Path) -> CorpusFile {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tree(root: &str, files: &Files) -> FileTree {
    let files = files.iter().map(|(path, v)| {
        let bytes = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec_pretty(other).unwrap(),
        };
        (path.clone(), bytes)
    });
    FileTree::from_files(root, files).unwrap_or_else(|p| panic!("{root}: {p:?}"))
}

fn bundle(spec: &CorpusFile) -> Bundle {
    Bundle {
        org: tree("org", &spec.org),
        projects: spec
            .projects
            .iter()
            .map(|(id, p)| ProjectTrees {
                id: id.clone(),
                project: tree(&format!("projects/{id}"), &p.project),
                folders: p
                    .folders
                    .iter()
                    .map(|(path, files)| {
                        (path.clone(), tree(&format!("projects/{id}/{path}"), files))
                    })
                    .collect(),
            })
            .collect(),
        users: spec
            .users
            .iter()
            .map(|(id, files)| (id.clone(), tree(&format!("users/{id}"), files)))
            .collect(),
    }
}

fn compile_spec(path: &Path, spec: &CorpusFile) -> Snapshot {
    let env = |k: &str| spec.env.get(k).cloned();
    compile(&bundle(spec), &env).unwrap_or_else(|p| {
        let list: Vec<String> = p
            .problems
            .iter()
            .map(|x| format!("  {} [{}]", x, x.code))
            .collect();
        panic!(
            "{}: the bundle does not compile:\n{}",
            path.display(),
            list.join("\n")
        )
    })
}

/// Why the snapshot's warnings are not exactly those the file lists
fn check_diagnostics(spec: &CorpusFile, snap: &Snapshot) -> Vec<String> {
    let mut failures = Vec::new();
    let mut left: Vec<_> = snap.diagnostics().iter().collect();
    for want in &spec.diagnostics {
        let hit = left.iter().position(|p| {
            p.code == want.code
                && p.file == want.file
                && want.pointer.as_ref().is_none_or(|x| *x == p.pointer)
                && want
                    .message_contains
                    .as_ref()
                    .is_none_or(|m| p.message.contains(m.as_str()))
        });
        match hit {
            Some(i) => {
                left.remove(i);
            }
            None => failures.push(format!("missing diagnostic {want:?}")),
        }
    }
    for p in left {
        failures.push(format!("unexpected diagnostic `{p}` [{}]", p.code));
    }
    failures
}

/// Why one case failed, or None
fn check_case(snap: &Snapshot, case: &CaseSpec) -> Option<String> {
    let req = match case.request.to_request() {
        Ok(r) => r,
        Err(e) => return Some(format!("invalid request: {e}")),
    };
    let d = decide(snap, &req);
    let got: BTreeSet<&str> = d.determined_by.iter().map(|x| x.rule.as_str()).collect();
    let want: BTreeSet<&str> = case
        .expect
        .determined_by
        .iter()
        .map(String::as_str)
        .collect();
    let mut why = Vec::new();
    if d.effect != case.expect.decision {
        why.push(format!(
            "expected {:?}, got {:?}",
            case.expect.decision, d.effect
        ));
    }
    if got != want {
        why.push(format!("determined by {got:?}, expected {want:?}"));
    }
    if d.revision != snap.revision {
        why.push("the decision does not carry the snapshot's revision".to_string());
    }
    for p in &case.expect.provenance {
        let Some(x) = d.determined_by.iter().find(|x| x.rule == p.rule) else {
            why.push(format!(
                "no determining rule `{}` to check the provenance of",
                p.rule
            ));
            continue;
        };
        if p.file.is_some() && x.file != p.file {
            why.push(format!(
                "`{}` file {:?}, expected {:?}",
                p.rule, x.file, p.file
            ));
        }
        if p.pointer.is_some() && x.pointer != p.pointer {
            why.push(format!(
                "`{}` pointer {:?}, expected {:?}",
                p.rule, x.pointer, p.pointer
            ));
        }
        if p.line.is_some() && x.line != p.line {
            why.push(format!(
                "`{}` line {:?}, expected {:?}",
                p.rule, x.line, p.line
            ));
        }
        if p.matched.is_some() && x.matched != p.matched {
            why.push(format!(
                "`{}` matched {:?}, expected {:?}",
                p.rule, x.matched, p.matched
            ));
        }
    }
    if let Some(frag) = &case.expect.reason_contains
        && !d.reason.contains(frag.as_str())
    {
        why.push(format!("reason `{}` does not contain `{frag}`", d.reason));
    }
    if why.is_empty() {
        None
    } else {
        Some(format!("{} (reason: {})", why.join("; "), d.reason))
    }
}

/// Run the cases of every file, compiling each bundle twice. Returns (cases run, failures).
fn run() -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in corpus_files() {
        let spec = load(&path);
        let snap = compile_spec(&path, &spec);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        failures.extend(
            check_diagnostics(&spec, &snap)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
        // compiling is deterministic: a second compile gives the same revision and decisions
        let again = compile_spec(&path, &spec);
        if again.revision != snap.revision {
            failures.push(format!("{name}: compiled twice, two revisions"));
        }
        for case in &spec.cases {
            ran += 1;
            if let Ok(req) = case.request.to_request()
                && decide(&again, &req) != decide(&snap, &req)
            {
                failures.push(format!(
                    "{name}: {}: compiled twice, two decisions",
                    case.name
                ));
            }
            match (&case.bug, check_case(&snap, case)) {
                (None, Some(f)) => failures.push(format!("{name}: {}: {f}", case.name)),
                (Some(bug), None) => failures.push(format!(
                    "{name}: {}: passes now, remove its `bug` marker ({bug})",
                    case.name
                )),
                _ => {}
            }
        }
    }
    (ran, failures)
}

#[test]
fn corpus_decisions_and_determining_rules() {
    let (ran, failures) = run();
    assert!(ran > 100, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} corpus checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_is_well_formed() {
    let mut names = BTreeSet::new();
    let (mut allows, mut denies) = (0, 0);
    for path in corpus_files() {
        let spec = load(&path);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for case in &spec.cases {
            assert!(
                names.insert((file.clone(), case.name.clone())),
                "{file}: case `{}` twice",
                case.name
            );
            case.request
                .to_request()
                .unwrap_or_else(|e| panic!("{file}: {}: {e}", case.name));
            match case.expect.decision {
                Effect::Allow => {
                    allows += 1;
                    assert!(
                        !case.expect.determined_by.is_empty(),
                        "{file}: {}: an allow is always determined by some permit",
                        case.name
                    );
                }
                Effect::Deny => denies += 1,
            }
        }
    }
    assert!(
        allows > 30 && denies > 30,
        "{allows} allows, {denies} denies"
    );
}

/// Every base rule determines at least one case, so that each of them is pinned by data
#[test]
fn corpus_covers_every_base_rule() {
    let base: BTreeSet<String> = strata_policy::compile::base_rules()
        .unwrap()
        .into_iter()
        .map(|(_, p)| p.id().to_string())
        .collect();
    assert!(base.len() >= 30, "{base:?}");
    let mut seen = BTreeSet::new();
    for path in corpus_files() {
        let spec = load(&path);
        for case in spec.cases.iter().filter(|c| c.bug.is_none()) {
            for id in &case.expect.determined_by {
                assert!(
                    base.contains(id) || id.contains("#policies/"),
                    "{}: {}: `{id}` is neither a base rule nor a hand-written one",
                    path.display(),
                    case.name
                );
                seen.insert(id.clone());
            }
        }
    }
    let missing: Vec<_> = base.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "base rules no corpus case is determined by: {missing:?}"
    );
    let hand: Vec<_> = seen.iter().filter(|id| id.contains("#policies/")).collect();
    assert!(
        hand.iter().any(|id| id.starts_with("org#")),
        "no hand-written org rule determines a case"
    );
    assert!(
        hand.iter().any(|id| id.starts_with("project:")),
        "no hand-written project rule"
    );
    assert!(
        hand.iter().any(|id| id.starts_with("folder:")),
        "no hand-written folder rule"
    );
}
