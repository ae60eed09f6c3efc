//! The load side of `bench/soak.sh`: a fixed request rate against the gateway for a bounded
//! time, checking every answer against the revision it names.
//!
//! The soak alternates two org bundles: under `ALLOW_REV` the model is allowed, under `DENY_REV`
//! it is banned. A 200 must name `ALLOW_REV`, a 403 (`policy_denied`) must name `DENY_REV`; any
//! other pairing is a wrong decision. Anything but 200 and 403 is an unexpected error.
//!
//! ```sh
//! soak_client URL TOKEN RATE SECONDS ALLOW_REV DENY_REV
//! ```
//! Prints a progress line every 10 s on stderr and one JSON summary on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

const BODY: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;
/// Requests open at once at most; past it the rate drops (reported) rather than piling up
const MAX_OPEN: usize = 1024;
/// Ticks per second of the pacer
const TICKS: u64 = 100;

enum Outcome {
    Allowed,
    Denied,
    /// a decision that contradicts the revision it names
    Wrong(String),
    Unexpected(String),
}

async fn one(http: &reqwest::Client, url: &str, token: &str, allow: &str, deny: &str) -> Outcome {
    let r = match http
        .post(url)
        .header("x-api-key", token)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Unexpected(format!("transport: {e}")),
    };
    let status = r.status().as_u16();
    let revision = r
        .headers()
        .get("x-strata-revision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = r.bytes().await.unwrap_or_default();
    match status {
        200 if revision == allow => Outcome::Allowed,
        403 if revision == deny => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["error"]["code"] == "policy_denied" {
                Outcome::Denied
            } else {
                Outcome::Unexpected(format!("403 {}", String::from_utf8_lossy(&body)))
            }
        }
        200 | 403 => Outcome::Wrong(format!("{status} under revision `{revision}`")),
        s => Outcome::Unexpected(format!("{s}: {}", String::from_utf8_lossy(&body))),
    }
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 6 {
        eprintln!("usage: soak_client URL TOKEN RATE SECONDS ALLOW_REV DENY_REV");
        std::process::exit(2);
    }
    let (url, token) = (format!("{}/v1/messages", a[0]), a[1].clone());
    let rate: u64 = a[2].parse().expect("RATE");
    let secs: u64 = a[3].parse().expect("SECONDS");
    let (allow, deny) = (a[4].clone(), a[5].clone());
    // reqwest is built without a TLS provider of its own (plain HTTP here, but it wants one)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(MAX_OPEN)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel::<(Outcome, Duration)>();
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let pacer = {
        let (http, url, token, allow, deny, open) = (
            http.clone(),
            Arc::new(url),
            Arc::new(token),
            Arc::new(allow),
            Arc::new(deny),
            Arc::clone(&open),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / TICKS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent: u64 = 0;
            while Instant::now() < end {
                tick.tick().await;
                // as many as the rate asks for by now (no drift from rounding)
                let due = start.elapsed().as_micros() as u64 * rate / 1_000_000;
                while sent < due {
                    let permit = Arc::clone(&open).acquire_owned().await.unwrap();
                    let (http, url, token, allow, deny, tx) = (
                        http.clone(),
                        Arc::clone(&url),
                        Arc::clone(&token),
                        Arc::clone(&allow),
                        Arc::clone(&deny),
                        tx.clone(),
                    );
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let o = one(&http, &url, &token, &allow, &deny).await;
                        let _ = tx.send((o, t.elapsed()));
                        drop(permit);
                    });
                    sent += 1;
                }
            }
            sent
        })
    };

    let (mut allowed, mut denied) = (0u64, 0u64);
    let mut wrong: BTreeMap<String, u64> = BTreeMap::new();
    let mut unexpected: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut report = start + Duration::from_secs(10);
    let mut last = (0u64, start);
    loop {
        let next = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        match next {
            Ok(Some((o, took))) => {
                latencies_us.push(took.as_micros().min(u32::MAX as u128) as u32);
                match o {
                    Outcome::Allowed => allowed += 1,
                    Outcome::Denied => denied += 1,
                    Outcome::Wrong(w) => *wrong.entry(w).or_default() += 1,
                    Outcome::Unexpected(u) => {
                        let key: String = u.chars().take(160).collect();
                        *unexpected.entry(key).or_default() += 1
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if pacer.is_finished() && open.available_permits() == MAX_OPEN && rx.is_empty() {
            break;
        }
        if Instant::now() >= report {
            let done = latencies_us.len() as u64;
            let rate_now = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
            eprintln!(
                "  {:>4} s: {done} answered ({rate_now:.0}/s), {allowed} allowed, {denied} denied, {} wrong, {} unexpected",
                start.elapsed().as_secs(),
                wrong.values().sum::<u64>(),
                unexpected.values().sum::<u64>()
            );
            last = (done, Instant::now());
            report += Duration::from_secs(10);
        }
    }
    let sent = pacer.await.unwrap();
    let took = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        latencies_us
            .get(((latencies_us.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let summary = serde_json::json!({
        "seconds": took,
        "target_rate": rate,
        "sent": sent,
        "answered": latencies_us.len(),
        "rate": latencies_us.len() as f64 / took,
        "allowed": allowed,
        "denied": denied,
        "wrong": wrong.values().sum::<u64>(),
        "wrong_kinds": wrong,
        "unexpected": unexpected.values().sum::<u64>(),
        "unexpected_kinds": unexpected,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": pct(1.0),
    });
    println!("{summary}");
}
