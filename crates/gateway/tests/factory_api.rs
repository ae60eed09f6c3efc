//! The part of Factory's API Droid needs to load its org level from Strata, through a real
//! resolver and gateway: whoami names the token's person, managed-settings wraps the document as
//! Droid expects it, a bad token is refused, the plain URL serves the bare document, usage Droid
//! reports lands in the audit as client-reported, and an org that requires the org level
//! (`droid.requireOrgSettings`) has model requests from a token that never loaded it refused —
//! until it does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

async fn upstream() -> std::net::SocketAddr {
    common::serve(Router::new().route(
        "/v1/messages",
        post(|| async {
            (
                [("content-type", "application/json")],
                r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"m","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#,
            )
        }),
    ))
    .await
}

/// The example org, requiring clients that loaded its org level
fn org_requiring(dir: &Path) -> std::path::PathBuf {
    let org = dir.join("org");
    common::copy_dir(&common::examples().join("org"), &org);
    common::edit_json(&org.join("policy.json"), &|v| {
        v["droid"] = json!({"requireOrgSettings": true});
    });
    org
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn message(gateway: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{gateway}/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Every audit record written so far, read by the gateway's own reader (`policy audit`'s), as
/// the JSON it writes
fn audit(data: &Path) -> Vec<Value> {
    let q = strata_gateway::audit::Query::default();
    let (records, _) = strata_gateway::audit::query(&data.join("audit"), &q).unwrap_or_default();
    records
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

fn wait_for_audit(data: &Path, pred: &dyn Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = audit(data).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no such audit record: {:#?}",
            audit(data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn droid_loads_its_org_level_from_the_gateway() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let s = common::stack_org(up, &org_requiring(dir.path())).await;
    let gw = &s.gateway;

    let (status, who) = get(&format!("{gw}/api/cli/whoami"), Some(&s.alice)).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who, json!({"userId": "alice", "orgId": "strata"}));
    let (status, bad) = get(&format!("{gw}/api/cli/whoami"), Some("strata_gw_nope")).await;
    assert_eq!(status, 401, "{bad}");
    assert_eq!(bad["success"], false);

    // a token that never loaded the org level: refused, saying how to load it
    let (status, body) = message(gw, &s.alice).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("FACTORY_API_BASE_URL=http://127.0.0.1:8787"),
        "{body}"
    );
    let metrics = common::metrics(gw).await;
    assert!(
        metrics.contains("strata_gateway_requests_without_org_settings_total 1"),
        "{metrics}"
    );

    let (status, doc) = get(
        &format!("{gw}/api/organization/managed-settings"),
        Some(&s.alice),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["success"], true);
    assert!(
        doc["revision"]
            .as_u64()
            .is_some_and(|n| n > 0 && n < (1 << 53)),
        "{doc}"
    );
    let settings = &doc["settings"];
    assert_eq!(settings["maxAutonomyLevel"], "medium");
    assert_eq!(settings["cloudSessionSync"], false);
    let custom = settings["customModels"].as_array().unwrap();
    assert!(
        custom.iter().all(|m| m["baseUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:8787")
            && m["apiKey"] == "${FACTORY_API_KEY}"),
        "{custom:#?}"
    );
    let text = doc.to_string();
    assert!(
        !text.contains(&s.alice),
        "the document never carries the token"
    );

    // loaded now: the same request is served, and its audit record says so
    let (status, body) = message(gw, &s.alice).await;
    assert_eq!(status, 200, "{body}");
    let r = wait_for_audit(s.data.path(), &|r| {
        r["status"] == 200 && r["api"] == "messages"
    });
    assert_eq!(r["org_settings_loaded"], true, "{r:#}");
    let refused = wait_for_audit(s.data.path(), &|r| r["status"] == 403);
    assert_eq!(refused["org_settings_loaded"], false, "{refused:#}");
    assert_eq!(refused["error"], "org_settings_not_loaded");

    // the plain URL: the bare document, for the person the query names
    let (status, plain) = get(
        &format!("{gw}/strata/v1/droid/org-settings?user=ivan"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert!(
        plain.get("success").is_none() && plain["modelPolicy"].is_object(),
        "{plain}"
    );
    let ivan: Vec<&Value> = plain["modelPolicy"]["allowedModelIds"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(
        !ivan.contains(&&json!("claude-sonnet-4-5-20250929")),
        "ivan's userModelPolicies block sonnet 4.5: {ivan:?}"
    );

    // anything else under /api/ is not offered
    let (status, _) = get(&format!("{gw}/api/feature-flags"), Some(&s.alice)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn usage_droid_reports_lands_in_the_audit_as_client_reported() {
    let up = upstream().await;
    let s = common::stack(up).await;
    let report = json!({
        "model": "claude-sonnet-4-5", "baseUrl": "https://api.anthropic.com",
        "usage": {"inputTokens": 10, "outputTokens": 5, "cacheCreationInputTokens": 2, "cacheReadInputTokens": 1, "thinkingTokens": 0},
        "sessionId": "s-1", "messageId": "m-1"
    });
    let r = reqwest::Client::new()
        .post(format!("{}/api/llm/custom/usage", s.gateway))
        .bearer_auth(&s.bob)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rec = wait_for_audit(s.data.path(), &|r| r["api"] == "client_usage");
    assert_eq!(rec["decision"], "client-reported");
    assert_eq!(rec["user"], "bob");
    assert_eq!(rec["model"], "claude-sonnet-4-5");
    assert_eq!(rec["usage"]["input_tokens"], 10);
    assert_eq!(rec["usage"]["output_tokens"], 5);
    assert!(!rec.to_string().contains(&s.bob), "no token in the audit");

    let bad = reqwest::Client::new()
        .post(format!("{}/api/llm/custom/usage", s.gateway))
        .bearer_auth(&s.bob)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let anon = reqwest::Client::new()
        .post(format!("{}/api/llm/custom/usage", s.gateway))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
}

/// Droid keeps enforcing the org level it cached only while whoami answers the same ids: with
/// the resolver away, the gateway answers whoami for a token it has seen (and managed-settings
/// fails, so Droid falls back to its cache); a token it never saw is not answered
#[tokio::test]
async fn whoami_outlives_the_resolver_for_tokens_the_gateway_has_seen() {
    let up = upstream().await;
    let mut s = common::stack(up).await;
    let gw = s.gateway.clone();
    let (status, who) = get(&format!("{gw}/api/cli/whoami"), Some(&s.alice)).await;
    assert_eq!((status, who["userId"].as_str()), (200, Some("alice")));
    s.resolver.take().unwrap().stop().await;

    let (status, who) = get(&format!("{gw}/api/cli/whoami"), Some(&s.alice)).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who, json!({"userId": "alice", "orgId": "strata"}));
    let (status, doc) = get(
        &format!("{gw}/api/organization/managed-settings"),
        Some(&s.alice),
    )
    .await;
    assert_eq!(status, 503, "{doc}");
    assert_eq!(doc["success"], false);
    let (status, _) = get(&format!("{gw}/api/cli/whoami"), Some(&s.bob)).await;
    assert_eq!(status, 503, "bob was never seen");
    // and model traffic still fails closed
    let (status, _) = message(&gw, &s.alice).await;
    assert_eq!(status, 503);
}

/// Droid sends its built-in models to `FACTORY_API_BASE_URL` under `/api/llm/a/…` with the
/// gateway token as the bearer and `x-api-key: placeholder`: decided and forwarded like any
/// Messages request, with the central key
#[tokio::test]
async fn droids_built_in_model_route_is_decided_and_forwarded() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let rec = seen.clone();
    let up = common::serve(Router::new().route(
        "/v1/messages",
        post(move |h: axum::http::HeaderMap| {
            let rec = rec.clone();
            async move {
                rec.lock().unwrap().push(
                    h.get("x-api-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                );
                (
                    [("content-type", "application/json")],
                    r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"m","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#,
                )
            }
        }),
    ))
    .await;
    let s = common::stack(up).await;
    let send = |model: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/llm/a/v1/messages", s.gateway))
            .bearer_auth(&s.alice)
            .header("x-api-key", "placeholder")
            .header("x-api-provider", "anthropic")
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let ok = send("claude-sonnet-4-5-20250929").await.unwrap();
    let status = ok.status().as_u16();
    assert_eq!(status, 200, "{}", ok.text().await.unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![common::CENTRAL_ANTHROPIC.to_string()]
    );
    // a banned one is refused, nothing reaches the upstream
    let banned = send("claude-3-5-sonnet-20241022").await.unwrap();
    assert_eq!(banned.status().as_u16(), 403);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Google's own API is not one the gateway speaks
    let (status, _) = get(
        &format!("{}/api/llm/g/v1/generate", s.gateway),
        Some(&s.alice),
    )
    .await;
    assert_eq!(status, 404);
}

/// The document is served from the gateway's memory while the revision stays, and a newly
/// published revision replaces it (the gateway follows the resolver's revision stream)
#[tokio::test]
async fn a_new_revision_replaces_the_document_the_gateway_keeps() {
    let up = upstream().await;
    let s = common::stack(up).await;
    let url = format!("{}/api/organization/managed-settings", s.gateway);
    let (_, first) = get(&url, Some(&s.alice)).await;
    let (_, again) = get(&url, Some(&s.alice)).await;
    assert_eq!(first, again);
    assert_eq!(first["settings"]["maxAutonomyLevel"], "medium");

    let dir = tempfile::tempdir().unwrap();
    let org = dir.path().join("org");
    common::copy_dir(&common::examples().join("org"), &org);
    common::edit_json(&org.join("settings.json"), &|v| {
        v["maxAutonomyLevel"] = json!("low");
    });
    common::seed_org(&format!("http://{}", s.resolver_addr), None, &org).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now) = get(&url, Some(&s.alice)).await;
        if now["settings"]["maxAutonomyLevel"] == "low" {
            assert_ne!(now["revision"], first["revision"]);
            break;
        }
        assert!(Instant::now() < deadline, "still the old document: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
