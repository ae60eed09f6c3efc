//! Revisions: the history with the active one marked, the diff between two (files and
//! decisions), and rollback after a confirmation that shows what it changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use strata_resolver::state::Active;

use crate::Console;
use crate::auth::{Admin, forbidden};
use crate::diff;
use crate::layout;

/// Compiled revisions kept for diffs (a revision never changes: its id is its content's hash)
const KEPT_REVISIONS: usize = 8;

/// Revisions loaded and compiled for diffs, by id
#[derive(Default)]
pub struct Loaded(std::sync::Mutex<Vec<Arc<Active>>>);

/// Revision `rev`: the active one as it is, else compiled once and kept
pub async fn load(console: &Console, rev: &str) -> Result<Arc<Active>, String> {
    if let Some(a) = console.resolver.active().filter(|a| a.revision == rev) {
        return Ok(a);
    }
    let kept = console
        .loaded
        .0
        .lock()
        .ok()
        .and_then(|l| l.iter().find(|a| a.revision == rev).cloned());
    if let Some(a) = kept {
        return Ok(a);
    }
    let a = Arc::new(
        console
            .resolver
            .revision(rev)
            .await
            .map_err(|e| e.to_string())?,
    );
    if let Ok(mut l) = console.loaded.0.lock() {
        if l.len() >= KEPT_REVISIONS {
            l.remove(0);
        }
        l.push(a.clone());
    }
    Ok(a)
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

fn error_page(admin: &Admin, status: StatusCode, e: &str) -> Response {
    (
        status,
        layout::page(&admin.session, "Error", html! { p.problem { (e) } }),
    )
        .into_response()
}

/// The start page: what is active, and where to go
pub async fn home(State(console): State<Arc<Console>>, admin: Admin) -> Response {
    let active = console.resolver.active();
    let body = html! {
        h1 { "Strata admin console" }
        @match &active {
            Some(a) => p #active { "Active revision " code { (a.revision) } ", " (a.projects.len()) " project layer(s)." },
            None => p.problem { "No policy is published yet." },
        }
        ul.start {
            li { a href="/explain" { "Why is a request refused?" } " — explain a decision, with the rule, file and line" }
            li { a href="/revisions" { "What did the last publish change?" } " — revisions, diffs, rollback" }
            li { a href="/audit" { "Who used what?" } " — the gateway's audit" }
            li { a href="/tokens" { "Gateway tokens" } " — create, revoke, bind to projects" }
        }
    };
    layout::page(&admin.session, "Home", body).into_response()
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> Response {
    let (revs, active) = match console.resolver.revisions().await {
        Ok(r) => r,
        Err(e) => return error_page(&admin, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let active = active.unwrap_or_default();
    let body = html! {
        h1 { "Revisions" }
        table #revisions {
            thead { tr { th { "Revision" } th { "Created (UTC)" } th { "Kind" } th { "Message" } th { "Projects" } th {} } }
            tbody {
                @for (i, r) in revs.iter().enumerate() {
                    tr.active[r.revision == active] data-revision=(r.revision) {
                        td { code { (short(&r.revision)) } @if r.revision == active { " " span.badge #active-mark { "active" } } }
                        td { (layout::time(r.created_at_unix_ms)) }
                        td { (r.kind) }
                        td { (r.message) }
                        td { (r.project_count.unwrap_or(0)) @if !r.changed_projects.is_empty() { " (changed: " (r.changed_projects.join(", ")) ")" } }
                        td {
                            @if let Some(prev) = revs.get(i + 1) {
                                a.diff-link href={ "/revisions/diff?from=" (prev.revision) "&to=" (r.revision) } { "diff with previous" }
                            }
                            @if r.revision != active {
                                " · " a.rollback-link href={ "/revisions/rollback?to=" (r.revision) } { "roll back to this" }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&admin.session, "Revisions", body).into_response()
}

/// The differences between two revisions, computed on a blocking thread: deciding every model
/// for every project and group is CPU work that must not stall the runtime the resolver (and, in
/// `policy up`, the gateway) serves on
pub async fn compared(console: &Arc<Console>, old: Arc<Active>, new: Arc<Active>) -> Markup {
    let groups = token_groups(console).await;
    let via = console.options.gateway_url.clone();
    tokio::task::spawn_blocking(move || compare(via.as_deref(), &old, &new, &groups))
        .await
        .unwrap_or_else(|e| html! { p.problem { (e.to_string()) } })
}

/// The file-level and effective-level differences between two loaded revisions
fn compare(
    via: Option<&str>,
    old: &Active,
    new: &Active,
    extra_groups: &BTreeSet<String>,
) -> Markup {
    let (a, b) = (
        diff::layer_files(&old.org, &old.projects),
        diff::layer_files(&new.org, &new.projects),
    );
    let projects: BTreeSet<String> = old
        .projects
        .keys()
        .chain(new.projects.keys())
        .cloned()
        .collect();
    let mut groups = diff::groups_named(&a);
    groups.extend(diff::groups_named(&b));
    groups.extend(extra_groups.iter().cloned());
    let changes = diff::effective_changes(&old.snapshot, &new.snapshot, via, &projects, &groups);
    html! {
        h2 { "What decisions change" }
        (diff::effective_table(&changes))
        h2 { "Files" }
        (diff::files(&a, &b))
    }
}

/// The groups the gateway tokens carry (scopes for the effective diff)
pub async fn token_groups(console: &Console) -> BTreeSet<String> {
    console
        .resolver
        .list_tokens()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.revoked)
        .flat_map(|t| t.groups)
        .collect()
}

#[derive(Deserialize)]
pub struct DiffAsk {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub async fn diff(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(q): Query<DiffAsk>,
) -> Response {
    let (old, new) = match (load(&console, &q.from).await, load(&console, &q.to).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error_page(&admin, StatusCode::NOT_FOUND, &e),
    };
    let body = html! {
        h1 { "From " code { (short(&q.from)) } " to " code { (short(&q.to)) } }
        (compared(&console, old, new).await)
    };
    layout::page(&admin.session, "Diff", body).into_response()
}

#[derive(Deserialize)]
pub struct RollbackAsk {
    #[serde(default)]
    to: String,
}

/// The confirmation: what rolling back to `to` changes, before it does
pub async fn confirm(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(q): Query<RollbackAsk>,
) -> Response {
    let Some(active) = console.resolver.active() else {
        return error_page(&admin, StatusCode::CONFLICT, "nothing is active");
    };
    let target = match load(&console, &q.to).await {
        Ok(t) => t,
        Err(e) => return error_page(&admin, StatusCode::NOT_FOUND, &e),
    };
    let body = html! {
        h1 { "Roll back to " code { (short(&target.revision)) } "?" }
        p { "Active now: " code { (active.revision) } ". Rolling back makes " code { (target.revision) } " active for every gateway." }
        (compared(&console, active.clone(), target.clone()).await)
        form method="post" action="/revisions/rollback" #rollback-form {
            input type="hidden" name="csrf" value=(admin.session.csrf);
            input type="hidden" name="to" value=(target.revision);
            button.danger type="submit" #confirm-rollback { "Roll back" }
            " " a href="/revisions" { "Cancel" }
        }
    };
    layout::page(&admin.session, "Roll back", body).into_response()
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

pub async fn rollback(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<RollbackForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    let previous = console
        .resolver
        .active()
        .map(|a| a.revision.clone())
        .unwrap_or_default();
    match console.resolver.rollback(&f.to).await {
        Ok(rev) => {
            console
                .record(
                    &admin.session.who,
                    &format!("rolled back to {rev}"),
                    &format!("from {previous}"),
                )
                .await;
            Redirect::to("/revisions").into_response()
        }
        Err(e) => error_page(&admin, StatusCode::CONFLICT, &e.to_string()),
    }
}
