//! The explain playground: a request (user, groups, project, folder, key mode, provider, base URL,
//! model or MCP server) decided against the active snapshot by the policy core's own `explain`,
//! the one `policy explain` prints; every rule links to its file and line. The form is a GET, so
//! an explanation is a URL to share (it holds no secret).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use strata_policy::explain::Explanation;
use strata_policy::{Effect, KeyMode, McpRef, Provider, Request, Target};

use crate::Console;
use crate::auth::Admin;
use crate::diff::layer_files;
use crate::layout;

/// The playground's form, as the URL carries it
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Ask {
    pub user: String,
    pub groups: String,
    pub project: String,
    pub folder: String,
    pub key_mode: String,
    pub provider: String,
    pub base_url: String,
    pub model: String,
    pub mcp: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// What a query value keeps as is: the unreserved characters of RFC 3986
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A value for a URL's query
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

impl Ask {
    /// The request to decide, or what is wrong with the form
    pub fn request(&self) -> Result<Request, String> {
        let provider = match opt(&self.provider) {
            Some(p) => Some(Provider::parse(&p).ok_or_else(|| Provider::invalid_message(&p))?),
            None => None,
        };
        let key_mode = if self.key_mode == "byok" {
            KeyMode::Byok
        } else {
            KeyMode::Central
        };
        let target = match (opt(&self.model), opt(&self.mcp)) {
            (Some(model), _) => Target::Model {
                model,
                provider,
                key_mode,
                base_url: opt(&self.base_url),
                mcp_servers: Vec::new(),
            },
            (None, Some(server)) => {
                let server = if server.contains("://") {
                    McpRef {
                        url: Some(server),
                        ..Default::default()
                    }
                } else {
                    McpRef {
                        name: Some(server),
                        ..Default::default()
                    }
                };
                Target::Mcp { server }
            }
            (None, None) => return Err("give a model or an MCP server".to_string()),
        };
        let user = opt(&self.user).ok_or("give a user")?;
        Ok(Request {
            user,
            groups: crate::tokens::list_of(&self.groups),
            project: opt(&self.project),
            folder: opt(&self.folder),
            gateway: None,
            token_projects: None,
            target,
        })
    }

    /// This form as a console URL
    pub fn url(&self) -> String {
        let pairs = [
            ("user", &self.user),
            ("groups", &self.groups),
            ("project", &self.project),
            ("folder", &self.folder),
            ("key_mode", &self.key_mode),
            ("provider", &self.provider),
            ("base_url", &self.base_url),
            ("model", &self.model),
            ("mcp", &self.mcp),
        ];
        let q: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!("/explain?{}", q.join("&"))
    }

    /// The same question on the command line
    fn command(&self) -> String {
        let mut c = match opt(&self.model) {
            Some(m) => format!("policy explain model {m}"),
            None => format!("policy explain mcp {}", self.mcp.trim()),
        };
        c.push_str(&format!(" --as {}", self.user.trim()));
        for g in crate::tokens::list_of(&self.groups) {
            c.push_str(&format!(" --group {g}"));
        }
        if let Some(p) = opt(&self.project) {
            c.push_str(&format!(" --project-id {p}"));
        }
        if opt(&self.model).is_some() && self.key_mode == "byok" {
            c.push_str(" --key-mode byok");
        }
        c.push_str(" --resolver URL");
        c
    }
}

fn form(a: &Ask) -> Markup {
    html! {
        form.grid method="get" action="/explain" #explain-form {
            label { "User " input name="user" value=(a.user) required; }
            label { "Groups " input name="groups" value=(a.groups) placeholder="leads, ml"; }
            label { "Project " input name="project" value=(a.project); }
            label { "Folder " input name="folder" value=(a.folder) placeholder="services/billing"; }
            label { "Key mode " select name="key_mode" {
                option value="central" selected[a.key_mode != "byok"] { "central (the org's key)" }
                option value="byok" selected[a.key_mode == "byok"] { "byok (their own key)" }
            } }
            label { "Provider " input name="provider" value=(a.provider) placeholder="anthropic, openai"; }
            label { "Base URL " input name="base_url" value=(a.base_url); }
            label { "Model " input name="model" value=(a.model) placeholder="gpt-4o"; }
            label { "or MCP server " input name="mcp" value=(a.mcp) placeholder="name or URL"; }
            button type="submit" { "Explain" }
        }
    }
}

/// A link to a rule's file and line in revision `rev`
pub fn file_link(rev: &str, file: Option<&str>, line: Option<u32>) -> Markup {
    match file {
        Some(f) => {
            let line = line.unwrap_or(0);
            let href = format!("/file?rev={}&file={}&line={line}#L{line}", enc(rev), enc(f));
            html! { a.file-link href=(href) { code { (f) @if line > 0 { ":" (line) } } } }
        }
        None => html! { span.muted { "built-in" } },
    }
}

