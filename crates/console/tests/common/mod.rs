//! A console over a resolver on an in-memory store with the example bundle published, on
//! 127.0.0.1:0, and a small HTTP client that keeps the session cookie by hand (so that tests can
//! read every cookie attribute).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_console::{Console, ConsoleOptions};
use strata_policy::FileTree;
use strata_resolver::{MemStore, Resolver, Store};

pub const ADMIN: &str = "strata_admin_test-console-0123456789";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn files(dir: &Path) -> Vec<strata_proto::v1::File> {
    strata_proto::files(&FileTree::read_path(dir).expect("example tree"))
}

pub struct Running {
    pub url: String,
    pub resolver: Arc<Resolver>,
    pub audit: Option<tempfile::TempDir>,
    /// the console's server, ended by the shutdown future given to [`start_on`]
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start(audit: Option<tempfile::TempDir>) -> Running {
    start_with(audit, false).await
}

/// As [`start`], the cookies marked `Secure` or not
pub async fn start_with(audit: Option<tempfile::TempDir>, secure_cookies: bool) -> Running {
    let source = audit
        .as_ref()
        .map(|d| strata_console::AuditSource::Dir(d.path().to_path_buf()));
    let store = Arc::new(MemStore::default());
    let mut run = start_on(store, source, secure_cookies, std::future::pending()).await;
    run.audit = audit;
    run
}

/// A resolver over `store` with the example bundle published (unless something is active
/// already), and a console over it until `shutdown`
pub async fn start_on(
    store: Arc<dyn Store>,
    audit: Option<strata_console::AuditSource>,
    secure_cookies: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Running {
    let (resolver, _) = Resolver::open(
        store,
        Some(ADMIN.to_string()),
        Some("strata_svc_test".to_string()),
    )
    .await
    .expect("resolver");
    let resolver = Arc::new(resolver);
    let acme = repo().join("policies/examples/acme");
    if resolver.active().is_none() {
        resolver
            .publish_org(files(&acme.join("org")), "first".to_string())
            .await
            .expect("publish org");
        resolver
            .publish_project(
                "web".to_string(),
                files(&acme.join("project/.factory")),
                Vec::new(),
                "web".to_string(),
            )
            .await
            .expect("publish web");
    }
    let options = ConsoleOptions {
        audit,
        gateway_url: Some("http://127.0.0.1:8787".to_string()),
        secure_cookies,
    };
    let console = Console::new(resolver.clone(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(strata_console::serve(console, listener, shutdown));
    Running {
        url,
        resolver,
        audit: None,
        task,
    }
}

/// reqwest's rustls needs a crypto provider, even for plain HTTP
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client() -> reqwest::Client {
    crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` in a response's Set-Cookie headers, with the whole header
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_string();
            (value, v.to_string())
        })
}

/// The value of hidden input `name` in a page
pub fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .expect("hidden field");
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').expect("end of value")].to_string()
}

pub struct Session {
    pub url: String,
    pub cookie: String,
    pub csrf: String,
    pub http: reqwest::Client,
}

impl Session {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .header("cookie", format!("strata_console={}", self.cookie))
            .send()
            .await
            .expect("get")
    }

    pub async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().await.expect("body")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("cookie", format!("strata_console={}", self.cookie))
            .form(form)
            .send()
            .await
            .expect("post")
    }
}

/// The sign-in form's answer to `token`
pub async fn try_login(url: &str, token: &str) -> reqwest::Response {
    let http = client();
    let page = http
        .get(format!("{url}/login"))
        .send()
        .await
        .expect("login page");
    let (login_cookie, _) = set_cookie(&page, "strata_console_login").expect("login cookie");
    let csrf = hidden(&page.text().await.expect("body"), "csrf");
    http.post(format!("{url}/login"))
        .header("cookie", format!("strata_console_login={login_cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("name", "tester"),
        ])
        .send()
        .await
        .expect("login")
}

pub async fn login(url: &str) -> Session {
    let res = try_login(url, ADMIN).await;
    assert_eq!(res.status(), 303, "signed in");
    let (cookie, _) = set_cookie(&res, "strata_console").expect("session cookie");
    let http = client();
    let home = http
        .get(format!("{url}/tokens"))
        .header("cookie", format!("strata_console={cookie}"))
        .send()
        .await
        .expect("tokens")
        .text()
        .await
        .expect("body");
    let csrf = hidden(&home, "csrf");
    Session {
        url: url.to_string(),
        cookie,
        csrf,
        http,
    }
}

/// What the audit page shows of [`audit_records`]`(300)`, whichever source holds them (JSON lines
/// or PostgreSQL): counts and paging, the per-day chart, tokens by model, newest first, each
/// filter, and a refused record's link to the explain view
pub async fn the_300_audit_records_search_page_and_chart(s: &Session) {
    let all = s.page("/audit").await;
    assert!(all.contains("300 record(s); page 1 of 6"), "paging: {all}");
    assert_eq!(
        all.matches("class=\"explain-link\"").count(),
        50,
        "50 a page"
    );
    assert!(
        all.contains("11-28") && all.contains("11-30"),
        "one bar per day"
    );
    let chart = &all[all.find("id=\"per-day\"").expect("chart")..];
    let chart = &chart[..chart.find("</svg>").expect("end")];
    assert_eq!(
        chart.matches("<rect ").count(),
        6,
        "allowed and refused, 3 days"
    );
    assert!(
        all.contains("<td>claude-sonnet-4-5</td><td>3000</td>"),
        "tokens by model: 200 allowed x 15"
    );
    // newest first: the first row is the last record of the 30th
    let table = &all[all.find("id=\"audit\"").expect("records")..];
    let first = &table[table.find("<tbody><tr>").expect("rows")..];
    assert!(
        first.contains("2026-11-30"),
        "{}",
        &first[..300.min(first.len())]
    );

    let denied = s.page("/audit?decision=deny&user=alice").await;
    assert!(
        denied.contains("50 record(s)"),
        "every 6th of 300: {denied}"
    );
    assert!(!denied.contains(">allow</span>"));
    assert!(denied.contains("<code>org#modelPolicy.blockedModelIds</code>"));
    let by_rule = s.page("/audit?rule=blockedModelIds").await;
    assert!(by_rule.contains("100 record(s)"), "the rule");
    let by_model = s.page("/audit?model=gpt-4o&user=bob").await;
    assert!(by_model.contains("50 record(s)"));
    let one_day = s.page("/audit?since=2026-11-29&until=2026-11-30").await;
    assert!(one_day.contains("100 record(s)"), "the 29th only");
    let last = s.page("/audit?page=5").await;
    assert!(
        last.contains("page 6 of 6")
            && last.contains("id=\"prev\"")
            && !last.contains("id=\"next\"")
    );

    // a refused record opens its question in the explain view, which says why
    let at = denied.find("class=\"explain-link\" href=\"").expect("link") + 27;
    let href = denied[at..at + denied[at..].find('"').expect("end")].replace("&amp;", "&");
    assert!(
        href.contains("user=alice") && href.contains("model=gpt-4o"),
        "{href}"
    );
    let why = s.page(&href).await;
    assert!(why.contains("DENY"), "{why}");
}

/// `n` audit records over three days (2026-11-28..30): every third refused by
/// `org#modelPolicy.blockedModelIds`, users alice and bob, models gpt-4o and claude-sonnet-4-5
pub fn audit_records(n: usize) -> Vec<strata_gateway::audit::Record> {
    let day0 = strata_gateway::audit::day_number("2026-11-28").expect("day") * 86_400_000;
    (0..n)
        .map(|i| {
            let day = i % 3;
            let ms = day0 + day as i64 * 86_400_000 + i as i64;
            let deny = i % 3 == 0;
            strata_gateway::audit::Record {
                time: strata_gateway::audit::format_ms(ms).0,
                unix_ms: ms,
                decision_id: format!("d{i}"),
                user: if i % 2 == 0 { "alice" } else { "bob" }.to_string(),
                project: "web".to_string(),
                provider: "openai".to_string(),
                model: if deny { "gpt-4o" } else { "claude-sonnet-4-5" }.to_string(),
                key_mode: "central".to_string(),
                decision: if deny { "deny" } else { "allow" }.to_string(),
                rules: if deny {
                    vec!["org#modelPolicy.blockedModelIds".to_string()]
                } else {
                    Vec::new()
                },
                status: if deny { 403 } else { 200 },
                usage: (!deny).then(|| strata_gateway::audit::Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// An audit directory with the [`audit_records`], one JSON-lines file per day
pub fn audit_dir(n: usize) -> tempfile::TempDir {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("audit dir");
    let mut files: Vec<std::fs::File> = ["2026-11-28", "2026-11-29", "2026-11-30"]
        .iter()
        .map(|d| std::fs::File::create(dir.path().join(format!("audit-{d}.jsonl"))).expect("file"))
        .collect();
    for (i, r) in audit_records(n).iter().enumerate() {
        writeln!(files[i % 3], "{}", serde_json::to_string(r).expect("json")).expect("write");
    }
    dir
}

/// Every file under `dir`, by its path relative to `dir` (`/`-separated), sorted
pub fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").to_string_lossy();
                out.push((rel.replace('\\', "/"), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The example bundle (`policies/examples/acme`: the org and the layers its tests name) as a
/// zip of `acme/...`, each file passed through `edit` (path inside acme/, content)
pub fn acme_zip(edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in walk(&repo().join("policies/examples/acme")) {
        let content = edit(&path, content);
        w.start_file(format!("acme/{path}"), opts)
            .expect("zip entry");
        w.write_all(&content).expect("zip write");
    }
    w.finish().expect("zip").into_inner()
}

/// The example org's settings.json without the `fast` models (an effective diff: gpt-5-mini
/// is lost), or broken on its line 5 (`"fast",,`)
pub fn drop_fast(path: &str, content: Vec<u8>) -> Vec<u8> {
    if path == "org/settings.json" {
        String::from_utf8_lossy(&content)
            .replacen("\"fast\",", "", 1)
            .into_bytes()
    } else {
        content
    }
}

pub fn break_line_5(path: &str, content: Vec<u8>) -> Vec<u8> {
    if path == "org/settings.json" {
        String::from_utf8_lossy(&content)
            .replacen("\"fast\",", "\"fast\",,", 1)
            .into_bytes()
    } else {
        content
    }
}
