#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Scale client for issue #20, driven by `bench/scale.sh` against a running `policy serve`:
//! publishes the Acme example org, then `SCALE_PROJECTS` generated projects one at a time (most
//! ban or add a few models; every 10th defines an MCP server, every 25th ships a Cedar rule),
//! and at each checkpoint republishes one project `SCALE_REPEAT` times (alternating two
//! contents, so each is a real publish) and rolls back as often, reporting the median and p90
//! and the server's RSS; then creates `SCALE_TOKENS` gateway tokens, revokes some, and measures
//! `Decide` for project 1 and for the last project, interleaved.
//!
//! Usage: `scale ADDR SERVER_PID` (admin token in `STRATA_ADMIN_TOKEN`). Prints markdown rows on
//! stdout, progress on stderr. `scale --probe ADDR PROJECT`: one Decide, exit 0 when answered.

use std::time::{Duration, Instant};

use strata_policy::FileTree;
use strata_proto::v1::{
    self, admin_service_client::AdminServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

const ORG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/examples/acme/org"
);

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn auth<T>(msg: T) -> tonic::Request<T> {
    let token = std::env::var("STRATA_ADMIN_TOKEN").unwrap();
    let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", v);
    r
}

fn file(path: &str, text: String) -> v1::File {
    v1::File {
        path: path.to_string(),
        content: text.into_bytes(),
    }
}

pub fn project_id(i: usize) -> String {
    format!("team-{:05}/repo", i)
}

/// Project `i`'s layer; `variant` changes one ban so that a republish is a new revision
fn project_files(i: usize, variant: usize) -> Vec<v1::File> {
    let bans = ["gpt-4.1*", "o3*", "claude-3-*", "gemini-1.5-*", "*-mini"];
    let mut blocked = vec![bans[i % bans.len()].to_string()];
    blocked.push(format!("internal-model-{i}-{variant}"));
    let mut policy = serde_json::json!({"blockedModelIds": blocked});
    if i.is_multiple_of(3) {
        policy["allowedModelIds"] = serde_json::json!(["claude-sonnet-4-5"]);
    }
    let settings = serde_json::json!({"modelPolicy": policy});
    let mut files = vec![file("settings.json", settings.to_string())];
    if i.is_multiple_of(10) {
        let mcp = serde_json::json!({"mcpServers": {
            format!("svc-{i}"): {"type": "http", "url": format!("https://svc-{i}.acme.internal/mcp")}
        }});
        files.push(file("mcp.json", mcp.to_string()));
    }
    if i.is_multiple_of(25) {
        let rule = format!(
            "@id(\"no-preview-{i}\")\nforbid (principal, action in Action::\"use_model\", resource)\nwhen {{ resource.id like \"*-exp-{i}\" }};\n"
        );
        files.push(file("policies/local.cedar", rule));
    }
    files
}

async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn decide_req(token: &str, project: &str, model: &str) -> v1::DecideRequest {
    v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Token(token.to_string())),
        project: project.to_string(),
        folder: String::new(),
        gateway: String::new(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.to_string(),
            provider: String::new(),
            key_mode: v1::KeyMode::Central as i32,
            base_url: String::new(),
            mcp_servers: Vec::new(),
        })),
    }
}

async fn publish(
    admin: &mut AdminServiceClient<Channel>,
    i: usize,
    variant: usize,
) -> (Duration, String) {
    let t = Instant::now();
    let r = admin
        .publish_project(auth(v1::PublishProjectRequest {
            project_id: project_id(i),
            files: project_files(i, variant),
            folders: Vec::new(),
            message: format!("bench {i}.{variant}"),
        }))
        .await
        .unwrap_or_else(|e| panic!("publish {i}: {e}"));
    let took = t.elapsed();
    let r = r.into_inner();
    assert!(r.changed, "publish {i}.{variant} changed nothing");
    (took, r.revision)
}

/// At `n` projects: republish project `n` `repeat` times, then roll back as often (to the
/// revision before each time), with latencies
async fn checkpoint(
    admin: &mut AdminServiceClient<Channel>,
    n: usize,
    repeat: usize,
    pid: u32,
    active: &str,
) {
    let mut pubs = Vec::new();
    let mut rolls = Vec::new();
    for k in 0..repeat {
        let before = active.to_string();
        pubs.push(ms(publish(admin, n, k + 1).await.0));
        let t = Instant::now();
        admin
            .rollback(auth(v1::RollbackRequest { revision: before }))
            .await
            .unwrap();
        rolls.push(ms(t.elapsed()));
    }
    // the active revision is `active` again: project n as first published
    println!(
        "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
        quantile(&mut pubs, 0.5),
        quantile(&mut pubs, 0.9),
        quantile(&mut rolls, 0.5),
        quantile(&mut rolls, 0.9),
        rss_mb(pid)
    );
}

