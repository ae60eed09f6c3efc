//! The real Droid CLI through `policy up`: `droid exec -m <custom model>` inside a checkout of
//! the example project, with the `~/.factory/settings.json` that `policy droid-settings` wrote,
//! reaches a recording mock upstream through the gateway, once per provider API. The upstream
//! sees the central provider key and never the Strata gateway token, and the mock's answer is
//! what Droid prints. Skipped without the Droid CLI (tests/droid/install.sh) unless
//! STRATA_REQUIRE_DROID=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/droid.rs"]
mod droid;
#[path = "support/up.rs"]
mod up;
#[path = "support/upstream.rs"]
mod upstream;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use droid::{Droid, OFFLINE, custom_model_id};
use up::{ANSWER, CENTRAL_ANTHROPIC, CENTRAL_OPENAI, Example, QWEN_KEY, example};

#[test]
fn droid_exec_reaches_the_upstream_through_the_gateway_with_the_central_key() {
    let Some(droid) = Droid::find("droid_exec_reaches_the_upstream_through_the_gateway") else {
        return;
    };
    let Example {
        mock,
        gateway,
        sandbox,
        up: _up,
        token,
        ..
    } = example();

    // the person's ~/.factory/settings.json, as the docs tell them to write it
    let settings = sandbox.user_settings();
    let models = droid_settings(
        &gateway,
        &token,
        &["--settings", settings.to_str().unwrap()],
        &settings,
    );

    // one model per provider API Droid speaks: (model, provider, the path the upstream sees)
    let cases = [
        ("claude-sonnet-4-5", "anthropic", "/v1/messages"),
        ("gpt-5-codex", "openai", "/v1/responses"),
        (
            "acme-qwen3-coder",
            "generic-chat-completion-api",
            "/v1/chat/completions",
        ),
    ];
    for (model, provider, path) in cases {
        let index = models
            .iter()
            .position(|m| m["model"] == model)
            .unwrap_or_else(|| panic!("policy droid-settings wrote no `{model}`: {models:#?}"));
        assert_eq!(models[index]["provider"], provider, "{models:#?}");
        let id = custom_model_id(&models, index);
        let before = mock.requests().len();
        let run = droid.exec(
            &sandbox,
            &sandbox.project,
            OFFLINE,
            &["-m", &id, "say hi"],
            Duration::from_secs(120),
        );
        let seen: Vec<upstream::Recorded> = mock.requests().split_off(before);
        let why = format!(
            "{model} ({id}): {}\nthe upstream saw: {:?}",
            run.describe(),
            seen.iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
        );
        assert!(run.success(), "{why}");
        assert!(run.stdout.contains(ANSWER), "{why}");

        // Droid's request reached the upstream through the gateway, in the provider's shape
        let turn: Vec<&upstream::Recorded> = seen
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect();
        assert!(!turn.is_empty(), "{why}");
        for r in &turn {
            assert_eq!(r.json()["model"], model, "{why}");
            assert!(
                r.header("user-agent")
                    .is_some_and(|ua| ua.starts_with("factory-cli/")),
                "not Droid's request: {:?}",
                r.headers
            );
            assert!(
                r.body.len() > 10_000,
                "Droid's requests carry its system prompt and tools: {} bytes",
                r.body.len()
            );
        }
        // with the central key (the self-hosted model: its own), never the gateway token
        for r in &seen {
            match provider {
                "anthropic" => assert_eq!(r.header("x-api-key"), Some(CENTRAL_ANTHROPIC), "{why}"),
                _ if model == "acme-qwen3-coder" => assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {QWEN_KEY}").as_str()),
                    "{why}"
                ),
                _ => assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {CENTRAL_OPENAI}").as_str()),
                    "{why}"
                ),
            }
            assert!(
                !r.contains(&token) && !r.contains("strata_gw_"),
                "the upstream saw the gateway token: {} {} {:?}",
                r.method,
                r.path,
                r.headers
            );
        }
    }
}

/// `policy droid-settings ARGS` against the gateway, retried while `policy up` finishes starting;
/// returns the `customModels` of the file it wrote
fn droid_settings(
    gateway: &str,
    token: &str,
    args: &[&str],
    file: &Path,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let wrote = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_policy"))
            .args(["droid-settings", "--gateway", gateway, "--token", token])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        wrote.status.success(),
        "policy droid-settings {args:?}: {}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v["customModels"].as_array().unwrap().clone()
}

