//! Hostile HTTP against the real gateway (in this process, on 127.0.0.1:0, in front of a mock
//! upstream): bodies over the limit, slow clients, broken and ambiguous JSON, content types the
//! gateway cannot read, header floods, a 1 MB model id, more connections than allowed, HTTP/2
//! rapid reset. Each gets a clear 4xx (in the provider's
//! error shape where the gateway writes it), nothing reaches the upstream, memory stays bounded,
//! and a normal client is served throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use common::{RawResponse, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The body limit `common::stack` configures
const LIMIT: usize = 1024 * 1024;
const SONNET: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;

async fn upstream(State(seen): State<Arc<AtomicUsize>>, req: Request) -> Response<Body> {
    let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
    seen.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":3,"output_tokens":1}}"#,
        ))
        .unwrap()
}

struct World {
    gateway: String,
    addr: SocketAddr,
    alice: String,
    /// requests the upstream received
    seen: Arc<AtomicUsize>,
    _stack: common::Stack,
}

async fn world() -> World {
    world_with("client_timeout_secs = 1").await
}

/// [`world`] with these gateway settings
async fn world_with(settings: &str) -> World {
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(Arc::clone(&seen));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let stack = common::stack_with(up, settings).await;
    World {
        addr: stack.gateway.trim_start_matches("http://").parse().unwrap(),
        gateway: stack.gateway.clone(),
        alice: stack.alice.clone(),
        seen,
        _stack: stack,
    }
}

/// A normal client sending a normal request in a loop until stopped: how many it sent, and every
/// one must have been answered 200
struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Bystander {
    fn start(w: &World) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        // idle connections are dropped before the gateway's 1 s header deadline would close them
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let (url, key, flag) = (
            format!("{}/v1/messages", w.gateway),
            w.alice.clone(),
            Arc::clone(&stop),
        );
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !flag.load(Ordering::SeqCst) || n == 0 {
                let r = http
                    .post(&url)
                    .header("x-api-key", &key)
                    .header("content-type", "application/json")
                    .body(SONNET)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{:?}", r.text().await);
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        });
        Bystander { stop, task }
    }

    /// Stop; the requests served meanwhile
    async fn served(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// A request head for `path` with the given extra header lines
fn head(w: &World, path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nx-api-key: {}\r\n{extra}\r\n",
        w.addr, w.alice
    )
}

/// Send `bytes` on a new connection and read one response
async fn raw(w: &World, bytes: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut s))
        .await
        .expect("an answer within 10 s")
        .expect("a whole response")
}

