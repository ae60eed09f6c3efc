//! `decide` evaluates the scope and (a subset of) the conditions of hand-written rules itself,
//! and hands Cedar only the rest. These tests check that this changes nothing: on every corpus
//! bundle and on a bundle of varied rules, over a grid of requests, `decide` returns exactly the
//! decision of `decide_cedar`, which puts every applicable hand-written rule to Cedar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use strata_policy::decide::{decide_cedar, decide_reference};
use strata_policy::testcase::CaseRequest;
use strata_policy::{
    Bundle, FileTree, KeyMode, McpRef, ProjectTrees, Provider, Request, Snapshot, Target, compile,
    decide,
};

fn tree(root: &str, files: &serde_json::Map<String, Value>) -> FileTree {
    let files = files.iter().map(|(path, v)| {
        let bytes = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec_pretty(other).unwrap(),
        };
        (path.clone(), bytes)
    });
    FileTree::from_files(root, files).unwrap()
}

fn obj(v: &Value, key: &str) -> serde_json::Map<String, Value> {
    v.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn corpus_bundle(spec: &Value) -> Bundle {
    Bundle {
        org: tree("org", &obj(spec, "org")),
        projects: obj(spec, "projects")
            .iter()
            .map(|(id, p)| ProjectTrees {
                id: id.clone(),
                project: tree(&format!("projects/{id}"), &obj(p, "project")),
                folders: obj(p, "folders")
                    .iter()
                    .map(|(path, files)| {
                        let files = files.as_object().cloned().unwrap_or_default();
                        (path.clone(), tree(&format!("projects/{id}/{path}"), &files))
                    })
                    .collect(),
            })
            .collect(),
        users: obj(spec, "users")
            .iter()
            .map(|(id, files)| {
                let files = files.as_object().cloned().unwrap_or_default();
                (id.clone(), tree(&format!("users/{id}"), &files))
            })
            .collect(),
    }
}

fn same(snap: &Snapshot, req: &Request, what: &str) {
    let native = decide(snap, req);
    let cedar = decide_cedar(snap, req);
    assert_eq!(native, cedar, "{what}: {req:?}");
    // the base rules too, `when` bodies and all, evaluated by Cedar
    let reference = decide_reference(snap, req);
    assert_eq!(native, reference, "{what} (all rules by Cedar): {req:?}");
}

/// Variations of a request: other key modes, providers, base URLs, gateways
fn variants(req: &Request) -> Vec<Request> {
    let mut out = vec![req.clone()];
    if let Target::Model {
        model, mcp_servers, ..
    } = &req.target
    {
        for key_mode in [KeyMode::Central, KeyMode::Byok] {
            for provider in [None, Some(Provider::Anthropic), Some(Provider::OpenAi)] {
                for base_url in [None, Some("https://gateway.acme.dev/anthropic/v1")] {
                    let mut r = req.clone();
                    r.target = Target::Model {
                        model: model.clone(),
                        provider,
                        key_mode,
                        base_url: base_url.map(str::to_string),
                        mcp_servers: mcp_servers.clone(),
                    };
                    out.push(r);
                }
            }
        }
    }
    let mut g = req.clone();
    g.gateway = Some("gw-1".to_string());
    out.push(g);
    out
}

#[test]
fn corpus_decisions_are_cedars() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut n = 0;
    for path in files {
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let env: BTreeMap<String, String> = spec
            .get("env")
            .map(|e| serde_json::from_value(e.clone()).unwrap())
            .unwrap_or_default();
        let env = |k: &str| env.get(k).cloned();
        let snap = compile(&corpus_bundle(&spec), &env).unwrap();
        for case in spec["cases"].as_array().unwrap() {
            let req: CaseRequest = serde_json::from_value(case["request"].clone()).unwrap();
            let req = req.to_request().unwrap();
            for r in variants(&req) {
                same(&snap, &r, &path.display().to_string());
                n += 1;
            }
        }
    }
    assert!(n > 1000, "{n} requests");
}

/// Rules that use every construct the native evaluation knows, and some it leaves to Cedar
const RULES: &str = r#"
@id("frontier-leads-only")
forbid (principal, action in Action::"use_model", resource in Category::"frontier")
unless { principal in Group::"leads" };

@id("preview-early-access")
forbid (principal, action in Action::"use_model", resource in Category::"preview")
unless { principal in Group::"early-access" || principal in Group::"leads" };

@id("local-models-central-only")
forbid (principal, action == Action::"use_byok", resource in Category::"local");

@id("contractors-no-frontier")
forbid (principal in Group::"contractors", action in Action::"use_model", resource in Category::"frontier");

