//! The real Droid CLI enforcing the org level Strata serves: `droid exec` with
//! `FACTORY_API_BASE_URL` at the gateway of `policy up` (the example bundle) and
//! `FACTORY_API_KEY` = alice's gateway token loads the org document from
//! `GET /api/organization/managed-settings`, and Droid itself then refuses a banned model before
//! any request, does not start an MCP server off the allowlist, clamps `--auto`, drops project
//! hooks, follows a newly published revision at its next session, and keeps enforcing from its
//! on-disk cache once Strata is gone. Each refusal has its control: the same thing happening
//! without the org level, or an allowed neighbour going through. Skipped without the Droid CLI
//! (tests/droid/install.sh) unless STRATA_REQUIRE_DROID=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/droid.rs"]
mod droid;
#[path = "support/up.rs"]
mod up;
#[path = "support/upstream.rs"]
mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use droid::{Droid, OFFLINE, Run, Sandbox, custom_model_id, with_api};
use up::{ANSWER, CENTRAL_ANTHROPIC, Example, example, http_get};

/// What Droid prints (on stderr) for a `-m` model the org level blocks
const BLOCKED: &str = "Model blocked by organization policy";
/// A catalogue id Droid offers to `-m` that the example org bans (`*-preview`)
const BANNED: &str = "gemini-3-flash-preview";
/// Droid's log line when the org's `maxAutonomyLevel` lowers `--auto`
const CLAMPED: &str = "Clamped autonomy level to organization maximum";
/// Droid's log lines when whoami (which its cached org level is checked against) and
/// managed-settings cannot be reached
const WHOAMI_FAILED: &str = "Failed to fetch user from API";
const ORG_FAILED: &str = "Failed to load organization settings";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The org document the gateway serves alice, as Droid fetches it (retried while `policy up`
/// finishes starting)
fn org_document(ex: &Example) -> Value {
    let url = format!("{}/api/organization/managed-settings", ex.gateway);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let got = http_get(&url, &ex.token);
        if got.0 == 200 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["success"], true, "{body}");
    v
}

