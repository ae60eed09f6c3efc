//! Criterion benchmarks of `decide` (and of compiling the bundle it reads).
//!
//! The bundle is generated in memory: an org layer with an allowlist, a blocklist and an MCP
//! allowlist of configurable sizes (a mix of exact ids and globs), 20 hand-written Cedar rules,
//! model categories, BYOK settings, and N projects that each add and ban a couple of models and
//! define an MCP server. What is measured is the whole `decide()` call: scope lookup, glob
//! matching, entity and context construction, Cedar evaluation, and mapping the determining rules
//! back to their files. See `docs/benchmarks.md` for the figures.
//!
//! Run: `cargo bench -p strata-policy --bench decide`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use serde_json::{Value, json};
use strata_policy::{
    Bundle, FileTree, KeyMode, McpRef, ProjectTrees, Provider, Request, Snapshot, Target, compile,
    decide,
};

/// The org's hand-written rules, as a bundle's `policies/*.cedar` would hold them (20 rules)
const CEDAR_FILES: &[(&str, &str)] = &[
    (
        "policies/models.cedar",
        r#"// Who may use which category of model.

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
"#,
    ),
    (
        "policies/byok.cedar",
        r#"// Personal keys (BYOK).

@id("byok-known-providers")
forbid (principal, action == Action::"use_byok", resource)
unless { context.provider == "anthropic" || context.provider == "openai" };

@id("byok-needs-base-url")
forbid (principal, action in Action::"use_model", resource)
when { context.keyMode == "byok" && context.baseUrl == "" };
"#,
    ),
    (
        "policies/projects.cedar",
        r#"// Project-specific restrictions.

@id("p-17-no-frontier")
forbid (principal, action in Action::"use_model", resource in Category::"frontier")
when { context.project == Project::"p-17" };

@id("p-17-no-byok")
forbid (principal, action == Action::"use_byok", resource)
when { context.project == Project::"p-17" };

@id("p-42-central-key-only")
forbid (principal, action in Action::"use_model", resource)
when { context.project == Project::"p-42" && context.keyMode != "central" };

@id("p-99-no-preview")
forbid (principal, action in Action::"use_model", resource in Category::"preview")
when { context.project == Project::"p-99" };

@id("p-301-no-stdio-mcp")
forbid (principal, action == Action::"connect_mcp", resource)
when { context.project == Project::"p-301" && resource.transport == "stdio" };

@id("regulated-no-local")
forbid (principal, action in Action::"use_model", resource in Category::"local")
when { [Project::"p-200", Project::"p-201", Project::"p-202"].contains(context.project) };
"#,
    ),
    (
        "policies/mcp.cedar",
        r#"// MCP servers.

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
"#,
    ),
    (
        "policies/grants.cedar",
        r#"// What the org grants beyond its allowlist.

@id("leads-frontier")
permit (principal in Group::"leads", action == Action::"invoke_model", resource in Category::"frontier");

@id("research-preview-via-gateway")
permit (principal in Group::"research", action == Action::"invoke_model", resource in Category::"preview")
when { context.gateway != "" };
"#,
    ),
];

/// How big a generated bundle is
#[derive(Clone, Copy)]
struct Sizes {
    allowed: usize,
    blocked: usize,
    mcp: usize,
    projects: usize,
}

const LARGE: Sizes = Sizes {
    allowed: 1_000,
    blocked: 200,
    mcp: 300,
    projects: 500,
};

/// Allowed model patterns: 70% exact ids, 30% vendor globs
fn allowed(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 10 < 7 {
                format!("acme-model-{i}")
            } else {
                format!("vendor-{i}-*")
            }
        })
        .collect()
}

/// Blocked model patterns: half exact (retired) ids, half globs over previews
fn blocked(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("acme-model-{i}-legacy")
            } else {
                format!("vendor-{i}-*-preview")
            }
        })
        .collect()
}

