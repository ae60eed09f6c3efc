//! Sign-in with the admin token, sessions in a `HttpOnly; SameSite=Strict` cookie, a CSRF token
//! per session checked on every change, and a limit on failed sign-ins per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::layout;
use crate::session::{Session, random_hex};

/// The session cookie
pub const COOKIE: &str = "strata_console";
/// The cookie that carries the sign-in form's own CSRF token (before there is a session)
pub const LOGIN_COOKIE: &str = "strata_console_login";
/// Failed sign-ins allowed per client address within [`FAIL_WINDOW`]
pub const MAX_FAILURES: usize = 5;
const FAIL_WINDOW: Duration = Duration::from_secs(60);

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// Failed sign-ins per client address
#[derive(Default)]
pub struct Limiter(Mutex<HashMap<IpAddr, Vec<Instant>>>);

impl Limiter {
    fn blocked(&self, ip: IpAddr) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        let fails = map.entry(ip).or_default();
        fails.retain(|t| t.elapsed() < FAIL_WINDOW);
        fails.len() >= MAX_FAILURES
    }

    fn failed(&self, ip: IpAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(ip).or_default().push(Instant::now());
        }
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(console: &Console, name: &str, value: &str, max_age: u64) -> String {
    let secure = if console.options.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A request from a signed-in admin; any other request is sent to the sign-in page
pub struct Admin {
    pub session: Session,
}

impl Admin {
    /// Whether a form's CSRF token is this session's
    pub fn csrf_ok(&self, token: &str) -> bool {
        same(token, &self.session.csrf)
    }
}

/// Whether a state-changing request comes from the console's own pages: a browser says where it
/// comes from (`Origin`, `Sec-Fetch-Site`); one that names another origin is refused
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    bare == Some(host)
}

impl FromRequestParts<Arc<Console>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let session = cookie(&parts.headers, COOKIE).and_then(|id| console.sessions.get(&id));
        let Some(session) = session else {
            return Err(Redirect::to("/login").into_response());
        };
        if parts.method != axum::http::Method::GET && !same_origin(&parts.headers) {
            return Err(forbidden("cross-origin request refused"));
        }
        Ok(Admin { session })
    }
}

pub fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::bare("Refused", html! { p.problem { (why) } }),
    )
        .into_response()
}

fn login_form(console: &Console, error: Option<&str>, status: StatusCode) -> Response {
    let token = random_hex(16);
    let body = html! {
        h1 { "Sign in to Strata" }
        @if let Some(e) = error { p.problem #login-error { (e) } }
        form method="post" action="/login" #login {
            input type="hidden" name="csrf" value=(token);
            label { "Admin token " input type="password" name="token" autocomplete="off" required; }
            label { "Your name (for the change log) " input type="text" name="name" value="admin"; }
            button type="submit" { "Sign in" }
        }
        p.hint { "The admin token is printed by " code { "policy up" } " and by " code { "policy serve" } " at first start." }
    };
    let mut res = (status, layout::bare("Sign in", body)).into_response();
    if let Ok(v) = set_cookie(console, LOGIN_COOKIE, &token, 600).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn login_page(State(console): State<Arc<Console>>) -> Response {
    login_form(&console, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
}

pub async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    if console.limiter.blocked(ip) {
        tracing::warn!(%ip, "console sign-in refused: too many failed attempts");
        let msg = "Too many failed sign-ins; wait a minute.";
        return login_form(&console, Some(msg), StatusCode::TOO_MANY_REQUESTS);
    }
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || !same(&form.csrf, &expected) {
        return login_form(
            &console,
            Some("The form expired; try again."),
            StatusCode::FORBIDDEN,
        );
    }
    if !console.resolver.is_admin(&form.token) {
        console.limiter.failed(ip);
        tracing::warn!(%ip, "console sign-in failed");
        return login_form(
            &console,
            Some("Wrong admin token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let name: String = form.name.trim().chars().take(64).collect();
    let name = if name.is_empty() {
        "admin".to_string()
    } else {
        name
    };
    let Some((id, session)) = console.sessions.create(name) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session",
        )
            .into_response();
    };
    console
        .record(&session.who, "signed in", &format!("from {ip}"))
        .await;
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = set_cookie(&console, COOKIE, &id, crate::session::SESSION_TTL.as_secs()).parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(&console, LOGIN_COOKIE, "", 0).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(console): State<Arc<Console>>,
    admin: Admin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !admin.csrf_ok(&form.csrf) {
        return forbidden("invalid CSRF token");
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        console.sessions.remove(&id);
    }
    console.record(&admin.session.who, "signed out", "").await;
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(&console, COOKIE, "", 0).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
