//! Real clients: the official Python `anthropic` and `openai` SDKs (tests/sdk/test_clients.py)
//! call the real gateway, in front of a mock upstream that answers in the providers' real wire
//! formats (JSON and SSE), streaming and not; a denied call must raise the SDK's permission error
//! carrying the rule. Then this side checks what the upstream received.
//!
//! The interpreter comes from `STRATA_SDK_PYTHON` (a virtualenv with both SDKs; `.ci/run` makes
//! one). Unset: skipped with a note, unless `STRATA_REQUIRE_SDK=1`, as in CI, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response};
use common::{CENTRAL_ANTHROPIC, CENTRAL_OPENAI};
use serde_json::{Value, json};

/// What the mock upstream answers every prompt with (then ` echo: <prompt>`)
const REPLY: &str = "Hello from the mock upstream,";
const USAGE_IN: u64 = 13;
const USAGE_OUT: u64 = 7;
const CREATED: u64 = 1_760_000_000;

// ---- mock upstream: the providers' wire formats -----------------------------------------------

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap, Value)>>>);

/// The text of the last user turn (or a legacy completion's prompt): a string, or the text parts
/// of a content array
fn prompt(body: &Value) -> String {
    let last = match (&body["messages"], &body["input"]) {
        (Value::Array(m), _) => m.last().map(|m| m["content"].clone()).unwrap_or_default(),
        (_, Value::Array(items)) => items
            .last()
            .map(|m| m["content"].clone())
            .unwrap_or_default(),
        (_, Value::Null) => body["prompt"].clone(), // legacy completions
        (_, input) => input.clone(),
    };
    match last {
        Value::String(s) => s,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The answer text in the pieces a stream sends it in
fn pieces(body: &Value) -> Vec<String> {
    format!("{REPLY} echo: {}", prompt(body))
        .split_inclusive(' ')
        .map(str::to_string)
        .collect()
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "req_mock_1")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// Events as an SSE body, each split in two TCP writes a few ms apart, so that the client's
/// decoder has to join lines across chunks
fn sse(events: Vec<String>) -> Response<Body> {
    let chunks: Vec<String> = events
        .into_iter()
        .flat_map(|e| {
            let mid = e.len() / 2;
            [e[..mid].to_string(), e[mid..].to_string()]
        })
        .collect();
    let stream = futures::stream::unfold(chunks.into_iter(), |mut it| async move {
        let c = it.next()?;
        tokio::time::sleep(Duration::from_millis(3)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from(c)), it))
    });
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn anthropic_messages(body: &Value) -> Response<Body> {
    let model = body["model"].clone();
    let text = pieces(body).concat();
    if body["stream"] != true {
        return json_response(
            200,
            &json!({
                "id": "msg_01MockUpstream", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }),
        );
    }
    let mut ev = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_01MockUpstream", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    for p in pieces(body) {
        ev.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    ev.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    ev.push(event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": USAGE_OUT}}),
    ));
    ev.push(event("message_stop", &json!({"type": "message_stop"})));
    sse(ev)
}

fn chat_completions(body: &Value) -> Response<Body> {
    let model = body["model"].clone();
    let usage = json!({"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                       "total_tokens": USAGE_IN + USAGE_OUT});
    if body["stream"] != true {
        return json_response(
            200,
            &json!({
                "id": "chatcmpl-mock1", "object": "chat.completion", "created": CREATED,
                "model": model, "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": pieces(body).concat(),
                                         "refusal": null}}],
                "usage": usage,
            }),
        );
    }
    let include_usage = body["stream_options"]["include_usage"] == true;
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk",
                           "created": CREATED, "model": model, "system_fingerprint": "fp_mock",
                           "choices": choices});
        if include_usage {
            c["usage"] = usage.cloned().unwrap_or(Value::Null);
        }
        format!("data: {c}\n\n")
    };
    let mut ev = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                "logprobs": null, "finish_reason": null}]),
        None,
    )];
    for p in pieces(body) {
        ev.push(chunk(
            json!([{"index": 0, "delta": {"content": p}, "logprobs": null, "finish_reason": null}]),
            None,
        ));
    }
    ev.push(chunk(
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
        None,
    ));
    if include_usage {
        ev.push(chunk(json!([]), Some(&usage)));
    }
    ev.push("data: [DONE]\n\n".to_string());
    sse(ev)
}