/// MCP allowlist: stdio command lines, exact hostnames, hostname globs, in thirds
fn mcp_allowlist(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!("npx -y @acme/mcp-{i}"),
            1 => format!("mcp-{i}.internal.acme.dev"),
            _ => format!("*.tools-{i}.acme.dev"),
        })
        .collect()
}

fn tree(root: &str, files: Vec<(&str, Vec<u8>)>) -> FileTree {
    FileTree::from_files(root, files.into_iter().map(|(p, b)| (p.to_string(), b)))
        .expect("generated tree is well-formed")
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("serializable")
}

fn bundle(s: Sizes) -> Bundle {
    let user_policies: serde_json::Map<String, Value> = (0..10)
        .map(|i| {
            (
                format!("contractor-{i}"),
                json!({ "blockedModelIds": ["vendor-*", "claude-opus-*"] }),
            )
        })
        .collect();
    let settings = json!({
        "modelPolicy": {
            "allowedModelIds": allowed(s.allowed),
            "blockedModelIds": blocked(s.blocked),
            "allowCustomModels": true,
            "allowedBaseUrls": ["https://gateway.acme.dev/**", "https://*.openai.azure.com/**"],
        },
        "userModelPolicies": user_policies,
        "mcpPolicy": { "enabled": true, "allowlist": mcp_allowlist(s.mcp) },
        "customModels": [
            { "model": "acme-coder-ft", "displayName": "Acme Coder", "baseUrl": "https://gateway.acme.dev/openai", "provider": "openai", "maxOutputTokens": 16384 },
        ],
    });
    let policy = json!({
        "version": 1,
        "modelCategories": {
            "frontier": ["claude-opus-*", "gpt-5-pro*", "o3-pro*"],
            "preview": ["*-preview", "*-experimental*"],
            "local": ["llama-*", "qwen-*", "mistral-*"],
            "cheap": ["*-mini", "*-haiku-*", "acme-model-1*"],
        },
        "byok": { "allowedProviders": ["anthropic", "openai"], "allowedBaseUrls": ["https://gateway.acme.dev/**"] },
        "mcpBlocklist": ["*.pastebin.com", "curl *"],
    });
    let mcp = json!({
        "mcpServers": {
            "docs": { "type": "http", "url": "https://mcp-1.internal.acme.dev/mcp" },
        },
    });
    let mut org_files = vec![
        ("settings.json", json_bytes(&settings)),
        ("policy.json", json_bytes(&policy)),
        ("mcp.json", json_bytes(&mcp)),
    ];
    org_files.extend(
        CEDAR_FILES
            .iter()
            .map(|(p, src)| (*p, src.as_bytes().to_vec())),
    );
    let org = tree("org", org_files);

    // hosts and commands of the MCP allowlist a project's servers point at
    let hosts = (s.mcp / 3).max(1);
    let projects = (0..s.projects)
        .map(|k| {
            let settings = json!({
                "modelPolicy": {
                    "allowedModelIds": [format!("p-{k}-finetune-*"), format!("ft:acme-model-{k}:p-{k}")],
                    "blockedModelIds": [format!("acme-model-{k}")],
                },
            });
            let mcp = json!({
                "mcpServers": {
                    "tracker": { "type": "http", "url": format!("https://mcp-{}.internal.acme.dev/mcp", 3 * (k % hosts) + 1) },
                    "notes": { "type": "stdio", "command": "npx", "args": ["-y", format!("@acme/mcp-{}", 3 * (k % hosts))] },
                },
            });
            let id = format!("p-{k}");
            ProjectTrees { project: tree(&format!("projects/{id}"), vec![("settings.json", json_bytes(&settings)), ("mcp.json", json_bytes(&mcp))]), id, folders: Vec::new() }
        })
        .collect();
    Bundle {
        org,
        projects,
        users: Vec::new(),
    }
}