/// Droid's id for the org document's custom model for `model`
fn org_model_id(doc: &Value, model: &str) -> String {
    let models = doc["settings"]["customModels"].as_array().unwrap();
    let index = models
        .iter()
        .position(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("the org document offers no `{model}`: {models:#?}"));
    match models[index]["id"].as_str() {
        Some(id) => id.to_string(),
        None => custom_model_id(models, index),
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `droid exec ARGS` in the project's checkout, with fresh logs; what the mock upstream saw
/// meanwhile
fn exec(
    droid: &Droid,
    ex: &Example,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Run, Vec<upstream::Recorded>) {
    ex.sandbox.clear_logs();
    let before = ex.mock.requests().len();
    let run = droid.exec(&ex.sandbox, &ex.sandbox.project, env, args, TIMEOUT);
    let seen = ex.mock.requests().split_off(before);
    (run, seen)
}

fn describe(run: &Run, seen: &[upstream::Recorded]) -> String {
    format!(
        "{}\nthe upstream saw: {:?}",
        run.describe(),
        seen.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    )
}

fn refused_as_blocked(run: &Run) -> bool {
    !run.success() && format!("{}{}", run.stdout, run.stderr).contains(BLOCKED)
}

/// A turn that answered through the gateway: the mock's text printed, Droid's request at the
/// upstream with the central key
fn answered(run: &Run, seen: &[upstream::Recorded]) {
    let why = describe(run, seen);
    assert!(run.success() && run.stdout.contains(ANSWER), "{why}");
    let turn: Vec<&upstream::Recorded> = seen
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/messages")
        .collect();
    assert!(!turn.is_empty(), "{why}");
    assert!(
        turn.iter()
            .all(|r| r.header("x-api-key") == Some(CENTRAL_ANTHROPIC)),
        "{why}"
    );
}

/// A personal custom model straight to the mock (no gateway), written to
/// `~/.factory/settings.json`: a model for runs without the org level (the org's
/// `allowedBaseUrls` refuses it with the org level)
fn direct_model(ex: &Example) -> String {
    let settings = json!({"customModels": [{
        "model": "claude-sonnet-4-5",
        "displayName": "Mock direct",
        "baseUrl": ex.mock.url(),
        "apiKey": "sk-direct-droid-org-e2e",
        "provider": "anthropic",
        "maxOutputTokens": 1024
    }]});
    std::fs::write(ex.sandbox.user_settings(), settings.to_string()).unwrap();
    "custom:Mock-direct-0".to_string()
}

/// Removes the example project's own `modelPolicy` (an allowlist, `gpt-4o` and `o4-mini`, which
/// Droid applies to catalogue models when no higher level sets one) from the checkout Droid
/// reads, so that a catalogue model refused there is refused by the org level
fn without_project_model_policy(sandbox: &Sandbox) {
    let file = sandbox.project.join(".factory/settings.json");
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    settings.as_object_mut().unwrap().remove("modelPolicy");
    std::fs::write(&file, settings.to_string()).unwrap();
}

/// Alice's Sonnet through the gateway, from the org document
fn sonnet(doc: &Value) -> String {
    org_model_id(doc, "claude-sonnet-4-5")
}

#[test]
fn a_model_the_org_bans_is_refused_by_droid_before_any_request() {
    let Some(droid) = Droid::find("a_model_the_org_bans_is_refused_by_droid") else {
        return;
    };
    let ex = example();
    without_project_model_policy(&ex.sandbox);
    let doc = org_document(&ex);
    let blocked = ids(&doc["settings"]["modelPolicy"]["blockedModelIds"]);
    assert!(blocked.contains(&BANNED), "{doc:#}");
    let env = with_api(&ex.gateway, &ex.token);

    let (run, seen) = exec(&droid, &ex, &env, &["-m", BANNED, "say hi"]);
    assert!(refused_as_blocked(&run), "{}", describe(&run, &seen));
    assert!(seen.is_empty(), "{}", describe(&run, &seen));
    // Droid loaded the org level from the gateway, and cached it for this person
    let cache = ex
        .sandbox
        .home
        .join(".factory/org-managed-settings.cache.json");
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(cached["orgId"], "strata", "{cached:#}");
    assert_eq!(cached["revision"], doc["revision"], "{cached:#}");

    // control: an org custom model, in the same sandbox, answers through the gateway
    let (run, seen) = exec(&droid, &ex, &env, &["-m", &sonnet(&doc), "say hi"]);
    answered(&run, &seen);

    // a built-in model the org allows (`claude-opus-*`): Droid sends it to the gateway's
    // /api/llm/a/v1/messages with the token as its bearer; decided, and forwarded with the
    // central key
    let allowed = ids(&doc["settings"]["modelPolicy"]["allowedModelIds"]);
    assert!(allowed.contains(&"claude-opus-4-6"), "{doc:#}");
    let (run, seen) = exec(&droid, &ex, &env, &["-m", "claude-opus-4-6", "say hi"]);
    answered(&run, &seen);
    assert!(
        seen.iter().all(|r| !r.contains(&ex.token)),
        "the upstream saw the gateway token"
    );
}

/// A minimal MCP server over stdio (newline-delimited JSON-RPC) that first appends
/// `started: <argv>` to `marker`
fn fake_mcp_server(path: &Path, marker: &Path) {
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the fake MCP server");
    let python = String::from_utf8(python.stdout).unwrap();
    let script = format!(
        r#"#!{python}
import json, sys
with open({marker:?}, "a") as f:
    f.write("started: " + " ".join(sys.argv[1:]) + "\n")
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if "id" not in msg:
        continue
    method = msg.get("method")
    if method == "initialize":
        result = {{"protocolVersion": msg.get("params", {{}}).get("protocolVersion", "2025-06-18"),
                  "capabilities": {{"tools": {{}}}},
                  "serverInfo": {{"name": "fake", "version": "0.0.1"}}}}
    elif method == "tools/list":
        result = {{"tools": []}}
    else:
        result = {{}}
    sys.stdout.write(json.dumps({{"jsonrpc": "2.0", "id": msg["id"], "result": result}}) + "\n")
    sys.stdout.flush()
"#,
        python = python.trim(),
        marker = marker.display().to_string(),
    );
    std::fs::write(path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The lines of `marker` naming each server's package
fn started(marker: &Path) -> (bool, bool) {
    let text = std::fs::read_to_string(marker).unwrap_or_default();
    (
        text.contains("server-filesystem"),
        text.contains("server-puppeteer"),
    )
}

#[test]
fn an_mcp_server_off_the_allowlist_is_not_started() {
    let Some(droid) = Droid::find("an_mcp_server_off_the_allowlist_is_not_started") else {
        return;
    };
    let ex = example();
    let doc = org_document(&ex);
    let mcp = &doc["settings"]["mcpPolicy"];
    assert_eq!(mcp["enabled"], true, "{doc:#}");
    // `npx` on PATH is the fake; the org's filesystem server (allowed) and puppeteer, which the
    // org's mcpBlocklist denies
    let bin: PathBuf = ex.sandbox.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = ex.sandbox.dir.path().join("mcp-started.log");
    fake_mcp_server(&bin.join("npx"), &marker);
    let servers = json!({"mcpServers": {
        "filesystem": {"type": "stdio", "command": "npx",
                       "args": ["-y", "@modelcontextprotocol/server-filesystem", "."]},
        "puppeteer": {"type": "stdio", "command": "npx",
                      "args": ["-y", "@modelcontextprotocol/server-puppeteer"]}
    }});
    std::fs::write(
        ex.sandbox.home.join(".factory/mcp.json"),
        servers.to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // control: without the org level Droid starts both
    let direct = direct_model(&ex);
    let offline: Vec<(&str, &str)> = OFFLINE
        .iter()
        .copied()
        .chain([("PATH", path.as_str())])
        .collect();
    let (run, seen) = exec(&droid, &ex, &offline, &["-m", &direct, "say hi"]);
    assert!(run.success(), "{}", describe(&run, &seen));
    assert_eq!(
        started(&marker),
        (true, true),
        "without the org level: {}\n{}",
        std::fs::read_to_string(&marker).unwrap_or_default(),
        describe(&run, &seen)
    );
    std::fs::remove_file(&marker).unwrap();

    // with the org level: the allowed one only
    let mut env = with_api(&ex.gateway, &ex.token);
    env.push(("PATH", path.as_str()));
    let (run, seen) = exec(&droid, &ex, &env, &["-m", &sonnet(&doc), "say hi"]);
    answered(&run, &seen);
    assert_eq!(
        started(&marker),
        (true, false),
        "with the org level (mcpPolicy {mcp}): {}\n{}",
        std::fs::read_to_string(&marker).unwrap_or_default(),
        describe(&run, &seen)
    );
}

#[test]
fn max_autonomy_level_clamps_auto_high() {
    let Some(droid) = Droid::find("max_autonomy_level_clamps_auto_high") else {
        return;
    };
    let ex = example();
    let doc = org_document(&ex);
    assert_eq!(doc["settings"]["maxAutonomyLevel"], "medium", "{doc:#}");

    // control: without the org level, nothing to clamp to
    let direct = direct_model(&ex);
    let before = ex.sandbox.session_settings();
    let (run, seen) = exec(
        &droid,
        &ex,
        OFFLINE,
        &["--auto", "high", "-m", &direct, "say hi"],
    );
    assert!(run.success(), "{}", describe(&run, &seen));
    assert_eq!(
        new_session_autonomy(&ex, &before),
        ("high".to_string(), "auto-high".to_string()),
        "{}",
        run.describe()
    );
    assert!(!run.log_text().contains(CLAMPED), "{}", run.describe());

    let env = with_api(&ex.gateway, &ex.token);
    let before = ex.sandbox.session_settings();
    let (run, seen) = exec(
        &droid,
        &ex,
        &env,
        &["--auto", "high", "-m", &sonnet(&doc), "say hi"],
    );
    answered(&run, &seen);
    // what the session ran with, as Droid recorded it
    assert_eq!(
        new_session_autonomy(&ex, &before),
        ("medium".to_string(), "auto-medium".to_string()),
        "{}",
        run.describe()
    );
    // and why, when Droid's buffered INFO line made it to disk before the process exited
    let log = run.log_text();
    if let Some(line) = log.lines().find(|l| l.contains(CLAMPED)) {
        assert!(
            line.contains(r#""before":"high""#) && line.contains(r#""after":"medium""#),
            "clamped from high to medium: {line}"
        );
    }
}

/// `(autonomyLevel, autonomyMode)` of the one session Droid created since `before`
fn new_session_autonomy(
    ex: &Example,
    before: &std::collections::BTreeMap<PathBuf, Value>,
) -> (String, String) {
    let after = ex.sandbox.session_settings();
    let created: Vec<&Value> = after
        .iter()
        .filter(|(path, _)| !before.contains_key(*path))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(created.len(), 1, "one new session: {after:#?}");
    let text = |key: &str| created[0][key].as_str().unwrap_or_default().to_string();
    (text("autonomyLevel"), text("autonomyMode"))
}

#[test]
fn project_hooks_are_dropped_under_allow_managed_hooks_only() {
    let Some(droid) = Droid::find("project_hooks_are_dropped_under_allow_managed_hooks_only")
    else {
        return;
    };
    let ex = example();
    let doc = org_document(&ex);
    assert_eq!(doc["settings"]["allowManagedHooksOnly"], true, "{doc:#}");
    // a hook in the project's checked-in settings
    let marker = ex.sandbox.dir.path().join("hook-ran.log");
    let file = ex.sandbox.project.join(".factory/settings.json");
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // SessionStart: `droid exec` 0.225.2 runs SessionStart and Stop hooks, not UserPromptSubmit
    settings["hooks"] = json!({"SessionStart": [{"hooks": [{
        "type": "command",
        "command": format!("echo ran >> '{}'", marker.display())
    }]}]});
    std::fs::write(&file, settings.to_string()).unwrap();

    // control: without the org level the project's hook runs
    let direct = direct_model(&ex);
    let (run, seen) = exec(&droid, &ex, OFFLINE, &["-m", &direct, "say hi"]);
    assert!(run.success(), "{}", describe(&run, &seen));
    assert!(
        marker.exists(),
        "the project's hook did not run without the org level: {}",
        run.describe()
    );
    std::fs::remove_file(&marker).unwrap();

    let env = with_api(&ex.gateway, &ex.token);
    let (run, seen) = exec(&droid, &ex, &env, &["-m", &sonnet(&doc), "say hi"]);
    answered(&run, &seen);
    assert!(
        !marker.exists(),
        "the project's hook ran under allowManagedHooksOnly: {}",
        run.describe()
    );
}

#[test]
fn a_revision_published_between_sessions_is_enforced_by_the_next_one() {
    let Some(droid) = Droid::find("a_revision_published_between_sessions_is_enforced") else {
        return;
    };
    let ex = example();
    let doc = org_document(&ex);
    let model = sonnet(&doc);
    let env = with_api(&ex.gateway, &ex.token);
    let (run, seen) = exec(&droid, &ex, &env, &["-m", &model, "say hi"]);
    answered(&run, &seen);

    // the org bans claude-sonnet-4-5 (and its dated catalogue id)
    let file = ex.org.join("settings.json");
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    settings["modelPolicy"]["blockedModelIds"]
        .as_array_mut()
        .unwrap()
        .push(json!("claude-sonnet-4-5*"));
    std::fs::write(&file, settings.to_string()).unwrap();
    ex.up.publish_org(&ex.org);
    let next = org_document(&ex);
    assert_ne!(next["revision"], doc["revision"], "{next:#}");
    assert!(
        ids(&next["settings"]["modelPolicy"]["blockedModelIds"])
            .contains(&"claude-sonnet-4-5-20250929"),
        "{next:#}"
    );
    assert!(
        next["settings"]["customModels"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m["model"] != "claude-sonnet-4-5")),
        "{next:#}"
    );

    let (run, seen) = exec(&droid, &ex, &env, &["-m", &model, "say hi"]);
    assert!(!run.success(), "{}", describe(&run, &seen));
    assert!(seen.is_empty(), "{}", describe(&run, &seen));
    let said = format!("{}{}", run.stdout, run.stderr);
    // the new document no longer offers the custom model, so Droid does not know the id
    assert!(
        said.contains(&format!("Invalid model: {model}")),
        "refused by Droid itself: {}",
        describe(&run, &seen)
    );
}

/// Droid's on-disk cache of the org level outlives neither Strata nor whoami: Droid uses
/// `~/.factory/org-managed-settings.cache.json` only while `GET /api/cli/whoami` still answers
/// with the cached `orgId`/`userId` (read in 0.225.2: the cache is keyed by that identity), so
/// with `policy up` stopped it fails open and a banned model is no longer refused locally. This
/// pins that behaviour (docs/droid-observed.md, "(g)"): a Droid release that enforces from its
/// cache without whoami fails here, and so does a Strata that keeps whoami answering.
#[test]
fn with_strata_stopped_droid_fails_open_despite_its_cache() {
    let Some(droid) = Droid::find("with_strata_stopped_droid_fails_open_despite_its_cache") else {
        return;
    };
    let mut ex = example();
    without_project_model_policy(&ex.sandbox);
    let env = with_api(&ex.gateway, &ex.token);
    let (run, seen) = exec(&droid, &ex, &env, &["-m", BANNED, "say hi"]);
    assert!(refused_as_blocked(&run), "{}", describe(&run, &seen));
    let cache = ex
        .sandbox
        .home
        .join(".factory/org-managed-settings.cache.json");
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert!(
        ids(&cached["managedSettings"]["modelPolicy"]["blockedModelIds"]).contains(&BANNED),
        "{cached:#}"
    );

    // Strata stops: whoami is unreachable, the cache is not used, nothing refuses the model
    ex.up.stop();
    let (run, seen) = exec(&droid, &ex, &env, &["-m", BANNED, "say hi"]);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(!said.contains(BLOCKED), "{}", describe(&run, &seen));
    // ORG_FAILED is an ERROR line, written at once; WHOAMI_FAILED (a WARN) may be lost with
    // Droid's buffered lines, so it is only checked when the buffer reached the disk
    let log = run.log_text();
    assert!(log.contains(ORG_FAILED), "{}", describe(&run, &seen));
    if log.contains("[tui-startup]") {
        assert!(log.contains(WHOAMI_FAILED), "{}", describe(&run, &seen));
    }
    assert!(cache.is_file(), "the cache is kept");
}

/// `droid doctor --config --json` with an org document as a local file
/// (`FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH`): its report
fn doctor(droid: &Droid, sandbox: &Sandbox, settings: &Value) -> Value {
    let file = sandbox.dir.path().join("org-settings.json");
    std::fs::write(&file, settings.to_string()).unwrap();
    let env: Vec<(&str, &str)> = OFFLINE
        .iter()
        .copied()
        .chain([(
            "FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH",
            file.to_str().unwrap(),
        )])
        .collect();
    let run = droid.run(
        sandbox,
        &sandbox.project,
        &env,
        &["doctor", "--config", "--json"],
        TIMEOUT,
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor's JSON: {e}\n{}", run.describe()))
}

/// The report's result `id`, if any
fn result<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["results"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["id"] == id))
}

/// Droid's own schema check accepts the document served for alice (one value Droid's schema
/// rejects would make Droid ignore the whole org level, failing open)
#[test]
fn droid_doctor_accepts_the_served_org_document() {
    let Some(droid) = Droid::find("droid_doctor_accepts_the_served_org_document") else {
        return;
    };
    let ex = example();
    let doc = org_document(&ex);
    // a valid org file gets no result of its own, only "No configuration issues found"
    let report = doctor(&droid, &ex.sandbox, &doc["settings"]);
    assert_eq!(report["ok"], true, "{report:#}\n{doc:#}");
    assert!(
        result(&report, "configuration.managed-settings").is_none(),
        "{report:#}\n{doc:#}"
    );
    assert_eq!(
        result(&report, "configuration.valid").map(|r| &r["status"]),
        Some(&json!("pass")),
        "{report:#}"
    );

    // control: the check does read the file, and fails a document Droid would discard
    let mut broken = doc["settings"].clone();
    broken["maxAutonomyLevel"] = json!("auto-medium");
    let report = doctor(&droid, &ex.sandbox, &broken);
    let verdict = result(&report, "configuration.managed-settings");
    assert!(
        verdict.is_some_and(|v| v["status"] == "fail"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("maxAutonomyLevel"))),
        "{report:#}"
    );
}

/// `policy explain model ID --json` for alice (group `leads`) in the sandbox's project, through
/// the gateway: what Strata says Droid will do with a catalogue model
fn explain_droid(ex: &Example, model: &str) -> (bool, bool) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(["explain", "model", model, "--json", "--no-user"])
        .args(["--org", ex.org.to_str().unwrap()])
        .args([
            "--project",
            ex.sandbox.project.join(".factory").to_str().unwrap(),
        ])
        .args(["--project-id", "web", "--as", "alice", "--group", "leads"])
        .args(["--base-url", &ex.gateway])
        // the org's self-hosted model reads its key from the environment, as `policy up` did
        .env(up::QWEN_VAR, up::QWEN_KEY)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let refuses = v["droidModel"]["refuses"]
        .as_bool()
        .unwrap_or_else(|| panic!("no Droid verdict for {model}: {v:#}"));
    (refuses, v["decision"] == "allow")
}

/// Differential: on catalogue models Droid offers (chosen by a fixed seed across providers and
/// verdicts), `policy explain` says whether Droid refuses each one locally, and Droid does
/// exactly that; a model Droid lets through is then answered through the gateway exactly when
/// explain says the gateway allows it
#[test]
fn explain_predicts_what_droid_does_with_catalogue_models() {
    let Some(droid) = Droid::find("explain_predicts_what_droid_does_with_catalogue_models") else {
        return;
    };
    let ex = example();
    let env = with_api(&ex.gateway, &ex.token);
    // offered by `droid exec -m` in 0.225.2 (docs/droid-observed.md)
    let offered = [
        "claude-opus-4-6",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-5",
        "gpt-5.2",
        "gpt-5.3-codex",
        "gemini-3.5-flash",
        "gemini-3-flash-preview",
        "glm-5",
        "kimi-k2.5",
    ];
    let mut seed: u64 = 0x5eed_0016;
    let mut cases: Vec<&str> = offered.to_vec();
    cases.sort_by_key(|m| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) ^ m.len() as u64
    });
    let cases = &cases[..7];
    let (mut refused, mut through) = (0, 0);
    for model in cases {
        let (refuses, gateway_allows) = explain_droid(&ex, model);
        let (run, seen) = exec(&droid, &ex, &env, &["-m", model, "say hi"]);
        let why = format!(
            "{model}: explain says Droid refuses={refuses}\n{}",
            describe(&run, &seen)
        );
        assert_eq!(refused_as_blocked(&run), refuses, "{why}");
        if refuses {
            refused += 1;
            assert!(seen.is_empty(), "{why}");
        } else {
            through += 1;
            assert_eq!(
                run.success() && run.stdout.contains(ANSWER),
                gateway_allows,
                "{why}"
            );
        }
    }
    assert!(
        refused > 0 && through > 0,
        "the cases covered both verdicts: {cases:?}"
    );
}

