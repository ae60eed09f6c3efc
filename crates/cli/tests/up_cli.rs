//! `policy up` as a real process, and `policy droid-settings` against its gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A copy of `src` with the example's gateway address (127.0.0.1:8787) replaced by `port`'s
fn copy_for_port(src: &Path, dst: &Path, port: u16) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_for_port(&entry.path(), &to, port);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(
                to,
                text.replace("127.0.0.1:8787", &format!("127.0.0.1:{port}")),
            )
            .unwrap();
        }
    }
}

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies/examples/acme")
        .join(path)
}

/// A plain HTTP/1.1 GET, the whole answer as text
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A `policy up` process, killed when dropped (also when an assertion fails first)
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `policy up` with `extra` arguments; returns the process and its stderr lines
fn up(data: &Path, gw: u16, rs: u16, extra: &[&str]) -> (Up, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policy"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["up", "--data", data.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{gw}")])
        .args(["--resolver-listen", &format!("127.0.0.1:{rs}")])
        .args(["--console-listen", "127.0.0.1:0"])
        .args(extra)
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    (Up(child), BufReader::new(stderr).lines())
}

/// The example org requires traffic through 127.0.0.1:8787: on any other address `policy up`
/// says at start that the gateway will refuse every model, and why
#[test]
fn up_off_the_required_gateway_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, rs) = (free_port(), free_port());
    let (child, lines) = up(&dir.path().join("data"), gw, rs, &[]);
    let mut warned = None;
    let mut console = None;
    for line in lines.map_while(Result::ok) {
        if line.starts_with("warning: the gateway would refuse every model") {
            warned = Some(line.clone());
        }
        if let Some(rest) = line.strip_prefix("admin console: http://") {
            console = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("Stop with Ctrl-C.") {
            break;
        }
    }
    // the admin console, on the address printed at start, asks to sign in
    let console = console.expect("policy up printed no console URL");
    let page = http_get(&console, "/login");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Sign in to Strata"), "{page}");
    drop(child);
    let warned = warned.expect("policy up warned of nothing");
    assert!(
        warned.contains("gateway.requiredBaseUrls") && warned.contains(&format!("127.0.0.1:{gw}")),
        "{warned}"
    );
}

#[test]
fn up_then_droid_settings_writes_the_users_models() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, rs) = (free_port(), free_port());
    // the example, with this test's gateway address where the example has 127.0.0.1:8787
    copy_for_port(&example("org"), &dir.path().join("org"), gw);
    copy_for_port(&example("project"), &dir.path().join("project"), gw);
    let org = dir.path().join("org");
    let project = format!("web={}", dir.path().join("project/.factory").display());
    let (child, mut lines) = up(
        &dir.path().join("data"),
        gw,
        rs,
        &[
            "--org",
            org.to_str().unwrap(),
            "--project",
            &project,
            "--user",
            "bob",
            "--group",
            "devs",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        assert!(Instant::now() < deadline, "policy up printed no token");
        let line = lines.next().expect("policy up exited").unwrap();
        if line.trim_start().starts_with("strata_gw_") {
            break line.trim().to_string();
        }
    };
    // the rest of what it prints: this org allows this gateway, so no warning
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        assert!(!line.starts_with("warning:"), "{line}");
        if line.contains("Stop with Ctrl-C.") {
            break;
        }
    }

    // a settings file with a key of its own and a personal model that must survive
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"autonomyLevel": "low", "customModels": [{"model": "mine", "baseUrl": "https://api.anthropic.com", "provider": "anthropic"}]}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_policy"))
            .args([
                "droid-settings",
                "--gateway",
                &format!("http://127.0.0.1:{gw}"),
                "--token",
                &token,
                "--project",
                "web",
                "--settings",
                settings.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // a denied request through the gateway, then `policy audit` finds it
    let denied = http_post(
        gw,
        "/v1/chat/completions",
        &token,
        r#"{"model":"gpt-4o","messages":[]}"#,
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    let audit_dir = dir.path().join("data/audit");
    let policy_audit = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_policy"))
            .args(["audit", "--dir", audit_dir.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let audited = loop {
        let a = policy_audit(&["--decision", "deny", "--user", "bob", "--json"]);
        if !a.stdout.is_empty() || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let human = policy_audit(&["--since", "1h", "--model", "gpt-4o"]);
    let bad = policy_audit(&["--since", "last tuesday"]);
    drop(child);
    assert!(audited.status.success());
    let line: serde_json::Value =
        serde_json::from_slice(audited.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["model"], "gpt-4o");
    assert_eq!(line["status"], 403);
    assert_eq!(line["rules"][0], "org#modelPolicy.blockedModelIds");
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.starts_with("TIME"), "{human}");
    assert!(
        human.contains("gpt-4o") && human.contains("deny") && human.contains("403"),
        "{human}"
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid time `last tuesday`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(v["autonomyLevel"], "low");
    let models = v["customModels"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "mine", "the personal model is kept: {ids:?}");
    assert!(ids.len() > 1, "the gateway's models are written: {ids:?}");
    assert!(
        !ids.contains(&"claude-opus-4-1"),
        "bob is not in leads: {ids:?}"
    );
    assert!(models[1..].iter().all(|m| m["apiKey"] == token.as_str()));
    let backups = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("settings.json.bak-")
        })
        .count();
    assert_eq!(backups, 1, "the old file is backed up");
}

/// A minimal HTTP/1.1 POST; the whole response as text
fn http_post(port: u16, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
