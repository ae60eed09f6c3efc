//! The gateway end to end: a real resolver (sled, gRPC) and the real gateway on 127.0.0.1:0, in
//! front of a mock upstream that records what it receives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response};
use common::{CENTRAL_ANTHROPIC, ResolverProc, start_resolver};

// ---- mock upstream ------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

async fn upstream(State(rec): State<Recorded>, req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    rec.0
        .lock()
        .unwrap()
        .push((path.clone(), parts.headers.clone(), body.clone()));
    let text = String::from_utf8_lossy(&body).to_string();
    if text.contains("please-fail") {
        return Response::builder().status(529).header("content-type", "application/json").body(Body::from(r#"{"type":"error","error":{"type":"overloaded_error","message":"upstream is overloaded"}}"#)).unwrap();
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
    for path in ["/v1/messages", "/v1/v1/messages", "/anthropic/v1/messages"] {
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
    for (path, headers, body) in rec.iter() {
        assert_eq!(path, "/v1/messages");
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
    let r = w
        .http
        .post(format!("{}/v1/messages", w.gateway))
        .header("x-api-key", &w.alice)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers().get("connection").unwrap(),
        "close",
        "the rest of the body is unread: the connection cannot be reused"
    );
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
    while let Some(c) = r.chunk().await.unwrap() {
        all.extend_from_slice(&c);
    }
    let total = start.elapsed();
    assert!(
        first.starts_with(b"event: content_block_delta"),
        "{first:?}"
    );
    // the upstream takes >= 600 ms in all; the first event must not wait for the rest
    assert!(total >= Duration::from_millis(600));
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
