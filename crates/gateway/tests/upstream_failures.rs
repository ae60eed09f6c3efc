//! An upstream that hangs, resets the connection, answers garbage or breaks off its answer: the
//! client gets a clear upstream error (504 for a timeout, 502 otherwise, marked
//! `x-strata-error-source: upstream`, in the provider's shape), and the gateway's connection pool
//! recovers: the next normal request to the same upstream succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":3,"output_tokens":1}}"#;

/// Connections the mock accepted
#[derive(Clone, Default)]
struct Mock {
    connections: Arc<AtomicUsize>,
}

/// Read one request (head and `content-length` body); `None` at EOF
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                let body = String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string();
                buf.drain(..i + 4 + len);
                return Some(body);
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One connection: answers normally (keep-alive) until a request asks it to misbehave
async fn connection(mut s: TcpStream) {
    let mut buf = Vec::new();
    while let Some(body) = read_request(&mut s, &mut buf).await {
        if body.contains("please-hang") {
            // never answer (the gateway's 1 s upstream timeout ends it)
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        if body.contains("please-reset") {
            // close with RST: SO_LINGER 0
            s.set_zero_linger().unwrap();
            drop(s);
            return;
        }
        if body.contains("please-close") {
            return; // FIN, no answer
        }
        if body.contains("please-garbage") {
            let _ = s
                .write_all(b"SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP at all\r\n\r\n")
                .await;
            return;
        }
        if body.contains("please-truncate") {
            // promises 1,000 bytes, sends 20, closes
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"id\":\"msg_1\",\"type\"")
                .await;
            return;
        }
        if body.contains("please-stall") {
            // a head and the start of a stream, then silence
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n1c\r\nevent: ping\ndata: {\"a\":1}\n\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn start_mock() -> (SocketAddr, Mock) {
    let mock = Mock::default();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let m = mock.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            m.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(connection(s));
        }
    });
    (addr, mock)
}

fn body(marker: &str) -> String {
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{{"role":"user","content":"{marker}"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_clear_upstream_errors_and_the_pool_recovers() {
    let (up, mock) = start_mock().await;
    let s = common::stack_with(up, "upstream_timeout_secs = 1").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |path: &'static str, marker: &str| {
        http.post(format!("{}{path}", s.gateway))
            .header("x-api-key", &s.alice)
            .header("content-type", "application/json")
            .body(body(marker))
            .send()
    };
    let normal = || async {
        let r = send("/v1/messages", "hello").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), ANSWER);
    };

    normal().await;
    normal().await;
    assert_eq!(
        mock.connections.load(Ordering::SeqCst),
        1,
        "the pool reuses its connection"
    );

    // failures before a response head: a clear error in the client's shape
    for (marker, status, code, anthropic_path) in [
        ("please-hang", 504, "upstream_timeout", true),
        ("please-reset", 502, "upstream_failed", true),
        ("please-close", 502, "upstream_failed", false),
        ("please-garbage", 502, "upstream_failed", true),
        ("please-hang", 504, "upstream_timeout", false),
    ] {
        let path = if anthropic_path {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let started = Instant::now();
        let r = send(path, marker).await.unwrap();
        assert_eq!(r.status(), status, "{marker}");
        assert_eq!(r.headers()["x-strata-error-source"], "upstream", "{marker}");
        assert!(r.headers().contains_key("x-strata-decision-id"), "{marker}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{marker}: {v}");
        assert_eq!(v["type"] == "error", anthropic_path, "{marker}: {v}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{marker}: answered after {:?}",
            started.elapsed()
        );
        // the pool recovers: the next request to the same upstream succeeds
        normal().await;
    }

    // failures after the head went out: the client cannot be told with a status, so the body
    // breaks off rather than ending as if it were whole
    for marker in ["please-truncate", "please-stall"] {
        let r = send("/v1/messages", marker).await.unwrap();
        assert_eq!(r.status(), 200, "{marker}");
        let got = tokio::time::timeout(Duration::from_secs(10), r.bytes())
            .await
            .expect("the broken body ends within 10 s");
        assert!(got.is_err(), "{marker}: a broken body read as whole");
        normal().await;
    }

    // the audit log names each failure
    let dir = s.data.path().join("audit");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (records, _) =
            strata_gateway::audit::query(&dir, &strata_gateway::audit::Query::default()).unwrap();
        let errors: Vec<_> = records.iter().filter_map(|r| r.error.clone()).collect();
        if errors.len() >= 7 {
            for code in ["upstream_timeout", "upstream_failed"] {
                assert!(errors.iter().any(|e| e == code), "{errors:?}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "{errors:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_gone_is_502_and_one_that_returns_is_used_again() {
    // a port with nothing listening: bound but not listening, so connections are refused and no
    // other test's server can take the port meanwhile (a freed port was, once: a 401 from it)
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.set_reuseaddr(true).unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let up = held.local_addr().unwrap();
    let s = common::stack_with(up, "upstream_timeout_secs = 1").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = || {
        http.post(format!("{}/v1/messages", s.gateway))
            .header("x-api-key", &s.alice)
            .body(body("hello"))
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-strata-error-source"], "upstream");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");

    // the upstream comes up on that port
    let l = held.listen(16).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((c, _)) = l.accept().await else { return };
            tokio::spawn(connection(c));
        }
    });
    let r = send().await.unwrap();
    assert_eq!(r.status(), 200);
}
