#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Publish-to-enforced latency across two resolver replicas on one PostgreSQL database.
//!
//! Two resolvers, each with its own `PgStore` (its own connections and listener) on the database
//! named by `PG_REPLICAS_STORE`, serve gRPC on `127.0.0.1:0` as `policy serve --store` does. Each
//! iteration publishes a new org bundle through replica A's `AdminService/PublishOrg` (the Acme
//! example with one more entry in `blockedModelIds`, so every publish is a new revision) and then
//! calls replica B's `PolicyService/Decide` in a loop until its answer carries that revision.
//! Reported: the publish call on A (validate, compile, one activation transaction), and from A's
//! acknowledgement to B deciding under the new revision (NOTIFY, B reads the active pointer and
//! the revision, compiles it off the hot path, swaps it in). B is polled back to back over one
//! HTTP/2 channel, so the figure includes up to one Decide round-trip of slack.
//!
//! Run: `PG_REPLICAS_STORE=postgres://USER@HOST:PORT/DB cargo bench -p strata-resolver --bench
//! pg_replicas` (an empty database: it will hold one revision per iteration).
//! Knobs: `PG_REPLICAS_N` (iterations, default 200), `PG_REPLICAS_PAUSE_MS` (between
//! iterations, default 20). Bounded: an iteration gives up after 5 s and is counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_policy::FileTree;
use strata_proto::v1::admin_service_client::AdminServiceClient;
use strata_proto::v1::{self, policy_service_client::PolicyServiceClient};
use strata_resolver::{PgStore, Resolver, Store};
use tonic::transport::Channel;

const ORG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/examples/acme/org"
);
const ADMIN: &str = "strata_admin_bench";
const SERVICE: &str = "strata_svc_bench";
const GIVE_UP: Duration = Duration::from_secs(5);

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The Acme org bundle with `extra` added to `modelPolicy.blockedModelIds`
fn org(extra: &str) -> Vec<v1::File> {
    let mut files = strata_proto::files(&FileTree::read_path(Path::new(ORG)).unwrap());
    let settings = files
        .iter_mut()
        .find(|f| f.path == "settings.json")
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&settings.content).unwrap();
    v["modelPolicy"]["blockedModelIds"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::Value::String(extra.to_string()));
    settings.content = serde_json::to_vec_pretty(&v).unwrap();
    files
}

fn auth<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn start(store: PgStore) -> (Arc<Resolver>, String) {
    let store: Arc<dyn Store> = Arc::new(store);
    let (r, _) = Resolver::open(store, Some(ADMIN.into()), Some(SERVICE.into()))
        .await
        .unwrap();
    let r = Arc::new(r);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let served = r.clone();
    tokio::spawn(async move {
        strata_resolver::serve(served, l, std::future::pending())
            .await
            .unwrap()
    });
    (r, addr)
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Some(url) = std::env::var("PG_REPLICAS_STORE")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "pg_replicas: set PG_REPLICAS_STORE=postgres://USER@HOST:PORT/DB (an empty database)"
        );
        return;
    };
    let n = env_num("PG_REPLICAS_N", 200) as usize;
    let pause = Duration::from_millis(env_num("PG_REPLICAS_PAUSE_MS", 20));
    let (sa, sb) = (PgStore::open(&url).unwrap(), PgStore::open(&url).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (ra, a) = start(sa).await;
        ra.publish_org(org("bench-initial"), "bench".into())
            .await
            .unwrap();
        let (token, _) = ra
            .create_token("alice".into(), vec!["leads".into()], vec![], "bench".into())
            .await
            .unwrap();
        let (_rb, b) = start(sb).await;
        let mut admin = AdminServiceClient::new(channel(&a).await);
        let mut policy_b = PolicyServiceClient::new(channel(&b).await);
        let probe = v1::DecideRequest {
            identity: Some(v1::decide_request::Identity::Token(token)),
            project: String::new(),
            folder: String::new(),
            gateway: String::new(),
            target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
                model: "claude-sonnet-4-5".into(),
                provider: "anthropic".into(),
                key_mode: v1::KeyMode::Central as i32,
                base_url: "http://127.0.0.1:8787".into(),
                mcp_servers: vec![],
            })),
        };
        let (mut publish, mut enforced, mut total) = (Vec::new(), Vec::new(), Vec::new());
        let mut probes = 0u64;
        let mut gave_up = 0;
        let started = Instant::now();
        for i in 0..n {
            let files = org(&format!("bench-{i}-*"));
            let t0 = Instant::now();
            let rev = admin
                .publish_org(auth(
                    ADMIN,
                    v1::PublishOrgRequest {
                        files,
                        message: format!("bench {i}"),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .revision;
            let t1 = Instant::now();
            loop {
                let r = policy_b
                    .decide(auth(SERVICE, probe.clone()))
                    .await
                    .unwrap()
                    .into_inner();
                probes += 1;
                if r.revision == rev {
                    break;
                }
                if t1.elapsed() > GIVE_UP {
                    gave_up += 1;
                    break;
                }
            }
            let t2 = Instant::now();
            publish.push(t1 - t0);
            enforced.push(t2 - t1);
            total.push(t2 - t0);
            tokio::time::sleep(pause).await;
        }
        let elapsed = started.elapsed();
        println!(
            "# Publish through replica A, enforced by replica B (PostgreSQL, {n} iterations, {gave_up} gave up after 5 s)\n"
        );
        println!("| interval | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|");
        for (name, v) in [
            ("PublishOrg call on A (validate, compile, activate)", &mut publish),
            ("A acknowledged → B decides under the new revision", &mut enforced),
            ("publish sent → B enforces", &mut total),
        ] {
            v.sort();
            println!(
                "| {name} | {} | {} | {} | {} |",
                ms(pct(v, 0.5)),
                ms(pct(v, 0.9)),
                ms(pct(v, 0.99)),
                ms(pct(v, 1.0))
            );
        }
        println!(
            "\n{probes} Decide probes on B ({:.0} per iteration), {:.1} s in all",
            probes as f64 / n as f64,
            elapsed.as_secs_f64()
        );
    });
}
