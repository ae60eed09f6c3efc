//! Resolvers on a real PostgreSQL: two replicas on one database, the database going away and
//! coming back, concurrent publishes, migrations.
//!
//! Where the server comes from: `support/pg.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pg.rs"]
mod pg;
#[path = "support/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_proto::v1::{
    self, admin_service_client::AdminServiceClient, policy_service_client::PolicyServiceClient,
};
use strata_resolver::store::{Commit, StoreError};
use strata_resolver::{PgStore, Resolver, Store};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const ADMIN: &str = "test-admin-token";
const SERVICE: &str = "test-service-token";

/// PgStore::open blocks: keep it off the async workers
async fn open(url: &str) -> Result<PgStore, StoreError> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || PgStore::open(&url))
        .await
        .unwrap()
}

// ---------------------------------------------------------------- resolvers over gRPC

/// The tests that time propagation run one at a time: on a 2-core machine, compiling snapshots for
/// several pairs of replicas at once would measure the CPU queue, not the push
static TIMED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(url: &str) -> Server {
        let store = open(url).await.unwrap();
        let (resolver, _) =
            Resolver::open(Arc::new(store), Some(ADMIN.into()), Some(SERVICE.into()))
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            strata_resolver::serve(Arc::new(resolver), listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    async fn policy(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel().await)
    }

    async fn health(&self, service: &str) -> i32 {
        HealthClient::new(self.channel().await)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(mut t) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
        {
            t.abort();
            let _ = t.await;
        }
    }
}

