//! Differential: the native evaluation of hand-written Cedar rules (`eval::cedar_subset`, and the
//! base rules by `eval::native`) against Cedar's own `Authorizer`. The input is a Cedar file for
//! the org bundle (any effect); a bundle that compiles is decided for a grid of requests three
//! ways (`decide`, `decide_cedar`, `decide_reference`), and any difference is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_fuzz::{no_env, tree};
use strata_policy::decide::{decide_cedar, decide_reference};
use strata_policy::{Bundle, KeyMode, McpRef, Provider, Request, Target, compile, decide};

const SETTINGS: &[u8] = br#"{"modelPolicy": {"allowedModelIds": ["claude-*", "gpt-5*", "frontier"], "blockedModelIds": ["gpt-4o*"]},
 "mcpPolicy": {"enabled": true, "allowlist": ["docs.acme.internal", "npx -y @acme/*"]}}"#;
const POLICY: &[u8] = br#"{"modelCategories": {"frontier": ["claude-opus-*", "gpt-5"]}}"#;

fn requests() -> Vec<Request> {
    let mut out = Vec::new();
    for (user, groups) in [("alice", vec!["leads"]), ("bob", vec![]), ("", vec![])] {
        for project in [None, Some("web"), Some("p-17")] {
            let base = Request::scope(
                user.to_string(),
                groups.iter().map(|g| g.to_string()).collect(),
                project.map(str::to_string),
                project.map(|_| "services/billing".to_string()),
            );
            for model in ["claude-opus-4-1", "gpt-5", "gpt-4o", "x"] {
                for (key_mode, provider, base_url) in [
                    (KeyMode::Central, None, None),
                    (KeyMode::Byok, Some(Provider::Anthropic), Some("https://gw.acme.internal/v1")),
                ] {
                    out.push(Request {
                        target: Target::Model {
                            model: model.to_string(),
                            provider,
                            key_mode,
                            base_url: base_url.map(str::to_string),
                            mcp_servers: Vec::new(),
                        },
                        ..base.clone()
                    });
                }
            }
            for server in [
                McpRef { url: Some("https://docs.acme.internal/mcp".into()), ..Default::default() },
                McpRef { command: Some("npx".into()), args: vec!["-y".into(), "@acme/x".into()], ..Default::default() },
            ] {
                out.push(Request { target: Target::Mcp { server }, ..base.clone() });
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(org) = tree(
        "org",
        &[("settings.json", SETTINGS), ("policy.json", POLICY), ("policies/fuzz.cedar", data)],
    ) else {
        return;
    };
    let Ok(snap) = compile(&Bundle { org, ..Default::default() }, &no_env) else {
        return;
    };
    for req in requests() {
        let native = decide(&snap, &req);
        assert_eq!(native, decide_cedar(&snap, &req), "hand-written rules: {req:?}");
        assert_eq!(native, decide_reference(&snap, &req), "every rule by Cedar: {req:?}");
    }
});
