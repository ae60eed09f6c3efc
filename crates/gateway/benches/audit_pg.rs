#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Audit insert throughput: how fast the gateway's audit writer drains records into PostgreSQL
//! (`[audit] store`), against the JSON-lines writer (`[audit] dir`) on the same records.
//!
//! Each run ends `N` requests' records the way the request path does (`Telemetry::begin` then
//! `Pending::end`, which also updates the metrics) as fast as one thread can, with a queue large
//! enough that nothing is dropped, then waits for the writer (`Telemetry::flush`) and, for
//! PostgreSQL, checks that the table holds every row. Reported: the time per record on the
//! request path (enqueueing), and records written per second from the first record to the last
//! one written. A second PostgreSQL run keeps the default queue (65,536) and offers records for a
//! fixed time at full speed: what the writer sustains, and how many are dropped past it.
//!
//! Run: `AUDIT_PG_STORE=postgres://USER@HOST:PORT/DB cargo bench -p strata-gateway --bench
//! audit_pg` (an empty database; the table `strata_audit` is created there). Knobs: `AUDIT_PG_N`
//! (records per burst, default 200,000), `AUDIT_PG_SECS` (the sustained run, default 10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_gateway::audit::{Record, Usage, now};
use strata_gateway::telemetry::Telemetry;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A record shaped like a real request's: an allowed streamed Messages call
fn record(i: u64) -> Record {
    let (time, unix_ms, _) = now();
    Record {
        time,
        unix_ms,
        decision_id: format!("dec_0192f{i:016x}"),
        user: format!("user-{}", i % 500),
        project: format!("project-{}", i % 40),
        client: "factory-cli/0.22.3".to_string(),
        api: "anthropic_messages".to_string(),
        provider: "anthropic".to_string(),
        model: ["claude-sonnet-4-5", "claude-opus-4-1", "gpt-5-codex"][(i % 3) as usize]
            .to_string(),
        canonical_model: None,
        org_settings_loaded: Some(true),
        key_mode: "central".to_string(),
        key_hint: "…a1b2".to_string(),
        decision: if i.is_multiple_of(10) {
            "deny"
        } else {
            "allow"
        }
        .to_string(),
        error: None,
        rules: vec![
            "org#customModels".to_string(),
            "org#modelPolicy.allowedModelIds".to_string(),
        ],
        revision: "9f2c1e0d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e".to_string(),
        upstream_status: Some(200),
        status: 200,
        decision_ms: 0.42,
        upstream_ms: Some(310.5),
        first_byte_ms: Some(311.2),
        total_ms: 2204.7,
        usage: Some(Usage {
            input_tokens: 18_204,
            output_tokens: 733,
            cache_read_tokens: 16_000,
            cache_write_tokens: 0,
        }),
        stream: true,
        client_disconnected: false,
    }
}

/// End `n` records through `tel`; (time spent enqueueing, time until all are written)
fn burst(tel: &Arc<Telemetry>, n: u64) -> (Duration, Duration) {
    let records: Vec<Record> = (0..n).map(record).collect();
    let t0 = Instant::now();
    for r in records {
        tel.begin(r).end(200);
    }
    let queued = t0.elapsed();
    assert!(
        tel.flush(Duration::from_secs(600)),
        "the writer did not finish"
    );
    (queued, t0.elapsed())
}

fn dropped(tel: &Telemetry) -> u64 {
    tel.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("strata_gateway_audit_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn rows(url: &str, rt: &tokio::runtime::Runtime) -> i64 {
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.query_one("SELECT count(*) FROM strata_audit", &[])
            .await
            .unwrap()
            .get(0)
    })
}

fn line(what: &str, n: u64, (queued, written): (Duration, Duration), dropped: u64) {
    println!(
        "| {what} | {n} | {:.2} µs | {:.0} | {:.2} s | {dropped} |",
        queued.as_secs_f64() * 1e6 / n as f64,
        n as f64 / written.as_secs_f64(),
        written.as_secs_f64()
    );
}

fn main() {
    let n = env_num("AUDIT_PG_N", 200_000);
    let secs = env_num("AUDIT_PG_SECS", 10);
    let url = std::env::var("AUDIT_PG_STORE")
        .ok()
        .filter(|u| !u.is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("# Audit writer throughput\n");
    println!(
        "| writer | records | enqueue per record (request path) | records/s written | until all written | dropped |"
    );
    println!("|---|---:|---:|---:|---:|---:|");

    let dir = tempfile::tempdir().unwrap();
    let files =
        Arc::new(Telemetry::with_audit_dir(dir.path().to_path_buf(), 60, n as usize).unwrap());
    let r = burst(&files, n);
    line("JSON lines (`dir`), burst", n, r, dropped(&files));

    let Some(url) = url else {
        eprintln!(
            "audit_pg: set AUDIT_PG_STORE=postgres://USER@HOST:PORT/DB for the PostgreSQL runs"
        );
        return;
    };
    let pg = Arc::new(Telemetry::with_postgres(&url, 60, n as usize).unwrap());
    let before = rows(&url, &rt);
    let r = burst(&pg, n);
    let after = rows(&url, &rt);
    assert_eq!(after - before, n as i64, "every record is in the table");
    line("PostgreSQL (`store`), burst", n, r, dropped(&pg));

    // sustained: the default queue, records offered at full speed for `secs`
    let pg = Arc::new(Telemetry::with_postgres(&url, 60, strata_gateway::audit::QUEUE).unwrap());
    let before = rows(&url, &rt);
    let t0 = Instant::now();
    let mut offered = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        for _ in 0..1000 {
            pg.begin(record(offered)).end(200);
            offered += 1;
        }
    }
    let queued = t0.elapsed();
    assert!(pg.flush(Duration::from_secs(600)));
    let written_all = t0.elapsed();
    let lost = dropped(&pg);
    let written = (rows(&url, &rt) - before) as u64;
    assert_eq!(
        written + lost,
        offered,
        "every record written or counted as dropped"
    );
    println!(
        "| PostgreSQL (`store`), offered at full speed for {secs} s, queue {} | {offered} offered, {written} written | {:.2} µs | {:.0} | {:.2} s | {lost} |",
        strata_gateway::audit::QUEUE,
        queued.as_secs_f64() * 1e6 / offered as f64,
        written as f64 / written_all.as_secs_f64(),
        written_all.as_secs_f64()
    );
}
