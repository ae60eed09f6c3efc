//! Audit records in PostgreSQL (`[audit] store`): requests through the real gateway end up in
//! `strata_audit` and are found with every filter of `policy audit`; old rows go with the
//! retention; a second gateway on the same database re-runs nothing; the database going away
//! costs no request, drops are counted, and the writer catches up when it is back.
//! The server comes from crates/resolver/tests/support/pg.rs (`STRATA_TEST_PG`, a private
//! instance, or a skip line).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../resolver/tests/support/pg.rs"]
mod pg;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::Response;
use common::{SERVICE, write};
use strata_gateway::audit::{Query, Record, pg::query};
use strata_gateway::{Gateway, GatewayConfig};

const SONNET: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
const GPT4O: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

async fn upstream(_req: Request) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":12,"output_tokens":3}}"#,
        ))
        .unwrap()
}

/// A resolver with the example bundle and tokens for alice and bob; gateways are added with
/// [`Stack::gateway`]
struct Stack {
    data: tempfile::TempDir,
    resolver: SocketAddr,
    up: SocketAddr,
    _resolver: common::ResolverProc,
    alice: String,
    bob: String,
    http: reqwest::Client,
}

async fn stack() -> Stack {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resolver = l.local_addr().unwrap();
    let proc_ = common::start_resolver(data.path(), l).await;
    let (alice, bob) = common::seed(resolver).await;
    let lu = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = lu.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(lu, axum::Router::new().fallback(upstream))
            .await
            .unwrap()
    });
    Stack {
        data,
        resolver,
        up,
        _resolver: proc_,
        alice,
        bob,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl Stack {
    /// A gateway whose `[audit]` section is `audit`; its base URL and the gateway itself
    async fn gateway(&self, audit: &str) -> (String, Arc<Gateway>) {
        let cfg = GatewayConfig::parse(
            "audit_pg.toml",
            &format!(
                r#"
listen = "127.0.0.1:0"
public_base_url = "http://127.0.0.1:8787"
resolver = "http://{resolver}"
service_token_file = "{svc}"
[audit]
{audit}
[upstreams.anthropic]
base_url = "http://{up}"
key_file = "{ka}"
[upstreams.openai]
base_url = "http://{up}/v1"
key_file = "{ka}"
"#,
                resolver = self.resolver,
                up = self.up,
                svc = write(self.data.path(), "svc", SERVICE),
                ka = write(self.data.path(), "ka", common::CENTRAL_ANTHROPIC),
            ),
        )
        .unwrap();
        let gw = Arc::new(Gateway::new(cfg).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let served = Arc::clone(&gw);
        tokio::spawn(async move {
            strata_gateway::serve(served, l, std::future::pending())
                .await
                .unwrap()
        });
        (format!("http://{addr}"), gw)
    }

    async fn send(&self, gw: &str, token: &str, body: &str, project: Option<&str>) -> u16 {
        let mut r = self
            .http
            .post(format!("{gw}/v1/messages"))
            .header("x-api-key", token)
            .body(body.to_string());
        if let Some(p) = project {
            r = r.header("x-strata-project", p);
        }
        r.send().await.unwrap().status().as_u16()
    }
}

/// The rows `q` finds once there are `n` of them (the writer is asynchronous)
async fn rows(url: &str, q: &Query, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = query(url, q).await.unwrap();
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} audit rows for {q:?}, found {}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dropped(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("strata_gateway_audit_dropped_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_postgres_and_policy_audit_filters_find_them() {
    let Some(db) = pg::database("gw_audit", false).await else {
        return;
    };
    let s = stack().await;
    let (gw, _g) = s
        .gateway(&format!("store = \"{}\"\nretention_days = 30", db.url))
        .await;
    let before = strata_gateway::audit::now().1;
    assert_eq!(s.send(&gw, &s.alice, SONNET, None).await, 200);
    assert_eq!(s.send(&gw, &s.alice, GPT4O, None).await, 403);
    assert_eq!(s.send(&gw, &s.bob, SONNET, Some("web")).await, 200);
    assert_eq!(
        s.send(&gw, "strata_gw_not-a-token", SONNET, None).await,
        401
    );

    let all = rows(&db.url, &Query::default(), 4).await;
    let after = strata_gateway::audit::now().1 + 1;
    assert!(
        all.windows(2).all(|w| w[0].unix_ms <= w[1].unix_ms),
        "oldest first"
    );
    let allowed = &all[0];
    assert_eq!(
        (
            allowed.user.as_str(),
            allowed.model.as_str(),
            allowed.decision.as_str()
        ),
        ("alice", "claude-sonnet-4-5", "allow")
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.upstream_status, Some(200));
    assert_eq!(allowed.usage.as_ref().map(|u| u.input_tokens), Some(12));
    assert!(allowed.key_hint.starts_with('…') && !allowed.revision.is_empty());
    assert_eq!(
        allowed.time,
        strata_gateway::audit::format_ms(allowed.unix_ms).0
    );
    let denied = &all[1];
    assert_eq!(
        (denied.decision.as_str(), denied.status),
        ("deny", 403),
        "{denied:?}"
    );
    assert!(
        denied
            .rules
            .iter()
            .any(|r| r.contains("blockedModelIds") || r.contains("gpt")),
        "{:?}",
        denied.rules
    );
    assert_eq!(denied.error.as_deref(), Some("policy_denied"));
    assert_eq!(all[3].decision, "unauthenticated");
    assert_eq!(all[3].usage, None);

    let q = |f: &dyn Fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        q
    };
    let count = async |q: Query| query(&db.url, &q).await.unwrap().len();
    assert_eq!(count(q(&|q| q.user = Some("alice".into()))).await, 2);
    assert_eq!(count(q(&|q| q.project = Some("web".into()))).await, 1);
    assert_eq!(count(q(&|q| q.model = Some("gpt-4o".into()))).await, 1);
    assert_eq!(count(q(&|q| q.decision = Some("allow".into()))).await, 2);
    assert_eq!(
        count(q(&|q| {
            q.user = Some("alice".into());
            q.decision = Some("deny".into());
        }))
        .await,
        1
    );
    assert_eq!(count(q(&|q| q.since_ms = Some(before))).await, 4);
    assert_eq!(count(q(&|q| q.since_ms = Some(after))).await, 0);
    assert_eq!(count(q(&|q| q.until_ms = Some(before))).await, 0);
    assert_eq!(
        count(q(&|q| q.until_ms = Some(all[1].unix_ms + 1))).await,
        2
    );
    let latest = query(&db.url, &q(&|q| q.limit = Some(2))).await.unwrap();
    assert_eq!(
        latest.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["bob", ""],
        "the most recent two, oldest first"
    );

    // rows older than the retention go; a second gateway on the same database applies no
    // migration again, and prunes at start
    let c = pg::sql(&db.url).await;
    let day = 86_400_000i64;
    for (age_days, user) in [(45, "old"), (29, "recent")] {
        c.execute(
            "INSERT INTO strata_audit (at, decision_id, user_name, project, client, api, provider,
                model, key_mode, key_hint, decision, rules, revision, status, decision_ms,
                total_ms, stream, client_disconnected)
             VALUES (now() - make_interval(days => $1), '', $2, '', '', '', '', 'm', '', '',
                'allow', '{}', '', 200, 0, 0, false, false)",
            &[&age_days, &user],
        )
        .await
        .unwrap();
    }
    let (_gw2, _g2) = s
        .gateway(&format!("store = \"{}\"\nretention_days = 30", db.url))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(q(&|q| q.user = Some("old".into()))).await != 0 {
        assert!(Instant::now() < deadline, "the old row was not pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(q(&|q| q.user = Some("recent".into()))).await, 1);
    assert_eq!(
        count(q(&|q| q.until_ms = Some(before - 20 * day))).await,
        1,
        "only the recent row is older than this run"
    );
    let versions: Vec<i32> = c
        .query("SELECT version FROM strata_audit_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_costs_no_request_drops_are_counted_and_the_writer_catches_up() {
    let Some(db) = pg::database("gw_audit_outage", true).await else {
        return;
    };
    let cluster = db.cluster.as_ref().unwrap();
    let s = stack().await;
    let (gw, g) = s
        .gateway(&format!("store = \"{}\"\nqueue = 8", db.url))
        .await;
    assert_eq!(s.send(&gw, &s.alice, SONNET, None).await, 200);
    rows(&db.url, &Query::default(), 1).await;

    cluster.stop_server();
    // every request is answered; none waits for the audit writer (a hang fails the bound)
    let sent = 40;
    tokio::time::timeout(Duration::from_secs(120), async {
        for _ in 0..sent {
            assert_eq!(s.send(&gw, &s.alice, SONNET, None).await, 200);
        }
    })
    .await
    .expect("requests waited for the audit database");
    let metrics = g.telemetry.metrics.render();
    let lost = dropped(&metrics);
    assert!(
        lost > 0 && lost <= sent - 8,
        "a queue of 8 keeps 8 and drops the rest but the batch in hand: {lost} dropped"
    );

    cluster.start_server();
    // everything not counted as dropped arrives, once
    let kept = 1 + (sent - lost) as usize;
    rows(&db.url, &Query::default(), kept).await;
    assert_eq!(s.send(&gw, &s.bob, SONNET, None).await, 200);
    let all = rows(&db.url, &Query::default(), kept + 1).await;
    assert_eq!(all.last().unwrap().user, "bob");
    assert_eq!(dropped(&g.telemetry.metrics.render()), lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_audit_database_is_no_reason_not_to_start_a_refusing_one_is() {
    let Some(db) = pg::database("gw_audit_start", false).await else {
        return;
    };
    let s = stack().await;
    // nothing listens on port 1: the gateway starts, serves, and counts what it cannot write
    let (gw, g) = s
        .gateway("store = \"postgres://strata@127.0.0.1:1/strata\"\nqueue = 1")
        .await;
    for _ in 0..5 {
        assert_eq!(s.send(&gw, &s.alice, SONNET, None).await, 200);
    }
    assert!(dropped(&g.telemetry.metrics.render()) >= 3);
    // a database that answers and refuses (here: it does not exist) stops the start, without
    // the password
    let (base, _) = db.url.rsplit_once('/').unwrap();
    let wrong = format!(
        "{}:s3cret@{}/no_such_db",
        &base[..base.rfind('@').unwrap()],
        &base[base.rfind('@').unwrap() + 1..]
    );
    let cfg = GatewayConfig::parse(
        "g.toml",
        &format!(
            "service_token_file = \"{}\"\n[audit]\nstore = \"{wrong}\"\n",
            write(s.data.path(), "svc", SERVICE)
        ),
    )
    .unwrap();
    let e = Gateway::new(cfg).err().unwrap().to_string();
    assert!(
        e.starts_with("cannot use the audit database: PostgreSQL at 127.0.0.1:")
            && e.contains("no_such_db")
            && !e.contains("s3cret"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_over_verified_tls_when_the_url_asks_for_it() {
    let pki = common::private_pki();
    let Some(cluster) = pg::Cluster::start_tls("gw_audit_tls", &pki.chain, &pki.key) else {
        return;
    };
    let s = stack().await;
    let ca = write(s.data.path(), "db-ca.pem", &pki.ca);
    let url = format!(
        "{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        cluster.url()
    );
    let (gw, _g) = s
        .gateway(&format!("store = \"{url}\"\nretention_days = 30"))
        .await;
    assert_eq!(s.send(&gw, &s.alice, SONNET, None).await, 200);
    // `policy audit` reads them over the same verified TLS
    let found = rows(&url, &Query::default(), 1).await;
    assert_eq!(found[0].user, "alice");
    // the server saw only encrypted connections from the writer
    let check = pg::sql(&format!("{}/postgres?sslmode=disable", cluster.url())).await;
    let row = check
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'strata-gateway-audit'",
            &[],
        )
        .await
        .unwrap();
    let (n, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(n >= 1, "the writer holds no connection");
    assert_eq!(all_tls, Some(true));
    // a CA that did not sign the server's certificate: `policy audit` is refused, naming why
    let other = write(s.data.path(), "other-ca.pem", &common::private_pki().ca);
    let e = query(
        &format!(
            "{}/postgres?sslmode=require&sslrootcert={other}",
            cluster.url()
        ),
        &Query::default(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
