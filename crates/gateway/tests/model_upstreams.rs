//! Per-model upstreams and obligations, end to end: a real resolver with an org bundle whose
//! `customModels` name their own upstream (mock B, key `${MY_B_KEY}` from the gateway's
//! environment) and the real gateway in front of the configured upstream (mock A). Requests reach
//! B with B's key and nothing of them reaches A; models without an entry, and entries that point
//! at the gateway itself, reach A as before; an unset variable is a 503 naming it;
//! `maxOutputTokens` refuses bodies asking for more, in both error shapes; a key sent as
//! `${STRATA_TOKEN}` is named as such; the audit record keeps the canonical model id.
//!
//! The resolver refuses an org bundle whose `${VAR}` is unset where it compiles, and the workspace
//! forbids `unsafe` (so no `std::env::set_var`): each test runs itself again as a child process
//! with the variables set, as resolver and gateway would be started with them. The test of a
//! gateway that lacks a variable the resolver has starts that gateway as a process of its own,
//! without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response};
use common::{CENTRAL_ANTHROPIC, CENTRAL_OPENAI, Stack};
use serde_json::{Value, json};

/// The value of `MY_B_KEY` in the child process
const B_KEY: &str = "sk-b-own-upstream-key-7d41c0";
const B_VAR: &str = "MY_B_KEY";
/// A variable the resolver's environment has (it refuses an org bundle naming an unset one) and
/// a gateway started without it lacks
const UNSET_VAR: &str = "STRATA_TEST_GATEWAY_LACKS_KEY_4F2";

// ---- mock upstreams ------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

