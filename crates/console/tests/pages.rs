//! Each page over real HTTP: tokens, the explain playground, revisions and rollback, changes

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strata_policy::Request;

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test]
async fn a_token_is_shown_once_listed_without_its_secret_and_revoked() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let form = [
        ("csrf", s.csrf.as_str()),
        ("user", "carol"),
        ("groups", "ml, leads"),
        ("projects", "web"),
        ("description", "laptop"),
    ];
    let res = s.post("/tokens", &form).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("body");
    let secret = {
        let at = page.find("id=\"token-secret\">").expect("the secret, once") + 18;
        page[at..at + page[at..].find('<').expect("end")].to_string()
    };
    assert!(secret.starts_with("strata_gw_"), "{secret}");
    assert!(page.contains("data-copy=\"token-secret\""), "a copy button");
    let stored = run.resolver.list_tokens().await.expect("tokens");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].projects, vec!["web"]);
    assert_eq!(stored[0].groups, vec!["ml", "leads"]);
    assert!(
        run.resolver.token(&secret).is_some(),
        "the shown secret is the token"
    );

    let list = s.page("/tokens").await;
    assert!(list.contains(&stored[0].token_id));
    assert!(!list.contains(&secret), "the list never shows a secret");

    // bound to other projects: the gateway's token table says so at once
    let res = s
        .post(
            "/tokens/bind",
            &[
                ("csrf", s.csrf.as_str()),
                ("id", stored[0].token_id.as_str()),
                ("projects", "web, api"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        run.resolver.token(&secret).expect("token").projects,
        vec!["web", "api"]
    );
    let res = s
        .post(
            "/tokens/bind",
            &[
                ("csrf", "forged"),
                ("id", stored[0].token_id.as_str()),
                ("projects", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);

    let res = s
        .post(
            "/tokens/revoke",
            &[
                ("csrf", s.csrf.as_str()),
                ("id", stored[0].token_id.as_str()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(run.resolver.token(&secret).is_none(), "revoked");
    assert!(s.page("/tokens").await.contains("revoked"));

    let changes = s.page("/changes").await;
    assert!(
        changes.contains(&format!("created token {}", stored[0].token_id)),
        "{changes}"
    );
    assert!(changes.contains(&format!("revoked token {}", stored[0].token_id)));
    assert!(changes.contains(&format!("bound token {} to projects", stored[0].token_id)));
    assert!(changes.contains("tester (session "), "who");
}

#[tokio::test]
async fn explain_says_what_the_policy_core_says_and_links_the_line() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let page = s
        .page("/explain?user=alice&groups=&project=web&model=gpt-4o")
        .await;
    let active = run.resolver.active().expect("active");
    let mut req = Request::scope(
        "alice".to_string(),
        Vec::new(),
        Some("web".to_string()),
        None,
    );
    req.target = strata_policy::Target::Model {
        model: "gpt-4o".to_string(),
        provider: None,
        key_mode: strata_policy::KeyMode::Central,
        base_url: None,
        mcp_servers: Vec::new(),
    };
    let x = strata_policy::explain::explain(&active.snapshot, &req);
    assert_eq!(x.decision, strata_policy::Effect::Deny);
    assert!(page.contains("DENY"));
    assert!(
        page.contains(&escaped(&x.reason)),
        "the core's reason: {}",
        x.reason
    );
    assert!(!x.determined_by.is_empty());
    for d in &x.determined_by {
        assert!(page.contains(&escaped(&d.rule)), "rule {}", d.rule);
    }
    // the first determining rule's file, with its line highlighted
    let d = &x.determined_by[0];
    let (file, line) = (d.file.clone().expect("a file"), d.line.expect("a line"));
    let at = page.find("class=\"file-link\" href=\"").expect("a link") + 24;
    let href = page[at..at + page[at..].find('"').expect("end")].replace("&amp;", "&");
    let shown = s.page(&href).await;
    assert!(
        shown.contains(&format!("<tr id=\"L{line}\" class=\"hl\">")),
        "line {line} of {file} highlighted"
    );
    assert_eq!(shown.matches("class=\"hl\"").count(), 1);
}

#[tokio::test]
async fn explain_an_mcp_server_and_a_bad_form() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let page = s.page("/explain?user=alice&project=web&mcp=github").await;
    assert!(page.contains("ALLOW") || page.contains("DENY"));
    let page = s
        .page("/explain?user=alice&model=gpt-4o&provider=nope")
        .await;
    assert!(page.contains("explain-error"));
}

async fn publish_changed_org(run: &Running) -> String {
    let mut files = files(&repo().join("policies/examples/acme/org"));
    let settings = files
        .iter_mut()
        .find(|f| f.path == "settings.json")
        .expect("settings");
    let text = String::from_utf8(settings.content.clone()).expect("utf-8");
    // the `fast` category is no longer on the allowlist
    settings.content = text.replacen("\"fast\",", "", 1).into_bytes();
    let (rev, changed, _) = run
        .resolver
        .publish_org(files, "drop the fast models".to_string())
        .await
        .expect("publish");
    assert!(changed);
    rev
}

#[tokio::test]
async fn revisions_diff_and_rollback_after_a_confirmation() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let before = run.resolver.active().expect("active").revision.clone();
    let after = publish_changed_org(&run).await;

    let list = s.page("/revisions").await;
    assert_eq!(list.matches("data-revision=").count(), 3);
    let active_row = list
        .find(&format!("data-revision=\"{after}\""))
        .expect("row");
    assert!(
        list[active_row..].find("active-mark").expect("mark")
            < list[active_row..].find("</tr>").expect("end")
    );

    let diff = s
        .page(&format!("/revisions/diff?from={before}&to={after}"))
        .await;
    assert!(diff.contains("effective-diff"), "an effective diff: {diff}");
    assert!(diff.contains("model gpt-5-mini"), "gpt-5-mini lost");
    assert!(diff.contains("org/settings.json"), "the file that changed");
    assert!(
        diff.contains("<tr class=\"del\"><td>-</td><td>      &quot;fast&quot;,</td></tr>"),
        "{diff}"
    );

    let confirm = s.page(&format!("/revisions/rollback?to={before}")).await;
    assert!(confirm.contains("effective-diff") && confirm.contains("class=\"gained\""));
    assert_eq!(
        run.resolver.active().expect("active").revision,
        after,
        "nothing happens before confirming"
    );
    let res = s
        .post(
            "/revisions/rollback",
            &[("csrf", s.csrf.as_str()), ("to", before.as_str())],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(run.resolver.active().expect("active").revision, before);
    assert!(
        s.page("/changes")
            .await
            .contains(&format!("rolled back to {before}"))
    );
}

/// The example org bundle as the publish form takes it
fn bundle_text(edit: impl Fn(&str, String) -> String) -> String {
    let mut out = String::new();
    for f in files(&repo().join("policies/examples/acme/org")) {
        let text = String::from_utf8(f.content.clone()).expect("utf-8");
        out.push_str(&format!("--- {}\n{}", f.path, edit(&f.path, text)));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn publish_preview_shows_problems_cases_and_the_effective_diff_then_activates() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let start_page = s.page("/publish").await;
    assert!(
        start_page.contains("--- settings.json"),
        "starts from the active bundle"
    );

    // a broken bundle: its problems as file:line:col, and nothing changes
    let before = run.resolver.active().expect("active").revision.clone();
    let broken = bundle_text(|p, t| {
        if p == "settings.json" {
            t.replacen("\"fast\",", "\"fast\",,", 1)
        } else {
            t
        }
    });
    let res = s
        .post(
            "/publish/preview",
            &[
                ("csrf", s.csrf.as_str()),
                ("bundle", broken.as_str()),
                ("message", ""),
            ],
        )
        .await;
    let page = res.text().await.expect("body");
    assert!(page.contains("id=\"invalid\""), "{page}");
    assert!(
        page.contains("<code>org/settings.json:5:"),
        "file:line:col: {page}"
    );
    assert!(!page.contains("id=\"activate\""));

    // a good one: the bundle's cases and what it changes
    let mut good = bundle_text(|p, t| {
        if p == "settings.json" {
            t.replacen("\"fast\",", "", 1)
        } else {
            t
        }
    });
    // the layers the bundle's tests name, next to it (`../user`, ...)
    for sibling in ["user", "user-carol", "project/services/billing/.factory"] {
        let dir = repo().join("policies/examples/acme").join(sibling);
        for f in files(&dir) {
            let text = String::from_utf8(f.content).expect("utf-8");
            good.push_str(&format!("--- ../{sibling}/{}\n{text}\n", f.path));
        }
    }
    let res = s
        .post(
            "/publish/preview",
            &[
                ("csrf", s.csrf.as_str()),
                ("bundle", good.as_str()),
                ("message", "drop fast"),
            ],
        )
        .await;
    let page = res.text().await.expect("body");
    assert!(page.contains("id=\"valid\""), "{page}");
    assert!(page.contains("id=\"test-cases\""));
    let cases = &page[page.find("id=\"test-cases\"").expect("cases")..];
    let cases = &cases[..cases.find("</table>").expect("end")];
    assert!(
        cases.contains("tests/models.json :: "),
        "the cases, named by file: {cases}"
    );
    assert!(
        cases.contains("FAIL"),
        "the cases that expect the fast models fail: {cases}"
    );
    assert!(!cases.contains("ERROR"), "{cases}");
    assert!(page.contains("model gpt-5-mini"), "the effective diff");
    assert_eq!(
        run.resolver.active().expect("active").revision,
        before,
        "a preview activates nothing"
    );

    // a forged token activates nothing either
    let res = s
        .post(
            "/publish/activate",
            &[("csrf", "forged"), ("bundle", good.as_str())],
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = s
        .post(
            "/publish/activate",
            &[
                ("csrf", s.csrf.as_str()),
                ("bundle", good.as_str()),
                ("message", "drop fast"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_ne!(run.resolver.active().expect("active").revision, before);
    assert!(s.page("/changes").await.contains("published "));
}

#[tokio::test]
async fn a_bundle_path_outside_the_bundle_is_refused() {
    let run = start(None).await;
    let s = login(&run.url).await;
    for bad in ["--- /etc/passwd\nx\n", "--- a/../../b\nx\n", "no header\n"] {
        let res = s
            .post(
                "/publish/preview",
                &[("csrf", s.csrf.as_str()), ("bundle", bad)],
            )
            .await;
        assert!(
            res.text().await.expect("body").contains("parse-error"),
            "{bad}"
        );
    }
}

/// The change log is in the resolver's store: a console started again on the same sled
/// directory (a restarted `policy serve`) shows what the first one recorded, newest first, a
/// page at a time
#[tokio::test]
async fn the_change_log_survives_a_restart_newest_first_in_pages() {
    use std::sync::Arc;
    use strata_resolver::{SledStore, Store};

    let dir = tempfile::tempdir().expect("data");
    let open = |d: &std::path::Path| -> Arc<dyn Store> {
        Arc::new(SledStore::open(d).expect("sled store"))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = start_on(open(dir.path()), None, false, async {
        let _ = stopped.await;
    })
    .await;
    let s = login(&run.url).await;
    let form = [("csrf", s.csrf.as_str()), ("user", "carol")];
    assert_eq!(s.post("/tokens", &form).await.status(), 200);
    let id = run.resolver.list_tokens().await.expect("tokens")[0]
        .token_id
        .clone();
    drop(s);
    stop.send(()).expect("stop the console");
    let common::Running { task, resolver, .. } = run;
    task.await.expect("console task").expect("console");
    drop(resolver);

    // the same data directory, opened again
    let run = start_on(open(dir.path()), None, false, std::future::pending()).await;
    for n in 0..60 {
        let change = strata_proto::v1::StoredChange {
            at_unix_ms: 1_700_000_000_000 + n,
            who: "script".to_string(),
            what: format!("bulk {n}"),
            detail: String::new(),
        };
        run.resolver.record_change(change).await.expect("record");
    }
    let s = login(&run.url).await;
    let first = s.page("/changes").await;
    assert!(
        first.contains("63 change(s), newest first; page 1 of 2"),
        "{first}"
    );
    let rows = first.split("<tr>").skip(2).collect::<Vec<_>>();
    assert_eq!(rows.len(), 50, "a page");
    assert!(rows[0].contains("signed in"), "newest first: {}", rows[0]);
    assert!(rows[1].contains("bulk 59"), "{}", rows[1]);
    assert!(rows[49].contains("bulk 11"), "{}", rows[49]);
    assert!(!first.contains("created token"));
    assert!(
        first.contains("href=\"/changes?page=1\""),
        "a link to older"
    );

    let second = s.page("/changes?page=1").await;
    let rows = second.split("<tr>").skip(2).collect::<Vec<_>>();
    assert_eq!(rows.len(), 13, "{second}");
    assert!(rows[0].contains("bulk 10"));
    assert!(rows[10].contains("bulk 0"));
    assert!(
        rows[11].contains(&format!("created token {id}")),
        "{}",
        rows[11]
    );
    assert!(rows[12].contains("signed in"), "before the restart");
    assert!(
        second.contains("href=\"/changes?page=0\""),
        "a link to newer"
    );
}
