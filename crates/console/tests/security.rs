//! Sign-in, sessions, CSRF, origins, headers and the sign-in limit, over real HTTP

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn pages_without_a_session_go_to_sign_in() {
    let run = start(None).await;
    for path in [
        "/",
        "/tokens",
        "/explain?user=alice&model=gpt-4o",
        "/revisions",
        "/audit",
        "/changes",
    ] {
        let res = client()
            .get(format!("{}{path}", run.url))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/login", "{path}");
    }
    // a forged session cookie is no session
    let res = client()
        .get(format!("{}/tokens", run.url))
        .header("cookie", "strata_console=00ff")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 303);
    // nor does a change go through without one
    let res = client()
        .post(format!("{}/tokens", run.url))
        .form(&[("user", "mallory")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    assert!(run.resolver.list_tokens().await.expect("tokens").is_empty());
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    let run = start(None).await;
    let res = try_login(&run.url, ADMIN).await;
    assert_eq!(res.status(), 303);
    let (value, header) = set_cookie(&res, "strata_console").expect("cookie");
    assert_eq!(value.len(), 64);
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(!header.contains("Secure"), "plain HTTP: {header}");
    assert!(!header.contains(ADMIN));
}

#[tokio::test]
async fn behind_tls_the_cookies_are_secure() {
    let run = start_with(None, true).await;
    let page = client()
        .get(format!("{}/login", run.url))
        .send()
        .await
        .expect("login");
    let (_, header) = set_cookie(&page, "strata_console_login").expect("login cookie");
    assert!(header.ends_with("; Secure"), "{header}");
    let res = try_login(&run.url, ADMIN).await;
    let (_, header) = set_cookie(&res, "strata_console").expect("cookie");
    assert!(
        header.contains("HttpOnly")
            && header.contains("SameSite=Strict")
            && header.contains("; Secure"),
        "{header}"
    );
}

#[tokio::test]
async fn every_page_carries_the_csp_and_no_inline_script() {
    let run = start(None).await;
    let s = login(&run.url).await;
    for path in [
        "/",
        "/tokens",
        "/explain?user=alice&project=web&model=gpt-4o",
        "/revisions",
        "/changes",
        "/login",
    ] {
        let res = s.get(path).await;
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_string();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let body = res.text().await.expect("body");
        assert!(!body.contains("<script>"), "{path}: inline script");
        assert!(!body.contains(" style=\""), "{path}: inline style");
        assert!(!body.contains(ADMIN), "{path}: the admin token in a page");
    }
}

#[tokio::test]
async fn a_change_with_a_forged_csrf_token_is_refused() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let res = s
        .post("/tokens", &[("csrf", "forged"), ("user", "mallory")])
        .await;
    assert_eq!(res.status(), 403);
    let res = s.post("/tokens", &[("user", "mallory")]).await;
    assert_eq!(res.status(), 403);
    assert!(run.resolver.list_tokens().await.expect("tokens").is_empty());
    // the same request with the session's token goes through
    let res = s
        .post("/tokens", &[("csrf", s.csrf.as_str()), ("user", "bob")])
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(run.resolver.list_tokens().await.expect("tokens").len(), 1);
}

#[tokio::test]
async fn a_change_from_another_origin_is_refused() {
    let run = start(None).await;
    let s = login(&run.url).await;
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let res = s
            .http
            .post(format!("{}/tokens", run.url))
            .header("cookie", format!("strata_console={}", s.cookie))
            .header(name, value)
            .form(&[("csrf", s.csrf.as_str()), ("user", "mallory")])
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    assert!(run.resolver.list_tokens().await.expect("tokens").is_empty());
}

#[tokio::test]
async fn sign_in_needs_the_forms_own_token() {
    let run = start(None).await;
    let res = client()
        .post(format!("{}/login", run.url))
        .form(&[("csrf", "x"), ("token", ADMIN)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    assert!(set_cookie(&res, "strata_console").is_none());
}

#[tokio::test]
async fn failed_sign_ins_are_limited() {
    let run = start(None).await;
    for _ in 0..strata_console::MAX_FAILED_SIGN_INS {
        assert_eq!(
            try_login(&run.url, "strata_admin_wrong").await.status(),
            401
        );
    }
    // the limit holds even for the right token, until the window passes
    let res = try_login(&run.url, ADMIN).await;
    assert_eq!(res.status(), 429);
    assert!(set_cookie(&res, "strata_console").is_none());
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let run = start(None).await;
    let s = login(&run.url).await;
    let res = s.post("/logout", &[("csrf", s.csrf.as_str())]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(s.get("/tokens").await.status(), 303);
}