fn response_object(model: &Value, status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": "resp_mock1", "object": "response", "created_at": CREATED, "status": status,
        "background": false, "error": null, "incomplete_details": null, "instructions": null,
        "max_output_tokens": null, "model": model, "output": output,
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage, "user": null, "metadata": {},
    })
}

fn responses(body: &Value) -> Response<Body> {
    let model = body["model"].clone();
    let text = pieces(body).concat();
    let usage = json!({"input_tokens": USAGE_IN, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": USAGE_OUT,
                       "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": USAGE_IN + USAGE_OUT});
    let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    let item = json!({"id": "msg_mock1", "type": "message", "status": "completed",
                      "role": "assistant", "content": [part]});
    if body["stream"] != true {
        return json_response(
            200,
            &response_object(&model, "completed", json!([item]), usage),
        );
    }
    let mut seq = 0u64;
    let mut ev = Vec::new();
    let mut push = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        ev.push(event(kind, &data));
    };
    let at = json!({"item_id": "msg_mock1", "output_index": 0, "content_index": 0});
    let with = |extra: Value| {
        let mut v = at.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let started = response_object(&model, "in_progress", json!([]), Value::Null);
    push("response.created", json!({"response": started}));
    push("response.in_progress", json!({"response": started}));
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"id": "msg_mock1", "type": "message",
               "status": "in_progress", "role": "assistant", "content": []}}),
    );
    push(
        "response.content_part.added",
        with(
            json!({"part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        ),
    );
    for p in pieces(body) {
        push(
            "response.output_text.delta",
            with(json!({"delta": p, "logprobs": []})),
        );
    }
    push(
        "response.output_text.done",
        with(json!({"text": text, "logprobs": []})),
    );
    push("response.content_part.done", with(json!({"part": part})));
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    push(
        "response.completed",
        json!({"response": response_object(&model, "completed", json!([item]), usage)}),
    );
    sse(ev)
}

async fn upstream(State(rec): State<Recorded>, req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    rec.0
        .lock()
        .unwrap()
        .push((path.clone(), parts.headers, body.clone()));
    if prompt(&body) == "please-fail" {
        return json_response(
            529,
            &json!({"type": "error", "error": {"type": "overloaded_error",
                                               "message": "upstream is overloaded"}}),
        );
    }
    match path.as_str() {
        "/v1/messages" => anthropic_messages(&body),
        "/v1/messages/count_tokens" => json_response(200, &json!({"input_tokens": USAGE_IN})),
        "/v1/chat/completions" => chat_completions(&body),
        "/v1/responses" => responses(&body),
        _ => json_response(
            404,
            &json!({"error": {"type": "not_found_error", "message": format!("mock: no {path}")}}),
        ),
    }
}

async fn start_upstream() -> (SocketAddr, Recorded) {
    let rec = Recorded::default();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(rec.clone());
    (common::serve(app).await, rec)
}

/// The example org, with `acme-qwen3-coder`'s `baseUrl` at `up` (`http://{up}/v1`, as Droid and
/// the OpenAI SDK write it), admitted by the org's base-URL lists
fn own_upstream_org(dir: &Path, up: SocketAddr) {
    common::copy_dir(&common::examples().join("org"), dir);
    let edit = |file: &str, f: &dyn Fn(&mut Value)| common::edit_json(&dir.join(file), f);
    let urls = [format!("http://{up}"), format!("http://{up}/**")];
    edit("settings.json", &|v| {
        for m in v["customModels"].as_array_mut().unwrap() {
            if m["model"] == "acme-qwen3-coder" {
                m["baseUrl"] = json!(format!("http://{up}/v1"));
            }
        }
        let list = v["modelPolicy"]["allowedBaseUrls"].as_array_mut().unwrap();
        list.extend(urls.iter().map(|u| json!(u)));
    });
    edit("policy.json", &|v| {
        let list = v["gateway"]["requiredBaseUrls"].as_array_mut().unwrap();
        list.extend(urls.iter().map(|u| json!(u)));
    });
}

// ---- the Python side ------------------------------------------------------------------------

/// The interpreter to run the SDK script with; `None`: skip
fn python() -> Option<String> {
    match std::env::var("STRATA_SDK_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("STRATA_REQUIRE_SDK").as_deref() != Ok("1"),
                "STRATA_REQUIRE_SDK=1 but STRATA_SDK_PYTHON is unset: point it at a Python with \
                 the `anthropic` and `openai` packages (.ci/run makes one)"
            );
            // straight to stderr, past the test harness's capture, so a plain `cargo test` shows it
            let _ = writeln!(
                std::io::stderr(),
                "skipped: set STRATA_SDK_PYTHON to a Python with the `anthropic` and `openai` \
                 packages to run the real-client tests (see crates/gateway/README.md)"
            );
            None
        }
    }
}

