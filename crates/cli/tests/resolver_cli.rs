//! `policy serve` as a real process, driven by the `policy` client commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../resolver/tests/support/pki.rs"]
mod pki;

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
    serve_with(data, &[], "http")
}

/// `policy serve` with more arguments; its URL with `scheme`
fn serve_with(data: &std::path::Path, args: &[&str], scheme: &str) -> Serve {
    let mut child = policy()
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(args)
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
        url: format!("{scheme}://{addr}"),
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

/// SIGKILL at random moments during a stream of publishes, many times, restarting on the same
/// data directory each time: every acknowledged revision is still there, and the active one is
/// the last acknowledged one (or the publish that was in flight when the process died).
/// `STRATA_CRASH_ITERATIONS` sets the number of kills (CI: 8).
#[test]
fn sigkill_during_publishes_loses_no_acknowledged_revision() {
    use strata_proto::v1::{self, admin_service_client::AdminServiceClient};
    let iterations: u64 = std::env::var("STRATA_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fn auth<T>(msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        r
    }
    let bundle = |n: u64| v1::PublishOrgRequest {
        files: vec![v1::File {
            path: "settings.json".into(),
            content: format!(r#"{{"modelPolicy": {{"blockedModelIds": ["banned-{n}"]}}}}"#)
                .into_bytes(),
        }],
        message: format!("crash-{n}"),
    };
    // (revision, message) of every acknowledged publish, in order
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut attempted = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..=iterations {
        let mut s = serve(dir.path());
        let (last_acked, in_flight) = (acked.last().cloned(), format!("crash-{attempted}"));
        let mut admin =
            rt.block_on(async { AdminServiceClient::connect(s.url.clone()).await.unwrap() });
        let listed = rt
            .block_on(admin.list_revisions(auth(v1::ListRevisionsRequest {})))
            .unwrap()
            .into_inner();
        let stored: HashSet<&str> = listed
            .revisions
            .iter()
            .map(|r| r.revision.as_str())
            .collect();
        for (rev, msg) in &acked {
            assert!(
                stored.contains(rev.as_str()),
                "round {round}: acknowledged {msg} ({rev}) is gone"
            );
        }
        if let Some((rev, _)) = &last_acked {
            let active = listed
                .revisions
                .iter()
                .find(|r| r.revision == listed.active)
                .unwrap();
            assert!(
                listed.active == *rev || active.message == in_flight,
                "round {round}: active is {} ({}), not the last acknowledged {rev} or the one in flight",
                listed.active,
                active.message
            );
            // the in-flight one counts from now on: it is stored and active
            if listed.active != *rev {
                acked.push((listed.active.clone(), active.message.clone()));
            }
        }
        if round == iterations {
            break;
        }
        // publish until killed, somewhere between 50 ms and 2.5 s from now (a publish compiles
        // the bundle: tens of ms in a release build, hundreds in a debug build)
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_at = Instant::now() + Duration::from_millis(50 + seed % 2450);
        rt.block_on(async {
            loop {
                attempted += 1;
                let call = admin.publish_org(auth(bundle(attempted)));
                let deadline = tokio::time::sleep_until(kill_at.into());
                tokio::select! {
                    r = call => {
                        let r = r.unwrap().into_inner();
                        assert!(r.changed);
                        acked.push((r.revision, format!("crash-{attempted}")));
                    }
                    _ = deadline => break,
                }
            }
        });
        // the publish cut off by the deadline may still be running in the resolver: kill now
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
    eprintln!(
        "{} publishes acknowledged across {iterations} kills",
        acked.len()
    );
    assert!(
        acked.len() as u64 >= iterations,
        "publishes went through ({})",
        acked.len()
    );
}

#[test]
fn serve_over_tls_and_reach_it_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki::Pki { ca, chain, key } = pki::private_pki();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ca, chain, key) = (
        file("ca.pem", &ca),
        file("chain.pem", &chain),
        file("key.pem", &key),
    );
    let other_ca = pki::private_pki().ca;
    let other_ca = file("other-ca.pem", &other_ca);

    // a key where the certificate belongs: refused at start, naming the file
    let data = dir.path().join("data");
    let (code, out, err) = run(policy().args([
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &key,
        "--tls-key",
        &chain,
    ]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("key.pem") && err.contains("no certificate"),
        "{err}"
    );
    // one of the two alone is a usage error
    let (code, _, err) = run(policy().args(["serve", "--data", "x", "--tls-cert", &chain]));
    assert_ne!(code, 0);
    assert!(err.contains("--tls-key"), "{err}");

    let s = serve_with(&data, &["--tls-cert", &chain, "--tls-key", &key], "https");
    let client = |resolver: &str, ca: Option<&str>, args: &[&str]| {
        let mut c = policy();
        c.args(args)
            .env("STRATA_RESOLVER", resolver)
            .env("STRATA_TOKEN", ADMIN);
        if let Some(ca) = ca {
            c.env("STRATA_RESOLVER_CA", ca);
        }
        run(&mut c)
    };

    // trusted through the CA: publish and list over TLS
    let (code, out, err) = client(
        &s.url,
        Some(&ca),
        &["publish", "org", "policies/examples/acme/org", "-m", "tls"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("active revision "), "{out}");
    let (code, out, err) = client(&s.url, Some(&ca), &["revisions"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tls"), "{out}");
    // explain against the live snapshot, over TLS, with its own flag
    let (code, out, err) = run(policy().args([
        "explain",
        "model",
        "gpt-4o",
        "--as",
        "alice",
        "--resolver",
        &s.url,
        "--resolver-ca",
        &ca,
        "--token",
        SERVICE,
    ]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("DENY"), "{out}");

    // a CA that did not sign the certificate, or the system's roots: not reached
    for ca in [Some(other_ca.as_str()), None] {
        let (code, out, err) = client(&s.url, ca, &["revisions"]);
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains("cannot reach the resolver"), "{err}");
        assert!(!out.contains("tls"), "{out}");
    }
    // plain HTTP/2 to the TLS port: not answered either
    let plain = s.url.replace("https://", "http://");
    let (code, out, err) = client(&plain, None, &["revisions"]);
    assert_ne!(code, 0, "{out}{err}");
    // and a CA for a plain URL is a mistake worth saying
    let (code, _, err) = client(&plain, Some(&ca), &["revisions"]);
    assert_ne!(code, 0);
    assert!(err.contains("use https://"), "{err}");
}

/// `policy serve --console-listen`: the admin console on its own listener, asking to sign in
#[test]
fn serve_with_console_listen_serves_the_console() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let console = format!("127.0.0.1:{port}");
    let _serve = serve_with(dir.path(), &["--console-listen", &console], "http");
    // the console binds just after the resolver says where it listens
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match std::net::TcpStream::connect(&console) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "no console on {console}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    write!(
        stream,
        "GET /login HTTP/1.1\r\nHost: {console}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-security-policy: default-src 'self'"));
    assert!(page.contains("Sign in to Strata"));
    assert!(!page.contains(ADMIN), "the admin token is never in a page");
}
