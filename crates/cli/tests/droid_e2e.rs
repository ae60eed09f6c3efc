//! The real Droid CLI through `policy up`: `droid exec -m <custom model>` inside a checkout of
//! the example project, with the `~/.factory/settings.json` that `policy droid-settings` wrote,
//! reaches a recording mock upstream through the gateway, once per provider API. The upstream
//! sees the central provider key and never the Strata gateway token, and the mock's answer is
//! what Droid prints. Skipped without the Droid CLI (tests/droid/install.sh) unless
//! STRATA_REQUIRE_DROID=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/droid.rs"]
mod droid;
#[path = "support/upstream.rs"]
mod upstream;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use droid::{Droid, OFFLINE, Sandbox, custom_model_id};

const CENTRAL_ANTHROPIC: &str = "sk-ant-central-droid-e2e-0123456789";
const CENTRAL_OPENAI: &str = "sk-openai-central-droid-e2e-0123456789";
/// The org's self-hosted model's own key, `${ACME_QWEN_KEY}` in its customModels entry
const QWEN_VAR: &str = "ACME_QWEN_KEY";
const QWEN_KEY: &str = "sk-qwen-own-droid-e2e-0123456789";
const ANSWER: &str = "Hi from the mock upstream (droid-e2e 7f3a9c)";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A copy of `src` with every text file passed through `edit`
fn copy_edited(src: &Path, dst: &Path, edit: &dyn Fn(String) -> String) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_edited(&entry.path(), &to, edit);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(to, edit(text)).unwrap();
        }
    }
}

/// A `policy up` process, killed when dropped
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `policy up` for alice (group `leads`) with every provider pointed at `upstream`; returns the
/// process and alice's gateway token once it is serving
fn policy_up(data: &Path, org: &Path, project: &Path, gw: u16, upstream: &str) -> (Up, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policy"))
        .current_dir(droid::workspace())
        .args(["up", "--data", data.to_str().unwrap()])
        .args(["--org", org.to_str().unwrap()])
        .args(["--project", &format!("web={}", project.display())])
        .args(["--listen", &format!("127.0.0.1:{gw}")])
        .args(["--resolver-listen", &format!("127.0.0.1:{}", free_port())])
        .env("ANTHROPIC_BASE_URL", upstream)
        .env("OPENAI_BASE_URL", upstream)
        .env("STRATA_CHAT_BASE_URL", upstream)
        .env("ANTHROPIC_API_KEY", CENTRAL_ANTHROPIC)
        .env("OPENAI_API_KEY", CENTRAL_OPENAI)
        .env(QWEN_VAR, QWEN_KEY)
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let up = Up(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut token = None;
    let mut said = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "policy up did not come up: {said:#?}"
        );
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.trim_start().starts_with("strata_gw_") {
            token = Some(line.trim().to_string());
        }
        assert!(!line.starts_with("warning:"), "{line}");
        let done = line.contains("Stop with Ctrl-C.");
        said.push(line);
        if done {
            break;
        }
    }
    // keep draining its stderr so it never blocks on a full pipe
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (up, token.expect("policy up printed no gateway token"))
}

/// The example bundle served by `policy up` in front of a recording mock, with a checkout of the
/// example project in a sandbox
struct Example {
    mock: upstream::Upstream,
    gateway: String,
    sandbox: Sandbox,
    up: Up,
    token: String,
}

fn example() -> Example {
    let mock = upstream::start(ANSWER);
    let gw = free_port();
    // the example requires traffic through 127.0.0.1:8787: this test's gateway stands there
    let here = |text: String| text.replace("127.0.0.1:8787", &format!("127.0.0.1:{gw}"));
    let sandbox = Sandbox::with_project(here);
    let org = sandbox.dir.path().join("org");
    // the org's self-hosted acme-qwen3-coder has its own upstream (the mock here too) and its
    // own key, which the gateway injects instead of the central one
    let own = |text: String| {
        here(text)
            .replace(
                "\"baseUrl\": \"https://llm-gateway.acme.internal/v1\",",
                &format!(
                    "\"baseUrl\": \"{}/v1\", \"apiKey\": \"${{{QWEN_VAR}}}\",",
                    mock.url()
                ),
            )
            .replace("https://llm-gateway.acme.internal", &mock.url())
    };
    copy_edited(
        &droid::workspace().join("policies/examples/acme/org"),
        &org,
        &own,
    );
    let (up, token) = policy_up(
        &sandbox.dir.path().join("data"),
        &org,
        &sandbox.project.join(".factory"),
        gw,
        &mock.url(),
    );
    Example {
        mock,
        gateway: format!("http://127.0.0.1:{gw}"),
        sandbox,
        up,
        token,
    }
}

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