@id("contractors-no-byok")
forbid (principal in Group::"contractors", action == Action::"use_byok", resource);

@id("interns-cheap-only")
forbid (principal in Group::"interns", action in Action::"use_model", resource)
unless { resource in Category::"cheap" };

@id("no-experimental-ids")
forbid (principal, action in Action::"use_model", resource)
when { resource.id like "*-experimental*" }
unless { principal in Group::"research" };

@id("byok-known-providers")
forbid (principal, action == Action::"use_byok", resource)
unless { context.provider == "anthropic" || context.provider == "openai" };

@id("byok-needs-base-url")
forbid (principal, action in Action::"use_model", resource)
when { context.keyMode == "byok" && context.baseUrl == "" };

@id("p-1-no-frontier")
forbid (principal, action in Action::"use_model", resource in Category::"frontier")
when { context.project == Project::"p-1" };

@id("p-2-central-key-only")
forbid (principal, action in Action::"use_model", resource)
when { context.project == Project::"p-2" && context.keyMode != "central" };

@id("regulated-no-local")
forbid (principal, action in Action::"use_model", resource in Category::"local")
when { [Project::"p-0", Project::"p-2"].contains(context.project) };

@id("p-1-no-stdio-mcp")
forbid (principal, action == Action::"connect_mcp", resource)
when { context.project == Project::"p-1" && resource.transport == "stdio" };

@id("contractors-no-stdio")
forbid (principal in Group::"contractors", action == Action::"connect_mcp", resource)
when { resource.transport == "stdio" };

@id("prod-db-platform-only")
forbid (principal, action == Action::"connect_mcp", resource)
when { resource.host like "db-*.prod.acme.dev" }
unless { principal in Group::"platform" };

@id("unknown-server")
forbid (principal, action == Action::"connect_mcp", resource)
when { resource.host == "" && resource.command == "" };

@id("leads-frontier")
permit (principal in Group::"leads", action == Action::"invoke_model", resource in Category::"frontier");

@id("research-preview-via-gateway")
permit (principal in Group::"research", action == Action::"invoke_model", resource in Category::"preview")
when { context.gateway != "" };

@id("bob-exact-model")
permit (principal == User::"bob", action in Action::"use_model", resource == Model::"special-model");

@id("typed-scope")
forbid (principal is User in Group::"banned", action, resource is Model);

@id("if-then-else")
forbid (principal, action in Action::"use_model", resource)
when { if context.folder == "secret" then !(principal in [Group::"leads", Group::"platform"]) else false };

@id("triggers-seen")
permit (principal in Group::"auditors", action in Action::"use_model", resource)
when { context.triggers.containsAny(["org#modelPolicy.blockedModelIds", "org#policy.byok.allowedProviders"]) || context.triggers.isEmpty() };

@id("set-ops")
forbid (principal, action == Action::"connect_mcp", resource)
when { ["stdio", "sse"].contains(resource.transport) && [resource.name, "x"].containsAll(["notes"]) && principal in Group::"no-local-servers" };

@id("is-and-compare")
forbid (principal, action, resource)
when { principal is User && 3 < 2 };

@id("entity-literal-in")
permit (principal, action in Action::"use_model", resource)
when { User::"carol" in Group::"leads" && principal == User::"carol" };

@id("action-in-condition")
forbid (principal in Group::"no-byok-via-action", action, resource)
when { action == Action::"use_byok" };

@id("has-attribute")
permit (principal in Group::"has-testers", action == Action::"connect_mcp", resource)
when { resource has host && resource.host like "*.internal.acme.dev" };

@id("errors-on-byok")
forbid (principal, action in Action::"use_model", resource)
when { context.keyMode == "byok" && principal in Group::"overflow" && 9223372036854775807 + 1 > 0 };

@id("erroring-permit")
permit (principal in Group::"overflow", action in Action::"use_model", resource)
when { 9223372036854775807 + 1 > 0 };
"#;