fn compiled(b: &Bundle) -> Snapshot {
    compile(b, &|_| None).unwrap_or_else(|p| {
        for e in p.errors() {
            eprintln!("{}:{}:{} {} {}", e.file, e.line, e.col, e.code, e.message);
        }
        eprintln!("the generated bundle does not compile");
        std::process::exit(1)
    })
}

/// alice, a lead in engineering, working in project `p-250`
fn request(model: &str) -> Request {
    let mut r = Request::model("alice", model);
    r.groups = vec!["engineering".to_string(), "leads".to_string()];
    r.project = Some("p-250".to_string());
    r
}

fn byok(model: &str) -> Request {
    let mut r = request(model);
    r.target = Target::Model {
        model: model.to_string(),
        provider: Some(Provider::Anthropic),
        key_mode: KeyMode::Byok,
        base_url: Some("https://gateway.acme.dev/anthropic/v1".to_string()),
        mcp_servers: Vec::new(),
    };
    r
}

fn mcp(name: &str) -> Request {
    let mut r = request("");
    r.target = Target::Mcp {
        server: McpRef {
            name: Some(name.to_string()),
            ..McpRef::default()
        },
    };
    r
}

/// The requests of the benchmarks, with the decision each must get
fn requests() -> Vec<(&'static str, Request, bool)> {
    vec![
        // an exact entry of the org allowlist
        ("allowed_model", request("acme-model-5"), true),
        // allowed by `vendor-7-*`, banned by `vendor-7-*-preview`
        ("blocked_model", request("vendor-7-big-preview"), false),
        // personal Anthropic key through the org's gateway
        ("byok", byok("acme-model-5"), true),
        // the project's `tracker` server, whose host is on the org's MCP allowlist
        ("mcp", mcp("tracker"), true),
    ]
}

/// Whether `req` gets the expected decision, with a determining rule and no evaluation error.
/// A wrong decision is reported, not fatal, so the timings are still taken (see the list sizes).
fn check(snap: &Snapshot, name: &str, req: &Request, allowed: bool) -> bool {
    let d = decide(snap, req);
    let ok = d.errors.is_empty() && d.allowed() == allowed && !d.determined_by.is_empty();
    if !ok {
        let want = if allowed { "allowed" } else { "denied" };
        eprintln!(
            "WRONG DECISION {name}: expected {want}, got: {} {:?}",
            d.reason, d.errors
        );
    }
    ok
}

fn bench_large(c: &mut Criterion) {
    let snap = compiled(&bundle(LARGE));
    let mut g = c.benchmark_group("decide/large");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, req, allowed) in requests() {
        assert!(check(&snap, name, &req, allowed), "decide/large/{name}");
        g.bench_function(name, |b| {
            b.iter(|| decide(black_box(&snap), black_box(&req)))
        });
    }
    g.finish();
}

const LIST_SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn bench_lists(c: &mut Criterion) {
    let snaps: Vec<(usize, Snapshot)> = LIST_SIZES
        .iter()
        .map(|&n| {
            (
                n,
                compiled(&bundle(Sizes {
                    allowed: n,
                    blocked: n,
                    mcp: n,
                    projects: LARGE.projects,
                })),
            )
        })
        .collect();
    let model = request("acme-model-5");
    let server = mcp("tracker");
    let banned = request("vendor-7-big-preview");
    for (n, snap) in &snaps {
        check(snap, &format!("lists/{n} allowed model"), &model, true);
        check(snap, &format!("lists/{n} blocked model"), &banned, false);
        check(snap, &format!("lists/{n} mcp"), &server, true);
    }
    for (group, req) in [("decide/lists", &model), ("decide/lists_mcp", &server)] {
        let mut g = c.benchmark_group(group);
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for (n, snap) in &snaps {
            g.bench_with_input(BenchmarkId::from_parameter(n), snap, |b, snap| {
                b.iter(|| decide(black_box(snap), black_box(req)))
            });
        }
        g.finish();
    }
}

