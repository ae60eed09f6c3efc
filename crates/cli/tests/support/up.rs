//! `policy up` with the example bundle in front of the recording mock upstream, for the tests
//! that run the real Droid CLI through Strata (droid_e2e.rs, droid_org_e2e.rs). Needs the
//! `droid` and `upstream` support modules beside it, declared in the test's crate root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::droid::{self, Sandbox};
use crate::upstream;

pub const CENTRAL_ANTHROPIC: &str = "sk-ant-central-droid-e2e-0123456789";
pub const CENTRAL_OPENAI: &str = "sk-openai-central-droid-e2e-0123456789";
/// The org's self-hosted model's own key, `${ACME_QWEN_KEY}` in its customModels entry
pub const QWEN_VAR: &str = "ACME_QWEN_KEY";
pub const QWEN_KEY: &str = "sk-qwen-own-droid-e2e-0123456789";
/// What the mock upstream answers every completion with
pub const ANSWER: &str = "Hi from the mock upstream (droid-e2e 7f3a9c)";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A copy of `src` with every text file passed through `edit`
pub fn copy_edited(src: &Path, dst: &Path, edit: &dyn Fn(String) -> String) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_edited(&entry.path(), &to, edit);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(to, edit(text)).unwrap();
        }
    }
}

/// A running `policy up`, killed when dropped, with what it printed
pub struct Up {
    child: Child,
    /// alice's gateway token
    pub token: String,
    /// the admin token, for `policy publish`
    pub admin: String,
    /// the resolver's URL
    pub resolver: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Up {
    /// Kills it (resolver and gateway) and waits for it to exit
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `policy publish org DIR` to this resolver with the admin token
    pub fn publish_org(&self, dir: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_policy"))
            .args(["publish", "org", dir.to_str().unwrap()])
            .args(["--resolver", &self.resolver, "--token", &self.admin])
            .args(["--message", "droid e2e"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "policy publish org: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `policy up` for alice (group `leads`) with every provider pointed at `upstream`, once it is
/// serving
pub fn policy_up(data: &Path, org: &Path, project: &Path, gw: u16, upstream: &str) -> Up {
    let rs = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_policy"))
        .current_dir(droid::workspace())
        .args(["up", "--data", data.to_str().unwrap()])
        .args(["--org", org.to_str().unwrap()])
        .args(["--project", &format!("web={}", project.display())])
        .args(["--listen", &format!("127.0.0.1:{gw}")])
        .args(["--resolver-listen", &format!("127.0.0.1:{rs}")])
        // the admin console on a port of its own: these tests run side by side
        .args(["--console-listen", "127.0.0.1:0"])
        .env("ANTHROPIC_BASE_URL", upstream)
        .env("OPENAI_BASE_URL", upstream)
        .env("STRATA_CHAT_BASE_URL", upstream)
        .env("ANTHROPIC_API_KEY", CENTRAL_ANTHROPIC)
        .env("OPENAI_API_KEY", CENTRAL_OPENAI)
        .env(QWEN_VAR, QWEN_KEY)
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut up = Up {
        child,
        token: String::new(),
        admin: String::new(),
        resolver: format!("http://127.0.0.1:{rs}"),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut said = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "policy up did not come up: {said:#?}"
        );
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed.starts_with("strata_gw_") {
            up.token = trimmed.to_string();
        }
        if let Some(admin) = trimmed.strip_prefix("STRATA_ADMIN_TOKEN=") {
            up.admin = admin.to_string();
        }
        assert!(!line.starts_with("warning:"), "{line}");
        let done = line.contains("Stop with Ctrl-C.");
        said.push(line);
        if done {
            break;
        }
    }
    // keep draining its stderr so it never blocks on a full pipe
    std::thread::spawn(move || while rx.recv().is_ok() {});
    assert!(!up.token.is_empty(), "policy up printed no gateway token");
    assert!(!up.admin.is_empty(), "policy up printed no admin token");
    up
}

/// The example bundle served by `policy up` in front of a recording mock, with a checkout of the
/// example project in a sandbox
pub struct Example {
    pub mock: upstream::Upstream,
    /// the gateway's URL
    pub gateway: String,
    pub sandbox: Sandbox,
    pub up: Up,
    /// alice's gateway token
    pub token: String,
    /// the org bundle `policy up` published (the example's, edited for this test's ports)
    pub org: PathBuf,
}

pub fn example() -> Example {
    let mock = upstream::start(ANSWER);
    let gw = free_port();
    // the example requires traffic through 127.0.0.1:8787: this test's gateway stands there
    let here = |text: String| text.replace("127.0.0.1:8787", &format!("127.0.0.1:{gw}"));
    let sandbox = Sandbox::with_project(here);
    let org = sandbox.dir.path().join("org");
    // the org's self-hosted acme-qwen3-coder has its own upstream (the mock here too) and its
    // own key, which the gateway injects instead of the central one
    let own = |text: String| {
        here(text)
            .replace(
                "\"baseUrl\": \"https://llm-gateway.acme.internal/v1\",",
                &format!(
                    "\"baseUrl\": \"{}/v1\", \"apiKey\": \"${{{QWEN_VAR}}}\",",
                    mock.url()
                ),
            )
            .replace("https://llm-gateway.acme.internal", &mock.url())
    };
    copy_edited(
        &droid::workspace().join("policies/examples/acme/org"),
        &org,
        &own,
    );
    let up = policy_up(
        &sandbox.dir.path().join("data"),
        &org,
        &sandbox.project.join(".factory"),
        gw,
        &mock.url(),
    );
    Example {
        mock,
        gateway: format!("http://127.0.0.1:{gw}"),
        sandbox,
        token: up.token.clone(),
        up,
        org,
    }
}

/// A minimal HTTP/1.1 GET with a bearer: the status (0: could not connect) and the body
pub fn http_get(url: &str, bearer: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return (0, format!("nothing listens at {host}"));
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {bearer}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}
