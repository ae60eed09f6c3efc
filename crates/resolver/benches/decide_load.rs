#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Load client for `PolicyService/Decide` over loopback gRPC.
//!
//! Starts a real resolver (sled store in a temporary directory, or PostgreSQL with
//! `DECIDE_LOAD_STORE=postgres://...`) on `127.0.0.1:0`, publishes the Acme example org and
//! project `web`, creates a gateway token, then measures:
//!
//! 1. the cost of a decision without any transport (`strata_policy::decide`, and the service
//!    method `PolicySvc::decide` called directly: auth, token lookup, decide, response, uuid);
//! 2. saturation: closed-loop tonic clients (4, 16, 64 requests in flight over HTTP/2 channels)
//!    for a bounded time each, decisions/s and latency percentiles;
//! 3. a fixed rate of 5,000 requests/s, open loop: a pacer thread schedules every request at
//!    `start + i / rate` and latency is measured from that scheduled time (no coordinated
//!    omission), and also from the moment the request task actually started;
//!
//! first with the client in the resolver's process, then with the client in a second process
//! (this binary re-executed with `--client ADDR TOKEN SERVER`). The same runs against a second
//! in-process server that sets TCP_NODELAY on accepted sockets, to show what that changes.
//! Everything is bounded in time.
//!
//! Run: `cargo bench -p strata-resolver --bench decide_load`.
//! Knobs (environment): `DECIDE_LOAD_SECS` (seconds per saturation point, default 5),
//! `DECIDE_LOAD_FIXED_SECS` (fixed-rate seconds, default 10), `DECIDE_LOAD_RATE` (default 5000),
//! `DECIDE_LOAD_SEPARATE=0` (skip the second-process client), `DECIDE_LOAD_NODELAY=0` (skip the
//! TCP_NODELAY server), `DECIDE_LOAD_SHIPPED=0` (skip the `serve` runs),
//! `DECIDE_LOAD_SAME=0` (skip the same-process client),
//! `DECIDE_LOAD_BASELINE=0` (skip the no-transport measurements), `DECIDE_LOAD_ONLY=saturation|fixed`,
//! `DECIDE_LOAD_STORE=postgres://USER@HOST:PORT/DB` (the resolver on a PostgreSQL store in that
//! database, which should be empty: the decision path never reads the store, and this shows it).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_policy::FileTree;
use strata_proto::v1::policy_service_server::{PolicyService, PolicyServiceServer};
use strata_proto::v1::{self, policy_service_client::PolicyServiceClient};
use strata_resolver::{PgStore, Resolver, SledStore, Store, service::PolicySvc};
use tokio::runtime::Handle;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

/// The shipped `policy` binary's allocator, so the figures are the binary's
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/examples/acme/org"
);
const PROJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/examples/acme/project/.factory"
);
const BILLING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/examples/acme/project/services/billing/.factory"
);
const SERVICE_TOKEN: &str = "strata_svc_bench";
const ADMIN_TOKEN: &str = "strata_admin_bench";
/// No single call may take longer than this (keeps every phase bounded)
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const WARMUP: Duration = Duration::from_secs(1);

fn env_f64(key: &str, default: f64) -> f64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn only(phase: &str) -> bool {
    std::env::var("DECIDE_LOAD_ONLY")
        .map(|v| v == phase)
        .unwrap_or(true)
}

/// CPU time (user + system) of this process so far, from /proc (clock ticks of 10 ms)
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the `(comm)` which may contain spaces; utime and stime are fields 14 and 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The request mix: one gateway token (alice, group leads), four kinds of model requests
fn mix(token: &str) -> Vec<(&'static str, v1::DecideRequest)> {
    let req = |project: &str,
               folder: &str,
               model: &str,
               provider: &str,
               key_mode: v1::KeyMode,
               base_url: &str| v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Token(token.to_string())),
        project: project.to_string(),
        folder: folder.to_string(),
        gateway: String::new(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.to_string(),
            provider: provider.to_string(),
            key_mode: key_mode as i32,
            base_url: base_url.to_string(),
            mcp_servers: Vec::new(),
        })),
    };
    vec![
        (
            "allowed: claude-sonnet-4-5, central key, project web",
            req(
                "web",
                "",
                "claude-sonnet-4-5",
                "anthropic",
                v1::KeyMode::Central,
                "http://127.0.0.1:8787",
            ),
        ),
        (
            "blocked: gpt-4o (org ban), project web",
            req(
                "web",
                "",
                "gpt-4o",
                "openai",
                v1::KeyMode::Central,
                "http://127.0.0.1:8787/v1",
            ),
        ),
        (
            "byok: gpt-5-mini, personal openai key, project web",
            req(
                "web",
                "",
                "gpt-5-mini",
                "openai",
                v1::KeyMode::Byok,
                "http://127.0.0.1:8787/v1",
            ),
        ),
        (
            "folder: o4-mini in web/services/billing",
            req(
                "web",
                "services/billing",
                "o4-mini",
                "openai",
                v1::KeyMode::Central,
                "http://127.0.0.1:8787/v1",
            ),
        ),
    ]
}