/// Scope travels with Droid's requests: inside a checkout of project `web`, the project's own
/// `.factory/settings.json` (written by `policy droid-settings --project web --project-dir`, key
/// `${STRATA_TOKEN}`) makes Droid send `X-Strata-Project`, and the billing folder's file adds
/// `X-Strata-Folder`. So a project fine-tune answers (the org alone does not allow it), and a
/// model the billing folder bans (`o4-mini`, which the project adds) is refused by the gateway in
/// that folder, before anything reaches the upstream, while it answers at the project's root.
#[test]
fn droid_in_a_project_checkout_is_decided_in_the_projects_and_folders_scope() {
    let Some(droid) = Droid::find("droid_in_a_project_checkout_is_decided_in_the_projects_scope")
    else {
        return;
    };
    let Example {
        mock,
        gateway,
        sandbox,
        up: _up,
        token,
        ..
    } = example();
    let user = sandbox.user_settings();
    let user_models = droid_settings(
        &gateway,
        &token,
        &["--settings", user.to_str().unwrap()],
        &user,
    );
    assert!(
        !user_models
            .iter()
            .any(|m| m["model"] == "acme-ft-codereview-v3" || m["model"] == "o4-mini"),
        "the person's own file is the org's scope: no project model in it: {user_models:#?}"
    );
    let project_dir = sandbox.project.to_str().unwrap();
    let project_file = sandbox.project.join(".factory/settings.json");
    let project_models = droid_settings(
        &gateway,
        &token,
        &["--project", "web", "--project-dir", project_dir],
        &project_file,
    );
    let folder = sandbox.project.join("services/billing");
    let folder_file = folder.join(".factory/settings.json");
    let folder_models = droid_settings(
        &gateway,
        &token,
        &[
            "--project",
            "web",
            "--project-dir",
            project_dir,
            "--folder",
            "services/billing",
        ],
        &folder_file,
    );
    // committed files hold no token, only the variable
    for (file, models) in [
        (&project_file, &project_models),
        (&folder_file, &folder_models),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(&token), "{} holds the token", file.display());
        // the gateway's entries (the project's own other entries are kept as they were)
        let ours: Vec<&serde_json::Value> = models
            .iter()
            .filter(|m| {
                m["baseUrl"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&gateway))
            })
            .collect();
        assert!(!ours.is_empty());
        assert!(
            ours.iter().all(|m| m["apiKey"] == "${STRATA_TOKEN}"
                && m["extraHeaders"]["X-Strata-Project"] == "web"),
            "{models:#?}"
        );
    }
    assert!(
        folder_models
            .iter()
            .filter(|m| m["baseUrl"]
                .as_str()
                .is_some_and(|u| u.starts_with(&gateway)))
            .all(|m| m["extraHeaders"]["X-Strata-Folder"] == "services/billing")
    );
    let env: Vec<(&str, &str)> = OFFLINE
        .iter()
        .copied()
        .chain([("STRATA_TOKEN", token.as_str())])
        .collect();
    let run = |cwd: &Path, models: &[serde_json::Value], model: &str| {
        let index = models
            .iter()
            .position(|m| m["model"] == model)
            .unwrap_or_else(|| panic!("no `{model}` in {models:#?}"));
        let id = custom_model_id(models, index);
        let before = mock.requests().len();
        let r = droid.exec(
            &sandbox,
            cwd,
            &env,
            &["-m", &id, "say hi"],
            Duration::from_secs(120),
        );
        let seen: Vec<upstream::Recorded> = mock.requests().split_off(before);
        (r, seen)
    };
    // the project's fine-tune: only the project allows it
    let (r, seen) = run(&sandbox.project, &project_models, "acme-ft-codereview-v3");
    assert!(r.success() && r.stdout.contains(ANSWER), "{}", r.describe());
    assert!(
        seen.iter()
            .any(|x| x.json()["model"] == "acme-ft-codereview-v3"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|x| !x.contains(&token) && !x.contains("strata_gw_"))
    );
    // o4-mini answers at the project's root ...
    let (r, seen) = run(&sandbox.project, &project_models, "o4-mini");
    assert!(r.success() && r.stdout.contains(ANSWER), "{}", r.describe());
    assert!(
        seen.iter().any(|x| x.json()["model"] == "o4-mini"),
        "{seen:?}"
    );
    // ... and is refused in the billing folder, which bans it: nothing reaches the upstream
    let (r, seen) = run(&folder, &folder_models, "o4-mini");
    assert!(
        !r.success(),
        "the billing folder bans o4-mini: {}",
        r.describe()
    );
    assert!(seen.is_empty(), "the upstream saw {seen:?}");
}

/// tests/droid/model-ids-<version>.txt is what the pinned binary holds: a Droid release that
/// changes its catalogue of model ids fails here until the file is regenerated
#[test]
fn the_model_id_catalogue_matches_the_pinned_droid() {
    let Some(droid) = Droid::find("the_model_id_catalogue_matches_the_pinned_droid") else {
        return;
    };
    let out = Command::new("bash")
        .arg(droid::workspace().join("tests/droid/extract-model-ids.sh"))
        .arg("--check")
        .arg(&droid.bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
