//! The gateway end to end: a real resolver (sled, gRPC) and the real gateway on 127.0.0.1:0, in
//! front of a mock upstream that records what it receives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response};
use common::{CENTRAL_ANTHROPIC, CENTRAL_OPENAI, ResolverProc, start_resolver};
use strata_proto::v1::{self, admin_service_client::AdminServiceClient};

// ---- mock upstream ------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

async fn upstream(State(rec): State<Recorded>, req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // recorded with the query string, to see that it is forwarded
    let target = parts.uri.path_and_query().map(|p| p.to_string());
    rec.0.lock().unwrap().push((
        target.unwrap_or_else(|| path.clone()),
        parts.headers.clone(),
        body.clone(),
    ));
    let text = String::from_utf8_lossy(&body).to_string();
    if text.contains("please-fail") {
        return Response::builder().status(529).header("content-type", "application/json").body(Body::from(r#"{"type":"error","error":{"type":"overloaded_error","message":"upstream is overloaded"}}"#)).unwrap();
    }
    if text.contains("please-stream-forever") {
        // an event every 20 ms until the gateway goes away; the guard notes when this stream
        // is dropped, i.e. when the upstream request was cancelled
        let guard = DropFlag;
        let stream = futures::stream::unfold(guard, |g| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from_static(
                    b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
                )),
                g,
            ))
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if text.contains("please-stream-usage") {
        let events = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":21,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(events))
            .unwrap();
    }
    if text.contains("\"stream\":true") {
        // three events, 300 ms apart: a buffering proxy would deliver them all at the end
        let stream = futures::stream::unfold(0u8, |i| async move {
            if i == 3 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let ev = format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{i}}}\n\n"
            );
            Some((Ok::<_, std::io::Error>(Bytes::from(ev)), i + 1))
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let answer = if path.ends_with("/messages") {
        r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"m","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#
    } else {
        r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(answer))
        .unwrap()
}

/// Upstream streams dropped so far (the mock's endless streams)
static STREAMS_DROPPED: AtomicUsize = AtomicUsize::new(0);

struct DropFlag;

impl Drop for DropFlag {
    fn drop(&mut self) {
        STREAMS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

async fn start_upstream() -> (SocketAddr, Recorded) {
    let rec = Recorded::default();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(rec.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, rec)
}

struct World {
    gateway: String,
    resolver_addr: SocketAddr,
    resolver: Option<ResolverProc>,
    data: tempfile::TempDir,
    rec: Recorded,
    alice: String,
    bob: String,
    http: reqwest::Client,
}

async fn world() -> World {
    let (up, rec) = start_upstream().await;
    let s = common::stack(up).await;
    World {
        gateway: s.gateway,
        resolver_addr: s.resolver_addr,
        resolver: s.resolver,
        data: s.data,
        rec,
        alice: s.alice,
        bob: s.bob,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

const SONNET: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_key_is_injected_and_the_client_token_stripped() {
    let w = world().await;
    for path in [
        "/v1/messages",
        "/v1/v1/messages",
        "/anthropic/v1/messages?beta=true",
    ] {
        let r = w
            .http
            .post(format!("{}{path}", w.gateway))
            .header("x-api-key", &w.alice)
            .header("anthropic-version", "2023-06-01")
            .body(SONNET)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        assert!(r.headers().contains_key("x-strata-decision-id"));
    }
    let rec = w.rec.0.lock().unwrap();
    assert_eq!(rec.len(), 3);
    let paths: Vec<&str> = rec.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        paths,
        ["/v1/messages", "/v1/messages", "/v1/messages?beta=true"],
        "the API's own path, and the query string goes along"
    );
    for (_, headers, body) in rec.iter() {
        assert_eq!(headers.get("x-api-key").unwrap(), CENTRAL_ANTHROPIC);
        assert_eq!(headers.get("anthropic-version").unwrap(), "2023-06-01");
        assert!(
            headers.iter().all(|(_, v)| !v
                .as_bytes()
                .windows(w.alice.len())
                .any(|x| x == w.alice.as_bytes())),
            "the gateway token never goes upstream"
        );
        assert_eq!(
            body.as_ref(),
            SONNET.as_bytes(),
            "the original bytes are forwarded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_forwards_the_users_key_and_strips_the_governance_header() {
    let w = world().await;
    let body = r#"{"model":"gpt-5-codex","input":"hi"}"#;
    let r = w
        .http
        .post(format!("{}/openai/v1/responses", w.gateway))
        .header("authorization", "Bearer sk-alice-own-key")
        .header("X-Coder-AI-Governance-Token", &w.alice)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rec = w.rec.0.lock().unwrap();
    let (path, headers, _) = rec.last().unwrap();
    assert_eq!(path, "/v1/responses");
    assert_eq!(
        headers.get("authorization").unwrap(),
        "Bearer sk-alice-own-key"
    );
    assert!(
        !headers.contains_key("x-coder-ai-governance-token")
            && !headers.contains_key("x-strata-governance-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_in_each_providers_shape() {
    let w = world().await;
    let r = w
        .http
        .post(format!("{}/v1/chat/completions", w.gateway))
        .header("authorization", format!("Bearer {}", w.alice))
        .body(r#"{"model":"gpt-4o","messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers().contains_key("x-strata-decision-id")
            && r.headers().contains_key("x-strata-revision")
    );
    assert_eq!(r.headers().get("x-strata-error-source").unwrap(), "policy");
    let v: serde_json::Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("org#modelPolicy.blockedModelIds") && msg.contains("settings.json"),
        "{msg}"
    );
    assert_eq!(v["error"]["type"], "permission_error");

    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.bob)
        .body(r#"{"model":"claude-opus-4-1","max_tokens":5,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("frontier"),
        "{v}"
    );
    assert!(
        w.rec.0.lock().unwrap().is_empty(),
        "nothing denied went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_and_bad_requests() {
    let w = world().await;
    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .body(SONNET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", "strata_gw_wrong")
        .body(SONNET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // refused from the declared length, before the body is read, and the connection closed. A
    // client still sending then may see the close before the answer (a reset); hostile.rs checks
    // the 413 itself on a raw socket, where the order is certain
    match w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
    {
        Ok(r) => {
            assert_eq!(r.status(), 413);
            assert_eq!(
                r.headers().get("connection").unwrap(),
                "close",
                "the rest of the body is unread: the connection cannot be reused"
            );
        }
        Err(e) => assert!(
            !e.is_timeout() && !e.is_connect(),
            "the gateway should answer or close, not hang or refuse to connect: {e}"
        ),
    }
    let r = w
        .http
        .post(format!("{}/v1/completions", w.gateway))
        .header("x-api-key", &w.alice)
        .body(SONNET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/completions")
    );
    assert!(w.rec.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_event_by_event_and_byte_exact() {
    let w = world().await;
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}"#;
    let start = Instant::now();
    let mut r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    let first_at = start.elapsed();
    let mut all = first.to_vec();
    // when each piece reached the client
    let mut arrivals = vec![first_at];
    while let Some(c) = r.chunk().await.unwrap() {
        all.extend_from_slice(&c);
        arrivals.push(start.elapsed());
    }
    let total = start.elapsed();
    assert!(
        first.starts_with(b"event: content_block_delta"),
        "{first:?}"
    );
    // the upstream sends its three events 300 ms apart: the gateway must pass each on as it
    // comes, so the client sees them spread over about 600 ms, not together at the end
    let last_at = arrivals.last().copied().unwrap_or(first_at);
    assert!(
        last_at - first_at >= Duration::from_millis(500),
        "the events reached the client within {:?} of each other (at {arrivals:?}): buffered",
        last_at - first_at
    );
    assert!(
        first_at + Duration::from_millis(300) <= total,
        "first event after {first_at:?}, all after {total:?}: buffered"
    );
    let expect: String = (0..3).map(|i| format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{i}}}\n\n")).collect();
    assert_eq!(String::from_utf8(all).unwrap(), expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_pass_through_marked() {
    let w = world().await;
    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body(
            r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"please-fail"}]}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    assert_eq!(
        r.headers().get("x-strata-error-source").unwrap(),
        "upstream"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "upstream is overloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_filtered_per_user_in_both_shapes() {
    let w = world().await;
    let list = |token: String, anthropic: bool| {
        let mut req = w
            .http
            .get(format!("{}/v1/models", w.gateway))
            .header("x-api-key", token);
        if anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            v
        }
    };
    let alice = list(w.alice.clone(), true).await;
    let ids = |v: &serde_json::Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        alice["data"][0]["type"] == "model",
        "anthropic shape: {alice}"
    );
    assert!(
        ids(&alice).contains(&"claude-opus-4-1".to_string()),
        "{alice}"
    );
    let bob = list(w.bob.clone(), false).await;
    assert_eq!(bob["object"], "list", "openai shape");
    assert!(
        !ids(&bob).contains(&"claude-opus-4-1".to_string()),
        "bob is not in leads: {bob}"
    );
    assert!(
        !ids(&bob).iter().any(|m| m.starts_with("gpt-4o")),
        "banned models are hidden"
    );
    assert!(
        ids(&bob).contains(&"claude-sonnet-4-5".to_string()),
        "{bob}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_model_by_id_only_when_the_user_may_use_it() {
    let w = world().await;
    let get = |token: &str, path: &str, anthropic: bool| {
        let mut req = w
            .http
            .get(format!("{}{path}", w.gateway))
            .header("authorization", format!("Bearer {token}"));
        if anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap();
            (status, v)
        }
    };
    // alice (leads) may use claude-opus-4-1, in both shapes and under a provider prefix
    let (status, v) = get(&w.alice, "/anthropic/v1/models/claude-opus-4-1", true).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "model");
    assert_eq!(v["id"], "claude-opus-4-1");
    let (status, v) = get(&w.alice, "/v1/models/claude-opus-4-1", false).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "model");
    assert_eq!(v["id"], "claude-opus-4-1");
    // bob may not: a 404 in the shape his client speaks, naming the model
    let (status, v) = get(&w.bob, "/v1/models/claude-opus-4-1", true).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-opus-4-1"),
        "{v}"
    );
    // a banned model and an unknown one: 404 in OpenAI's shape
    for id in ["gpt-4o", "no-such-model"] {
        let (status, v) = get(&w.bob, &format!("/v1/models/{id}"), false).await;
        assert_eq!(status, 404, "{id}: {v}");
        assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    }
    // a wrong token is refused before anything is looked up
    let (status, _) = get("strata_gw_wrong", "/v1/models/claude-opus-4-1", false).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_down_fails_closed_and_traffic_resumes() {
    let mut w = world().await;
    let send = |w: &World| {
        w.http
            .post(format!("{}/v1/messages", w.gateway))
            .header("x-api-key", &w.alice)
            .body(SONNET)
            .send()
    };
    assert_eq!(send(&w).await.unwrap().status(), 200);
    w.resolver.take().unwrap().stop().await;
    let r = send(&w).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("x-strata-error-source").unwrap(), "gateway");
    let ready = w
        .http
        .get(format!("{}/readyz", w.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let upstream_calls = w.rec.0.lock().unwrap().len();
    assert_eq!(
        upstream_calls, 1,
        "nothing went upstream without a decision"
    );

    let listener = tokio::net::TcpListener::bind(w.resolver_addr)
        .await
        .unwrap();
    w.resolver = Some(start_resolver(w.data.path(), listener).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = send(&w).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "traffic did not resume: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        w.http
            .get(format!("{}/readyz", w.gateway))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn droid_settings_lists_exactly_the_users_models_through_the_gateway() {
    let w = world().await;
    let get = |token: &str| {
        w.http
            .get(format!("{}/strata/v1/droid-settings", w.gateway))
            .header("x-api-key", token)
            .send()
    };
    let v: serde_json::Value = get(&w.bob).await.unwrap().json().await.unwrap();
    let entries = v["customModels"].as_array().unwrap();
    let ids: Vec<&str> = entries
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"claude-sonnet-4-5"), "{ids:?}");
    assert!(
        !ids.contains(&"claude-opus-4-1"),
        "bob is not in leads: {ids:?}"
    );
    for m in entries {
        assert_eq!(
            m["apiKey"],
            w.bob.as_str(),
            "the caller's own gateway token"
        );
        let base = m["baseUrl"].as_str().unwrap();
        assert!(
            base.starts_with("http://127.0.0.1:8787"),
            "pointed at the gateway: {base}"
        );
    }
    assert_eq!(get("strata_gw_wrong").await.unwrap().status(), 401);
}

/// The audit records written so far, waiting up to 5 s for at least `n`
async fn audit_records(w: &World, n: usize) -> Vec<strata_gateway::audit::Record> {
    let dir = w.data.path().join("audit");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (records, bad) =
            strata_gateway::audit::query(&dir, &strata_gateway::audit::Query::default()).unwrap();
        assert_eq!(bad, 0, "every line is a record");
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_an_audit_record_and_metrics_count_it() {
    let w = world().await;
    let post = |path: &str, key: &str, body: &'static str| {
        w.http
            .post(format!("{}{path}", w.gateway))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("user-agent", "factory-cli/0.22.3")
            .header("x-strata-project", "web")
            .body(body)
    };
    // allowed, with usage in the JSON body
    let r = post("/v1/messages", &w.alice, SONNET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let allowed_id = r.headers()["x-strata-decision-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(r.text().await.unwrap().contains("\"id\":\"msg_1\""));
    // allowed and streamed, with usage in the events
    let streamed = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"please-stream-usage"}]}"#;
    let r = post("/v1/messages", &w.alice, streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    // denied by policy
    let r = post(
        "/v1/chat/completions",
        &w.bob,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"secret prompt"}]}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // a token nobody issued, and a body that is not JSON
    let r = post("/v1/messages", "strata_gw_not-a-real-token-000000", SONNET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post("/v1/messages", &w.alice, "{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let records = audit_records(&w, 5).await;
    assert_eq!(records.len(), 5, "{records:#?}");
    let allowed = records
        .iter()
        .find(|r| r.decision_id == allowed_id)
        .unwrap();
    assert_eq!(
        (
            allowed.user.as_str(),
            allowed.project.as_str(),
            allowed.model.as_str()
        ),
        ("alice", "web", "claude-sonnet-4-5")
    );
    assert_eq!(
        (allowed.api.as_str(), allowed.provider.as_str()),
        ("messages", "anthropic")
    );
    assert_eq!(allowed.client, "factory-cli/0.22.3");
    assert_eq!(
        (
            allowed.decision.as_str(),
            allowed.status,
            allowed.upstream_status
        ),
        ("allow", 200, Some(200))
    );
    assert_eq!(allowed.key_mode, "central");
    assert_eq!(
        allowed.key_hint,
        format!("…{}", &w.alice[w.alice.len() - 4..])
    );
    assert!(!allowed.rules.is_empty() && !allowed.revision.is_empty());
    let u = allowed.usage.as_ref().unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (3, 1));
    assert!(allowed.decision_ms > 0.0 && allowed.total_ms >= allowed.decision_ms);
    assert!(allowed.first_byte_ms.is_some() && allowed.upstream_ms.is_some());
    assert!(!allowed.client_disconnected);

    let s = records.iter().find(|r| r.stream).unwrap();
    let u = s.usage.as_ref().unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (21, 9, 7)
    );

    let denied = records.iter().find(|r| r.decision == "deny").unwrap();
    assert_eq!(
        (denied.user.as_str(), denied.model.as_str(), denied.status),
        ("bob", "gpt-4o", 403)
    );
    assert_eq!(denied.rules, ["org#modelPolicy.blockedModelIds"]);
    assert_eq!(denied.error.as_deref(), Some("policy_denied"));
    assert_eq!(denied.upstream_status, None);

    let unauth = records.iter().find(|r| r.status == 401).unwrap();
    assert_eq!(
        (unauth.decision.as_str(), unauth.error.as_deref()),
        ("unauthenticated", Some("invalid_api_key"))
    );
    let invalid = records.iter().find(|r| r.status == 400).unwrap();
    assert_eq!(
        (invalid.decision.as_str(), invalid.error.as_deref()),
        ("invalid", Some("invalid_json"))
    );

    // no prompt content and no secret in the audit files
    let dir = w.data.path().join("audit");
    let mut all = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for secret in [
        w.alice.as_str(),
        w.bob.as_str(),
        CENTRAL_ANTHROPIC,
        CENTRAL_OPENAI,
        "secret prompt",
        "please-stream-usage",
    ] {
        assert!(!all.contains(secret), "`{secret}` is in the audit log");
    }

    // the same records through the query `policy audit` uses
    let q = strata_gateway::audit::Query {
        user: Some("bob".into()),
        decision: Some("deny".into()),
        ..Default::default()
    };
    let (bobs, _) = strata_gateway::audit::query(&dir, &q).unwrap();
    assert_eq!(bobs.len(), 1);
    let future = strata_gateway::audit::Query {
        since_ms: Some(allowed.unix_ms + 3_600_000),
        ..Default::default()
    };
    assert!(
        strata_gateway::audit::query(&dir, &future)
            .unwrap()
            .0
            .is_empty()
    );

    let m = w
        .http
        .get(format!("{}/metrics", w.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text().await.unwrap();
    for line in [
        "strata_gateway_requests_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",decision=\"allow\",status=\"200\"} 2",
        "strata_gateway_requests_total{provider=\"generic-chat-completion-api\",model=\"gpt-4o\",decision=\"deny\",status=\"403\"} 1",
        "strata_gateway_requests_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",decision=\"unauthenticated\",status=\"401\"} 1",
        "strata_gateway_tokens_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",kind=\"input\"} 24",
        "strata_gateway_tokens_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",kind=\"cache_read\"} 7",
        "strata_gateway_decision_seconds_count 4",
        "strata_gateway_upstream_seconds_count 2",
        "strata_gateway_in_flight 0",
        "strata_gateway_audit_dropped_total 0",
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}` in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let w = world().await;
    let before = STREAMS_DROPPED.load(Ordering::SeqCst);
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"please-stream-forever"}]}"#;
    let mut r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: ping"));
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(5);
    while STREAMS_DROPPED.load(Ordering::SeqCst) == before {
        assert!(
            Instant::now() < deadline,
            "the upstream stream is still being read after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = audit_records(&w, 1).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].client_disconnected && records[0].stream);
    assert_eq!(records[0].status, 200);
    let m = w
        .http
        .get(format!("{}/metrics", w.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.lines().any(|l| l == "strata_gateway_in_flight 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_resolver_calls_and_each_gets_its_own_decision() {
    let (up, rec) = start_upstream().await;
    // one call to the resolver at a time: whatever arrives meanwhile shares the next one
    let s = common::stack_with(up, "resolver_calls_in_flight = 1").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let forged = "strata_gw_0000000000000000000000000000000000000000000000000000000000000000";
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (key, body, want) = match i % 3 {
            0 => (s.alice.clone(), SONNET, 200),
            1 => (
                s.bob.clone(),
                r#"{"model":"gpt-4o","max_tokens":8,"messages":[]}"#,
                403,
            ),
            _ => (forged.to_string(), SONNET, 401),
        };
        let (http, url) = (http.clone(), format!("{}/v1/messages", s.gateway));
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("x-api-key", key)
                .body(body)
                .send()
                .await
                .unwrap();
            (i, want, r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (i, want, got, text) = t.await.unwrap();
        assert_eq!(got, want, "request {i}: {text}");
        if want == 403 {
            assert!(text.contains("org#modelPolicy.blockedModelIds"), "{text}");
        }
    }
    assert_eq!(
        rec.0.lock().unwrap().len(),
        20,
        "exactly the allowed ones went upstream"
    );
    let m = http
        .get(format!("{}/metrics", s.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap()
    };
    let (calls, batched) = (
        value("strata_gateway_resolver_calls_total "),
        value("strata_gateway_batched_decisions_total "),
    );
    assert!(calls < 60, "60 decisions took {calls} calls");
    assert!(
        batched > 0 && batched <= 60,
        "{batched} decisions were batched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_decisions_follow_every_publish() {
    // the gateway of `policy up` asks the resolver in its own process: same decisions, same
    // provenance, and a publish is enforced from the next request
    let (up, rec) = start_upstream().await;
    let s = common::stack_in_process(up).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |token: String, body: &'static str| {
        let (http, url) = (http.clone(), format!("{}/v1/messages", s.gateway));
        async move {
            let r = http
                .post(url)
                .header("x-api-key", token)
                .header("anthropic-version", "2023-06-01")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let rev = r
                .headers()
                .get("x-strata-revision")
                .map(|v| v.to_str().unwrap().to_string());
            (status, rev, r.text().await.unwrap())
        }
    };
    let (status, rev1, _) = send(s.alice.clone(), SONNET).await;
    assert_eq!(status, 200);
    assert_eq!(rec.0.lock().unwrap().len(), 1);
    let (status, _, text) = send(
        s.alice.clone(),
        r#"{"model":"gpt-4o","max_tokens":8,"messages":[]}"#,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("org#modelPolicy.blockedModelIds"), "{text}");
    let (status, _, _) = send("strata_gw_not_a_token".to_string(), SONNET).await;
    assert_eq!(status, 401);
    assert_eq!(
        rec.0.lock().unwrap().len(),
        1,
        "refused requests never go upstream"
    );

    // publish an org bundle that blocks the model alice just used
    let mut org = strata_policy::FileTree::read_path(&common::examples().join("org")).unwrap();
    let settings = org.files.get_mut("settings.json").unwrap();
    let text = String::from_utf8(settings.clone()).unwrap();
    assert!(text.contains(r#""gpt-4o*","#));
    *settings = text
        .replacen(r#""gpt-4o*","#, r#""gpt-4o*", "claude-sonnet-4-5","#, 1)
        .into_bytes();
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", s.resolver_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let published = AdminServiceClient::new(ch)
        .publish_org(common::auth(v1::PublishOrgRequest {
            files: strata_proto::files(&org),
            message: "block sonnet".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let (status, rev2, text) = send(s.alice.clone(), SONNET).await;
    assert_eq!(status, 403, "{text}");
    assert_ne!(rev2, rev1);
    assert_eq!(rev2.as_deref(), Some(published.revision.as_str()));
    assert_eq!(rec.0.lock().unwrap().len(), 1);
}