/// A full request with a body
fn request(w: &World, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = head(
        w,
        path,
        &format!("{extra}content-length: {}\r\n", body.len()),
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The error a refusal carries, checked for the provider's shape: (code, message)
fn refusal(r: &RawResponse, anthropic: bool) -> (String, String) {
    assert_eq!(
        r.header("x-strata-error-source"),
        Some("client"),
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    if anthropic {
        assert_eq!(v["type"], "error", "{v}");
    } else {
        assert!(
            v["error"]["param"].is_null() && v.get("type").is_none(),
            "{v}"
        );
    }
    (
        v["error"]["code"].as_str().unwrap().to_string(),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_memory_stays_bounded() {
    let w = world().await;
    let bystander = Bystander::start(&w);
    let rss_before = common::rss_kib();

    // a declared length over the limit: refused at once, before a byte of the body is sent
    for (path, anthropic) in [("/v1/messages", true), ("/v1/chat/completions", false)] {
        let r = raw(
            &w,
            head(&w, path, "content-length: 5000000000\r\n").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 413, "{}", r.body);
        let (code, message) = refusal(&r, anthropic);
        assert_eq!(code, "request_too_large");
        assert!(message.contains("1048576 bytes"), "{message}");
        assert_eq!(r.header("connection"), Some("close"));
    }

    // chunked (no declared length): read up to the limit, then refused; sent as exactly one byte
    // over, so that nothing is left unread when the gateway closes the connection
    let mut chunked = head(&w, "/v1/messages", "transfer-encoding: chunked\r\n").into_bytes();
    chunked.extend_from_slice(format!("{:x}\r\n", LIMIT + 1).as_bytes());
    chunked.extend_from_slice(&vec![b' '; LIMIT + 1]);
    for _ in 0..20 {
        let r = raw(&w, &chunked).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(refusal(&r, true).0, "request_too_large");
    }

    // just under the limit is read and forwarded
    let mut big = SONNET.trim_end_matches('}').to_string();
    big.push_str(&format!(
        r#","metadata":{{"pad":"{}"}}}}"#,
        "x".repeat(LIMIT - 200)
    ));
    assert!(big.len() < LIMIT);
    let r = raw(
        &w,
        &request(&w, "/v1/messages", "connection: close\r\n", big.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let grown_mib = common::rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 200,
        "RSS grew by {grown_mib} MiB over 24 large requests"
    );
    assert!(bystander.served().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let w = world().await;
    let bystander = Bystander::start(&w);
    let started = Instant::now();

    // slow headers (slowloris): a byte every 100 ms never finishes a head; the gateway closes
    // the connection once its 1 s header deadline passes
    let mut trickling_heads = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(w.addr).await.unwrap();
        let h = head(&w, "/v1/messages", "content-length: 10\r\n").into_bytes();
        trickling_heads.push(tokio::spawn(async move {
            for b in h {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(&[b]).await.is_err() {
                    return true; // closed by the gateway
                }
            }
            false
        }));
    }

    // silent connections: nothing at all, or a piece of the HTTP/2 preface (not enough to tell
    // HTTP/1 from HTTP/2): closed once the header deadline passes
    let mut silent = Vec::new();
    for i in 0..15 {
        let mut s = TcpStream::connect(w.addr).await.unwrap();
        if i % 3 == 0 {
            s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        silent.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(
                Duration::from_secs(8),
                tokio::io::AsyncReadExt::read(&mut s, &mut buf),
            )
            .await;
            // closed: EOF or a reset, not a time-out of ours
            matches!(read, Ok(Ok(0)) | Ok(Err(_)))
        }));
    }

    // slow bodies: a whole head, then a body byte every 100 ms: 408 once the 1 s body deadline
    // passes, in the provider's shape
    let mut trickling_bodies = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(w.addr).await.unwrap();
        s.write_all(head(&w, "/v1/responses", "content-length: 100\r\n").as_bytes())
            .await
            .unwrap();
        trickling_bodies.push(tokio::spawn(async move {
            let (mut rd, mut wr) = s.into_split();
            let writer = tokio::spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if wr.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            });
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(8),
                tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut buf),
            )
            .await;
            writer.abort();
            String::from_utf8_lossy(&buf).to_string()
        }));
    }

    for t in trickling_heads {
        assert!(t.await.unwrap(), "a trickled head was never cut off");
    }
    for t in silent {
        assert!(t.await.unwrap(), "a silent connection was never closed");
    }
    for t in trickling_bodies {
        let answer = t.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(
            answer.contains(r#""param":null"#),
            "OpenAI's shape: {answer}"
        );
    }
    // both deadlines are 1 s; generous for a loaded machine
    assert!(started.elapsed() < Duration::from_secs(8));
    let served = bystander.served().await;
    assert!(served > 0);
    assert_eq!(
        w.seen.load(Ordering::SeqCst),
        served,
        "only the bystander's went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_ambiguous_bodies_get_400_and_nothing_goes_upstream() {
    let w = world().await;
    let bystander = Bystander::start(&w);
    let nested = format!(
        r#"{{"model":"m","tools":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let one_mb_model = format!(r#"{{"model":"{}"}}"#, "m".repeat(1_000_000));
    let one_mb_bool = format!(r#"{{"model":"m","stream":"{}"}}"#, "x".repeat(1_000_000));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", "", b"{not json".to_vec(), 400, "invalid_json"),
        ("empty", "", Vec::new(), 400, "invalid_json"),
        ("not UTF-8", "", b"{\"model\":\"\xff\xfe\"}".to_vec(), 400, "invalid_json"),
        ("a top-level array", "", b"[1,2]".to_vec(), 400, "invalid_json"),
        ("nested 100,000 deep", "", nested.into_bytes(), 400, "invalid_json"),
        ("no model", "", br#"{"messages":[]}"#.to_vec(), 400, "missing_model"),
        ("a null model", "", br#"{"model":null}"#.to_vec(), 400, "missing_model"),
        ("a numeric model", "", br#"{"model":5}"#.to_vec(), 400, "invalid_json"),
        ("a 1 MB model", "", one_mb_model.into_bytes(), 400, "invalid_model"),
        ("a 1 MB string where a bool goes", "", one_mb_bool.into_bytes(), 400, "invalid_json"),
        // the upstream would read the last `model`, the gateway the first: refused
        (
            "model twice",
            "",
            br#"{"model":"claude-sonnet-4-5","model":"gpt-4o"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "model twice, once escaped",
            "",
            br#"{"model":"claude-sonnet-4-5","mod\u0065l":"gpt-4o"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "a form body",
            "content-type: application/x-www-form-urlencoded\r\n",
            b"model=claude-sonnet-4-5".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "multipart",
            "content-type: multipart/form-data; boundary=x\r\n",
            b"--x\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nclaude-sonnet-4-5\r\n--x--\r\n"
                .to_vec(),
            400,
            "invalid_json",
        ),
        (
            "gzip",
            "content-type: application/json\r\ncontent-encoding: gzip\r\n",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec(),
            415,
            "unsupported_content_encoding",
        ),
    ];
    for (path, anthropic) in [("/v1/messages", true), ("/v1/responses", false)] {
        for (what, extra, body, status, code) in &cases {
            let r = raw(&w, &request(&w, path, extra, body)).await;
            assert_eq!(r.status, *status, "{what} on {path}: {}", r.body);
            let (got, message) = refusal(&r, anthropic);
            assert_eq!(&got, code, "{what} on {path}: {message}");
            assert!(
                message.len() < 1000,
                "{what}: the message echoes the body ({} bytes)",
                message.len()
            );
        }
    }
    // deep nesting where the gateway does not look is skipped without recursion: decided as usual
    let nested = format!(
        r#"{{"model":"gpt-4o","metadata":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = raw(&w, &request(&w, "/v1/messages", "", nested.as_bytes())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.header("x-strata-error-source"), Some("policy"));
    // a readable body is served whatever its content type says (curl's default form type included:
    // the gateway reads the body, whatever the label)
    let r = raw(
        &w,
        &request(
            &w,
            "/v1/messages",
            "content-type: text/plain\r\n",
            SONNET.as_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let served = bystander.served().await;
    assert_eq!(
        w.seen.load(Ordering::SeqCst),
        served + 1,
        "only the bystander's requests and the readable one reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_get_431() {
    let w = world().await;
    let bystander = Bystander::start(&w);
    let many: String = (0..500).map(|i| format!("x-flood-{i}: {i}\r\n")).collect();
    let huge = format!("x-huge: {}\r\n", "h".repeat(200 * 1024));
    let long_path = format!("/v1/messages?{}", "q".repeat(200 * 1024));
    for (what, bytes) in [
        (
            "500 headers",
            request(&w, "/v1/messages", &many, SONNET.as_bytes()),
        ),
        (
            "a 200 KB header",
            request(&w, "/v1/messages", &huge, SONNET.as_bytes()),
        ),
        (
            "a 200 KB URL",
            request(&w, &long_path, "", SONNET.as_bytes()),
        ),
    ] {
        let r = raw(&w, &bytes).await;
        assert_eq!(r.status, 431, "{what}: {}", r.body);
    }
    // 60 headers and a 4 KB one are fine
    let fine: String = (0..60).map(|i| format!("x-fine-{i}: {i}\r\n")).collect();
    let fine = format!("{fine}x-big: {}\r\nconnection: close\r\n", "b".repeat(4096));
    let r = raw(&w, &request(&w, "/v1/messages", &fine, SONNET.as_bytes())).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // HTTP/2 without TLS (prior knowledge) is served, and its header lists are bounded too
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let send = |extra: Option<String>| {
        let mut r = h2
            .post(format!("{}/v1/messages", w.gateway))
            .header("x-api-key", &w.alice)
            .body(SONNET);
        if let Some(v) = extra {
            r = r.header("x-huge", v);
        }
        r.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    match send(Some("h".repeat(200 * 1024))).await {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(!e.is_timeout(), "{e}"), // the stream refused
    }
    assert_eq!(send(None).await.unwrap().status(), 200);
    assert!(bystander.served().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_wait_for_a_free_one() {
    let w = world_with("client_timeout_secs = 10\nmax_connections = 2").await;
    let req = request(
        &w,
        "/v1/messages",
        "content-type: application/json\r\nconnection: close\r\n",
        SONNET.as_bytes(),
    );
    // two keep-alive connections, each served once, then held open
    let health = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", w.addr);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(w.addr).await.unwrap();
        s.write_all(health.as_bytes()).await.unwrap();
        let r = answer(&mut s, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        held.push(s);
    }
    // a third connects (the kernel's backlog) but is not served while both are open
    let mut third = TcpStream::connect(w.addr).await.unwrap();
    third.write_all(&req).await.unwrap();
    assert!(
        answer(&mut third, Duration::from_millis(700))
            .await
            .is_err(),
        "a third connection was served past max_connections = 2"
    );
    assert_eq!(w.seen.load(Ordering::SeqCst), 0);
    // one closes: the third is served, nothing lost
    drop(held.pop());
    let r = answer(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.seen.load(Ordering::SeqCst), 1);
    // the metrics say so, read on a connection of its own once the third has gone
    drop(third);
    let mut m = TcpStream::connect(w.addr).await.unwrap();
    m.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            w.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = answer(&mut m, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    let value = |name: &str| -> f64 {
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {}", r.body))
            .parse()
            .unwrap()
    };
    assert!(value("strata_gateway_connection_limit_reached_total") >= 1.0);
    // the one still held and this one
    assert_eq!(value("strata_gateway_connections"), 2.0);
}

/// One response on `s` within `within`; `Err` when none came in time
async fn answer(
    s: &mut TcpStream,
    within: Duration,
) -> Result<Option<RawResponse>, tokio::time::error::Elapsed> {
    tokio::time::timeout(within, read_response(s)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_an_oversized_body_reads_its_413() {
    let w = world_with("client_timeout_secs = 10").await;
    // what an SDK does: send the whole body, then read the answer. The gateway refuses from the
    // declared length (or at the limit, chunked) while bytes are still coming; the refusal must
    // reach the client, not a connection reset
    let body = vec![b' '; 3 * LIMIT];
    let declared = request(&w, "/v1/messages", "", &body);
    let mut chunked =
        head(&w, "/v1/chat/completions", "transfer-encoding: chunked\r\n").into_bytes();
    for piece in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for (bytes, anthropic) in [(declared, true), (chunked, false)] {
        for _ in 0..10 {
            let mut s = TcpStream::connect(w.addr).await.unwrap();
            let sent = tokio::time::timeout(Duration::from_secs(10), s.write_all(&bytes))
                .await
                .expect("the body sent (or refused) within 10 s");
            assert!(sent.is_ok(), "the body could not be sent: {sent:?}");
            let r = tokio::time::timeout(Duration::from_secs(10), read_to_end(&mut s))
                .await
                .expect("an answer within 10 s")
                .expect("the 413, not a reset");
            assert_eq!(r.status, 413, "{}", r.body);
            assert_eq!(refusal(&r, anthropic).0, "request_too_large");
        }
    }
    assert_eq!(w.seen.load(Ordering::SeqCst), 0);
}

/// One response, read until the connection closes; `None` on a reset
async fn read_to_end(rd: &mut TcpStream) -> Option<RawResponse> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    Some(RawResponse {
        status,
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: body.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_costs_nothing_upstream_and_others_are_served() {
    let w = world_with("client_timeout_secs = 10").await;
    let bystander = Bystander::start(&w);
    let rss_before = common::rss_kib();
    // CVE-2023-44487: open a stream, reset it at once, again and again on one connection
    let tcp = TcpStream::connect(w.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let (mut sent, mut refused) = (0u32, None);
    for _ in 0..20_000 {
        client = match client.ready().await {
            Ok(c) => c,
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        };
        let req = axum::http::Request::post(format!("http://{}/v1/messages", w.addr))
            .header("x-api-key", &w.alice)
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        match client.send_request(req, false) {
            Ok((_answer, mut body)) => {
                body.send_reset(h2::Reason::CANCEL);
                sent += 1;
            }
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    // the server's HTTP/2 (h2) counts the resets, sends GOAWAY ENHANCE_YOUR_CALM and closes;
    // the client sees the GOAWAY, or, when the close comes first, a broken pipe
    let refused = refused.expect("20,000 reset streams and the connection still open");
    assert!(
        refused.contains("too_many_resets")
            || refused.contains("broken pipe")
            || refused.contains("reset by peer"),
        "{refused}"
    );
    assert!(
        sent < 5_000,
        "{sent} streams before the connection was refused"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the connection ends")
        .unwrap();
    let e = ended.expect_err("the server ended the connection");
    assert!(
        e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || e.is_io(),
        "{e}"
    );
    // nothing of the reset streams reached the upstream: only the bystander's requests did
    let served = bystander.served().await;
    assert!(served > 0);
    assert_eq!(w.seen.load(Ordering::SeqCst), served);
    let grown_mib = common::rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
    // and a new connection is served as usual
    let r = raw(
        &w,
        &request(
            &w,
            "/v1/messages",
            "connection: close\r\n",
            SONNET.as_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