impl Recorded {
    fn take(&self) -> Vec<(String, HeaderMap, Bytes)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn upstream(State(rec): State<Recorded>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().to_string();
    rec.0
        .lock()
        .unwrap()
        .push((path.clone(), parts.headers, body));
    let answer = if path.ends_with("/messages") {
        r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"m","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#
    } else if path.ends_with("/responses") {
        r#"{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}"#
    } else {
        r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(answer))
        .unwrap()
}

async fn start_upstream() -> (SocketAddr, Recorded) {
    let rec = Recorded::default();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(rec.clone());
    (common::serve(app).await, rec)
}

// ---- the bundle ----------------------------------------------------------------------------

/// The example org, with three more custom models on mock B (whose URLs the org's base-URL
/// lists admit): a Chat Completions one and an Anthropic one keyed by `${MY_B_KEY}`, and one
/// keyed by a variable nobody sets
fn org_with_b(dir: &Path, b: SocketAddr) {
    common::copy_dir(&common::examples().join("org"), dir);
    let edit = |file: &str, f: &dyn Fn(&mut Value)| common::edit_json(&dir.join(file), f);
    let b_urls = [format!("http://{b}"), format!("http://{b}/**")];
    edit("settings.json", &|v| {
        let models = v["customModels"].as_array_mut().unwrap();
        let n = models.len();
        for (i, (model, url, provider, var)) in [
            (
                "acme-b-coder",
                format!("http://{b}/v1"),
                "generic-chat-completion-api",
                B_VAR,
            ),
            ("acme-b-claude", format!("http://{b}"), "anthropic", B_VAR),
            (
                "acme-unset-coder",
                format!("http://{b}/v1"),
                "generic-chat-completion-api",
                UNSET_VAR,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            models.push(json!({
                "model": model,
                "id": format!("custom:{model}-{}", n + i),
                "index": n + i,
                "displayName": model,
                "baseUrl": url,
                "provider": provider,
                "apiKey": format!("${{{var}}}"),
                "maxOutputTokens": 1000,
            }));
        }
        let urls = v["modelPolicy"]["allowedBaseUrls"].as_array_mut().unwrap();
        urls.extend(b_urls.iter().map(|u| json!(u)));
    });
    edit("policy.json", &|v| {
        let urls = v["gateway"]["requiredBaseUrls"].as_array_mut().unwrap();
        urls.extend(b_urls.iter().map(|u| json!(u)));
    });
}

struct World {
    s: Stack,
    a: Recorded,
    b: Recorded,
    _org: tempfile::TempDir,
    http: reqwest::Client,
}

async fn world() -> World {
    let (a_addr, a) = start_upstream().await;
    let (b_addr, b) = start_upstream().await;
    let org = tempfile::tempdir().unwrap();
    org_with_b(org.path(), b_addr);
    let s = common::stack_org(a_addr, org.path()).await;
    World {
        s,
        a,
        b,
        _org: org,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl World {
    /// POST `body` to `path` with `token` as the API key (`x-api-key` for Messages, else
    /// `Authorization: Bearer`)
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.s.gateway))
            .header("content-type", "application/json")
            .body(body.to_string());
        req = if path.ends_with("/messages") {
            req.header("x-api-key", token)
                .header("anthropic-version", "2023-06-01")
        } else {
            req.bearer_auth(token)
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, v)
    }

    /// The audit records, once there are `n` (they are written as responses end), or those
    /// written within five seconds
    async fn audit(&self, n: usize) -> Vec<strata_gateway::audit::Record> {
        let dir = self.s.data.path().join("audit");
        let q = strata_gateway::audit::Query::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = strata_gateway::audit::query(&dir, &q)
                .map(|r| r.0)
                .unwrap_or_default();
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Run the test `name` again in a child process with `MY_B_KEY` and [`UNSET_VAR`] set; `true`
/// in the child, which then runs the test's body
fn in_child_with_keys(name: &str) -> bool {
    if std::env::var(B_VAR).is_ok_and(|v| v == B_KEY) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(B_VAR, B_KEY)
        .env(UNSET_VAR, "sk-only-the-resolver-has-this")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
    false
}

/// Run `test` (named `name`) in a child process with the keys set, on a runtime of its own
fn with_keys<F: std::future::Future<Output = ()>>(name: &str, test: impl FnOnce() -> F) {
    if !in_child_with_keys(name) {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test());
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn an_org_custom_model_goes_to_its_own_upstream_with_its_own_key() {
    with_keys(
        "an_org_custom_model_goes_to_its_own_upstream_with_its_own_key",
        || async {
            let w = world().await;
            let bob = w.s.bob.clone();

            // Chat Completions: B's /v1/chat/completions, B's key, the body as sent
            let body = json!({"model": "acme-b-coder", "max_completion_tokens": 1000,
                "messages": [{"role": "user", "content": "hi"}]});
            let (status, _, v) = w.post("/v1/chat/completions", &bob, body.clone()).await;
            assert_eq!(status, 200, "{v}");
            let got = w.b.take();
            assert_eq!(got.len(), 1);
            let (path, h, sent) = &got[0];
            assert_eq!(path, "/v1/chat/completions");
            assert_eq!(
                header(h, "authorization"),
                Some(&*format!("Bearer {B_KEY}"))
            );
            assert_eq!(&sent[..], body.to_string().as_bytes());
            assert!(w.a.take().is_empty(), "A saw a request for B's model");

            // Anthropic Messages, under any base-URL shape the client uses: B's /v1/messages,
            // B's key in x-api-key, and no Strata token or central key anywhere
            let body = json!({"model": "acme-b-claude", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]});
            let (status, _, v) = w.post("/anthropic/v1/v1/messages", &bob, body).await;
            assert_eq!(status, 200, "{v}");
            let got = w.b.take();
            assert_eq!(got.len(), 1);
            let (path, h, _) = &got[0];
            assert_eq!(path, "/v1/messages");
            assert_eq!(header(h, "x-api-key"), Some(B_KEY));
            assert!(h.get("authorization").is_none());
            for (_, v) in h {
                let v = v.to_str().unwrap_or_default();
                assert!(
                    !v.contains(&bob)
                        && !v.contains(CENTRAL_ANTHROPIC)
                        && !v.contains(CENTRAL_OPENAI),
                    "B saw a secret that is not its own: {v}"
                );
            }
            assert!(w.a.take().is_empty());

            // a model without an entry goes to the configured upstream (A) with the central key
            let body = json!({"model": "gpt-5-mini", "messages": []});
            let (status, _, v) = w.post("/v1/chat/completions", &bob, body).await;
            assert_eq!(status, 200, "{v}");
            let got = w.a.take();
            assert_eq!(got.len(), 1);
            assert_eq!(
                header(&got[0].1, "authorization"),
                Some(&*format!("Bearer {CENTRAL_OPENAI}"))
            );
            assert!(w.b.take().is_empty());

            // an entry whose baseUrl is the gateway's own public URL (claude-sonnet-4-5 in the
            // example) goes to the configured upstream as before: no loop
            let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []});
            let (status, _, v) = w.post("/v1/messages", &bob, body).await;
            assert_eq!(status, 200, "{v}");
            let got = w.a.take();
            assert_eq!(got.len(), 1);
            assert_eq!(header(&got[0].1, "x-api-key"), Some(CENTRAL_ANTHROPIC));
            assert!(w.b.take().is_empty());

            // the model's upstream speaks Chat Completions: an Anthropic body for it is refused
            // before it goes anywhere
            let body = json!({"model": "acme-b-coder", "max_tokens": 10, "messages": []});
            let (status, _, v) = w.post("/v1/messages", &bob, body).await;
            assert_eq!(status, 400, "{v}");
            assert_eq!(v["error"]["code"], "wrong_api_for_model", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("/v1/chat/completions"),
                "{v}"
            );
            assert!(w.a.take().is_empty() && w.b.take().is_empty());
        },
    );
}

#[test]
fn an_unset_key_variable_is_a_503_naming_the_variable() {
    with_keys(
        "an_unset_key_variable_is_a_503_naming_the_variable",
        || async {
            // the resolver (this process) has the variable and publishes the bundle; the gateway is a
            // process started without it
            let (a_addr, a) = start_upstream().await;
            let (b_addr, b) = start_upstream().await;
            let data = tempfile::tempdir().unwrap();
            let org = data.path().join("org");
            org_with_b(&org, b_addr);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let resolver_addr = listener.local_addr().unwrap();
            let resolver = common::start_resolver(&data.path().join("sled"), listener).await;
            let (_, bob) = common::seed_org(&format!("http://{resolver_addr}"), None, &org).await;
            let d = data.path();
            let toml = common::write(
                d,
                "gateway.toml",
                &format!(
                    r#"
listen = "127.0.0.1:0"
public_base_url = "http://127.0.0.1:8787"
resolver = "http://{resolver_addr}"
service_token_file = "{svc}"
decision_timeout_ms = 2000
model_catalog_refresh_secs = 0
[upstreams.anthropic]
base_url = "http://{a_addr}"
key_file = "{ka}"
[upstreams.generic-chat-completion-api]
base_url = "http://{a_addr}"
key_file = "{ko}"
"#,
                    svc = common::write(d, "svc", common::SERVICE),
                    ka = common::write(d, "ka", CENTRAL_ANTHROPIC),
                    ko = common::write(d, "ko", CENTRAL_OPENAI),
                ),
            );
            let log = d.join("gateway.log");
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["gateway_process", "--exact", "--ignored", "--nocapture"])
                .env(GATEWAY_TOML, &toml)
                .env_remove(UNSET_VAR)
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let addr = tokio::task::spawn_blocking(move || {
                use std::io::BufRead;
                std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .find_map(|l| l.strip_prefix(LISTENING).map(str::to_string))
            })
            .await
            .unwrap();
            let Some(addr) = addr else {
                let _ = child.kill();
                panic!("the gateway process did not start");
            };
            // the gateway that installs it for the other tests runs elsewhere here
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            // said at start, before any request needs the key: the gauge counts the one model
            missing_credentials_become(&http, &addr, 1).await;
            let r = http
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(&bob)
                .json(&json!({"model": "acme-unset-coder", "messages": []}))
                .send()
                .await
                .unwrap();
            // a new revision without that entry: checked again, nothing missing
            let admin = strata_transport::endpoint(&format!("http://{resolver_addr}"), None)
                .unwrap()
                .connect()
                .await
                .unwrap();
            strata_proto::v1::admin_service_client::AdminServiceClient::new(admin)
                .publish_org(common::auth(strata_proto::v1::PublishOrgRequest {
                    files: common::files(&common::examples().join("org")),
                    message: String::new(),
                }))
                .await
                .unwrap();
            missing_credentials_become(&http, &addr, 0).await;
            let _ = child.kill();
            let _ = child.wait();
            // one warning, naming the model and the variable, never a value
            let log = std::fs::read_to_string(&log).unwrap();
            let warned: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") && l.contains("acme-unset-coder"))
                .collect();
            assert_eq!(warned.len(), 1, "{log}");
            assert!(warned[0].contains(UNSET_VAR), "{log}");
            assert!(!log.contains("sk-only-the-resolver-has-this"), "{log}");
            assert!(!log.contains(B_KEY), "{log}");
            let status = r.status().as_u16();
            let source = r
                .headers()
                .get("x-strata-error-source")
                .map(|v| v.to_str().unwrap().to_string());
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 503, "{v}");
            assert_eq!(v["error"]["code"], "missing_credential", "{v}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains(&format!("`{UNSET_VAR}`")), "{m}");
            assert!(m.contains("acme-unset-coder"), "{m}");
            assert!(!m.contains("sk-only-the-resolver-has-this"), "{m}");
            assert_eq!(source.as_deref(), Some("gateway"));
            assert!(a.take().is_empty() && b.take().is_empty());
            resolver.stop().await;
        },
    );
}