async fn tokens(admin: &mut AdminServiceClient<Channel>, n: usize, pid: u32) -> String {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    let mut first = None;
    let mut ids = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let r = admin
            .create_token(auth(v1::CreateTokenRequest {
                user: format!("user{i}"),
                groups: vec!["devs".to_string()],
                projects: Vec::new(),
                description: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        lat.push(ms(t.elapsed()));
        if i % 1000 == 999 {
            ids.push(r.token_id.clone());
        }
        first.get_or_insert(r.token);
        if i % 10_000 == 9_999 {
            eprintln!("   {} tokens", i + 1);
        }
    }
    let total = start.elapsed();
    let mut revoke = Vec::new();
    for id in ids {
        let t = Instant::now();
        admin
            .revoke_token(auth(v1::RevokeTokenRequest { token_id: id }))
            .await
            .unwrap();
        revoke.push(ms(t.elapsed()));
    }
    println!(
        "| {n} | {:.1} s | {:.2} | {:.2} | {:.2} | {:.0} |",
        total.as_secs_f64(),
        quantile(&mut lat, 0.5),
        quantile(&mut lat, 0.99),
        quantile(&mut revoke, 0.5),
        rss_mb(pid)
    );
    first.unwrap_or_default()
}

async fn decides(
    policy: &mut PolicyServiceClient<Channel>,
    token: &str,
    last: usize,
    rounds: usize,
) {
    let svc = std::env::var("STRATA_SERVICE_TOKEN")
        .unwrap_or_else(|_| std::env::var("STRATA_ADMIN_TOKEN").unwrap());
    let v: MetadataValue<_> = format!("Bearer {svc}").parse().unwrap();
    let mut lat = [Vec::new(), Vec::new()];
    let projects = [project_id(1), project_id(last)];
    for r in 0..rounds + 200 {
        for (k, p) in projects.iter().enumerate() {
            let mut req = tonic::Request::new(decide_req(token, p, "claude-sonnet-4-5"));
            req.metadata_mut().insert("authorization", v.clone());
            let t = Instant::now();
            policy.decide(req).await.unwrap();
            // the first 200 rounds warm up
            if r >= 200 {
                lat[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    for (k, p) in projects.iter().enumerate() {
        println!(
            "| {p} | {rounds} | {:.0} | {:.0} |",
            quantile(&mut lat[k], 0.5),
            quantile(&mut lat[k], 0.99)
        );
    }
}

async fn probe(addr: &str, project: &str) {
    let token = std::env::var("STRATA_SERVICE_TOKEN").unwrap();
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    let Ok(ch) = ch else { std::process::exit(1) };
    let mut policy = PolicyServiceClient::new(ch);
    let mut req = tonic::Request::new(v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Principal(v1::Principal {
            user: "probe".to_string(),
            groups: Vec::new(),
        })),
        ..decide_req("", project, "claude-sonnet-4-5")
    });
    let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    match policy.decide(req).await {
        Ok(r) if !r.get_ref().revision.is_empty() => std::process::exit(0),
        _ => std::process::exit(1),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--probe") {
        return probe(&args[1], &args[2]).await;
    }
    let addr = args[0].clone();
    let pid: u32 = args[1].parse().unwrap();
    let n = env_usize("SCALE_PROJECTS", 10_000);
    let repeat = env_usize("SCALE_REPEAT", 20);
    let ntokens = env_usize("SCALE_TOKENS", 100_000);
    let checkpoints: Vec<usize> = std::env::var("SCALE_CHECKPOINTS")
        .unwrap_or_else(|_| "10,1000,2000,5000,10000".to_string())
        .split(',')
        .filter_map(|c| c.parse().ok())
        .filter(|c| *c <= n)
        .collect();
    let ch = channel(&addr).await;
    let mut admin = AdminServiceClient::new(ch.clone()).max_decoding_message_size(1 << 30);
    let mut policy = PolicyServiceClient::new(ch);
    let tree = FileTree::read_path(std::path::Path::new(ORG)).unwrap();
    admin
        .publish_org(auth(v1::PublishOrgRequest {
            files: strata_proto::files(&tree),
            message: "bench org".to_string(),
        }))
        .await
        .unwrap();
    println!("### Publish and rollback, by projects published");
    println!();
    println!(
        "| projects | publish p50 (ms) | publish p90 (ms) | rollback p50 (ms) | rollback p90 (ms) | resolver RSS (MB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    for i in 1..=n {
        let (_, active) = publish(&mut admin, i, 0).await;
        if checkpoints.contains(&i) {
            eprintln!(
                "   {i} projects after {:.0} s",
                start.elapsed().as_secs_f64()
            );
            checkpoint(&mut admin, i, repeat, pid, &active).await;
        }
    }
    eprintln!(
        "   {n} projects published in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    println!();
    let first = admin
        .create_token(auth(v1::CreateTokenRequest {
            user: "alice".to_string(),
            groups: vec!["devs".to_string()],
            projects: Vec::new(),
            description: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .token;
    println!("### Decide (one request at a time over loopback, the token identity, interleaved)");
    println!();
    println!("| project | requests | p50 (µs) | p99 (µs) |");
    println!("|---|---:|---:|---:|");
    decides(&mut policy, &first, n, env_usize("SCALE_DECIDES", 5000)).await;
    println!();
    println!("### Gateway tokens (created one at a time; 1 in 1,000 revoked afterwards)");
    println!();
    println!(
        "| tokens | create all | create p50 (ms) | create p99 (ms) | revoke p50 (ms) | resolver RSS (MB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let token = tokens(&mut admin, ntokens, pid).await;
    println!();
    println!("Decide again with {ntokens} tokens:");
    println!();
    decides(&mut policy, &token, n, env_usize("SCALE_DECIDES", 5000) / 5).await;
    println!();
    println!("resolver RSS at the end: {:.0} MB", rss_mb(pid));
}
