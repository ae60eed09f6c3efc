//! A gateway balancing over two resolvers (`resolvers = [...]`): both serve the same store (an
//! in-memory one, opened by the second after the first published), each on its own loopback
//! port. Stop one: decisions go on through the other; stop both: 503, fail closed, and /readyz
//! says so; start one again: traffic resumes. Real processes killed with SIGKILL are in
//! crates/cli/tests/postgres_cli.rs. The same over TLS: balanced `https://` channels and their
//! health watchers trust `resolver_ca_file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use common::{ADMIN, SERVICE};
use strata_gateway::{Gateway, GatewayConfig};
use strata_resolver::{MemStore, Resolver, Store};
use tokio::sync::oneshot;

const SONNET: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

async fn upstream(State(n): State<Arc<AtomicUsize>>, _req: Request) -> Response<Body> {
    n.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":1,"output_tokens":1}}"#,
        ))
        .unwrap()
}

/// One resolver over the shared store, serving on `addr` until stopped
struct Replica {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(store: Arc<MemStore>, listener: tokio::net::TcpListener) -> Replica {
    replica_with(store, listener, None).await
}

/// [`replica`], serving TLS when `tls` is given
async fn replica_with(
    store: Arc<MemStore>,
    listener: tokio::net::TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Replica {
    let store: Arc<dyn Store> = store;
    let (resolver, _) = Resolver::open(store, Some(ADMIN.into()), Some(SERVICE.into()))
        .await
        .unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        strata_resolver::serve_with(Arc::new(resolver), listener, tls, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Replica {
        stop: Some(stop),
        task,
    }
}

impl Replica {
    /// A graceful stop (the resolver reports NOT_SERVING, then closes its listener); the server
    /// task is not waited for: its drain waits for the gateway's open health stream
    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }
}

async fn bind(addr: &str) -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A store with the example org published and a token for alice, made through a first resolver;
/// the replicas open the store after
async fn published_store() -> (Arc<MemStore>, String) {
    let store = Arc::new(MemStore::default());
    let dyn_store: Arc<dyn Store> = store.clone();
    let (r, _) = Resolver::open(dyn_store, Some(ADMIN.into()), Some(SERVICE.into()))
        .await
        .unwrap();
    r.publish_org(
        common::files(&common::examples().join("org")),
        String::new(),
    )
    .await
    .unwrap();
    let (alice, _) = r
        .create_token("alice".into(), vec!["leads".into()], vec![], String::new())
        .await
        .unwrap();
    (store, alice)
}

/// An upstream counting its calls, and a gateway in front of it with these resolver settings
async fn gateway(dir: &std::path::Path, resolvers: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (lu, up) = bind("127.0.0.1:0").await;
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(calls.clone());
    tokio::spawn(async move { axum::serve(lu, app).await.unwrap() });
    let cfg = GatewayConfig::parse(
        "balance.toml",
        &format!(
            r#"
listen = "127.0.0.1:0"
public_base_url = "http://127.0.0.1:8787"
{resolvers}
service_token_file = "{svc}"
decision_timeout_ms = 300
[upstreams.anthropic]
base_url = "http://{up}"
key_file = "{ka}"
"#,
            svc = common::write(dir, "svc", SERVICE),
            ka = common::write(dir, "ka", common::CENTRAL_ANTHROPIC),
        ),
    )
    .unwrap();
    let gw = Arc::new(Gateway::new(cfg).unwrap());
    let (lg, g) = bind("127.0.0.1:0").await;
    tokio::spawn(async move {
        strata_gateway::serve(gw, lg, std::future::pending())
            .await
            .unwrap()
    });
    (g, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resolvers_one_stops_traffic_goes_on_both_stop_503_one_returns_traffic_resumes() {
    let data = tempfile::tempdir().unwrap();
    let (store, alice) = published_store().await;
    let (la, a) = bind("127.0.0.1:0").await;
    let (lb, b) = bind("127.0.0.1:0").await;
    let ra = replica(store.clone(), la).await;
    let rb = replica(store.clone(), lb).await;

    let (g, calls) = gateway(
        data.path(),
        &format!(r#"resolvers = ["http://{a}", "http://{b}"]"#),
    )
    .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = || {
        http.post(format!("http://{g}/v1/messages"))
            .header("x-api-key", &alice)
            .body(SONNET)
            .send()
    };
    let ready = || http.get(format!("http://{g}/readyz")).send();
    // `n` answers with `want` in a row, within `limit` (a resolver joins or leaves the rotation
    // within about a second; the bound is generous)
    let settle = |want: u16, n: usize, limit: Duration, what: &'static str| {
        let send = &send;
        async move {
            let deadline = Instant::now() + limit;
            let mut in_a_row = 0;
            let mut seen = Vec::new();
            while in_a_row < n {
                assert!(Instant::now() < deadline, "{what}: answers {seen:?}");
                let s = send().await.unwrap().status().as_u16();
                seen.push(s);
                in_a_row = if s == want { in_a_row + 1 } else { 0 };
                if s != want {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            seen
        }
    };

    settle(200, 20, Duration::from_secs(20), "both resolvers up").await;
    assert_eq!(ready().await.unwrap().status(), 200);

    ra.stop().await;
    let seen = settle(200, 40, Duration::from_secs(20), "one resolver stopped").await;
    eprintln!("after stopping resolver A: {seen:?}");
    assert_eq!(ready().await.unwrap().status(), 200, "B still answers");

    rb.stop().await;
    settle(503, 5, Duration::from_secs(20), "both resolvers stopped").await;
    assert_eq!(ready().await.unwrap().status(), 503);
    let upstream_before = calls.load(Ordering::SeqCst);
    settle(503, 5, Duration::from_secs(5), "still both stopped").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        upstream_before,
        "nothing goes upstream without a decision"
    );

    // A again, on its address
    let (la, _) = bind(&a.to_string()).await;
    let _ra = replica(store.clone(), la).await;
    settle(200, 20, Duration::from_secs(20), "resolver A back").await;
    assert_eq!(ready().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_resolvers_are_balanced_and_one_stopping_is_survived() {
    let data = tempfile::tempdir().unwrap();
    let (store, alice) = published_store().await;
    let pki = common::private_pki();
    let tls = || {
        strata_transport::server_tls(
            std::path::Path::new(&common::write(data.path(), "chain.pem", &pki.chain)),
            std::path::Path::new(&common::write(data.path(), "key.pem", &pki.key)),
        )
        .unwrap()
    };
    let (la, a) = bind("127.0.0.1:0").await;
    let (lb, b) = bind("127.0.0.1:0").await;
    let ra = replica_with(store.clone(), la, Some(tls())).await;
    // B opens the store after a second publish that decides alike but is another revision (a
    // memory store does not tell A), so each answer's `x-strata-revision` names its resolver
    let (revision_a, revision_b) = republish(&store).await;
    let _rb = replica_with(store.clone(), lb, Some(tls())).await;

    let ca = common::write(data.path(), "ca.pem", &pki.ca);
    let (g, calls) = gateway(
        data.path(),
        &format!("resolvers = [\"https://{a}\", \"https://{b}\"]\nresolver_ca_file = \"{ca}\""),
    )
    .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // `n` 200s in a row; the revisions of those 200s, in order
    let in_a_row = |n: usize, what: &'static str| {
        let http = &http;
        let alice = &alice;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            let (mut ok, mut seen, mut revisions) = (0, Vec::new(), Vec::new());
            while ok < n {
                assert!(Instant::now() < deadline, "{what}: answers {seen:?}");
                let r = http
                    .post(format!("http://{g}/v1/messages"))
                    .header("x-api-key", alice)
                    .body(SONNET)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                seen.push(s);
                if s == 200 {
                    ok += 1;
                    revisions.push(
                        r.headers()["x-strata-revision"]
                            .to_str()
                            .unwrap()
                            .to_string(),
                    );
                } else {
                    (ok, revisions) = (0, Vec::new());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            revisions
        }
    };
    // both in rotation: both decide (the second may join the rotation a moment after the
    // first, so keep asking, for at most 20 s, until each has decided at least once)
    let mut both = in_a_row(40, "both TLS resolvers up").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(both.contains(&revision_a) && both.contains(&revision_b)) && Instant::now() < deadline {
        both.extend(in_a_row(10, "both TLS resolvers up").await);
    }
    let by_a = both.iter().filter(|r| **r == revision_a).count();
    let by_b = both.iter().filter(|r| **r == revision_b).count();
    eprintln!("decisions with both TLS resolvers up: {by_a} by A, {by_b} by B");
    assert_eq!(
        by_a + by_b,
        both.len(),
        "a revision neither resolver has: {both:?}"
    );
    assert!(
        by_a > 0 && by_b > 0,
        "one resolver decided everything: A {by_a}, B {by_b}"
    );
    ra.stop().await;
    let after = in_a_row(40, "one TLS resolver stopped").await;
    assert!(
        after.iter().all(|r| *r == revision_b),
        "a decision by the stopped resolver: {after:?}"
    );
    assert!(calls.load(Ordering::SeqCst) >= 80);
}

/// Publish the example org again with one file's bytes changed (a trailing newline: it decides
/// alike, but the revision covers every byte); the revisions before and after
async fn republish(store: &Arc<MemStore>) -> (String, String) {
    let dyn_store: Arc<dyn Store> = store.clone();
    let (r, _) = Resolver::open(dyn_store, Some(ADMIN.into()), Some(SERVICE.into()))
        .await
        .unwrap();
    let before = r.active().unwrap().revision.to_string();
    let mut files = common::files(&common::examples().join("org"));
    let settings = files
        .iter_mut()
        .find(|f| f.path == "settings.json")
        .unwrap();
    settings.content.push(b'\n');
    r.publish_org(files, String::new()).await.unwrap();
    let after = r.active().unwrap().revision.to_string();
    assert_ne!(before, after);
    (before, after)
}
