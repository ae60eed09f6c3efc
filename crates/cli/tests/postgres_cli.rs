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
    let mut child = policy()
        .args(["serve", "--listen", "127.0.0.1:0"])
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