/// Wait (at most 10 s) until the gateway at `addr` reports `n` missing credentials
async fn missing_credentials_become(http: &reqwest::Client, addr: &str, n: u64) {
    let want = format!("strata_gateway_missing_credentials {n}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "never {want}: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The environment variable naming the configuration [`gateway_process`] runs
const GATEWAY_TOML: &str = "STRATA_TEST_GATEWAY_TOML";
/// The line [`gateway_process`] prints, before its address
const LISTENING: &str = "gateway listening on ";

/// Not a test: a gateway in a process of its own (with the environment its parent gave it), run
/// by [`an_unset_key_variable_is_a_503_naming_the_variable`]
#[test]
#[ignore = "run by another test as a process of its own"]
fn gateway_process() {
    let Ok(path) = std::env::var(GATEWAY_TOML) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let cfg = strata_gateway::GatewayConfig::load(Path::new(&path)).unwrap();
            let gw = Arc::new(strata_gateway::Gateway::new(cfg).unwrap());
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("{LISTENING}{}", l.local_addr().unwrap());
            strata_gateway::serve(gw, l, std::future::pending())
                .await
                .unwrap();
        });
}

#[test]
fn max_output_tokens_refuses_more_and_forwards_less() {
    with_keys(
        "max_output_tokens_refuses_more_and_forwards_less",
        || async {
            let w = world().await;
            let bob = w.s.bob.clone();

            // Anthropic shape: claude-sonnet-4-5's org entry caps it at 64000
            let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64001, "messages": []});
            let (status, h, v) = w.post("/v1/messages", &bob, body).await;
            assert_eq!(status, 400, "{v}");
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert_eq!(v["error"]["code"], "max_tokens_exceeded", "{v}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains("`max_tokens` is 64001"), "{m}");
            assert!(m.contains("64000"), "{m}");
            assert!(m.contains("org#customModels"), "{m}");
            assert!(m.contains("settings.json:"), "{m}");
            assert!(m.contains("/customModels/1/maxOutputTokens"), "{m}");
            assert_eq!(header(&h, "x-strata-error-source"), Some("policy"));
            assert!(h.get("x-strata-decision-id").is_some());

            // OpenAI shape: Chat Completions, the larger of the two fields counts
            let body = json!({"model": "acme-b-coder", "max_tokens": 10,
        "max_completion_tokens": 1001, "messages": []});
            let (status, _, v) = w.post("/v1/chat/completions", &bob, body).await;
            assert_eq!(status, 400, "{v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert_eq!(v["error"]["code"], "max_tokens_exceeded", "{v}");
            assert!(v["error"]["param"].is_null(), "{v}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains("`max_completion_tokens` is 1001"), "{m}");

            // Responses: `max_output_tokens` (gpt-5-codex is capped at 32000; alice may use it)
            let body = json!({"model": "gpt-5-codex", "max_output_tokens": 32001, "input": "hi"});
            let (status, _, v) = w.post("/v1/responses", &w.s.alice, body).await;
            assert_eq!(status, 400, "{v}");
            assert_eq!(v["error"]["code"], "max_tokens_exceeded", "{v}");
            assert!(w.a.take().is_empty() && w.b.take().is_empty());

            // at the cap, and without a limit, the body goes as it is
            let at = json!({"model": "claude-sonnet-4-5", "max_tokens": 64000, "messages": []});
            let (status, _, v) = w.post("/v1/messages", &bob, at.clone()).await;
            assert_eq!(status, 200, "{v}");
            let body = json!({"model": "gpt-5-codex", "input": "hi"});
            let (status, _, v) = w.post("/v1/responses", &w.s.alice, body.clone()).await;
            assert_eq!(status, 200, "{v}");
            let got = w.a.take();
            assert_eq!(got.len(), 2);
            assert_eq!(&got[0].2[..], at.to_string().as_bytes());
            assert_eq!(&got[1].2[..], body.to_string().as_bytes());

            // the audit record of the refusal says why
            let records = w.audit(5).await;
            let refused: Vec<_> = records
                .iter()
                .filter(|r| r.error.as_deref() == Some("max_tokens_exceeded"))
                .collect();
            assert_eq!(refused.len(), 3, "{records:#?}");
            assert!(refused.iter().all(|r| r.status == 400));
        },
    );
}

#[test]
fn an_unexpanded_variable_as_the_key_is_named() {
    with_keys("an_unexpanded_variable_as_the_key_is_named", || async {
        let w = world().await;
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []});
        let (status, _, v) = w.post("/v1/messages", "${STRATA_TOKEN}", body).await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(v["error"]["type"], "authentication_error", "{v}");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("unexpanded variable `STRATA_TOKEN`"), "{m}");
        assert!(m.contains("export STRATA_TOKEN"), "{m}");
        assert!(m.contains("Droid"), "{m}");

        // any ${NAME}, in the OpenAI shape too, and on the model list
        let body = json!({"model": "gpt-5-mini", "messages": []});
        let (status, _, v) = w
            .post("/v1/chat/completions", "${ACME_GW_TOKEN}", body)
            .await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`ACME_GW_TOKEN`"),
            "{v}"
        );
        let r = w
            .http
            .get(format!("{}/v1/models", w.s.gateway))
            .bearer_auth("${STRATA_TOKEN}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("`STRATA_TOKEN`"));
        assert!(w.a.take().is_empty());
    });
}

