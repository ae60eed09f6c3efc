//! `policy serve --store postgres://...` as real processes: two resolvers on one database.
//! The PostgreSQL server comes from `crates/resolver/tests/support/pg.rs` (`STRATA_TEST_PG`, or a
//! private instance, or a skip line).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../resolver/tests/support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "cli-pg-admin";
const SERVICE: &str = "cli-pg-service";

fn policy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_policy"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c.env_remove("STRATA_RESOLVER")
        .env_remove("STRATA_TOKEN")
        .env_remove("STRATA_DATA")
        .env_remove("STRATA_STORE")
        .env("STRATA_LOG", "info");
    c
}

struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(store: &str) -> Serve {
    serve_on(store, "127.0.0.1:0")
}

fn serve_on(store: &str, listen: &str) -> Serve {
    let mut child = policy()
        .args(["serve", "--listen", listen])
        .env("STRATA_STORE", store)
        .env("STRATA_ADMIN_TOKEN", ADMIN)
        .env("STRATA_SERVICE_TOKEN", SERVICE)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "the resolver did not say where it listens"
        );
        let line = lines.next().expect("resolver exited").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Serve {
        child,
        url: format!("http://{addr}"),
    }
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The revision resolver `url` decides under, from `policy explain --json`
fn serving(url: &str) -> Option<String> {
    let mut c = policy();
    c.args([
        "explain",
        "model",
        "gpt-4o",
        "--resolver",
        url,
        "--as",
        "bob",
        "--json",
    ])
    .env("STRATA_TOKEN", SERVICE);
    let (_, out, _) = run(&mut c);
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v["revision"].as_str().map(String::from)
}

