//! A resolver outage under steady load (short, for CI): the resolver is stopped while clients
//! keep sending, then started again on the same data directory and port. Every request during
//! the outage gets a clear 503, nothing reaches the upstream without a decision, traffic recovers
//! soon after the resolver is back, and the gateway's memory stays flat. `bench/soak.sh` is the
//! long version with publishes; `docs/reliability.md` has the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;

/// When each request reached the upstream
type Arrivals = Arc<Mutex<Vec<Instant>>>;

async fn upstream(State(arrivals): State<Arrivals>, req: Request) -> Response<Body> {
    arrivals.lock().unwrap().push(Instant::now());
    let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":3,"output_tokens":1}}"#,
        ))
        .unwrap()
}

/// One request as a client saw it
#[derive(Debug)]
struct Sample {
    sent: Instant,
    done: Instant,
    status: u16,
    /// `x-strata-error-source` and the error code, for refusals
    source: String,
    code: String,
    decided: bool,
}

const WORKERS: usize = 4;
const OUTAGE: Duration = Duration::from_millis(2000);
/// Traffic must be back for good within this long of the resolver's return (measured: 20 to
/// 65 ms, docs/reliability.md)
const RECOVERY: Duration = Duration::from_millis(1000);
/// How long the load goes on after the resolver is back: well past [`RECOVERY`], so that a late
/// recovery, or none, fails the test
const AFTER: Duration = Duration::from_millis(3000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_outage_under_load_fails_closed_and_recovers() {
    let arrivals = Arrivals::default();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(Arc::clone(&arrivals));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let mut s = common::stack(up).await;

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (http, samples, stop) = (http.clone(), Arc::clone(&samples), Arc::clone(&stop));
        let (url, key) = (format!("{}/v1/messages", s.gateway), s.alice.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let r = http
                    .post(&url)
                    .header("x-api-key", &key)
                    .body(r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}"#)
                    .send()
                    .await
                    .expect("the gateway answers every request, outage or not");
                let status = r.status().as_u16();
                let header = |n: &str| {
                    r.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let (source, decided) = (
                    header("x-strata-error-source"),
                    r.headers().contains_key("x-strata-decision-id"),
                );
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                samples.lock().unwrap().push(Sample {
                    sent,
                    done: Instant::now(),
                    status,
                    source,
                    code: v["error"]["code"].as_str().unwrap_or_default().to_string(),
                    decided,
                });
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    // steady load, then the outage
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rss_before = common::rss_kib();
    let stopping = Instant::now();
    s.resolver.take().unwrap().stop().await;
    let down = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let listener = tokio::net::TcpListener::bind(s.resolver_addr)
        .await
        .unwrap();
    let restart = Instant::now();
    s.resolver = Some(common::start_resolver(s.data.path(), listener).await);
    let back = Instant::now();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let rss_after = common::rss_kib();

    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let arrivals = arrivals.lock().unwrap().clone();
    // every answer is a decision's (200) or a fail-closed refusal (503)
    for x in &samples {
        match x.status {
            200 => assert!(x.decided, "a 200 without a decision: {x:?}"),
            503 => assert_eq!(
                (x.source.as_str(), x.code.as_str()),
                ("gateway", "policy_unavailable"),
                "{x:?}"
            ),
            _ => panic!("unexpected answer: {x:?}"),
        }
    }
    // during the outage: every request refused, and nothing reached the upstream (the first
    // second after the stop is left out: requests decided just before it may still be on their
    // way to the upstream)
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.sent >= down && x.done <= restart)
        .collect();
    assert!(!during.is_empty(), "no request was sent during the outage");
    assert!(
        during.iter().all(|x| x.status == 503),
        "a request was answered without the resolver: {:?}",
        during.iter().find(|x| x.status != 503)
    );
    let window = (down + Duration::from_secs(1), restart);
    let leaked = arrivals
        .iter()
        .filter(|t| **t >= window.0 && **t <= window.1)
        .count();
    assert_eq!(leaked, 0, "requests reached the upstream during the outage");
    let before_outage = samples.iter().filter(|x| x.done < stopping).count();
    let refused_before = samples
        .iter()
        .filter(|x| x.done < stopping && x.status != 200)
        .count();
    assert_eq!(refused_before, 0, "refusals before the outage");

    // recovery, as the sequence of answers to requests sent after the resolver was back, in the
    // order they ended: some 503s at most, then only 200s, the first of which ended within
    // RECOVERY; the load goes on for AFTER, three times as long
    let mut after: Vec<&Sample> = samples.iter().filter(|x| x.sent >= back).collect();
    after.sort_by_key(|x| x.done);
    let last_refused = after.iter().rposition(|x| x.status != 200);
    let first_ok_for_good = match last_refused {
        Some(i) => after.get(i + 1).copied(),
        None => after.first().copied(),
    }
    .unwrap_or_else(|| {
        panic!(
            "traffic never recovered in the {AFTER:?} after the resolver was back: {:?}",
            after.iter().map(|x| x.status).collect::<Vec<_>>()
        )
    });
    let recovered = first_ok_for_good.done.duration_since(back);
    let served_after = after.len() - last_refused.map_or(0, |i| i + 1);
    let refused_after = after.iter().filter(|x| x.status != 200).count();
    eprintln!(
        "outage: {} requests before, {} during ({} ms, all 503, {} reached the upstream), \
         recovered {} ms after the resolver was back, {served_after} requests after; \
         RSS {} -> {} MiB",
        before_outage,
        during.len(),
        down.elapsed().as_millis() - back.elapsed().as_millis(),
        leaked,
        recovered.as_millis(),
        rss_before / 1024,
        rss_after / 1024,
    );
    assert!(
        recovered < RECOVERY,
        "recovered only after {recovered:?} ({refused_after} refusals after the resolver was back)"
    );
    assert!(served_after > 10, "too few requests after the recovery");
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
}