struct Ran {
    ok: bool,
    out: String,
}

/// Run the script, output to files (no pipe to fill), killed after `limit`
fn run_script(python: &str, spec: &Value, dir: &Path, limit: Duration) -> Ran {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/test_clients.py");
    let log = dir.join("sdk.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    // nothing from the developer's environment may steer the clients elsewhere
    for (k, _) in std::env::vars() {
        let l = k.to_ascii_lowercase();
        if l.starts_with("anthropic_") || l.starts_with("openai_") || l.ends_with("_proxy") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run STRATA_SDK_PYTHON=`{python}`: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = std::fs::read_to_string(&log).unwrap_or_default();
    if status.is_none() {
        out.push_str(&format!("\n(killed after {limit:?})"));
    }
    Ran {
        ok: status.is_some_and(|s| s.success()),
        out,
    }
}

// ---- the test ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_through_the_gateway() {
    let Some(python) = python() else { return };
    let (up, rec) = start_upstream().await;
    // the org's self-hosted `acme-qwen3-coder` on an upstream of its own (B): the SDK's chat
    // calls go there, joined as the SDK joins its base URL, and never to the configured one
    let (own_up, own_rec) = start_upstream().await;
    let org = tempfile::tempdir().unwrap();
    own_upstream_org(org.path(), own_up);
    let s = common::stack_org(up, org.path()).await;
    let spec = json!({
        "gateway": s.gateway,
        "token": s.alice,
        "other_token": s.bob,
        "reply": REPLY,
        "usage": {"input": USAGE_IN, "output": USAGE_OUT},
        "models": {"anthropic": "claude-sonnet-4-5", "responses": "gpt-5-codex",
                   "chat": "acme-qwen3-coder"},
        "byok": {"anthropic": "claude-sonnet-4-5", "responses": "gpt-5-codex"},
        "denied": [
            // the org bans gpt-4o* (the project's attempt to allow it does not lift that)
            {"api": "chat", "model": "gpt-4o", "rule": "org#modelPolicy.blockedModelIds"},
            {"api": "responses", "model": "gpt-4o-mini", "rule": "org#modelPolicy.blockedModelIds"},
            // frontier models are for `leads` only; bob is in no group
            {"api": "messages", "model": "claude-opus-4-1", "who": "other_token",
             "rule": "org#policies/frontier.cedar/frontier-leads-only"},
            // project web: frontier models only with the org's key
            {"api": "responses", "model": "gpt-5-codex", "rule": "#policies/web.cedar/no-frontier-byok",
             "headers": {"X-Strata-Governance-Token": "$TOKEN", "X-Strata-Project": "web"}},
        ],
        "listed": ["claude-sonnet-4-5", "claude-opus-4-1", "gpt-5-codex"],
        "unlisted": ["gpt-4o", "gpt-4o-mini"],
    });
    let dir = tempfile::tempdir().unwrap();
    let (py, sp, d) = (python.clone(), spec.clone(), dir.path().to_path_buf());
    let ran =
        tokio::task::spawn_blocking(move || run_script(&py, &sp, &d, Duration::from_secs(120)))
            .await
            .unwrap();
    assert!(
        ran.ok,
        "the SDK checks failed (STRATA_SDK_PYTHON={python}):\n{}",
        ran.out
    );
    eprintln!("{}", ran.out.trim_end());

    // what the model's own upstream received: the chat calls, at the path the SDK's base URL
    // gives, without any key (its entry names no `${VAR}`: the org's key never goes there)
    let own = own_rec.0.lock().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (path, h, body) in own.iter() {
        assert_eq!(path, "/v1/chat/completions", "{h:?}");
        assert_eq!(body["model"], "acme-qwen3-coder");
        for name in ["authorization", "x-api-key", "x-strata-governance-token"] {
            assert!(
                !h.contains_key(name),
                "{name} went to the model's own upstream: {h:?}"
            );
        }
        seen.insert((path.clone(), prompt(body), body["stream"] == true));
    }
    drop(own);

    // what the configured upstream received
    let rec = rec.0.lock().unwrap();
    assert!(
        rec.iter().all(|(_, _, b)| b["model"] != "acme-qwen3-coder"),
        "the configured upstream got a call for a model with its own upstream"
    );
    let models: Vec<&str> = rec
        .iter()
        .map(|(_, _, b)| b["model"].as_str().unwrap_or(""))
        .collect();
    for denied in ["gpt-4o", "gpt-4o-mini", "claude-opus-4-1"] {
        assert!(
            !models.contains(&denied),
            "a denied call went upstream: {models:?}"
        );
    }
    // refused calls (denied, over the body limit, an unknown path) never reach the upstream
    for (path, _, body) in rec.iter() {
        let p = prompt(body);
        assert!(
            p != "denied?" && !p.starts_with("long conversation") && !p.starts_with("legacy"),
            "a refused call went upstream: {path} `{}`",
            p.chars().take(40).collect::<String>()
        );
    }
    let leaks = |h: &HeaderMap| {
        h.iter().any(|(_, v)| {
            let v = v.as_bytes();
            [&s.alice, &s.bob]
                .iter()
                .any(|t| v.windows(t.len()).any(|w| w == t.as_bytes()))
        })
    };
    for (path, h, body) in rec.iter() {
        assert!(!leaks(h), "a gateway token went upstream on {path}: {h:?}");
        assert!(
            !h.contains_key("x-strata-governance-token") && !h.contains_key("x-strata-project"),
            "{path}: {h:?}"
        );
        let p = prompt(body);
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let anthropic = path.starts_with("/v1/messages");
        if !p.contains("byok") {
            // central: the org's key, in the provider's own header, and no other credential
            let (name, want, other) = if anthropic {
                ("x-api-key", CENTRAL_ANTHROPIC.to_string(), "authorization")
            } else {
                (
                    "authorization",
                    format!("Bearer {CENTRAL_OPENAI}"),
                    "x-api-key",
                )
            };
            assert_eq!(header(name), Some(want.as_str()), "{path} `{p}`: {h:?}");
            assert_eq!(header(other), None, "{path} `{p}`: {h:?}");
        } else {
            // BYOK: the user's own key, in the header the SDK put it in (anthropic 2.x sends
            // `Authorization: Bearer`, older versions `x-api-key`)
            let want = if anthropic {
                "sk-ant-byok-alice-0123"
            } else {
                "sk-byok-alice-0123"
            };
            let sent = header("x-api-key")
                .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")));
            assert_eq!(sent, Some(want), "{path} `{p}`: {h:?}");
        }
        if path.starts_with("/v1/messages") {
            assert!(h.contains_key("anthropic-version"), "{path}: {h:?}");
        }
        seen.insert((path.clone(), p, body["stream"] == true));
    }
    for (path, prompt, stream) in [
        ("/v1/messages", "anthropic create", false),
        ("/v1/messages", "anthropic stream helper", true),
        ("/v1/messages", "anthropic stream raw", true),
        ("/v1/messages", "anthropic byok", false),
        ("/v1/messages/count_tokens", "count me", false),
        ("/v1/chat/completions", "chat create", false),
        ("/v1/chat/completions", "chat stream", true),
        ("/v1/responses", "responses create", false),
        ("/v1/responses", "responses stream", true),
        ("/v1/responses", "responses stream helper", true),
        ("/v1/responses", "responses byok", false),
    ] {
        assert!(
            seen.contains(&(path.to_string(), prompt.to_string(), stream)),
            "the upstream never got {path} `{prompt}` (stream: {stream}): {seen:?}"
        );
    }
}