fn read(path: &str) -> Vec<v1::File> {
    let tree = FileTree::read_path(Path::new(path))
        .unwrap_or_else(|p| panic!("cannot read {path}: {p:?}"));
    strata_proto::files(&tree)
}

/// Latencies in nanoseconds and the count of failed calls
#[derive(Default)]
struct Sample {
    lat: Vec<u64>,
    errors: u64,
}

struct Summary {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Percentiles in microseconds
fn summarize(lat: &mut [u64]) -> Summary {
    lat.sort_unstable();
    let n = lat.len();
    let at = |q: f64| -> f64 {
        if n == 0 {
            return f64::NAN;
        }
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        lat[i] as f64 / 1_000.0
    };
    Summary {
        n,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    }
}

fn us(x: f64) -> String {
    if x >= 1_000.0 {
        format!("{:.2} ms", x / 1_000.0)
    } else {
        format!("{x:.0} µs")
    }
}

fn bearer() -> MetadataValue<tonic::metadata::Ascii> {
    format!("Bearer {SERVICE_TOKEN}").parse().unwrap()
}

fn grpc(
    req: v1::DecideRequest,
    auth: &MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<v1::DecideRequest> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut().insert("authorization", auth.clone());
    r
}

async fn connect(addr: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        out.push(ch);
    }
    out
}

