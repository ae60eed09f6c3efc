//! `policy serve` as a real process, driven by the `policy` client commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "cli-test-admin";
const SERVICE: &str = "cli-test-service";

fn policy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_policy"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c.env_remove("STRATA_RESOLVER")
        .env_remove("STRATA_TOKEN")
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

fn serve(data: &std::path::Path) -> Serve {
    let mut child = policy()
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
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
    // keep draining the log so the child never blocks on a full pipe
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

#[test]
fn serve_publish_token_rollback_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let client = |args: &[&str]| {
        let mut c = policy();
        c.args(args)
            .env("STRATA_RESOLVER", &s.url)
            .env("STRATA_TOKEN", ADMIN);
        run(&mut c)
    };

    let (code, out, err) = client(&[
        "publish",
        "org",
        "policies/examples/acme/org",
        "-m",
        "acme v1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let first = out
        .trim()
        .strip_prefix("active revision ")
        .unwrap()
        .to_string();

    let (code, out, err) = client(&[
        "publish",
        "project",
        "--id",
        "web",
        "policies/examples/acme/project/.factory",
        "--folder",
        "services/billing=policies/examples/acme/project/services/billing/.factory",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("merge.locked_key") || err.contains("cannot be redefined"),
        "warnings are shown: {err}"
    );

    // a broken bundle: every problem, exit 3, the active revision stays
    let (code, out, _) = client(&["publish", "org", "crates/cli/tests/fixtures/broken"]);
    assert_eq!(code, 3);
    assert!(
        out.contains("invalid provider `azure`") && out.contains("trailing comma"),
        "{out}"
    );

    let (code, out, _) = client(&["revisions"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().next().unwrap().starts_with('*'),
        "the newest is active: {out}"
    );

    let (code, token, err) = client(&["token", "create", "--user", "bob"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    let (_, list, _) = client(&["token", "list"]);
    assert!(
        list.contains("user bob") && !list.contains(&token),
        "tokens are listed, never shown again: {list}"
    );
    let id = list.split_whitespace().next().unwrap().to_string();

    // explain against the live snapshot, with the service token
    let mut c = policy();
    c.args([
        "explain",
        "model",
        "gpt-4o",
        "--resolver",
        &s.url,
        "--as",
        "bob",
        "--project-id",
        "web",
        "--json",
    ])
    .env("STRATA_TOKEN", SERVICE);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 2, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["determinedBy"][0]["rule"],
        "org#modelPolicy.blockedModelIds"
    );

    let (code, _, _) = client(&["token", "revoke", &id]);
    assert_eq!(code, 0);
    let (_, list, _) = client(&["token", "list"]);
    assert!(list.contains("revoked"), "{list}");

    let (code, out, err) = client(&["rollback", &first[..12]]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&first));

    // wrong admin token: exit 1, no hint
    let mut c = policy();
    c.args(["revisions"])
        .env("STRATA_RESOLVER", &s.url)
        .env("STRATA_TOKEN", "nope");
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 1);
    assert!(err.contains("rejected the credentials"), "{err}");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_resolver_gracefully_and_it_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path());
    let mut c = policy();
    c.args(["publish", "org", "policies/examples/acme/org"])
        .env("STRATA_RESOLVER", &s.url)
        .env("STRATA_TOKEN", ADMIN);
    let (code, out, _) = run(&mut c);
    assert_eq!(code, 0);
    let rev = out
        .trim()
        .strip_prefix("active revision ")
        .unwrap()
        .to_string();

    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the resolver did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit: {status:?}");

    let s = serve(dir.path());
    let mut c = policy();
    c.args(["revisions"])
        .env("STRATA_RESOLVER", &s.url)
        .env("STRATA_TOKEN", ADMIN);
    let (_, out, _) = run(&mut c);
    assert!(
        out.starts_with(&format!("* {}", &rev[..12])),
        "the restarted resolver serves the last revision: {out}"
    );
}
