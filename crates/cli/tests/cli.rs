//! The `policy` binary end to end: exit codes and output (insta snapshots) on fixture layers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn policy(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", "tests/fixtures/no-home")
        .env_remove("STRATA_ORG")
        .env_remove("STRATA_USER")
        .output()
        .expect("run policy");
    let redact = |s: &[u8]| {
        let s = String::from_utf8_lossy(s).into_owned();
        // the revision is a content hash of the inputs and the built-in rules: keep it out of snapshots
        let re_long = s
            .split('"')
            .map(|part| {
                if part.len() == 64 && part.chars().all(|c| c.is_ascii_hexdigit()) {
                    "[revision]"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("\"");
        re_long
            .lines()
            .map(|l| {
                if let Some(r) = l.strip_prefix("revision ") {
                    if r.len() == 12 {
                        "revision [revision]".to_string()
                    } else {
                        l.to_string()
                    }
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: redact(&out.stdout),
        stderr: redact(&out.stderr),
    }
}

const LAYERS: &[&str] = &[
    "--org",
    "tests/fixtures/org",
    "--project",
    "tests/fixtures/repo/.factory",
    "--user",
    "tests/fixtures/home/.factory",
];

fn with_layers<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter()
        .chain(LAYERS.iter())
        .chain(tail.iter())
        .copied()
        .collect()
}

#[test]
fn explain_model_deny_human() {
    let r = policy(&with_layers(
        &["explain", "model", "gpt-4o"],
        &["--as", "alice"],
    ));
    assert_eq!(r.code, 2, "deny exits 2: {}", r.stderr);
    insta::assert_snapshot!(r.stdout);
}

#[test]
fn explain_marks_where_each_determining_rule_is_enforced() {
    // a model ban of the org: the gateway on every request, Droid through its org modelPolicy
    let r = policy(&with_layers(
        &["explain", "model", "gpt-4o"],
        &["--as", "alice"],
    ));
    assert!(
        r.stdout
            .contains("forbid org#modelPolicy.blockedModelIds  [enforced by: gateway and Droid]"),
        "{}",
        r.stdout
    );
    // a hand-written Cedar rule: Droid knows no Cedar, only the gateway enforces it
    let r = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &["--as", "bob"],
    ));
    assert!(
        r.stdout.contains(
            "forbid org#policies/frontier.cedar/frontier-leads-only  [enforced by: gateway]"
        ),
        "{}",
        r.stdout
    );
    let r = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &["--as", "bob", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["determinedBy"][0]["enforcedBy"], "gateway", "{v:#}");
}

#[test]
fn explain_model_deny_json() {
    let r = policy(&with_layers(
        &["explain", "model", "gpt-4o"],
        &["--as", "alice", "--json"],
    ));
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(
        v["determinedBy"][0]["rule"],
        "org#modelPolicy.blockedModelIds"
    );
    assert_eq!(v["determinedBy"][0]["enforcedBy"], "both");
    assert_eq!(
        v["determinedBy"][0]["pointer"],
        "/modelPolicy/blockedModelIds/0"
    );
    insta::assert_snapshot!(r.stdout);
}

#[test]
fn explain_model_allow_project_fine_tune() {
    let r = policy(&with_layers(
        &["explain", "model", "acme-ft-1"],
        &["--as", "alice", "--json"],
    ));
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["determinedBy"][0]["rule"], "project#customModels");
    assert_eq!(v["determinedBy"][0]["level"], "project");
    // a project's entry never chooses the upstream (nor a gateway secret): the model goes to its
    // provider's configured upstream, with the org's key
    assert!(v["obligations"]["upstreamBaseUrl"].is_null(), "{v:#}");
    assert!(v["obligations"]["credentialEnv"].is_null(), "{v:#}");
}

#[test]
fn explain_frontier_needs_leads_group() {
    let denied = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &["--as", "bob", "--json"],
    ));
    assert_eq!(denied.code, 2);
    let v: serde_json::Value = serde_json::from_str(&denied.stdout).unwrap();
    assert_eq!(
        v["determinedBy"][0]["rule"],
        "org#policies/frontier.cedar/frontier-leads-only"
    );
    let allowed = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &["--as", "bob", "--group", "leads"],
    ));
    assert_eq!(allowed.code, 0, "{}", allowed.stdout);
}