/// Closed loop: `inflight` tasks, each sending its next request when the previous one answers
async fn saturate(
    channels: &[Channel],
    inflight: usize,
    reqs: &Arc<Vec<v1::DecideRequest>>,
    dur: Duration,
) -> (Sample, Duration, u64) {
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let end = measure_from + dur;
    let mut tasks = Vec::new();
    for i in 0..inflight {
        let mut client = PolicyServiceClient::new(channels[i % channels.len()].clone());
        let reqs = reqs.clone();
        tasks.push(tokio::spawn(async move {
            let auth = bearer();
            let mut s = Sample {
                lat: Vec::with_capacity(1 << 16),
                errors: 0,
            };
            let mut total = 0u64;
            let mut k = i;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = tokio::time::timeout(
                    CALL_TIMEOUT,
                    client.decide(grpc(reqs[k % reqs.len()].clone(), &auth)),
                )
                .await;
                let t1 = Instant::now();
                k += 1;
                total += 1;
                if t0 >= measure_from && t1 <= end {
                    match r {
                        Ok(Ok(_)) => s.lat.push((t1 - t0).as_nanos() as u64),
                        _ => s.errors += 1,
                    }
                }
            }
            (s, total)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_a = cpu_time();
    let mut all = Sample::default();
    let mut total = 0;
    for t in tasks {
        let (s, n) = t.await.unwrap();
        all.lat.extend(s.lat);
        all.errors += s.errors;
        total += n;
    }
    let cpu = match (cpu_a, cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    (all, cpu, total)
}

/// Open loop at `rate`/s: a pacer thread starts request `i` at `start + i / rate`
async fn fixed_rate(
    channels: &[Channel],
    rate: f64,
    dur: Duration,
    reqs: &Arc<Vec<v1::DecideRequest>>,
) -> (Sample, Sample, f64) {
    let n = (rate * dur.as_secs_f64()) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let clients: Vec<_> = channels
        .iter()
        .map(|c| PolicyServiceClient::new(c.clone()))
        .collect();
    let handle = Handle::current();
    let reqs = reqs.clone();
    let pacer = tokio::task::spawn_blocking(move || {
        let auth = bearer();
        let start = Instant::now() + Duration::from_millis(50);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let scheduled = start + period * i as u32;
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let mut client = clients[i % clients.len()].clone();
            let req = grpc(reqs[i % reqs.len()].clone(), &auth);
            handles.push(handle.spawn(async move {
                let sent = Instant::now();
                let r = tokio::time::timeout(CALL_TIMEOUT, client.decide(req)).await;
                let done = Instant::now();
                (
                    matches!(r, Ok(Ok(_))),
                    (done - scheduled).as_nanos() as u64,
                    (done - sent).as_nanos() as u64,
                )
            }));
        }
        (handles, start)
    });
    let (handles, start) = pacer.await.unwrap();
    let mut from_schedule = Sample {
        lat: Vec::with_capacity(n),
        errors: 0,
    };
    let mut from_send = Sample {
        lat: Vec::with_capacity(n),
        errors: 0,
    };
    for h in handles {
        let (ok, a, b) = h.await.unwrap();
        if ok {
            from_schedule.lat.push(a);
            from_send.lat.push(b);
        } else {
            from_schedule.errors += 1;
            from_send.errors += 1;
        }
    }
    let achieved = n as f64 / (Instant::now() - start).as_secs_f64();
    (from_schedule, from_send, achieved)
}

/// Rows of the two tables, as markdown lines tagged `SAT` / `FIX` (a child process prints them)
async fn client_phases(addr: &str, token: &str, who: &str) -> (Vec<String>, u64) {
    let reqs: Arc<Vec<_>> = Arc::new(mix(token).into_iter().map(|(_, r)| r).collect());
    let secs = Duration::from_secs_f64(env_f64("DECIDE_LOAD_SECS", 5.0));
    let mut rows = Vec::new();
    let mut total = 0;
    if only("saturation") {
        for (channels, inflight) in [(1, 1), (2, 4), (2, 16), (2, 64), (1, 64), (4, 64)] {
            let chans = connect(addr, channels).await;
            let (mut s, cpu, n) = saturate(&chans, inflight, &reqs, secs).await;
            total += n;
            let sum = summarize(&mut s.lat);
            let rate = sum.n as f64 / secs.as_secs_f64();
            let cpu_per = if sum.n > 0 {
                cpu.as_secs_f64() * 1e6 / sum.n as f64
            } else {
                f64::NAN
            };
            let row = format!(
                "| {who} | {channels} | {inflight} | {rate:.0} | {} | {} | {} | {} | {} | {cpu_per:.0} µs | {} |",
                us(sum.p50),
                us(sum.p90),
                us(sum.p99),
                us(sum.p999),
                us(sum.max),
                s.errors
            );
            eprintln!("{row}");
            rows.push(format!("SAT{row}"));
        }
    }
    if only("fixed") {
        let rate = env_f64("DECIDE_LOAD_RATE", 5_000.0);
        let dur = Duration::from_secs_f64(env_f64("DECIDE_LOAD_FIXED_SECS", 10.0));
        let chans = connect(addr, 2).await;
        // a short warm-up at the same rate, not recorded
        let _ = fixed_rate(&chans, rate, WARMUP, &reqs).await;
        let (mut a, mut b, achieved) = fixed_rate(&chans, rate, dur, &reqs).await;
        total += (rate * (dur + WARMUP).as_secs_f64()) as u64;
        for (from, s) in [("scheduled send time", &mut a), ("actual send", &mut b)] {
            let sum = summarize(&mut s.lat);
            let row = format!(
                "| {who} | {rate:.0}/s | {achieved:.0}/s | {from} | {} | {} | {} | {} | {} | {} | {} |",
                sum.n,
                us(sum.p50),
                us(sum.p90),
                us(sum.p99),
                us(sum.p999),
                us(sum.max),
                s.errors
            );
            eprintln!("{row}");
            rows.push(format!("FIX{row}"));
        }
    }
    (rows, total)
}

/// The cost of one decision without transport, single-threaded, for `dur`
fn no_transport(
    resolver: &Arc<Resolver>,
    token: &str,
    rt: &tokio::runtime::Runtime,
    dur: Duration,
) -> Vec<String> {
    let reqs: Vec<_> = mix(token).into_iter().map(|(_, r)| r).collect();
    let active = resolver.active().unwrap();
    let principal = v1::Principal {
        user: "alice".to_string(),
        groups: vec!["leads".to_string()],
    };
    let domain: Vec<_> = reqs
        .iter()
        .map(|r| strata_proto::request(r, &principal).unwrap())
        .collect();
    let mut rows = Vec::new();

    let time = |f: &mut dyn FnMut(usize)| -> (f64, f64) {
        let warm = Instant::now() + Duration::from_millis(300);
        let mut i = 0;
        while Instant::now() < warm {
            f(i);
            i += 1;
        }
        let start = Instant::now();
        let end = start + dur;
        let mut n = 0usize;
        while Instant::now() < end {
            for _ in 0..64 {
                f(n);
                n += 1;
            }
        }
        let el = start.elapsed().as_secs_f64();
        (el * 1e6 / n as f64, n as f64 / el)
    };

    let (per, rate) = time(&mut |i| {
        std::hint::black_box(strata_policy::decide(
            &active.snapshot,
            &domain[i % domain.len()],
        ));
    });
    rows.push(format!(
        "| `strata_policy::decide` (the policy core) | {per:.2} µs | {rate:.0} |"
    ));

    let svc = PolicySvc {
        resolver: resolver.clone(),
    };
    let auth = bearer();
    let (per, rate) = time(&mut |i| {
        let r = grpc(reqs[i % reqs.len()].clone(), &auth);
        std::hint::black_box(rt.block_on(svc.decide(r)).unwrap());
    });
    rows.push(format!("| `PolicySvc::decide` called directly (auth, token lookup, decide, response, uuid) | {per:.2} µs | {rate:.0} |"));

    let (per, rate) = time(&mut |i| {
        let r = reqs[i % reqs.len()].clone();
        let bytes = prost::Message::encode_to_vec(&r);
        let back: v1::DecideRequest = prost::Message::decode(bytes.as_slice()).unwrap();
        std::hint::black_box(back);
    });
    rows.push(format!(
        "| protobuf encode + decode of a request (client + server side) | {per:.2} µs | {rate:.0} |"
    ));
    rows
}

fn child(addr: &str, token: &str, server: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (rows, total) = rt.block_on(client_phases(
        addr,
        token,
        &format!("{server} | separate process"),
    ));
    for r in rows {
        println!("{r}");
    }
    println!("TOTAL {total}");
}

/// The client in a second process (this binary, `--client`); its rows, and the server process's
/// CPU time per decision while it ran
fn separate(addr: &str, token: &str, server: &str) -> (Vec<String>, Option<String>) {
    let cpu0 = cpu_time();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--client", addr, token, server])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("the client process overran; killing it");
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let server_cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let lines = reader.join().unwrap();
    let total: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("TOTAL ").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let note = (total > 0).then(|| {
        format!(
            "| {server} | {:.1} s | {total} | {:.0} µs |",
            server_cpu.as_secs_f64(),
            server_cpu.as_secs_f64() * 1e6 / total as f64
        )
    });
    (
        lines
            .into_iter()
            .filter(|l| l.starts_with("SAT") || l.starts_with("FIX"))
            .collect(),
        note,
    )
}

/// The policy service alone, on a listener whose accepted sockets get TCP_NODELAY: what `serve`
/// would do with `TcpIncoming::from(listener).with_nodelay(Some(true))` instead of a bare
/// `TcpListenerStream` (tonic ignores `Server::tcp_nodelay` for `serve_with_incoming*`)
async fn serve_nodelay(
    resolver: Arc<Resolver>,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let policy = PolicyServiceServer::new(PolicySvc { resolver })
        .max_decoding_message_size(strata_resolver::MAX_POLICY_MESSAGE);
    tonic::transport::Server::builder()
        .add_service(policy)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = shutdown.await;
            },
        )
        .await
        .unwrap();
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} × {cpu}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        child(&args[i + 1], &args[i + 2], &args[i + 3]);
        return;
    }
    let whatif = std::env::var("DECIDE_LOAD_NODELAY")
        .map(|v| v != "0")
        .unwrap_or(true);
    let second = std::env::var("DECIDE_LOAD_SEPARATE")
        .map(|v| v != "0")
        .unwrap_or(true);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg = std::env::var("DECIDE_LOAD_STORE")
        .ok()
        .filter(|u| !u.is_empty());
    let (store, store_name): (Arc<dyn Store>, String) = match &pg {
        Some(url) => (
            Arc::new(PgStore::open(url).unwrap()),
            "PostgreSQL (DECIDE_LOAD_STORE)".to_string(),
        ),
        None => (
            Arc::new(SledStore::open(dir.path()).unwrap()),
            "sled (temporary directory)".to_string(),
        ),
    };
    let (resolver, token, servers) = rt.block_on(async {
        let (resolver, _) = Resolver::open(
            store,
            Some(ADMIN_TOKEN.to_string()),
            Some(SERVICE_TOKEN.to_string()),
        )
        .await
        .unwrap();
        let resolver = Arc::new(resolver);
        resolver
            .publish_org(read(ORG), "bench".to_string())
            .await
            .unwrap();
        let billing = v1::FolderLayer {
            path: "services/billing".to_string(),
            files: read(BILLING),
        };
        resolver
            .publish_project(
                "web".to_string(),
                read(PROJECT),
                vec![billing],
                "bench".to_string(),
            )
            .await
            .unwrap();
        let (token, _) = resolver
            .create_token(
                "alice".to_string(),
                vec!["leads".to_string()],
                Vec::new(),
                "bench".to_string(),
            )
            .await
            .unwrap();
        let mut servers = Vec::new();
        // the resolver as shipped: `strata_resolver::serve`
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shipped = resolver.clone();
        let task = tokio::spawn(async move {
            strata_resolver::serve(shipped, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        servers.push(("`serve`".to_string(), addr, tx, task));
        if whatif {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve_nodelay(resolver.clone(), listener, rx));
            servers.push(("with TCP_NODELAY".to_string(), addr, tx, task));
        }
        (resolver, token, servers)
    });

    println!("# Decide over loopback gRPC\n");
    println!(
        "machine: {}, tokio multi-thread runtime (default: one worker per core); store: {store_name}\n",
        machine()
    );

    // sanity: every request of the mix gets a decision, print what it is
    rt.block_on(async {
        let chans = connect(&servers[0].1, 1).await;
        let mut c = PolicyServiceClient::new(chans[0].clone());
        println!("| request of the mix | effect | determined by |\n|---|---|---|");
        for (name, r) in mix(&token) {
            let resp = c.decide(grpc(r, &bearer())).await.unwrap().into_inner();
            let effect = v1::Effect::try_from(resp.effect)
                .map(|e| e.as_str_name().to_string())
                .unwrap_or_default();
            let by: Vec<_> = resp.determined_by.iter().map(|d| d.rule.clone()).collect();
            println!("| {name} | {effect} | {} |", by.join(", "));
        }
        println!();
    });

    println!("## Without transport (one thread)\n\n| what | per call | calls/s |\n|---|---|---|");
    let base = if std::env::var("DECIDE_LOAD_BASELINE").is_ok_and(|v| v == "0") {
        Vec::new()
    } else {
        no_transport(&resolver, &token, &rt, Duration::from_secs(2))
    };
    for r in base {
        println!("{r}");
    }
    println!();

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let same = std::env::var("DECIDE_LOAD_SAME")
        .map(|v| v != "0")
        .unwrap_or(true);
    let shipped = std::env::var("DECIDE_LOAD_SHIPPED")
        .map(|v| v != "0")
        .unwrap_or(true);
    for (label, addr, _, _) in servers.iter().skip(usize::from(!shipped)) {
        if same {
            eprintln!("{label}: client in the resolver's process…");
            let label = format!("{label} | same process");
            rows.extend(rt.block_on(client_phases(addr, &token, &label)).0);
        }
        if second {
            eprintln!("{label}: client in a second process…");
            let (r, note) = separate(addr, &token, label);
            rows.extend(r);
            notes.extend(note);
        }
    }

    if !notes.is_empty() {
        println!("## Server process CPU while the separate-process client ran\n");
        println!("| server | CPU | decisions (all phases) | CPU/decision |\n|---|---|---|---|");
        for n in &notes {
            println!("{n}");
        }
        println!();
    }
    println!(
        "## Saturation (closed loop, {} s per point after 1 s warm-up)\n",
        env_f64("DECIDE_LOAD_SECS", 5.0)
    );
    println!(
        "| server | client | channels | in flight | decisions/s | p50 | p90 | p99 | p99.9 | max | CPU/decision (this process) | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter_map(|r| r.strip_prefix("SAT")) {
        println!("{r}");
    }
    println!(
        "\n## Fixed rate (open loop, {} s after 1 s warm-up, 2 channels)\n",
        env_f64("DECIDE_LOAD_FIXED_SECS", 10.0)
    );
    println!(
        "| server | client | target | achieved | latency measured from | answered | p50 | p90 | p99 | p99.9 | max | errors (2 s timeout) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter_map(|r| r.strip_prefix("FIX")) {
        println!("{r}");
    }

    rt.block_on(async {
        for (_, _, shutdown, task) in servers {
            let _ = shutdown.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    });
}