fn result(x: &Explanation, ask: &Ask) -> Markup {
    let rev = x.revision.as_str();
    html! {
        h2 #decision {
            @match x.decision {
                Effect::Allow => span.allow { "ALLOW" },
                Effect::Deny => span.deny { "DENY" },
            }
            " " span.reason { (x.reason) }
        }
        @if let Some(c) = &x.canonical_model { p.muted { "compared as " code { (c) } } }
        p.muted { "revision " code { (rev) } " · share: " a #share href=(ask.url()) { "this explanation" }
            " · CLI: " code { (ask.command()) } }
        h3 { "Determined by" }
        table #determined-by {
            thead { tr { th { "Rule" } th { "Level" } th { "Effect" } th { "Where" } th { "Matched" } th { "Why" } } }
            tbody { @for d in &x.determined_by {
                tr { td { code { (d.rule) } } td { (d.level.as_str()) } td { (format!("{:?}", d.effect).to_lowercase()) }
                     td { (file_link(rev, d.file.as_deref(), d.line)) } td { (d.matched.as_deref().unwrap_or("")) } td { (d.reason) } }
            } }
        }
        @if x.determined_by.is_empty() { p.muted { "No rule permitted this request." } }
        @if !x.admitted_by.is_empty() {
            h3 { "Admitted by" }
            table #admitted-by { tbody { @for d in &x.admitted_by {
                tr { td { code { (d.rule) } } td { (d.level.as_str()) } td { (file_link(rev, d.file.as_deref(), d.line)) } td { (d.reason) } }
            } } }
        }
        h3 { "Considered" }
        table #considered {
            thead { tr { th { "Rule" } th { "Level" } th { "Effect" } th { "Where" } } }
            tbody { @for c in &x.considered {
                tr { td { code { (c.rule) } } td { (c.level.as_str()) } td { (format!("{:?}", c.effect).to_lowercase()) } td { (file_link(rev, c.file.as_deref(), c.line)) } }
            } }
        }
        @if !x.diagnostics.is_empty() {
            h3 { "Diagnostics" }
            ul { @for p in &x.diagnostics { li { code { (p.to_string()) } } } }
        }
        @if !x.errors.is_empty() {
            h3 { "Evaluation errors (a forbid that errored counts as a deny)" }
            ul { @for e in &x.errors { li.problem { (e) } } }
        }
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(ask): Query<Ask>,
) -> Response {
    let asked = !ask.user.is_empty() || !ask.model.is_empty() || !ask.mcp.is_empty();
    let answer = match (asked, console.resolver.active()) {
        (false, _) => {
            html! { p.hint { "Ask why a request is allowed or refused: e.g. user " code { "alice" } ", project " code { "web" } ", model " code { "gpt-4o" } "." } }
        }
        (true, None) => {
            html! { p.problem { "No policy is published yet: every request is refused." } }
        }
        (true, Some(active)) => match ask.request() {
            Ok(req) => result(
                &strata_policy::explain::explain(&active.snapshot, &req),
                &ask,
            ),
            Err(e) => html! { p.problem #explain-error { (e) } },
        },
    };
    let body = html! { h1 { "Explain a decision" } (form(&ask)) (answer) };
    layout::page(&admin.session, "Explain", body).into_response()
}

#[derive(Deserialize)]
pub struct FileAsk {
    #[serde(default)]
    rev: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    line: u32,
}

/// One file of a revision, the asked line highlighted
pub async fn file(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(q): Query<FileAsk>,
) -> Response {
    let active = console.resolver.active();
    let loaded = match active {
        Some(a) if a.revision == q.rev || q.rev.is_empty() => Ok(a),
        _ => crate::revisions::load(&console, &q.rev).await,
    };
    let files = match loaded {
        Ok(a) => layer_files(&a.org, &a.projects),
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                layout::page(
                    &admin.session,
                    "File",
                    html! { p.problem { (e.to_string()) } },
                ),
            )
                .into_response();
        }
    };
    let Some(content) = files.get(&q.file) else {
        let body =
            html! { p.problem { "no file " code { (q.file) } " in revision " code { (q.rev) } } };
        return (
            StatusCode::NOT_FOUND,
            layout::page(&admin.session, "File", body),
        )
            .into_response();
    };
    let text = String::from_utf8_lossy(content);
    let body = html! {
        h1 { code { (q.file) } }
        p.muted { "revision " code { (q.rev) } @if q.line > 0 { " · line " (q.line) } }
        table.file #file {
            @for (i, l) in text.lines().enumerate() {
                @let n = i as u32 + 1;
                tr id={ "L" (n) } class=[(n == q.line).then_some("hl")] { td.ln { (n) } td { (l) } }
            }
        }
    };
    layout::page(&admin.session, &q.file, body).into_response()
}
