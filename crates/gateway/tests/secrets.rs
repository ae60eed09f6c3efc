//! Secrets stay secret: traffic with known provider keys and gateway tokens through every path
//! (central key, BYOK, denied, upstream error, upstream unreachable, resolver down), with every
//! log line at DEBUG captured; then the logs, the audit files, `/metrics` and the resolver's sled
//! files are searched for those secrets. Zero hits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Response;
use common::{CENTRAL_ANTHROPIC, CENTRAL_OPENAI, SERVICE};

/// Everything every log line wrote
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn upstream(req: Request) -> Response<Body> {
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    if body.windows(11).any(|w| w == b"please-fail") {
        // an upstream error that echoes the credential it got, as some providers do
        return Response::builder()
            .status(401)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"error":{"message":"invalid key"}}"#))
            .unwrap();
    }
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":1,"output_tokens":1}}"#,
        ))
        .unwrap()
}

async fn start_upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(l, axum::Router::new().fallback(upstream))
            .await
            .unwrap()
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_audit_metrics_or_the_store() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let up = start_upstream().await;
    let mut s = common::stack(up).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let byok_key = "sk-ant-alice-own-key-5f3c9e1b7a2d4e60";
    let messages = format!("{}/v1/messages", s.gateway);
    let ok = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}"#;
    let fail = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"please-fail"}]}"#;

    // central key, allowed
    let r = http
        .post(&messages)
        .header("x-api-key", &s.alice)
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // BYOK, allowed
    let r = http
        .post(&messages)
        .header("x-api-key", byok_key)
        .header("x-strata-governance-token", &s.alice)
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // denied (bob may not use the frontier model)
    let r = http
        .post(&messages)
        .header("authorization", format!("Bearer {}", s.bob))
        .body(r#"{"model":"claude-opus-4-1","max_tokens":8,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // an upstream error, with both kinds of key
    for (key, gov) in [(s.alice.as_str(), None), (byok_key, Some(s.alice.as_str()))] {
        let mut req = http.post(&messages).header("x-api-key", key).body(fail);
        if let Some(g) = gov {
            req = req.header("x-coder-ai-governance-token", g);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    // a token nobody issued that looks like one
    let forged = "strata_gw_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let r = http
        .post(&messages)
        .header("x-api-key", forged)
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // the resolver down: fail closed
    s.resolver.take().unwrap().stop().await;
    for key in [s.alice.as_str(), s.bob.as_str()] {
        let r = http
            .post(&messages)
            .header("x-api-key", key)
            .body(ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    let metrics = common::metrics(&s.gateway).await;
    assert!(
        metrics.contains("decision=\"unavailable\",status=\"503\"} 2"),
        "{metrics}"
    );
    // the audit writer writes each batch to the file as it takes it: wait until every request's
    // record is there, for at most 10 s
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while audit_line_count(s.data.path()) < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "the audit writer wrote {} records in 10 s",
            audit_line_count(s.data.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("logs".into(), logs.0.lock().unwrap().clone()),
        ("/metrics".into(), metrics.into_bytes()),
    ];
    let mut audit_lines = 0;
    for dir in [s.data.path().to_path_buf()] {
        for e in walk(&dir) {
            let bytes = std::fs::read(&e).unwrap();
            if e.to_string_lossy().contains("audit-") {
                audit_lines += bytes.iter().filter(|b| **b == b'\n').count();
            }
            haystacks.push((e.display().to_string(), bytes));
        }
    }
    assert!(
        audit_lines >= 8,
        "every request was audited ({audit_lines} lines)"
    );
    assert!(
        haystacks
            .iter()
            .any(|(n, _)| n.contains("conf") || n.contains("db")),
        "the sled files are searched too: {:?}",
        haystacks.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    assert!(
        !haystacks[0].1.is_empty(),
        "the log capture works (debug lines were written)"
    );
    let secrets = [
        ("alice's gateway token", s.alice.as_str()),
        ("bob's gateway token", s.bob.as_str()),
        ("a forged token", forged),
        ("the BYOK key", byok_key),
        ("the central Anthropic key", CENTRAL_ANTHROPIC),
        ("the central OpenAI key", CENTRAL_OPENAI),
        ("the service token", SERVICE),
    ];
    for (where_, bytes) in &haystacks {
        // the files the test itself wrote the secrets into, for the gateway to read
        if ["/svc", "/ka", "/ko"].iter().any(|f| where_.ends_with(f)) {
            continue;
        }
        for (what, secret) in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{what} is in {where_}"
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Lines in the audit files under `dir`
fn audit_line_count(dir: &std::path::Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.to_string_lossy().contains("audit-"))
        .map(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.iter().filter(|b| **b == b'\n').count()
        })
        .sum()
}