/// A child process, killed when dropped
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_policy"));
    cmd.args(args)
        .env("STRATA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

/// `policy ARGS` against the resolver, retried while it starts; its stdout
fn policy(args: &[&str], env: &[(&str, &str)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_policy"));
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "policy {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The production shape, resolver and gateway apart: with the resolver stopped after one
/// successful load, the gateway still answers whoami for the token (from memory) while
/// managed-settings fails, and Droid keeps enforcing the org level from its cache
#[test]
fn with_the_resolver_stopped_droid_keeps_enforcing_from_its_cache() {
    let Some(droid) = Droid::find("with_the_resolver_stopped_droid_keeps_enforcing") else {
        return;
    };
    let mock = upstream::start(ANSWER);
    let (gw, rs) = (up::free_port(), up::free_port());
    let here = |text: String| text.replace("127.0.0.1:8787", &format!("127.0.0.1:{gw}"));
    let sandbox = Sandbox::with_project(here);
    without_project_model_policy(&sandbox);
    let root = sandbox.dir.path();
    let org = root.join("org");
    up::copy_edited(
        &droid::workspace().join("policies/examples/acme/org"),
        &org,
        &here,
    );
    let resolver_url = format!("http://127.0.0.1:{rs}");
    let secrets = [
        ("STRATA_ADMIN_TOKEN", "split-admin-token-0123456789"),
        ("STRATA_SERVICE_TOKEN", "split-service-token-0123456789"),
        ("STRATA_RESOLVER", resolver_url.as_str()),
        ("STRATA_TOKEN", "split-admin-token-0123456789"),
        ("ANTHROPIC_API_KEY", CENTRAL_ANTHROPIC),
    ];
    let data = root.join("data");
    let listen = format!("127.0.0.1:{rs}");
    let resolver = spawn(
        &[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &secrets,
    );
    policy(
        &["publish", "org", org.to_str().unwrap(), "-m", "split"],
        &secrets,
    );
    let token = policy(
        &["token", "create", "--user", "alice", "--group", "leads"],
        &secrets,
    );
    let config = root.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{gw}\"\npublic_base_url = \"http://127.0.0.1:{gw}\"\nresolver = \"{resolver_url}\"\n\
             [audit]\ndir = \"{}\"\nretention_days = 1\n[upstreams.anthropic]\nbase_url = \"{}\"\nkey_env = \"ANTHROPIC_API_KEY\"\n",
            root.join("audit").display(),
            mock.url()
        ),
    )
    .unwrap();
    let _gateway = spawn(&["gateway", "--config", config.to_str().unwrap()], &secrets);
    let gateway = format!("http://127.0.0.1:{gw}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&format!("{gateway}/readyz"), "").0 != 200 {
        assert!(Instant::now() < deadline, "the gateway never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let env = with_api(&gateway, &token);
    let run = |what: &str| {
        sandbox.clear_logs();
        let r = droid.exec(
            &sandbox,
            &sandbox.project,
            &env,
            &["-m", BANNED, "say hi"],
            TIMEOUT,
        );
        // (the gateway reads the upstream's model catalogue with GETs of its own)
        let seen: Vec<upstream::Recorded> = mock
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
        assert!(refused_as_blocked(&r), "{what}: {}", describe(&r, &seen));
        assert!(seen.is_empty(), "{what}: {}", describe(&r, &seen));
        r
    };
    run("with the resolver");
    drop(resolver);
    let r = run("with the resolver stopped");
    assert!(
        r.log_text().contains(ORG_FAILED),
        "the org level came from the cache, not the API: {}",
        r.describe()
    );
}