#[test]
fn the_audit_record_keeps_the_model_as_sent_and_as_the_rules_read_it() {
    with_keys(
        "the_audit_record_keeps_the_model_as_sent_and_as_the_rules_read_it",
        || async {
            let w = world().await;
            let body = json!({"model": "openai/gpt-5-mini", "messages": []});
            let (status, _, v) = w.post("/v1/chat/completions", &w.s.bob, body).await;
            assert_eq!(status, 200, "{v}");
            let body = json!({"model": "gpt-5-mini", "messages": []});
            let (status, _, v) = w.post("/v1/chat/completions", &w.s.bob, body).await;
            assert_eq!(status, 200, "{v}");
            let records = w.audit(2).await;
            assert_eq!(records.len(), 2, "{records:#?}");
            assert_eq!(records[0].model, "openai/gpt-5-mini");
            assert_eq!(records[0].canonical_model.as_deref(), Some("gpt-5-mini"));
            assert_eq!(records[1].model, "gpt-5-mini");
            assert_eq!(records[1].canonical_model, None);
            let line = serde_json::to_value(&records[0]).unwrap();
            assert_eq!(line["canonical_model"], "gpt-5-mini");
            assert!(
                serde_json::to_value(&records[1])
                    .unwrap()
                    .get("canonical_model")
                    .is_none()
            );

            // `policy audit --model gpt-5-mini` finds both
            let dir = w.s.data.path().join("audit");
            let q = strata_gateway::audit::Query {
                model: Some("gpt-5-mini".into()),
                ..Default::default()
            };
            assert_eq!(strata_gateway::audit::query(&dir, &q).unwrap().0.len(), 2);
        },
    );
}