#[test]
fn two_serve_processes_on_one_database_share_what_is_published() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(pg::database("cli_replicas", false)) else {
        return;
    };
    let a = serve(&db.url);
    let b = serve(&db.url);
    for (bundle, through) in [
        ("policies/examples/acme/org", &a),
        ("crates/cli/tests/fixtures/org", &b),
    ] {
        let mut c = policy();
        c.args(["publish", "org", bundle])
            .env("STRATA_RESOLVER", &through.url)
            .env("STRATA_TOKEN", ADMIN);
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{out}{err}");
        let rev = out
            .trim()
            .strip_prefix("active revision ")
            .unwrap()
            .to_string();
        let published = Instant::now();
        // every process decides under it: the other one learns of it by push (the 1 s bound is
        // asserted in crates/resolver/tests/postgres.rs; here a process start is part of each probe)
        for s in [&a, &b] {
            while serving(&s.url).as_deref() != Some(rev.as_str()) {
                assert!(
                    published.elapsed() < Duration::from_secs(5),
                    "{} does not serve {rev}",
                    s.url
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        eprintln!(
            "both resolvers served {} {:?} after the publish returned",
            &rev[..12],
            published.elapsed()
        );
    }
    drop((a, b));
    drop(db);
}

#[test]
fn serve_needs_a_data_directory_or_a_postgres_url() {
    let (code, _, err) = run(policy().args(["serve"]));
    assert_ne!(code, 0);
    assert!(err.contains("--data") && err.contains("--store"), "{err}");
    let (code, _, err) = run(policy().args(["serve", "--store", "mysql://x@127.0.0.1/db"]));
    assert_ne!(code, 0);
    assert!(err.contains("--store takes a PostgreSQL URL"), "{err}");
    // a database that is not there: a clear error, no password echoed
    let (code, _, err) = run(policy().args([
        "serve",
        "--store",
        "postgres://strata:s3cret@127.0.0.1:1/strata",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot open the PostgreSQL store")
            && err.contains("127.0.0.1:1/strata")
            && !err.contains("s3cret"),
        "{err}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped (a failing test leaves nothing running)
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `policy gateway --config FILE`, up once it says where it listens
fn gateway(config: &std::path::Path) -> Killed {
    let mut child = policy()
        .args(["gateway", "--config"])
        .arg(config)
        .env("STRATA_SERVICE_TOKEN", SERVICE)
        .env("STRATA_TEST_UPSTREAM_KEY", "sk-ant-test-0123456789")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the gateway did not start");
        let line = lines.next().expect("gateway exited").unwrap();
        if line.contains("gateway listening") {
            break;
        }
    }
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("WARN") || l.contains("ERROR") {
                eprintln!("gateway: {l}");
            }
        }
    });
    Killed(child)
}

/// The status of one `gpt-4o` request through the gateway: 403 when a resolver decided (the
/// org bans it), 503 when none answered
fn status(
    http: &reqwest::Client,
    rt: &tokio::runtime::Runtime,
    gw: &str,
    token: &str,
    model: &str,
) -> u16 {
    let body = format!(r#"{{"model":"{model}","max_tokens":8,"messages":[]}}"#);
    rt.block_on(
        http.post(format!("{gw}/v1/messages"))
            .header("x-api-key", token)
            .body(body)
            .send(),
    )
    .unwrap()
    .status()
    .as_u16()
}

#[test]
fn a_gateway_balances_over_two_serve_processes_and_audits_to_postgres() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(pg::database("cli_balance_audit", false)) else {
        return;
    };
    let a = serve(&db.url);
    let b = serve(&db.url);
    let mut c = policy();
    c.args(["publish", "org", "policies/examples/acme/org"])
        .env("STRATA_RESOLVER", &a.url)
        .env("STRATA_TOKEN", ADMIN);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    let mut c = policy();
    c.args(["token", "create", "--user", "alice", "--group", "leads"])
        .env("STRATA_RESOLVER", &b.url)
        .env("STRATA_TOKEN", ADMIN);
    let (code, token, err) = run(&mut c);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("gateway.toml");
    // the upstream is nowhere: an allowed request ends 502, and is still audited as allowed
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\npublic_base_url = \"http://127.0.0.1:8787\"\n\
             resolvers = [\"{}\", \"{}\"]\ndecision_timeout_ms = 300\n\
             [audit]\nstore = \"{}\"\n\
             [upstreams.anthropic]\nbase_url = \"http://127.0.0.1:1\"\nkey_env = \"STRATA_TEST_UPSTREAM_KEY\"\n",
            a.url, b.url, db.url
        ),
    )
    .unwrap();
    let mut g = gateway(&config);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent = std::cell::Cell::new(0usize);
    // `n` answers `want` in a row, within a generous bound
    let settle = |want: u16, n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut in_a_row = 0;
        let mut seen = Vec::new();
        while in_a_row < n {
            assert!(Instant::now() < deadline, "{what}: {seen:?}");
            let s = status(&http, &rt, &gw, &token, "gpt-4o");
            sent.set(sent.get() + 1);
            seen.push(s);
            in_a_row = if s == want { in_a_row + 1 } else { 0 };
            if s != want {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        seen
    };
    settle(403, 10, "both resolvers up");
    assert_eq!(status(&http, &rt, &gw, &token, "claude-sonnet-4-5"), 502);
    sent.set(sent.get() + 1);

    // SIGKILL: no goodbye from resolver A
    let a_addr = a.url.trim_start_matches("http://").to_string();
    drop(a);
    let seen = settle(403, 20, "A killed");
    eprintln!("after killing A: {seen:?}");
    drop(b);
    settle(503, 3, "A and B killed");
    let ready = rt
        .block_on(http.get(format!("{gw}/readyz")).send())
        .unwrap()
        .status();
    assert_eq!(ready, 503);
    let a2 = serve_on(&db.url, &a_addr);
    settle(403, 10, "A restarted");
    let ready = rt
        .block_on(http.get(format!("{gw}/readyz")).send())
        .unwrap()
        .status();
    assert_eq!(ready, 200);

    // SIGTERM: the gateway writes what it holds before it exits
    let ok = Command::new("kill")
        .args(["-TERM", &g.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(g.0.wait().unwrap().success());

    let audit = |args: &[&str]| {
        let mut c = policy();
        c.arg("audit").args(args).env("STRATA_AUDIT_STORE", &db.url);
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{err}");
        (out, err)
    };
    let sent = sent.get();
    let (all, _) = audit(&["--json"]);
    assert_eq!(all.lines().count(), sent, "every request, once");
    let (denied, _) = audit(&[
        "--user",
        "alice",
        "--decision",
        "deny",
        "--model",
        "gpt-4o",
        "--json",
    ]);
    let (unavailable, _) = audit(&["--decision", "unavailable", "--since", "1h", "--json"]);
    assert_eq!(
        denied.lines().count() + unavailable.lines().count() + 1,
        sent
    );
    let (allowed, _) = audit(&["--model", "claude-sonnet-4-5", "--json"]);
    let r: serde_json::Value = serde_json::from_str(allowed.trim()).unwrap();
    assert_eq!(r["decision"], "allow");
    assert_eq!(r["status"], 502);
    assert_eq!(r["error"], "upstream_unreachable");
    let (last, _) = audit(&["--limit", "1", "--json"]);
    assert_eq!(last.trim(), all.lines().last().unwrap());
    let (table, err) = audit(&["--user", "alice", "--decision", "deny", "--limit", "2"]);
    assert!(
        table.starts_with("TIME") && table.lines().count() == 3,
        "{table}"
    );
    assert!(err.contains("2 record(s)"), "{err}");
    let (none, err) = audit(&["--until", "2000-01-01"]);
    assert!(none.is_empty() && err.contains("no records match"), "{err}");
    // --dir and --store are one or the other
    let (code, _, err) = run(policy().args(["audit", "--dir", "/tmp", "--store", &db.url]));
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    drop(a2);
    drop(db);
}