#[test]
fn explain_byok_outside_gateway_denied() {
    let r = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &["--as", "alice", "--group", "leads", "--key-mode", "byok"],
    ));
    assert_eq!(r.code, 2);
    insta::assert_snapshot!(r.stdout);
    let through_gw = policy(&with_layers(
        &["explain", "model", "claude-opus-4-1"],
        &[
            "--as",
            "alice",
            "--group",
            "leads",
            "--key-mode",
            "byok",
            "--base-url",
            "http://127.0.0.1:8787/anthropic",
        ],
    ));
    assert_eq!(through_gw.code, 0, "{}", through_gw.stdout);
}

#[test]
fn explain_folder_restricts() {
    let base = with_layers(
        &["explain", "model", "claude-sonnet-4-5"],
        &["--as", "alice"],
    );
    assert_eq!(policy(&base).code, 0);
    let r = policy(&with_layers(
        &["explain", "model", "claude-sonnet-4-5"],
        &[
            "--as",
            "alice",
            "--folder",
            "tests/fixtures/repo/services/billing/.factory",
            "--json",
        ],
    ));
    assert_eq!(r.code, 2, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["determinedBy"][0]["rule"],
        "folder#modelPolicy.blockedModelIds"
    );
    assert_eq!(v["request"]["folder"], "services/billing");
}

#[test]
fn explain_mcp() {
    let r = policy(&with_layers(
        &["explain", "mcp", "pastebin"],
        &["--as", "alice"],
    ));
    assert_eq!(r.code, 2);
    insta::assert_snapshot!(r.stdout);
    let opted_out = policy(&with_layers(
        &["explain", "mcp", "docs"],
        &["--as", "alice", "--json"],
    ));
    assert_eq!(opted_out.code, 2);
    let v: serde_json::Value = serde_json::from_str(&opted_out.stdout).unwrap();
    assert_eq!(v["determinedBy"][0]["rule"], "user#mcpServers.disabled");
    let no_user = policy(&[
        "explain",
        "mcp",
        "docs",
        "--org",
        "tests/fixtures/org",
        "--no-user",
        "--as",
        "alice",
    ]);
    assert_eq!(no_user.code, 0, "{}", no_user.stdout);
}

#[test]
fn explain_settings_human_and_json() {
    let r = policy(&with_layers(&["explain", "settings"], &["--as", "alice"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("sk-ant-secret"),
        "a key leaked into the output"
    );
    insta::assert_snapshot!("explain_settings_human", r.stdout);
    let j = policy(&with_layers(
        &["explain", "settings"],
        &["--as", "alice", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert!(!j.stdout.contains("sk-ant-secret"));
    // a session default: the project's beats the org's, which is only a default (as in Droid)
    let leaf = &v["settings"]["sessionDefaultSettings"]["model"];
    assert_eq!(leaf["value"], "acme-ft-1");
    assert_eq!(leaf["level"], "project");
    assert_eq!(leaf["line"], 1);
    let models: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert!(models.contains(&"acme-ft-1"));
    assert!(
        !models.contains(&"gpt-4o"),
        "a banned model is not listed as usable"
    );
}

#[test]
fn validate_valid_and_invalid() {
    let ok = policy(&[
        "validate",
        "tests/fixtures/org",
        "tests/fixtures/repo/.factory",
    ]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let bad = policy(&["validate", "tests/fixtures/broken", "--level", "org"]);
    assert_eq!(bad.code, 3);
    insta::assert_snapshot!(bad.stdout);
}

#[test]
fn explain_with_invalid_layers_exits_3() {
    let r = policy(&[
        "explain",
        "model",
        "x",
        "--org",
        "tests/fixtures/broken",
        "--no-user",
    ]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("invalid configuration"), "{}", r.stderr);
    assert!(
        r.stderr.contains("STRATA_TEST_SURELY_UNSET"),
        "{}",
        r.stderr
    );
}

#[test]
fn unknown_provider_flag_is_a_failure() {
    let r = policy(&[
        "explain",
        "model",
        "x",
        "--org",
        "tests/fixtures/org",
        "--no-user",
        "--provider",
        "azure",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("generic-chat-completion-api"),
        "{}",
        r.stderr
    );
}
