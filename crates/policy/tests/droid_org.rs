//! The org level Strata serves Droid: rendered in Droid's terms (exact catalogue ids, Droid's MCP
//! matching, custom models pointed at the gateway) so that Droid refuses locally exactly what
//! Strata's decisions refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use strata_policy::droid::catalogue;
use strata_policy::droid::org::{OrgRequest, org_document};
use strata_policy::{Bundle, FileTree, ProjectTrees, Request, Snapshot, Target, compile, decide};

const GW: &str = "http://127.0.0.1:8787";

/// A layer's files: (name, content)
type Files<'a> = &'a [(&'a str, &'a str)];

fn tree(root: &str, files: &[(&str, &str)]) -> FileTree {
    FileTree::from_files(
        root,
        files
            .iter()
            .map(|(n, c)| (n.to_string(), c.as_bytes().to_vec())),
    )
    .unwrap()
}

fn snap(org: &[(&str, &str)], project: Option<&[(&str, &str)]>) -> Snapshot {
    compile(
        &Bundle {
            org: tree("org", org),
            projects: project
                .map(|files| ProjectTrees {
                    id: "web".into(),
                    project: tree("project/.factory", files),
                    folders: Vec::new(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap()
}

fn doc(snap: &Snapshot, user: &str, bound: Option<&[String]>) -> Value {
    let d = org_document(
        snap,
        &OrgRequest {
            user,
            groups: &[],
            token_projects: bound,
            gateway_url: GW,
        },
    );
    Value::Object(d.settings)
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v["modelPolicy"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn allowed_through_gateway(
    snap: &Snapshot,
    user: &str,
    project: Option<&str>,
    model: &str,
) -> bool {
    let req = Request {
        gateway: Some(GW.into()),
        target: Target::Model {
            model: model.into(),
            provider: None,
            key_mode: strata_policy::KeyMode::Central,
            base_url: Some(GW.into()),
            mcp_servers: Vec::new(),
        },
        ..Request::scope(user.into(), Vec::new(), project.map(str::to_string), None)
    };
    decide(snap, &req).allowed()
}

const ORG: &str = r#"{
  "modelPolicy": {
    "allowedModelIds": ["claude-sonnet-4-*", "gpt-5*"],
    "blockedModelIds": ["gpt-5-mini*"]
  },
  "userModelPolicies": {"ivan": {"blockedModelIds": ["claude-sonnet-4-5*"]}},
  "maxAutonomyLevel": "medium",
  "commandDenylist": ["rm -rf /"]
}"#;

#[test]
fn globs_become_the_catalogue_ids_strata_allows() {
    let s = snap(&[("settings.json", ORG)], None);
    let d = doc(&s, "alice", None);
    let (allowed, blocked) = (ids(&d, "allowedModelIds"), ids(&d, "blockedModelIds"));
    assert!(
        allowed.contains(&"claude-sonnet-4-5-20250929".to_string()),
        "{allowed:?}"
    );
    assert!(
        blocked.contains(&"gpt-5-mini".to_string()) || !catalogue::known_model_id("gpt-5-mini")
    );
    assert!(
        !allowed.iter().any(|m| m.contains('*')),
        "no glob reaches Droid"
    );
    assert_eq!(
        allowed.len() + blocked.len(),
        catalogue::model_ids().count()
    );
    // every id in the document agrees with a request through the gateway
    for id in catalogue::model_ids() {
        assert_eq!(
            allowed.contains(&id.to_string()),
            allowed_through_gateway(&s, "alice", None, id),
            "{id}"
        );
    }
}

#[test]
fn user_model_policies_are_resolved_into_the_persons_own_lists() {
    let s = snap(&[("settings.json", ORG)], None);
    let alice = ids(&doc(&s, "alice", None), "allowedModelIds");
    let ivan = doc(&s, "ivan", None);
    let ivan_allowed = ids(&ivan, "allowedModelIds");
    assert!(alice.contains(&"claude-sonnet-4-5-20250929".to_string()));
    assert!(!ivan_allowed.contains(&"claude-sonnet-4-5-20250929".to_string()));
    assert!(
        ivan.get("userModelPolicies").is_none(),
        "Droid ignores the key"
    );
}

#[test]
fn the_orgs_droid_keys_pass_through_and_sessions_stay_local() {
    let s = snap(&[("settings.json", ORG)], None);
    let d = doc(&s, "alice", None);
    assert_eq!(d["maxAutonomyLevel"], "medium");
    assert_eq!(d["commandDenylist"][0], "rm -rf /");
    assert_eq!(d["cloudSessionSync"], false);
    let s = snap(&[("settings.json", r#"{"cloudSessionSync": true}"#)], None);
    assert_eq!(doc(&s, "alice", None)["cloudSessionSync"], true);
}

#[test]
fn settings_local_replaces_the_orgs_keys_one_by_one() {
    let s = snap(
        &[
            (
                "settings.json",
                r#"{"maxAutonomyLevel": "high", "commandDenylist": ["a"]}"#,
            ),
            ("settings.local.json", r#"{"maxAutonomyLevel": "low"}"#),
        ],
        None,
    );
    let d = doc(&s, "alice", None);
    assert_eq!(d["maxAutonomyLevel"], "low");
    assert_eq!(d["commandDenylist"][0], "a");
}

const CUSTOM: &str = r#"{
  "modelPolicy": {"allowedModelIds": ["claude-sonnet-4-*"], "allowedBaseUrls": ["http://127.0.0.1:8787/**", "https://*.acme.internal/**"]},
  "customModels": [
    {"model": "acme-qwen3-coder", "displayName": "Qwen3", "baseUrl": "http://127.0.0.1:8787/v1",
     "provider": "generic-chat-completion-api", "maxOutputTokens": 4096}
  ]
}"#;

#[test]
fn custom_models_point_at_the_gateway_with_the_token_droid_holds() {
    let s = snap(&[("settings.json", CUSTOM)], None);
    let d = doc(&s, "alice", None);
    let cm = d["customModels"].as_array().unwrap();
    assert_eq!(cm.len(), 1, "{cm:#?}");
    assert_eq!(cm[0]["model"], "acme-qwen3-coder");
    assert_eq!(cm[0]["baseUrl"], "http://127.0.0.1:8787/v1");
    assert_eq!(cm[0]["apiKey"], "${FACTORY_API_KEY}");
    assert_eq!(cm[0]["maxOutputTokens"], 4096);
    assert!(cm[0].get("extraHeaders").is_none());
    assert_eq!(d["modelPolicy"]["allowCustomModels"], true);
    // the gateway, and the org's list in Droid's prefix form; a host glob has no Droid form
    assert_eq!(
        d["modelPolicy"]["allowedBaseUrls"],
        serde_json::json!(["http://127.0.0.1:8787"])
    );
}

const PROJECT: &str = r#"{
  "modelPolicy": {"allowedModelIds": ["gpt-5-codex"], "blockedModelIds": ["claude-sonnet-4-5*"]},
  "customModels": [{"model": "acme-ft-web", "baseUrl": "http://127.0.0.1:8787/v1", "provider": "openai"}]
}"#;

#[test]
fn an_unbound_token_gets_the_union_a_bound_one_its_projects() {
    let org = r#"{"modelPolicy": {"allowedModelIds": ["claude-sonnet-4-*"]}}"#;
    let s = snap(
        &[("settings.json", org)],
        Some(&[("settings.json", PROJECT)]),
    );
    let unbound = doc(&s, "alice", None);
    let a = ids(&unbound, "allowedModelIds");
    // org scope allows sonnet; the project adds gpt-5-codex: Droid allows both, the gateway
    // decides each request in its own scope
    assert!(
        a.contains(&"claude-sonnet-4-5-20250929".to_string()),
        "{a:?}"
    );
    if catalogue::known_model_id("gpt-5-codex") {
        assert!(a.contains(&"gpt-5-codex".to_string()));
    }
    let bound = doc(&s, "alice", Some(&["web".to_string()]));
    let b = ids(&bound, "allowedModelIds");
    assert!(
        !b.contains(&"claude-sonnet-4-5-20250929".to_string()),
        "banned in web: {b:?}"
    );
    for id in catalogue::model_ids() {
        assert_eq!(
            b.contains(&id.to_string()),
            allowed_through_gateway(&s, "alice", Some("web"), id),
            "{id}"
        );
    }
    let cm = bound["customModels"].as_array().unwrap();
    let ft = cm.iter().find(|m| m["model"] == "acme-ft-web").unwrap();
    assert_eq!(ft["extraHeaders"]["X-Strata-Project"], "web");
}

const MCP_ORG: &str = r#"{
  "mcpPolicy": {"enabled": true, "allowlist": ["*.acme.internal", "npx -y @modelcontextprotocol/server-* **"]}
}"#;
const MCP_POLICY: &str = r#"{"version": 1, "mcpBlocklist": ["scratch.acme.internal", "npx -y @modelcontextprotocol/server-puppeteer* **"]}"#;
const MCP_SERVERS: &str = r#"{"mcpServers": {
  "docs": {"type": "http", "url": "https://docs.acme.internal/mcp"},
  "scratch": {"type": "http", "url": "https://scratch.acme.internal/mcp"},
  "fs": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."]},
  "puppeteer": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-puppeteer"]}
}}"#;

#[test]
fn mcp_entries_admit_what_strata_allows_and_nothing_it_denies() {
    let s = snap(
        &[
            ("settings.json", MCP_ORG),
            ("policy.json", MCP_POLICY),
            ("mcp.json", MCP_SERVERS),
        ],
        None,
    );
    let d = doc(&s, "alice", None);
    let list: Vec<&str> = d["mcpPolicy"]["allowlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(d["mcpPolicy"]["enabled"], true);
    // `*.acme.internal` would let Droid start the blocked scratch server: replaced by docs' host
    assert!(!list.contains(&"*.acme.internal"), "{list:?}");
    assert!(list.contains(&"docs.acme.internal"), "{list:?}");
    assert!(
        list.contains(&"modelcontextprotocolserverfilesystem"),
        "{list:?}"
    );
    assert!(
        !list
            .iter()
            .any(|e| e.contains("puppeteer") || e.contains("scratch")),
        "{list:?}"
    );
}

#[test]
fn no_mcp_policy_when_nothing_restricts_servers() {
    let s = snap(&[("settings.json", "{}")], None);
    assert!(doc(&s, "alice", None).get("mcpPolicy").is_none());
}

#[test]
fn a_blocklisted_host_no_server_uses_still_narrows_a_host_glob() {
    let servers =
        r#"{"mcpServers": {"docs": {"type": "http", "url": "https://docs.acme.internal/mcp"}}}"#;
    let s = snap(
        &[
            ("settings.json", MCP_ORG),
            ("policy.json", MCP_POLICY),
            ("mcp.json", servers),
        ],
        None,
    );
    let d = doc(&s, "alice", None);
    let list = d["mcpPolicy"]["allowlist"].as_array().unwrap();
    assert!(!list.contains(&Value::from("*.acme.internal")), "{list:?}");
    assert!(
        list.contains(&Value::from("docs.acme.internal")),
        "{list:?}"
    );
    // without the blocklist the glob is sent as it is (Droid reads it as Strata does)
    let s = snap(&[("settings.json", MCP_ORG), ("mcp.json", servers)], None);
    let list = doc(&s, "alice", None)["mcpPolicy"]["allowlist"].clone();
    assert!(
        list.as_array()
            .unwrap()
            .contains(&Value::from("*.acme.internal")),
        "{list}"
    );
}

#[test]
fn every_rendered_document_passes_droids_schema() {
    let cases: [(Files, Option<Files>); 4] = [
        (&[("settings.json", ORG)], None),
        (&[("settings.json", CUSTOM)], None),
        (
            &[
                ("settings.json", MCP_ORG),
                ("policy.json", MCP_POLICY),
                ("mcp.json", MCP_SERVERS),
            ],
            None,
        ),
        (
            &[(
                "settings.json",
                r#"{"modelPolicy": {"allowedModelIds": ["claude-sonnet-4-*"]}}"#,
            )],
            Some(&[("settings.json", PROJECT)]),
        ),
    ];
    for (org, project) in cases {
        let s = snap(org, project);
        for bound in [None, Some(&["web".to_string()][..])] {
            let d = doc(&s, "alice", bound);
            let errors = strata_policy::droid::schema::validate(&d);
            assert!(errors.is_empty(), "{errors:#?}\n{d:#}");
        }
    }
}

#[test]
fn a_value_droid_rejects_is_refused_at_compile_with_file_and_line() {
    let bundle = Bundle {
        org: tree(
            "org",
            &[(
                "settings.json",
                "{\n  \"maxAutonomyLevel\": \"auto-medium\"\n}",
            )],
        ),
        ..Default::default()
    };
    let problems = compile(&bundle, &|_| None).unwrap_err().problems;
    let p = problems.iter().find(|p| p.code == "droid.schema").unwrap();
    assert_eq!((p.file.as_str(), p.line), ("org/settings.json", 2), "{p:?}");
    assert!(
        p.message.contains("'off' | 'low' | 'medium' | 'high'") || p.message.contains("medium"),
        "{}",
        p.message
    );
}