fn varied_bundle() -> Bundle {
    let settings = json!({
        "modelPolicy": {
            "allowedModelIds": ["acme-*", "vendor-*", "gpt-5*", "claude-*"],
            "blockedModelIds": ["vendor-*-preview"],
            "allowCustomModels": true,
            "allowedBaseUrls": ["https://gateway.acme.dev/**"],
        },
        "mcpPolicy": { "enabled": true, "allowlist": ["*.internal.acme.dev", "npx -y @acme/*", "db-*.prod.acme.dev"] },
    });
    let policy = json!({
        "version": 1,
        "modelCategories": {
            "frontier": ["claude-opus-*", "gpt-5-pro*"],
            "preview": ["*-preview", "*-experimental*"],
            "local": ["llama-*"],
            "cheap": ["*-mini", "acme-model-1*"],
        },
        "byok": { "allowedProviders": ["anthropic", "openai"], "allowedBaseUrls": ["https://gateway.acme.dev/**"] },
        "mcpBlocklist": ["*.pastebin.com"],
    });
    let mcp = json!({
        "mcpServers": {
            "docs": { "type": "http", "url": "https://docs.internal.acme.dev/mcp" },
            "db": { "type": "http", "url": "https://db-1.prod.acme.dev/mcp" },
            "notes": { "type": "stdio", "command": "npx", "args": ["-y", "@acme/notes"] },
        },
    });
    let j = |v: &Value| serde_json::to_vec_pretty(v).unwrap();
    let org = FileTree::from_files(
        "org",
        [
            ("settings.json".to_string(), j(&settings)),
            ("policy.json".to_string(), j(&policy)),
            ("mcp.json".to_string(), j(&mcp)),
            (
                "policies/rules.cedar".to_string(),
                RULES.as_bytes().to_vec(),
            ),
        ],
    )
    .unwrap();
    let projects = (0..3)
        .map(|k| {
            let id = format!("p-{k}");
            let rules = format!(
                "@id(\"local\")\nforbid (principal, action == Action::\"invoke_model\", resource == Model::\"acme-model-{k}\")\nunless {{ principal in Group::\"p-{k}-owners\" }};\n"
            );
            ProjectTrees {
                project: FileTree::from_files(
                    format!("projects/{id}").as_str(),
                    [("policies/local.cedar".to_string(), rules.into_bytes())],
                )
                .unwrap(),
                id,
                folders: Vec::new(),
            }
        })
        .collect();
    Bundle {
        org,
        projects,
        users: Vec::new(),
    }
}

#[test]
fn varied_rules_decide_as_cedar_does() {
    let snap = compile(&varied_bundle(), &|_| None).unwrap_or_else(|p| panic!("{p:?}"));
    let users = ["alice", "bob", "carol"];
    let groups: [&[&str]; 12] = [
        &[],
        &["leads"],
        &["contractors"],
        &["interns"],
        &["research"],
        &["early-access", "platform"],
        &["banned"],
        &["auditors"],
        &["no-local-servers", "contractors"],
        &["no-byok-via-action", "has-testers"],
        &["overflow"],
        &["p-0-owners", "p-1-owners", "p-2-owners"],
    ];
    let projects = [None, Some("p-0"), Some("p-1"), Some("p-2"), Some("p-9")];
    let folders = [None, Some("secret")];
    let models = [
        "acme-model-0",
        "acme-model-1",
        "acme-model-15",
        "claude-opus-4",
        "gpt-5-pro",
        "gpt-5-mini",
        "vendor-7-big-preview",
        "vendor-7-experimental-x",
        "llama-3",
        "special-model",
        "unlisted",
    ];
    let servers = [
        McpRef {
            name: Some("docs".into()),
            ..McpRef::default()
        },
        McpRef {
            name: Some("db".into()),
            ..McpRef::default()
        },
        McpRef {
            name: Some("notes".into()),
            ..McpRef::default()
        },
        McpRef {
            url: Some("https://x.pastebin.com/mcp".into()),
            ..McpRef::default()
        },
        McpRef {
            name: Some("unknown".into()),
            ..McpRef::default()
        },
    ];
    // a deterministic sample of the grid (all of it takes minutes in a debug build)
    let mut seed: u64 = 0x5eed;
    let mut pick = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let mut n = 0;
    for _ in 0..600 {
        let base = Request {
            user: users[pick(users.len())].to_string(),
            groups: groups[pick(groups.len())]
                .iter()
                .map(|g| g.to_string())
                .collect(),
            project: projects[pick(projects.len())].map(str::to_string),
            folder: folders[pick(folders.len())].map(str::to_string),
            gateway: None,
            token_projects: None,
            target: Target::none(),
        };
        let mut r = base.clone();
        r.target = Target::Model {
            model: models[pick(models.len())].to_string(),
            provider: None,
            key_mode: KeyMode::Central,
            base_url: None,
            mcp_servers: Vec::new(),
        };
        for v in variants(&r) {
            same(&snap, &v, "varied");
            n += 1;
        }
        let mut r = base;
        r.target = Target::Mcp {
            server: servers[pick(servers.len())].clone(),
        };
        same(&snap, &r, "varied");
        n += 1;
    }
    assert!(n > 5_000, "{n} requests");
}
