//! Shared by the gateway's integration tests: a real resolver (sled, gRPC) with the example
//! bundle published, gateway tokens, and the real gateway on 127.0.0.1:0 in front of an upstream
//! the test provides.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_gateway::{Gateway, GatewayConfig};
use strata_policy::FileTree;
use strata_proto::v1::{self, admin_service_client::AdminServiceClient};
use strata_resolver::{Resolver, SledStore};
use tokio::sync::oneshot;

#[path = "../../../resolver/tests/support/pki.rs"]
mod pki;
pub use pki::private_pki;

pub const ADMIN: &str = "e2e-admin";
pub const SERVICE: &str = "e2e-service";
pub const CENTRAL_ANTHROPIC: &str = "sk-ant-central-0123456789";
pub const CENTRAL_OPENAI: &str = "sk-openai-central-0123456789";

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples/acme")
}

pub fn files(dir: &Path) -> Vec<v1::File> {
    strata_proto::files(&FileTree::read_path(dir).unwrap())
}

pub struct ResolverProc {
    pub resolver: Arc<Resolver>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn start_resolver(data: &Path, listener: tokio::net::TcpListener) -> ResolverProc {
    start_resolver_with(data, listener, None).await
}

/// [`start_resolver`], serving TLS when `tls` is given
pub async fn start_resolver_with(
    data: &Path,
    listener: tokio::net::TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> ResolverProc {
    let store = SledStore::open(data).unwrap();
    let (resolver, _) = Resolver::open(Arc::new(store), Some(ADMIN.into()), Some(SERVICE.into()))
        .await
        .unwrap();
    let resolver = Arc::new(resolver);
    let served = Arc::clone(&resolver);
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        strata_resolver::serve_with(served, listener, tls, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    ResolverProc {
        resolver,
        stop: Some(stop),
        task,
    }
}

impl ResolverProc {
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

pub fn auth<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    r
}

pub fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// A resolver with the example org published and project `web`, and a gateway in front of
/// `upstream` (every provider points at it, each with its own central key)
pub struct Stack {
    pub gateway: String,
    pub resolver_addr: SocketAddr,
    pub resolver: Option<ResolverProc>,
    pub data: tempfile::TempDir,
    /// a gateway token for `alice` in `leads`
    pub alice: String,
    /// a gateway token for `bob`, in no group
    pub bob: String,
}

pub async fn stack(up: SocketAddr) -> Stack {
    stack_with(up, "").await
}

/// Publish the example org and project `web` through the resolver at `addr`; gateway tokens for
/// `alice` (in `leads`) and `bob` (in no group)
pub async fn seed(addr: SocketAddr) -> (String, String) {
    seed_at(&format!("http://{addr}"), None).await
}

/// [`seed`] through the resolver at `url`, trusting `ca_file` for https://
pub async fn seed_at(url: &str, ca_file: Option<&Path>) -> (String, String) {
    seed_org(url, ca_file, &examples().join("org")).await
}

/// [`seed_at`] with the org bundle in `org` instead of the example's
pub async fn seed_org(url: &str, ca_file: Option<&Path>, org: &Path) -> (String, String) {
    let ch = strata_transport::endpoint(url, ca_file)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminServiceClient::new(ch);
    admin
        .publish_org(auth(v1::PublishOrgRequest {
            files: files(org),
            message: String::new(),
        }))
        .await
        .unwrap();
    admin
        .publish_project(auth(v1::PublishProjectRequest {
            project_id: "web".into(),
            files: files(&examples().join("project/.factory")),
            folders: vec![],
            message: String::new(),
        }))
        .await
        .unwrap();
    let token = |user: &str, groups: &[&str]| {
        let mut admin = admin.clone();
        let req = v1::CreateTokenRequest {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            projects: vec![],
            description: String::new(),
        };
        async move {
            admin
                .create_token(auth(req))
                .await
                .unwrap()
                .into_inner()
                .token
        }
    };
    let alice = token("alice", &["leads"]).await;
    let bob = token("bob", &[]).await;
    (alice, bob)
}

/// As [`stack`], with more top-level gateway settings (TOML lines)
pub async fn stack_with(up: SocketAddr, settings: &str) -> Stack {
    stack_opts(up, settings, false, "http", ResolverLink::Plain).await
}

/// As [`stack`], with the org bundle in `org` published instead of the example's
pub async fn stack_org(up: SocketAddr, org: &Path) -> Stack {
    stack_full(up, "", false, "http", ResolverLink::Plain, org).await
}

/// Copy the directory `from` into `to`, recursively
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// As [`stack_with`], with `https://` upstreams
pub async fn stack_tls(up: SocketAddr, settings: &str) -> Stack {
    stack_opts(up, settings, false, "https", ResolverLink::Plain).await
}

/// As [`stack`], with the gateway asking the resolver in its own process (as `policy up` does)
pub async fn stack_in_process(up: SocketAddr) -> Stack {
    stack_opts(up, "", true, "http", ResolverLink::Plain).await
}

/// How the gateway of a test stack reaches its resolver
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverLink {
    /// plain HTTP/2
    Plain,
    /// TLS, the resolver's certificate signed by a private CA; the gateway's
    /// `resolver_ca_file` holds that CA (`trusted`) or another one
    Tls { trusted: bool },
}

/// As [`stack`], the resolver reached over `link`
pub async fn stack_linked(up: SocketAddr, link: ResolverLink) -> Stack {
    stack_opts(up, "", false, "http", link).await
}

struct InProcess(strata_resolver::service::PolicySvc);

impl strata_gateway::decider::LocalPolicy for InProcess {
    fn decide(&self, req: &v1::DecideRequest) -> Result<v1::DecideResponse, tonic::Status> {
        self.0.decide_in_process(req)
    }
}

async fn stack_opts(
    up: SocketAddr,
    settings: &str,
    in_process: bool,
    scheme: &str,
    link: ResolverLink,
) -> Stack {
    stack_full(
        up,
        settings,
        in_process,
        scheme,
        link,
        &examples().join("org"),
    )
    .await
}

async fn stack_full(
    up: SocketAddr,
    settings: &str,
    in_process: bool,
    scheme: &str,
    link: ResolverLink,
    org: &Path,
) -> Stack {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resolver_addr = listener.local_addr().unwrap();
    let (resolver, resolver_settings) = match link {
        ResolverLink::Plain => {
            let resolver = start_resolver(data.path(), listener).await;
            (resolver, format!("resolver = \"http://{resolver_addr}\""))
        }
        ResolverLink::Tls { trusted } => {
            let pki = private_pki();
            let tls = strata_transport::server_tls(
                Path::new(&write(data.path(), "chain.pem", &pki.chain)),
                Path::new(&write(data.path(), "key.pem", &pki.key)),
            )
            .unwrap();
            let resolver = start_resolver_with(data.path(), listener, Some(tls)).await;
            let ca = write(data.path(), "ca.pem", &pki.ca);
            let gateway_ca = if trusted {
                ca.clone()
            } else {
                write(data.path(), "other-ca.pem", &private_pki().ca)
            };
            (
                resolver,
                format!(
                    "resolver = \"https://{resolver_addr}\"\nresolver_ca_file = \"{gateway_ca}\""
                ),
            )
        }
    };
    let (alice, bob) = match link {
        ResolverLink::Plain => seed_org(&format!("http://{resolver_addr}"), None, org).await,
        ResolverLink::Tls { .. } => {
            let ca = data.path().join("ca.pem");
            seed_org(&format!("https://{resolver_addr}"), Some(&ca), org).await
        }
    };

    // the upstreams' model catalogues are read only by the tests that say so: the mock upstreams
    // of the others count what reaches them
    let settings = if settings.contains("model_catalog_refresh_secs") {
        settings.to_string()
    } else {
        format!("model_catalog_refresh_secs = 0\n{settings}")
    };
    let cfg = GatewayConfig::parse(
        "e2e.toml",
        &format!(
            r#"
listen = "127.0.0.1:0"
public_base_url = "http://127.0.0.1:8787"
{resolver_settings}
service_token_file = "{svc}"
decision_timeout_ms = 2000
max_body_bytes = 1048576
{settings}
[audit]
dir = "{audit}"
retention_days = 30
[upstreams.anthropic]
base_url = "{scheme}://{up}"
key_file = "{ka}"
[upstreams.openai]
base_url = "{scheme}://{up}/v1"
key_file = "{ko}"
[upstreams.generic-chat-completion-api]
base_url = "{scheme}://{up}"
key_file = "{ko}"
"#,
            svc = write(data.path(), "svc", SERVICE),
            audit = data.path().join("audit").display(),
            ka = write(data.path(), "ka", CENTRAL_ANTHROPIC),
            ko = write(data.path(), "ko", CENTRAL_OPENAI),
        ),
    )
    .unwrap();
    let mut gw = Gateway::new(cfg).unwrap();
    if in_process {
        gw = gw.with_local_resolver(Arc::new(InProcess(strata_resolver::service::PolicySvc {
            resolver: Arc::clone(&resolver.resolver),
        })));
    }
    let gw = Arc::new(gw);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gaddr = l.local_addr().unwrap();
    tokio::spawn(async move {
        strata_gateway::serve(gw, l, std::future::pending())
            .await
            .unwrap()
    });
    Stack {
        gateway: format!("http://{gaddr}"),
        resolver_addr,
        resolver: Some(resolver),
        data,
        alice,
        bob,
    }
}

/// This process's resident memory in KiB (the gateway of these tests runs in it)
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A response read off a raw connection
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// header names lowercased
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Read one HTTP/1.1 response (head, then `content-length` bytes or up to EOF); `None` when the
/// connection ends before a whole head arrived
pub async fn read_response(s: &mut tokio::net::TcpStream) -> Option<RawResponse> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    while len.is_none_or(|l| body.len() < l) {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// The gateway's `/metrics` text
pub async fn metrics(gateway: &str) -> String {
    reqwest::get(format!("{gateway}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Serve `app` on 127.0.0.1:0 (a mock upstream); its address
pub async fn serve(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// Rewrite the JSON file at `path` with `f` (editing a copy of the example bundle)
pub fn edit_json(path: &Path, f: &dyn Fn(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}
