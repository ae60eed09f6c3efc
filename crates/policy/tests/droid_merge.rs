//! The effective-settings view merges as Droid does (`docs/merge.md`, "Strata and Droid"): the
//! folders, nearest first, outrank the project; session defaults run the other way (the nearest
//! level wins, the org's value is only a default); within one directory a `settings.local.json`
//! key replaces the same key of `settings.json`. And every determining rule says where it is
//! enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use strata_policy::explain::{effective_settings, explain};
use strata_policy::{Bundle, Enforcement, FileTree, ProjectTrees, Request, Snapshot, compile};

fn tree(root: &str, files: &[(&str, Value)]) -> FileTree {
    FileTree::from_files(
        root,
        files
            .iter()
            .map(|(p, v)| (p.to_string(), serde_json::to_vec_pretty(v).unwrap())),
    )
    .unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn snapshot() -> Snapshot {
    let bundle = Bundle {
        org: tree(
            "org",
            &[(
                "settings.json",
                json!({
                    "sessionDefaultSettings": {"model": "org-default", "reasoningEffort": "low"},
                    "missionModelSettings": {"workerModel": "org-worker"},
                    "modelPolicy": {"blockedModelIds": ["gpt-4o*"]}
                }),
            )],
        ),
        projects: vec![ProjectTrees {
            id: "web".to_string(),
            project: tree(
                "projects/web",
                &[(
                    "settings.json",
                    json!({
                        "maxAutonomyLevel": "high",
                        "sessionDefaultSettings": {"model": "project-default"},
                        "commandAllowlist": ["ls"]
                    }),
                )],
            ),
            folders: vec![
                (
                    "svc".to_string(),
                    tree(
                        "projects/web/svc",
                        &[("settings.json", json!({"maxAutonomyLevel": "medium"}))],
                    ),
                ),
                (
                    "svc/a".to_string(),
                    tree(
                        "projects/web/svc/a",
                        &[
                            (
                                "settings.json",
                                json!({"maxAutonomyLevel": "low", "hooksDisabled": false}),
                            ),
                            ("settings.local.json", json!({"commandDenylist": ["rm"]})),
                        ],
                    ),
                ),
            ],
        }],
        users: vec![(
            "alice".to_string(),
            tree(
                "users/alice",
                &[
                    (
                        "settings.json",
                        json!({
                            "sessionDefaultSettings": {"model": "alice-default", "reasoningEffort": "high"},
                            "modelPolicy": {"blockedModelIds": ["gpt-5-nano"]},
                            "cloudSessionSync": true,
                            "telemetry": {"enabled": false}
                        }),
                    ),
                    (
                        "settings.local.json",
                        json!({
                            "sessionDefaultSettings": {"model": "alice-local"},
                            "modelPolicy": {"blockedModelIds": ["gpt-5-mini"]}
                        }),
                    ),
                ],
            ),
        )],
    };
    compile(&bundle, &no_env).unwrap()
}

fn scope(user: &str, project: Option<&str>, folder: Option<&str>) -> Request {
    Request::scope(
        user.to_string(),
        Vec::new(),
        project.map(str::to_string),
        folder.map(str::to_string),
    )
}

/// The value and level of the leaf at `pointer` of the view
fn leaf(snap: &Snapshot, req: &Request, pointer: &str) -> (Value, String) {
    let view = effective_settings(snap, req, None, &[]);
    let l = view
        .settings
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {:#}", view.settings));
    (l["value"].clone(), l["level"].as_str().unwrap().to_string())
}

#[test]
fn the_nearest_folder_outranks_outer_folders_and_the_project() {
    let snap = snapshot();
    let at = |folder| {
        leaf(
            &snap,
            &scope("bob", Some("web"), folder),
            "/maxAutonomyLevel",
        )
    };
    assert_eq!(at(None), (json!("high"), "project".to_string()));
    assert_eq!(at(Some("svc")), (json!("medium"), "folder".to_string()));
    assert_eq!(at(Some("svc/a/src")), (json!("low"), "folder".to_string()));
}

#[test]
fn session_defaults_are_won_by_the_nearest_level_and_the_org_only_supplies_defaults() {
    let snap = snapshot();
    let model = "/sessionDefaultSettings/model";
    // the org's value alone
    assert_eq!(
        leaf(&snap, &scope("bob", None, None), model).0,
        json!("org-default")
    );
    // a person's own default beats the org's
    assert_eq!(
        leaf(&snap, &scope("alice", None, None), model),
        (json!("alice-local"), "user".to_string())
    );
    // the project's beats the person's
    assert_eq!(
        leaf(&snap, &scope("alice", Some("web"), Some("svc")), model),
        (json!("project-default"), "project".to_string())
    );
    // what no lower level sets stays the org's default
    assert_eq!(
        leaf(
            &snap,
            &scope("bob", Some("web"), None),
            "/sessionDefaultSettings/reasoningEffort"
        )
        .0,
        json!("low")
    );
    assert_eq!(
        leaf(
            &snap,
            &scope("bob", None, None),
            "/missionModelSettings/workerModel"
        )
        .0,
        json!("org-worker")
    );
    // the org's default being replaced is not a warning; the person's value under the
    // project's is
    let view = effective_settings(&snap, &scope("alice", Some("web"), None), None, &[]);
    let locked: Vec<_> = view
        .diagnostics
        .iter()
        .filter(|p| p.code == "merge.locked_key" && p.pointer.starts_with("/sessionDefault"))
        .collect();
    assert_eq!(locked.len(), 1, "{locked:#?}");
    assert_eq!(locked[0].pointer, "/sessionDefaultSettings/model");
    assert!(
        locked[0].file.ends_with("settings.local.json"),
        "{locked:#?}"
    );
}

#[test]
fn a_local_file_replaces_its_directorys_keys_whole() {
    let snap = snapshot();
    let alice = scope("alice", None, None);
    let view = effective_settings(&snap, &alice, None, &[]);
    // settings.local.json's sessionDefaultSettings replaces settings.json's whole: no
    // reasoningEffort from alice's settings.json, so the org's default shows
    assert_eq!(
        leaf(&snap, &alice, "/sessionDefaultSettings/reasoningEffort"),
        (json!("low"), "org".to_string())
    );
    // her local modelPolicy replaces her settings.json's: gpt-5-nano is no longer hers to ban
    let blocked: Vec<&str> = view.settings["modelPolicy"]["blockedModelIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, ["gpt-4o*", "gpt-5-mini"]);
    // keys the local file does not set stay
    assert_eq!(leaf(&snap, &alice, "/cloudSessionSync").0, json!(true));
    // an org-only key is read from the org alone
    assert!(
        view.settings.get("telemetry").is_none(),
        "{:#}",
        view.settings
    );
    // a folder's local file adds its keys beside its settings.json's
    let a = scope("bob", Some("web"), Some("svc/a"));
    assert_eq!(leaf(&snap, &a, "/hooksDisabled").0, json!(false));
    assert_eq!(
        effective_settings(&snap, &a, None, &[]).settings["commandDenylist"][0]["value"],
        json!("rm")
    );
}

#[test]
fn decisions_follow_the_local_files_replacement_for_a_person() {
    let snap = snapshot();
    let nano = explain(&snap, &Request::model("alice", "gpt-5-nano"));
    assert!(
        nano.determined_by
            .iter()
            .all(|d| d.rule != "user#modelPolicy.blockedModelIds")
    );
    let mini = explain(&snap, &Request::model("alice", "gpt-5-mini"));
    assert_eq!(
        mini.determined_by[0].rule,
        "user#modelPolicy.blockedModelIds"
    );
    assert_eq!(mini.determined_by[0].enforced_by, Enforcement::Client);
}

#[test]
fn every_determining_rule_says_where_it_is_enforced() {
    let snap = snapshot();
    let x = explain(&snap, &Request::model("bob", "gpt-4o"));
    assert_eq!(x.determined_by[0].rule, "org#modelPolicy.blockedModelIds");
    assert_eq!(x.determined_by[0].enforced_by, Enforcement::Both);
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["determinedBy"][0]["enforcedBy"], "both");
    let mut bound = Request::model("bob", "gpt-5");
    bound.token_projects = Some(vec!["web".to_string()]);
    let t = explain(&snap, &bound);
    assert_eq!(t.determined_by[0].rule, "token#projects");
    assert_eq!(t.determined_by[0].enforced_by, Enforcement::Gateway);
}
