//! The upstreams' model catalogues, end to end: a mock upstream serves `GET /v1/models` in
//! Anthropic's shape (two pages, `after_id`) and OpenAI's; the gateway reads them with the
//! central keys and `/v1/models` lists what the example org allows of them (`claude-sonnet-4-*`,
//! `gemini-2.5-*`, the `fast` category's `claude-haiku-*`), never what it bans (`gpt-4o*`);
//! `/v1/models/{id}` agrees; a catalogue that stops answering keeps the last one read, with one
//! warning per upstream per streak of failures, and no key or token in any log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{CENTRAL_ANTHROPIC, CENTRAL_OPENAI};
use serde_json::{Value, json};

/// A catalogue request's headers, and its `after_id`
type Seen = (HeaderMap, Option<String>);

#[derive(Clone, Default)]
struct Mock {
    failing: Arc<AtomicBool>,
    /// every catalogue request
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Anthropic's catalogue (asked with `x-api-key`) in two pages; OpenAI's (Bearer) in one
async fn models(State(m): State<Mock>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let after = q.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("after_id="))
            .map(str::to_string)
    });
    m.seen
        .lock()
        .unwrap()
        .push((headers.clone(), after.clone()));
    if m.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let ids = |ids: &[&str]| -> Vec<Value> {
        ids.iter()
            .map(|id| json!({"id": id, "type": "model", "display_name": id}))
            .collect()
    };
    let body = if headers.contains_key("x-api-key") {
        match after.as_deref() {
            None => json!({
                "data": ids(&["claude-sonnet-4-5-20250929", "claude-3-opus-20240229"]),
                "has_more": true, "first_id": "claude-sonnet-4-5-20250929",
                "last_id": "claude-3-opus-20240229"
            }),
            Some("claude-3-opus-20240229") => json!({
                "data": ids(&["claude-haiku-4-5-20251001", "claude-sonnet-4-5"]),
                "has_more": false, "last_id": "claude-sonnet-4-5"
            }),
            Some(other) => panic!("unexpected after_id {other}"),
        }
    } else {
        json!({"object": "list", "data": ids(&["gpt-4o", "gpt-4o-mini", "gpt-5-mini", "gemini-2.5-pro"])})
    };
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// Log lines, captured
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

