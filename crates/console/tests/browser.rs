//! The console in a real browser: Debian's chromium, headless, driven over WebDriver
//! (chromedriver) — sign in, explain a denial and follow the link to the file line, create and
//! revoke a token, roll back after the confirmation, preview a broken and a good bundle (pasted,
//! and uploaded as a zip, then activated), search the audit and open a record's explanation.
//! Prints SKIPPED without chromium unless STRATA_REQUIRE_CHROMIUM=1 (as `.ci/run` sets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    http: reqwest::Client,
    base: String,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        crypto();
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        // wait until chromedriver answers (a readiness poll, not a timing assertion)
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{driver_url}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let res: Value = http
            .post(format!("{driver_url}/session"))
            .json(&caps)
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("json");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        let d = Driver {
            http,
            base: format!("{driver_url}/session/{id}"),
            child,
            _profile: profile,
        };
        // finding an element waits for it to appear (a page still loading after a click)
        d.call(
            reqwest::Method::POST,
            "/timeouts",
            json!({"implicit": 10_000}),
        )
        .await;
        d
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let req = self.http.request(method, format!("{}{path}", self.base));
        let req = if body.is_null() { req } else { req.json(&body) };
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {v}"))
            .to_string()
    }

    async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array().map(Vec::len).unwrap_or(0)
    }

    async fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            json!({}),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// A local file chosen in the file input `css` (WebDriver: its path sent as keys)
    async fn choose_file(&self, css: &str, path: &Path) {
        let e = self.find(css).await;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{e}/value"),
                json!({"text": path.display().to_string()}),
            )
            .await;
        assert!(v.is_null(), "choosing {}: {v}", path.display());
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{e}/text"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The text of `css` once it satisfies `ok` (a page that a click is still loading), or the
    /// last text read
    async fn text_when(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(e) = v[ELEMENT].as_str() {
                let t = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/element/{e}/text"),
                        Value::Null,
                    )
                    .await;
                last = t.as_str().unwrap_or_default().to_string();
                if ok(&last) {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        last
    }

    /// With STRATA_CONSOLE_SCREENSHOTS=DIR, the page as the browser shows it, in DIR/NAME.png
    /// (the pictures in docs/console.md)
    async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let Ok(dir) = std::env::var("STRATA_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a PNG");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), bytes).expect("write");
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn accept_alert(&self) {
        self.call(reqwest::Method::POST, "/alert/accept", json!({}))
            .await;
    }

    async fn quit(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

fn chromium_missing() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return false;
    }
    assert!(
        std::env::var("STRATA_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "STRATA_REQUIRE_CHROMIUM=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
    );
    println!("SKIPPED: no {CHROMIUM} / {CHROMEDRIVER}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_explains_a_denial_manages_tokens_and_rolls_back() {
    if chromium_missing() {
        return;
    }
    let run = start(Some(audit_dir(300))).await;
    let d = Driver::start().await;

    // sign in through the form
    d.goto(&format!("{}/", run.url)).await;
    assert!(d.url().await.ends_with("/login"));
    d.type_in("input[name=token]", ADMIN).await;
    d.click("#login button[type=submit]").await;
    let h1 = d.text_when("h1", |t| t.contains("console")).await;
    assert!(
        h1.contains("Strata admin console"),
        "{h1}: {}",
        d.text("main").await
    );
    assert!(
        !d.url().await.contains(ADMIN),
        "the token is never in a URL"
    );

    // why is gpt-4o refused for alice in web?
    d.click("nav a[href='/explain']").await;
    d.type_in("input[name=user]", "alice").await;
    d.type_in("input[name=project]", "web").await;
    d.type_in("input[name=model]", "gpt-4o").await;
    d.click("#explain-form button").await;
    assert!(d.text("#decision").await.starts_with("DENY"));
    assert!(d.url().await.contains("model=gpt-4o"), "shareable");
    d.screenshot("explain").await;
    d.click("#determined-by a.file-link").await;
    assert_eq!(d.count("tr.hl").await, 1, "the rule's line is highlighted");
    d.screenshot("file-line").await;
    assert!(
        d.text("tr.hl").await.contains("gpt-4o"),
        "the line that blocks it"
    );

    // a token: created, shown once, revoked after a confirmation
    d.click("nav a[href='/tokens']").await;
    d.type_in("#create-token input[name=user]", "dave").await;
    d.type_in("#create-token input[name=projects]", "web").await;
    d.click("#create-token button").await;
    let secret = d.text("#token-secret").await;
    assert!(secret.starts_with("strata_gw_"));
    assert!(run.resolver.token(&secret).is_some());
    d.click("#tokens button.danger").await;
    d.accept_alert().await;
    assert!(d.text("#tokens span.deny").await.contains("revoked"));
    assert!(run.resolver.token(&secret).is_none());

    // roll back the last publish, after seeing what it changes
    let before = run.resolver.active().expect("active").revision.clone();
    let mut org = files(&repo().join("policies/examples/acme/org"));
    let s = org
        .iter_mut()
        .find(|f| f.path == "settings.json")
        .expect("settings");
    s.content = String::from_utf8_lossy(&s.content)
        .replacen("\"fast\",", "", 1)
        .into_bytes();
    run.resolver
        .publish_org(org, "drop the fast models".to_string())
        .await
        .expect("publish");
    d.click("nav a[href='/revisions']").await;
    d.click(&format!("tr[data-revision='{before}'] a.rollback-link"))
        .await;
    assert!(d.text("#effective-diff").await.contains("model gpt-5-mini"));
    d.screenshot("rollback").await;
    d.click("#confirm-rollback").await;
    d.find("#revisions").await;
    let list = d.text("main").await;
    assert!(list.contains("Revisions"), "{list}");
    assert_eq!(run.resolver.active().expect("active").revision, before);
    assert!(
        d.text(&format!("tr[data-revision='{before}']"))
            .await
            .contains("active")
    );
    // publish: a broken bundle shows its problem at file:line:col; the active one previews clean
    d.click("nav a[href='/publish']").await;
    d.type_in(
        "#bundle",
        "--- settings.json\n{\n  \"modelPolicy\": [,\n}\n",
    )
    .await;
    d.click("#preview").await;
    assert!(
        d.text("#problems").await.contains("org/settings.json:2:"),
        "{}",
        d.text("main").await
    );
    d.click("nav a[href='/publish']").await;
    d.find("#start-from-active").await;
    d.click("#preview").await;
    assert!(d.text("#valid").await.contains("Valid"));
    assert!(d.text("main").await.contains("No decision changes"));

    // upload a zip of the example bundle, with the layers its tests name beside it: broken, its
    // problem at file:line:col; without the fast models, its cases and what decisions change;
    // then activate what was previewed
    let zips = tempfile::tempdir().expect("zips");
    let (broken, good) = (zips.path().join("broken.zip"), zips.path().join("acme.zip"));
    std::fs::write(&broken, acme_zip(break_line_5)).expect("zip");
    std::fs::write(&good, acme_zip(drop_fast)).expect("zip");
    d.click("nav a[href='/publish']").await;
    d.choose_file("#upload-zip", &broken).await;
    d.click("#upload").await;
    let problems = d.text("#problems").await;
    assert!(problems.contains("org/settings.json:5:"), "{problems}");
    d.choose_file("#upload-zip", &good).await;
    d.click("#upload").await;
    assert!(d.text("#valid").await.contains("Valid"));
    let cases = d.text("#test-cases").await;
    assert!(
        cases.contains("tests/byok.json :: ") && !cases.contains("ERROR"),
        "every test file ran, with its sibling layers: {cases}"
    );
    assert!(d.text("#effective-diff").await.contains("model gpt-5-mini"));
    d.screenshot("upload").await;
    let previewed = run.resolver.active().expect("active").revision.clone();
    d.click("#activate").await;
    d.find("#revisions").await;
    let active = run.resolver.active().expect("active");
    assert_ne!(active.revision, previewed, "activated");
    let original = std::fs::read(repo().join("policies/examples/acme/org/settings.json"))
        .expect("settings.json");
    let uploaded = drop_fast("org/settings.json", original);
    assert!(
        active
            .org
            .files
            .iter()
            .any(|f| f.path == "settings.json" && f.content == uploaded),
        "what was previewed is active"
    );

    // the audit: alice's refusals, and the explanation of one
    d.click("nav a[href='/audit']").await;
    d.type_in("#audit-form input[name=user]", "alice").await;
    let deny = d
        .find("#audit-form select[name=decision] option[value=deny]")
        .await;
    d.call(
        reqwest::Method::POST,
        &format!("/element/{deny}/click"),
        json!({}),
    )
    .await;
    d.click("#audit-form button").await;
    let count = d.text_when("#audit-count", |t| t.starts_with("50 ")).await;
    assert!(count.starts_with("50 record(s)"), "{count}");
    d.screenshot("audit").await;
    // every 6th record is alice's refusal, all on the 28th: one day, an allowed and a refused bar
    assert_eq!(d.count("svg#per-day rect").await, 2);
    d.click("#audit a.explain-link").await;
    assert!(d.text("#decision").await.starts_with("DENY"));

    d.click("nav a[href='/changes']").await;
    assert!(d.text("#changes").await.contains("rolled back to"));
    d.quit().await;
}