fn bench_compile(c: &mut Criterion) {
    let b = bundle(LARGE);
    let mut g = c.benchmark_group("compile");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("large", |bench| {
        bench.iter(|| compile(black_box(&b), &|_| None).is_ok())
    });
    g.finish();
}

/// The large bundle without its 20 hand-written rules: the base rules alone are decided without
/// Cedar, so this shows what the rest of `decide` costs
fn bench_large_no_cedar(c: &mut Criterion) {
    let mut b = bundle(LARGE);
    b.org.files.retain(|path, _| !path.starts_with("policies/"));
    let snap = compiled(&b);
    let mut g = c.benchmark_group("decide/large_no_cedar");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, req, _) in requests() {
        g.bench_function(name, |bench| {
            bench.iter(|| decide(black_box(&snap), black_box(&req)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_large,
    bench_large_no_cedar,
    bench_lists,
    bench_compile
);

/// `n` calls of `decide`, one function per measurement so that callgrind counts each apart
macro_rules! ir_fns {
    ($($name:ident = $k:literal),* $(,)?) => {
        $(
            #[inline(never)]
            fn $name(snap: &Snapshot, req: &Request, n: usize) {
                black_box($k);
                for _ in 0..n {
                    black_box(decide(black_box(snap), black_box(req)));
                }
            }
        )*
        const IR_FNS: &[fn(&Snapshot, &Request, usize)] = &[$($name),*];
    };
}
ir_fns!(
    ir_measured_00 = 0,
    ir_measured_01 = 1,
    ir_measured_02 = 2,
    ir_measured_03 = 3,
    ir_measured_04 = 4,
    ir_measured_05 = 5,
    ir_measured_06 = 6,
    ir_measured_07 = 7,
    ir_measured_08 = 8,
    ir_measured_09 = 9,
    ir_measured_10 = 10,
    ir_measured_11 = 11,
    ir_measured_12 = 12,
    ir_measured_13 = 13,
    ir_measured_14 = 14,
    ir_measured_15 = 15,
);

/// A snapshot and the requests measured on it, under the group's name
type IrRun = (String, Snapshot, Vec<(String, Request)>);

/// Instructions per call, under callgrind: `DECIDE_IR=<calls>` runs the requests of
/// `decide/large` and of the list sizes, each 200 times uncounted (lazy regex states, first
/// allocations), then `<calls>` times in its own `ir_measured_NN`. Run the bench binary as
/// `DECIDE_IR=1000 valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*ir_measured*' target/release/deps/decide-…` and read each function's
/// inclusive cost (`callgrind_annotate --inclusive=yes`); stderr says which is which. Ir per call
/// is that cost over `<calls>`.
fn ir_mode(n: usize) {
    let mut runs: Vec<IrRun> = Vec::new();
    let large = requests()
        .into_iter()
        .map(|(name, req, _)| (name.to_string(), req))
        .collect();
    runs.push(("large".to_string(), compiled(&bundle(LARGE)), large));
    for n in LIST_SIZES {
        let snap = compiled(&bundle(Sizes {
            allowed: n,
            blocked: n,
            mcp: n,
            projects: LARGE.projects,
        }));
        let reqs = vec![
            ("allowed_model".to_string(), request("acme-model-5")),
            ("blocked_model".to_string(), request("vendor-7-big-preview")),
            ("mcp".to_string(), mcp("tracker")),
        ];
        runs.push((format!("lists/{n}"), snap, reqs));
    }
    let mut k = 0;
    for (group, snap, reqs) in &runs {
        for (name, req) in reqs {
            for _ in 0..200 {
                black_box(decide(snap, req));
            }
            IR_FNS[k](snap, req, n);
            eprintln!("DECIDE_IR ir_measured_{k:02}: {group}/{name}, {n} calls");
            k += 1;
        }
    }
}

fn main() {
    if let Some(n) = std::env::var("DECIDE_IR").ok().and_then(|v| v.parse().ok()) {
        ir_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