async fn list(http: &reqwest::Client, gateway: &str, token: &str, path: &str) -> (u16, Value) {
    let r = http
        .get(format!("{gateway}{path}"))
        .header("x-api-key", token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_allowed_by_patterns_are_listed_from_the_upstreams_catalogues() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let mock = Mock::default();
    let up = common::serve(
        axum::Router::new()
            .route("/v1/models", get(models))
            .with_state(mock.clone()),
    )
    .await;
    let s = common::stack_with(up, "model_catalog_refresh_secs = 1").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // the catalogues are read at start: wait for the second Anthropic page to be listed
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (status, v) = list(&http, &s.gateway, &s.alice, "/v1/models").await;
        assert_eq!(status, 200, "{v}");
        let listed = ids(&v);
        if listed.iter().any(|m| m == "claude-haiku-4-5-20251001") {
            break listed;
        }
        assert!(Instant::now() < deadline, "never listed: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for allowed in [
        "claude-sonnet-4-5-20250929", // claude-sonnet-4-*
        "claude-haiku-4-5-20251001",  // the fast category's claude-haiku-*
        "gemini-2.5-pro",             // gemini-2.5-*
        "gpt-5-mini",                 // the fast category, by name
        "claude-opus-4-1",            // an org custom model, as before
    ] {
        assert!(listed.iter().any(|m| m == allowed), "{allowed}: {listed:?}");
    }
    for denied in ["gpt-4o", "gpt-4o-mini", "claude-3-opus-20240229"] {
        assert!(
            !listed.contains(&denied.to_string()),
            "{denied}: {listed:?}"
        );
    }
    // a catalogue id the bundle names (`claude-sonnet-4-5`, an org custom model; `gpt-5-mini`,
    // a category member and in the catalogues twice) is listed once
    for once in ["claude-sonnet-4-5", "gpt-5-mini"] {
        assert_eq!(
            listed.iter().filter(|m| *m == once).count(),
            1,
            "{listed:?}"
        );
    }
    // /v1/models/{id} agrees
    let (status, v) = list(
        &http,
        &s.gateway,
        &s.alice,
        "/v1/models/claude-sonnet-4-5-20250929",
    )
    .await;
    assert_eq!(
        (status, v["id"].as_str()),
        (200, Some("claude-sonnet-4-5-20250929"))
    );
    let (status, v) = list(&http, &s.gateway, &s.alice, "/v1/models/gpt-4o").await;
    assert_eq!(status, 404, "{v}");
    // and so do decisions: the listed model goes through, the banned one is refused
    let post = |model: &str| {
        http.post(format!("{}/v1/chat/completions", s.gateway))
            .bearer_auth(&s.alice)
            .json(&json!({"model": model, "messages": []}))
            .send()
    };
    assert_eq!(post("gpt-4o").await.unwrap().status().as_u16(), 403);

    // the upstream saw the central keys (and Anthropic's version header), never a gateway token
    {
        let seen = mock.seen.lock().unwrap();
        assert!(seen.iter().any(|(h, after)| {
            h.get("x-api-key").is_some_and(|k| k == CENTRAL_ANTHROPIC)
                && h.contains_key("anthropic-version")
                && after.as_deref() == Some("claude-3-opus-20240229")
        }));
        assert!(seen.iter().any(|(h, _)| {
            h.get("authorization")
                .is_some_and(|k| k == &format!("Bearer {CENTRAL_OPENAI}"))
        }));
        for (h, _) in seen.iter() {
            for v in h.values() {
                let v = v.to_str().unwrap_or_default();
                assert!(!v.contains(&s.alice) && !v.contains("strata_gw"), "{h:?}");
            }
        }
    }
    let metrics = common::metrics(&s.gateway).await;
    assert!(
        metrics.contains("strata_gateway_model_catalogue_models{provider=\"anthropic\"} 4"),
        "{metrics}"
    );

    // the catalogue stops answering: the refreshes fail, and the last catalogue read stays
    mock.failing.store(true, Ordering::SeqCst);
    let asked = mock.seen.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.seen.lock().unwrap().len() < asked + 6 {
        assert!(
            Instant::now() < deadline,
            "the catalogues were not read again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, v) = list(&http, &s.gateway, &s.alice, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(
        ids(&v).contains(&"claude-sonnet-4-5-20250929".to_string()),
        "{v}"
    );
    // one warning per upstream for the whole streak; no key, no token in any line
    let log = logs.text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("cannot read the upstream's model catalogue"))
        .count();
    assert_eq!(warnings, 3, "{log}");
    for secret in [CENTRAL_ANTHROPIC, CENTRAL_OPENAI, s.alice.as_str()] {
        assert!(!log.contains(secret), "{log}");
    }
}

/// With `model_catalog_refresh_secs = 0` no catalogue is read, and only the models the bundle
/// names are listed
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_catalogue_is_read_when_refreshing_is_off() {
    let mock = Mock::default();
    let up = common::serve(
        axum::Router::new()
            .route("/v1/models", get(models))
            .with_state(mock.clone()),
    )
    .await;
    let s = common::stack_with(up, "model_catalog_refresh_secs = 0").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, v) = list(&http, &s.gateway, &s.alice, "/v1/models").await;
    assert_eq!(status, 200, "{v}");
    let listed = ids(&v);
    assert!(
        listed.contains(&"claude-opus-4-1".to_string()),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&"claude-sonnet-4-5-20250929".to_string()),
        "{listed:?}"
    );
    assert!(mock.seen.lock().unwrap().is_empty());
}