fn auth<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn org(blocked: &str) -> v1::PublishOrgRequest {
    v1::PublishOrgRequest {
        files: vec![v1::File {
            path: "settings.json".into(),
            content: format!(r#"{{"modelPolicy": {{"blockedModelIds": ["{blocked}"]}}}}"#)
                .into_bytes(),
        }],
        message: String::new(),
    }
}

fn project(id: &str) -> v1::PublishProjectRequest {
    v1::PublishProjectRequest {
        project_id: id.into(),
        files: vec![v1::File {
            path: "settings.json".into(),
            content: br#"{"modelPolicy": {"blockedModelIds": ["p-only"]}}"#.to_vec(),
        }],
        folders: Vec::new(),
        message: String::new(),
    }
}

fn model_req(model: &str) -> v1::DecideRequest {
    v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Principal(v1::Principal {
            user: "u".into(),
            groups: Vec::new(),
        })),
        project: String::new(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.into(),
            base_url: "http://127.0.0.1:8787/v1".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// (effect, revision) of a decision about `model`
async fn decide(s: &Server, model: &str) -> (i32, String) {
    let d = s
        .policy()
        .await
        .decide(auth(SERVICE, model_req(model)))
        .await
        .unwrap()
        .into_inner();
    (d.effect, d.revision)
}

async fn publish_org(s: &Server, blocked: &str) -> Result<String, tonic::Status> {
    s.admin()
        .await
        .publish_org(auth(ADMIN, org(blocked)))
        .await
        .map(|r| r.into_inner().revision)
}

/// Poll until `s` decides under `rev`; the time it took
async fn until_serving(s: &Server, rev: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        // before its first snapshot a replica refuses decisions (UNAVAILABLE, no policy)
        let seen = s
            .policy()
            .await
            .decide(auth(SERVICE, model_req("any-model")))
            .await
            .map(|d| d.into_inner().revision);
        if seen.is_ok_and(|r| r == rev) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "the replica did not serve {rev} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until_health(s: &Server, service: &str, want: ServingStatus, limit: Duration) {
    let t = Instant::now();
    while s.health(service).await != want as i32 {
        assert!(
            t.elapsed() < limit,
            "`{service}` is not {want:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_from_an_empty_database_and_again_on_an_existing_one() {
    let Some(db) = pg::database("migrations", false).await else {
        return;
    };
    // two replicas starting together on an empty database: each migration is applied once
    let (a, b) = tokio::join!(open(&db.url), open(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let client = pg::sql(&db.url).await;
    let versions = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, String)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let first = versions(
        client
            .query(
                "SELECT version, applied_at::text FROM strata_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        first.iter().map(|v| v.0).collect::<Vec<_>>(),
        strata_resolver::pg::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
    for table in [
        "strata_blobs",
        "strata_revisions",
        "strata_revision_projects",
        "strata_activations",
        "strata_active",
        "strata_project_history",
        "strata_tokens",
        "strata_meta",
        "strata_changes",
    ] {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = $1",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "table {table}");
    }
    assert_eq!(a.active().unwrap(), None);
    a.set_meta("k", b"v").unwrap();
    assert_eq!(b.meta("k").unwrap(), Some(b"v".to_vec()));
    drop((a, b));

    // again on the existing database: nothing re-applied, the data kept
    let c = open(&db.url).await.unwrap();
    let again = versions(
        client
            .query(
                "SELECT version, applied_at::text FROM strata_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap(),
    );
    assert_eq!(again, first);
    assert_eq!(c.meta("k").unwrap(), Some(b"v".to_vec()));
    drop(c);

    // a database from a newer resolver is refused, clearly
    client
        .execute(
            "INSERT INTO strata_migrations (version, name) VALUES (9999, 'from the future')",
            &[],
        )
        .await
        .unwrap();
    let e = open(&db.url)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        e.to_string()
            .contains("schema version 9999, newer than this resolver knows"),
        "{e}"
    );
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_built_on_a_stale_active_revision_is_refused() {
    let Some(db) = pg::database("conflict", false).await else {
        return;
    };
    let (a, b) = (open(&db.url).await.unwrap(), open(&db.url).await.unwrap());
    let commit = |rev: &str, replaces: Option<&str>| Commit {
        blobs: vec![("h".into(), b"org".to_vec())],
        revision: v1::StoredRevision {
            revision: rev.into(),
            created_at_unix_ms: 1,
            kind: "publish-org".into(),
            message: String::new(),
            org_blob: "h".into(),
            ..Default::default()
        },
        activation: v1::StoredActivation {
            revision: rev.into(),
            kind: "publish-org".into(),
            at_unix_ms: 1,
        },
        project_history: Vec::new(),
        replaces: replaces.map(String::from),
    };
    let (a2, b2) = (Arc::new(a), Arc::new(b));
    tokio::task::spawn_blocking({
        let (a, b) = (a2.clone(), b2.clone());
        move || {
            a.commit(commit("r1", None)).unwrap();
            // b built on "nothing active" too: refused, nothing written
            let e = b.commit(commit("r2", None)).unwrap_err();
            assert!(
                matches!(&e, StoreError::Conflict { expected: None, found: Some(f) } if f == "r1"),
                "{e}"
            );
            assert_eq!(b.active().unwrap().as_deref(), Some("r1"));
            assert!(b.revision("r2").unwrap().is_none());
            b.commit(commit("r2", Some("r1"))).unwrap();
            let e = a
                .activate(
                    v1::StoredActivation {
                        revision: "r1".into(),
                        kind: "rollback".into(),
                        at_unix_ms: 2,
                    },
                    Some("r1".into()),
                )
                .unwrap_err();
            assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
            assert_eq!(a.active().unwrap().as_deref(), Some("r2"));
            assert_eq!(
                a.activations()
                    .unwrap()
                    .iter()
                    .map(|x| x.revision.as_str())
                    .collect::<Vec<_>>(),
                ["r1", "r2"]
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_a_decide_through_b_within_a_second() {
    let _one_at_a_time = TIMED.lock().await;
    let Some(db) = pg::database("replicas", false).await else {
        return;
    };
    let a = Server::start(&db.url).await;
    let b = Server::start(&db.url).await;
    for i in 0..5 {
        let t = Instant::now();
        let rev = publish_org(&a, &format!("m{i}")).await.unwrap();
        let publish = t.elapsed();
        let took = until_serving(&b, &rev, Duration::from_secs(1)).await;
        eprintln!(
            "replica B served {} {took:?} after A acknowledged it (the publish through A took {publish:?})",
            &rev[..12]
        );
        assert_eq!(
            decide(&b, &format!("m{i}")).await,
            (v1::Effect::Deny as i32, rev.clone())
        );
    }
    // a rollback through B reaches A
    let (revs, _) = {
        let r = b
            .admin()
            .await
            .list_revisions(auth(ADMIN, v1::ListRevisionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        (r.revisions, r.active)
    };
    assert_eq!(revs.len(), 5);
    let oldest = revs.last().unwrap().revision.clone();
    b.admin()
        .await
        .rollback(auth(
            ADMIN,
            v1::RollbackRequest {
                revision: oldest.clone(),
            },
        ))
        .await
        .unwrap();
    until_serving(&a, &oldest, Duration::from_secs(1)).await;
    // a gateway token made through A works through B within a second, and so does its revocation
    let t = a
        .admin()
        .await
        .create_token(auth(
            ADMIN,
            v1::CreateTokenRequest {
                user: "carol".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let by_token = |token: String| {
        let mut r = model_req("m1");
        r.identity = Some(v1::decide_request::Identity::Token(token));
        r
    };
    let start = Instant::now();
    loop {
        match b
            .policy()
            .await
            .decide(auth(SERVICE, by_token(t.token.clone())))
            .await
        {
            Ok(d) => {
                assert_eq!(d.into_inner().principal.unwrap().user, "carol");
                break;
            }
            Err(s) => assert_eq!(s.code(), Code::Unauthenticated),
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "token not seen by B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.admin()
        .await
        .revoke_token(auth(
            ADMIN,
            v1::RevokeTokenRequest {
                token_id: t.token_id,
            },
        ))
        .await
        .unwrap();
    let start = Instant::now();
    while b
        .policy()
        .await
        .decide(auth(SERVICE, by_token(t.token.clone())))
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "revocation not seen by B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_on_two_replicas_leave_one_active_revision_both_agree_on() {
    let _one_at_a_time = TIMED.lock().await;
    let Some(db) = pg::database("concurrent", false).await else {
        return;
    };
    let a = Server::start(&db.url).await;
    let b = Server::start(&db.url).await;
    let first = publish_org(&a, "m0").await.unwrap();
    until_serving(&b, &first, Duration::from_secs(1)).await;
    for i in 1..=6 {
        // A replaces the org bundle while B adds a project layer: both land, in some order, and
        // the final revision has both (neither is lost to a stale base)
        let (m, p) = (format!("m{i}"), format!("p{i}"));
        let (ra, rb) = tokio::join!(publish_org(&a, &m), async {
            b.admin()
                .await
                .publish_project(auth(ADMIN, project(&p)))
                .await
                .map(|r| r.into_inner().revision)
        });
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let list = a
            .admin()
            .await
            .list_revisions(auth(ADMIN, v1::ListRevisionsRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert!(
            list.active == ra || list.active == rb,
            "the active revision is one of the two published"
        );
        let info = list
            .revisions
            .iter()
            .find(|r| r.revision == list.active)
            .unwrap();
        // projects are only added: p1..p{i}, none lost to a stale base
        assert_eq!(
            info.project_count, i as u64,
            "round {i}: every project kept"
        );
        for s in [&a, &b] {
            until_serving(s, &list.active, Duration::from_secs(1)).await;
            assert_eq!(
                decide(s, &format!("m{i}")).await.0,
                v1::Effect::Deny as i32,
                "round {i}: the org bundle of A holds"
            );
        }
        // and two org bundles at once: exactly one is active, both replicas serve it
        let (x, y) = (format!("x{i}"), format!("y{i}"));
        let (x, y) = tokio::join!(publish_org(&a, &x), publish_org(&b, &y));
        let (x, y) = (x.unwrap(), y.unwrap());
        let active = b
            .admin()
            .await
            .list_revisions(auth(ADMIN, v1::ListRevisionsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .active;
        assert!(active == x || active == y);
        until_serving(&a, &active, Duration::from_secs(1)).await;
        until_serving(&b, &active, Duration::from_secs(1)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_stops_publishing_not_decisions_and_replicas_catch_up() {
    let _one_at_a_time = TIMED.lock().await;
    let Some(db) = pg::database("outage", true).await else {
        return;
    };
    let cluster = db.cluster.as_ref().unwrap();
    let a = Server::start(&db.url).await;
    let b = Server::start(&db.url).await;
    let rev1 = publish_org(&a, "m1").await.unwrap();
    until_serving(&b, &rev1, Duration::from_secs(1)).await;

    cluster.stop_server();
    // decisions go on from the last snapshot, on both
    for s in [&a, &b] {
        for _ in 0..20 {
            assert_eq!(
                decide(s, "m1").await,
                (v1::Effect::Deny as i32, rev1.clone())
            );
        }
    }
    // publishing fails clearly, and changes nothing
    let e = publish_org(&a, "m2").await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("the store is unavailable"), "{e:?}");
    for s in [&a, &b] {
        until_health(
            s,
            "strata.v1.AdminService",
            ServingStatus::NotServing,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            s.health("strata.v1.PolicyService").await,
            ServingStatus::Serving as i32
        );
        assert_eq!(decide(s, "m1").await.1, rev1);
    }

    cluster.start_server();
    // publishing works again as soon as the database answers
    let start = Instant::now();
    let rev2 = loop {
        match publish_org(&a, "m2").await {
            Ok(r) => break r,
            Err(e) => assert_eq!(e.code(), Code::Unavailable, "{e:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // B catches up once its listener is back (reconnecting with backoff)
    until_serving(&b, &rev2, Duration::from_secs(10)).await;
    for s in [&a, &b] {
        until_health(
            s,
            "strata.v1.AdminService",
            ServingStatus::Serving,
            Duration::from_secs(10),
        )
        .await;
    }
    // and push works again: within a second
    let rev3 = publish_org(&b, "m3").await.unwrap();
    until_serving(&a, &rev3, Duration::from_secs(1)).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_a_notification_is_caught_by_the_periodic_check() {
    let Some(db) = pg::database("safety_net", false).await else {
        return;
    };
    let _one_at_a_time = TIMED.lock().await;
    let a = Server::start(&db.url).await;
    let r1 = publish_org(&a, "m1").await.unwrap();
    let r2 = publish_org(&a, "m2").await.unwrap();
    until_serving(&a, &r2, Duration::from_secs(1)).await;
    // move the pointer behind the resolver's back: no NOTIFY
    pg::sql(&db.url)
        .await
        .execute("UPDATE strata_active SET revision = $1", &[&r1])
        .await
        .unwrap();
    until_serving(
        &a,
        &r1,
        strata_resolver::pg::CHECK_EVERY + Duration::from_secs(2),
    )
    .await;
    // a listening connection that breaks: the replica reconnects and catches up
    let b = Server::start(&db.url).await;
    until_serving(&b, &r1, Duration::from_secs(1)).await;
    let killed: i64 = pg::sql(&db.url)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'strata-resolver-listen'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "one listening connection per replica");
    let r3 = publish_org(&a, "m3").await.unwrap();
    until_serving(&b, &r3, Duration::from_secs(2)).await;
    a.stop().await;
    b.stop().await;
}

// ---------------------------------------------------------------- TLS to the database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_is_verified_and_never_falls_back_to_plain() {
    let pki::Pki { ca, chain, key } = pki::private_pki();
    let Some(cluster) = pg::Cluster::start_tls("tls_to_the_database", &chain, &key) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, pki::private_pki().ca).unwrap();
    let base = format!("{}/postgres", cluster.url());

    // the server's certificate verified against sslrootcert: the store opens and works, and its
    // connections are encrypted (the server says so)
    for mode in ["require", "verify-full", "prefer"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", ca_file.display());
        let store = open(&url).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        let check = pg::sql(&format!("{base}?sslmode=disable")).await;
        let row = check
            .query_one(
                "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'strata-resolver%'",
                &[],
            )
            .await
            .unwrap();
        let (n, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
        assert!(n >= 1, "{mode}: no connection of the store's");
        assert_eq!(all_tls, Some(true), "{mode}: a connection in the clear");
        let active = tokio::task::spawn_blocking(move || store.active())
            .await
            .unwrap();
        assert_eq!(active.unwrap(), None, "{mode}: nothing published yet");
    }

    // a certificate the client cannot verify is a failure, never a quiet plain connection:
    // another CA, or only the system's roots, with `require` and with the default `prefer`
    for (what, url) in [
        (
            "another CA",
            format!("{base}?sslmode=require&sslrootcert={}", other_ca.display()),
        ),
        ("the system's roots", format!("{base}?sslmode=require")),
        (
            "the default sslmode",
            format!("{base}?sslrootcert={}", other_ca.display()),
        ),
    ] {
        let e = match open(&url).await {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
            "{what}: {e}"
        );
    }
    // and a CA file that is not one is named
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "nope").unwrap();
    let e = open(&format!(
        "{base}?sslmode=require&sslrootcert={}",
        junk.display()
    ))
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("junk.pem"), "{e}");
}

/// The console's change log in PostgreSQL (migration 3): newest first, in pages, still there
/// when the store is opened again
#[tokio::test]
async fn the_change_log_is_kept_in_the_database_newest_first() {
    let Some(db) = pg::database("changes", false).await else {
        return;
    };
    let store = open(&db.url).await.unwrap();
    let change = |n: i64| v1::StoredChange {
        at_unix_ms: n,
        who: "ada (session 1234)".into(),
        what: format!("change {n}"),
        detail: "from 127.0.0.1".into(),
    };
    let add = |store: PgStore, range: std::ops::Range<i64>| {
        tokio::task::spawn_blocking(move || {
            for n in range {
                store.add_change(&change(n)).unwrap();
            }
            store
        })
    };
    let store = add(store, 0..3).await.unwrap();
    drop(store);
    let store = open(&db.url).await.unwrap();
    let store = add(store, 3..5).await.unwrap();
    let (page, total, rest) = tokio::task::spawn_blocking(move || {
        let (page, total) = store.changes(0, 2).unwrap();
        let (rest, _) = store.changes(2, 10).unwrap();
        (page, total, rest)
    })
    .await
    .unwrap();
    assert_eq!(total, 5);
    assert_eq!(page, [change(4), change(3)]);
    assert_eq!(rest, [change(2), change(1), change(0)]);
}
