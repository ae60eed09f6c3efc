//! `strata_policy::droid::schema::validate` against the real Droid CLI: for each document (one
//! per feature of Droid's org schema, valid and invalid), `droid doctor --config --json` with the
//! document as `FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH` reports exactly the issues `validate`
//! finds, as `path.joined.by.dots: message` (doctor parses the file with the same zod schema
//! Droid applies to the org level from every source). Skipped without the Droid CLI
//! (tests/droid/install.sh) unless STRATA_REQUIRE_DROID=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/droid.rs"]
mod droid;

use std::time::Duration;

use droid::{Droid, OFFLINE, Sandbox};
use serde_json::{Value, json};
use strata_policy::droid::schema::{DROID_VERSION, SchemaError, validate};

/// A document, what it exercises, and whether Droid accepts it
struct Case {
    what: String,
    valid: bool,
    doc: Value,
}

fn case(what: &str, valid: bool, doc: Value) -> Case {
    Case {
        what: what.to_string(),
        valid,
        doc,
    }
}

/// The files of a directory, recursively, as a layer's tree
fn tree(dir: &std::path::Path, root: &str) -> strata_policy::FileTree {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    strata_policy::FileTree::from_files(root, files).unwrap()
}

/// The org documents Strata renders for the bundles of this repository (the example org with
/// its project, and the CLI tests' fixture org), for several people, bound and unbound: every
/// one must be a document Droid accepts
fn rendered() -> Vec<Case> {
    use strata_policy::droid::org::{OrgRequest, render};
    let ws = droid::workspace();
    let bundles = [
        (
            "example",
            ws.join("policies/examples/acme/org"),
            Some(ws.join("policies/examples/acme/project/.factory")),
        ),
        ("fixture", ws.join("crates/cli/tests/fixtures/org"), None),
    ];
    let mut out = Vec::new();
    for (name, org, project) in bundles {
        let bundle = strata_policy::Bundle {
            org: tree(&org, "org"),
            projects: project
                .map(|p| strata_policy::ProjectTrees {
                    id: "web".into(),
                    project: tree(&p, "project/.factory"),
                    folders: Vec::new(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let snap = strata_policy::compile(&bundle, &|_| Some("set".to_string()))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let web = ["web".to_string()];
        for (user, groups, bound) in [
            ("alice", &["leads".to_string()][..], None),
            ("ivan", &[][..], None),
            ("bob", &[][..], Some(&web[..])),
        ] {
            let doc = render(
                &snap,
                &OrgRequest {
                    user,
                    groups,
                    token_projects: bound,
                    gateway_url: "http://127.0.0.1:8787",
                },
            )
            .unwrap_or_else(|e| panic!("{name} for {user}: {e:?}"));
            out.push(Case {
                what: format!("the {name} bundle's document for {user} (bound: {bound:?})"),
                valid: true,
                doc: Value::Object(doc.settings),
            });
        }
    }
    out
}

fn cases() -> Vec<Case> {
    let full = droid::workspace().join("tests/droid/org-schema-full.json");
    let full: Value = serde_json::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
    vec![
        case("empty document", true, json!({})),
        case("every key, valid", true, full),
        case("not an object", false, json!([])),
        case(
            "maxAutonomyLevel has no auto-*",
            false,
            json!({"maxAutonomyLevel": "auto-medium"}),
        ),
        case(
            "session defaults: autonomyMode takes auto-*, autonomyLevel does not",
            false,
            json!({"sessionDefaultSettings": {"autonomyMode": "auto-medium", "autonomyLevel": "auto-high",
                "interactionMode": "agi", "reasoningEffort": "ultra"}}),
        ),
        case(
            "subagentAutonomyLevel inherit, tool overrides without off",
            false,
            json!({"subagentAutonomyLevel": "inherit", "builtInToolAutonomyOverrides": {"Execute": "off"},
                "mcpAutonomyOverrides": {"gh": {"tools": {"push": "none"}}}}),
        ),
        case(
            "a number in a model-id list",
            false,
            json!({"modelPolicy": {"allowedModelIds": ["claude-opus-4-6", 3]}}),
        ),
        case(
            "unknown model ids are dropped, not errors",
            true,
            json!({"modelPolicy": {"blockedModelIds": ["claude-*", "custom:X-0", "claude-sonnet-4-5"]},
                "userModelPolicies": {"u": {"allowedModelIds": ["nope"], "blockedModelIds": []}}}),
        ),
        case(
            "userModelPolicies needs both lists",
            false,
            json!({"userModelPolicies": {"u": {"allowedModelIds": []}}}),
        ),
        case(
            "sessionRetentionDays bounds and integer",
            false,
            json!({"sessionRetentionDays": 13.5, "telemetry": {"metricExportIntervalMs": 0}}),
        ),
        case(
            "sessionRetentionDays upper bound",
            false,
            json!({"sessionRetentionDays": 366}),
        ),
        case(
            "null is not absent",
            false,
            json!({"cloudSessionSync": null, "mcpPolicy": {"enabled": null}}),
        ),
        case(
            "unknown keys are stripped at every level",
            true,
            json!({"mcpServers": {"x": {}}, "modelPolicy": {"allowModels": true}, "hooks": {"PreTool": 1},
                "sandbox": {"network": {"proxy": 1}}, "customModels": [{"model": "m", "provider": "openai",
                "baseUrl": "http://x", "headers": 1}], "permissionRules": 5, "allowBackgroundProcesses": "x"}),
        ),
        case(
            "hooks: type command, inner hooks required",
            false,
            json!({"hooks": {"PreToolUse": [{"matcher": "Execute", "hooks": [{"type": "shell", "command": "x"}]}],
                "Stop": [{"matcher": "x"}], "hooksDisabled": "no"}}),
        ),
        case(
            "customModels: ${VAR} apiKey and extraHeaders accepted",
            true,
            json!({"customModels": [{"model": "claude-sonnet-4-5", "provider": "anthropic",
                "baseUrl": "http://127.0.0.1:8787", "apiKey": "${FACTORY_API_KEY}",
                "extraHeaders": {"X-Strata-Project": "web"}, "apiKeyHelper": "cat /k"}]}),
        ),
        case(
            "customModels: baseUrl required, bearer only for anthropic",
            false,
            json!({"customModels": [{"model": "m", "provider": "openai", "authMode": "bearer"},
                {"model": "m", "provider": "bedrock-converse", "baseUrl": "u"},
                {"model": "m", "provider": "google", "bedrock": {}, "baseUrl": "u"}]}),
        ),
        case(
            "customModels: a type error hides the entry's refinement",
            false,
            json!({"customModels": [{"model": "m", "provider": "azure"},
                {"provider": "openai", "baseUrl": "u", "baseModelId": "auto", "extraHeaders": {"a": 1}}]}),
        ),
        case(
            "mcpPolicy shape",
            false,
            json!({"mcpPolicy": {"enabled": "yes", "allowlist": "github.com"}}),
        ),
        case(
            "networkPolicy needs one ip, sandbox mode enum",
            false,
            json!({"networkPolicy": {"allowedIps": []}, "sandbox": {"mode": "strict",
                "network": {"httpProxyPort": "3128"}}}),
        ),
        case(
            "telemetry shape and endpoint",
            false,
            json!({"telemetry": {"granularity": "session", "format": "otlp", "endpoint": "https://otel/?a=1",
                "headers": {"h": 1}}}),
        ),
        case(
            "telemetry endpoint forms",
            true,
            json!({"telemetry": {"endpoint": "https://otel.acme.dev:4318/${OTEL_PATH}/"}}),
        ),
        case(
            "telemetry endpoint with an unresolved reference",
            false,
            json!({"telemetry": {"endpoint": "https://otel.acme.dev/$HOME"}}),
        ),
        case(
            "marketplaces: discriminator, repo, sha, subdir",
            false,
            json!({"strictKnownMarketplaces": [{"source": "npm", "package": "x"},
                {"source": "github", "repo": "https://gitlab.com/a/b"},
                {"source": "url", "url": "u", "sha": "abc"},
                {"source": "git-subdir", "url": "u", "path": "../up"}],
                "extraKnownMarketplaces": {"m": {}}}),
        ),
        case(
            "marketplaces: repo in URL forms",
            true,
            json!({"strictKnownMarketplaces": [{"source": "github", "repo": "git@github.com:acme/p.git"},
                {"source": "github", "repo": " https://github.com/acme/p/tree/main "},
                {"source": "git-subdir", "url": "u", "path": "plugins/"}]}),
        ),
        case(
            "personaSettings refinements",
            false,
            json!({"personaSettings": {"enabledRoles": ["sales", "sales"],
                "personaConnectors": {"ceo": ["github"], "sales": ["github", "myspace"]},
                "personaPlugins": {"design": ["nope"]}}}),
        ),
        case(
            "personaSettings must set something",
            false,
            json!({"personaSettings": {}}),
        ),
        case(
            "cycle-time status ids",
            false,
            json!({"cycleTimeBoundaries": {"jira": {"b": {
                "startStatuses": [{"id": "a", "name": "A"}, {"id": " a ", "name": "A2"}],
                "endStatuses": [{"id": "a", "name": "Done"}, {"id": "", "name": "x"}]}}}}),
        ),
        case(
            "router rules and guidance lengths",
            false,
            json!({"factoryRouterRules": [{"when": "x".repeat(301), "guidance": "y".repeat(601)}],
                "factoryRouterGuidance": "z".repeat(2001)}),
        ),
        case(
            "outputStyle: non-empty, no control characters",
            false,
            json!({"outputStyle": "a\u{7}b", "env": {"a/b": 1}, "enabledPlugins": {"p@m": "yes"}}),
        ),
        case(
            "mcpAutonomyUrlOverrides entry shape",
            false,
            json!({"mcpAutonomyUrlOverrides": [{"urlPattern": "  "}, "x"]}),
        ),
    ]
}

/// Our errors as doctor prints them: the path joined by dots, then the message
fn as_doctor(errors: &[SchemaError]) -> Vec<String> {
    let mut out: Vec<String> = errors
        .iter()
        .map(|e| {
            let parts: Vec<String> = e.path.split('/').skip(1).map(unescape).collect();
            match parts.is_empty() {
                true => e.message.clone(),
                false => format!("{}: {}", parts.join("."), e.message),
            }
        })
        .collect();
    out.sort();
    out
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// What `droid doctor --config --json` reports about the org file, and Droid's version
fn doctor(droid: &Droid, sandbox: &Sandbox, file: &std::path::Path) -> (String, Vec<String>) {
    let mut env = OFFLINE.to_vec();
    env.push((
        "FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH",
        file.to_str().unwrap(),
    ));
    let args = ["doctor", "--config", "--json"];
    let run = droid.run(sandbox, &sandbox.home, &env, &args, Duration::from_secs(60));
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor's JSON: {e}\n{}", run.describe()));
    let results = report["results"].as_array().unwrap();
    let version = results
        .iter()
        .find(|r| r["id"] == "env.info")
        .and_then(|r| r["data"]["cliVersion"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut out: Vec<String> = results
        .iter()
        .filter(|r| r["id"] == "configuration.managed-settings")
        .map(|r| r["detail"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    (version, out)
}

#[test]
fn validate_agrees_with_droid_doctor() {
    let Some(droid) = Droid::find("validate_agrees_with_droid_doctor") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut cases = cases();
    cases.extend(rendered());
    let mut issues = 0;
    let mut disagreements = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let file = sandbox.dir.path().join(format!("org-{i}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&c.doc).unwrap()).unwrap();
        let ours = as_doctor(&validate(&c.doc));
        let (version, theirs) = doctor(&droid, &sandbox, &file);
        assert_eq!(
            version, DROID_VERSION,
            "the schema was read from another Droid"
        );
        issues += theirs.len();
        if ours != theirs || theirs.is_empty() != c.valid {
            disagreements.push(format!(
                "{} (valid expected: {})\n  strata: {ours:#?}\n  droid {DROID_VERSION}: {theirs:#?}",
                c.what, c.valid
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "validate() and `droid doctor --config` disagree:\n{}",
        disagreements.join("\n")
    );
    eprintln!(
        "{} documents, {issues} issues: as Droid reports them",
        cases.len()
    );
}
