//! Gateway tokens: the list (never a secret: the store keeps only hashes), create (the token is
//! shown once), revoke, and a token's projects (a token bound to projects is refused elsewhere).

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::auth::{Admin, forbidden};
use crate::layout;

/// A comma- or space-separated list
pub fn list_of(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn create_form(admin: &Admin) -> Markup {
    html! {
        h2 { "Create a token" }
        form.grid method="post" action="/tokens" #create-token {
            input type="hidden" name="csrf" value=(admin.session.csrf);
            label { "User " input name="user" required; }
            label { "Groups (comma-separated) " input name="groups"; }
            label { "Bound to projects (comma-separated; empty: any) " input name="projects"; }
            label { "Description " input name="description"; }
            button type="submit" { "Create token" }
        }
    }
}

async fn render(console: &Console, admin: &Admin, created: Option<(String, String)>) -> Response {
    let tokens = match console.resolver.list_tokens().await {
        Ok(t) => t,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let body = html! {
        h1 { "Gateway tokens" }
        @if let Some((id, secret)) = created {
            div.secret #new-token {
                p { "Token " code { (id) } " created. Copy it now: it is shown once and stored only as a hash." }
                code #token-secret { (secret) }
                " " button type="button" data-copy="token-secret" { "Copy" }
            }
        }
        table #tokens {
            thead { tr { th { "Id" } th { "User" } th { "Groups" } th { "Projects" } th { "Description" } th { "Created (UTC)" } th { "State" } th {} } }
            tbody {
                @for t in &tokens {
                    tr data-token=(t.token_id) {
                        td { code { (t.token_id) } }
                        td { (t.user) }
                        td { (t.groups.join(", ")) }
                        td {
                            @if t.revoked { (t.projects.join(", ")) }
                            @else {
                                form.inline.bind method="post" action="/tokens/bind" {
                                    input type="hidden" name="csrf" value=(admin.session.csrf);
                                    input type="hidden" name="id" value=(t.token_id);
                                    input name="projects" value=(t.projects.join(", ")) placeholder="any project" aria-label="projects";
                                    button type="submit" { "Bind" }
                                }
                            }
                        }
                        td { (t.description) }
                        td { (layout::time(t.created_at_unix_ms)) }
                        td { @if t.revoked { span.deny { "revoked" } } @else { span.allow { "active" } } }
                        td {
                            @if !t.revoked {
                                form.inline method="post" action="/tokens/revoke" data-confirm={ "Revoke " (t.token_id) "?" } {
                                    input type="hidden" name="csrf" value=(admin.session.csrf);
                                    input type="hidden" name="id" value=(t.token_id);
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (create_form(admin))
    };
    layout::page(&admin.session, "Tokens", body).into_response()
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> Response {
    render(&console, &admin, None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    projects: String,
    #[serde(default)]
    description: String,
}

pub async fn create(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<CreateForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    let (user, groups, projects) = (
        f.user.trim().to_string(),
        list_of(&f.groups),
        list_of(&f.projects),
    );
    let detail = format!(
        "user {user}, groups [{}], projects [{}]",
        groups.join(", "),
        projects.join(", ")
    );
    let r = console
        .resolver
        .create_token(user, groups, projects, f.description)
        .await;
    match r {
        Ok((secret, record)) => {
            let what = format!("created token {}", record.token_id);
            console.record(&admin.session.who, &what, &detail).await;
            render(&console, &admin, Some((record.token_id, secret))).await
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            layout::page(
                &admin.session,
                "Tokens",
                html! { p.problem { (e.to_string()) } },
            ),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

pub async fn revoke(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<RevokeForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    match console.resolver.revoke_token(&f.id).await {
        Ok(()) => {
            console
                .record(&admin.session.who, &format!("revoked token {}", f.id), "")
                .await;
            Redirect::to("/tokens").into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            layout::page(
                &admin.session,
                "Tokens",
                html! { p.problem { (e.to_string()) } },
            ),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub struct BindForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    projects: String,
}

/// Bind a token to other projects (empty: any project)
pub async fn bind(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(f): Form<BindForm>,
) -> Response {
    if !admin.csrf_ok(&f.csrf) {
        return forbidden("invalid CSRF token");
    }
    let projects = list_of(&f.projects);
    match console.resolver.bind_token(&f.id, projects.clone()).await {
        Ok(_) => {
            let what = format!("bound token {} to projects", f.id);
            console
                .record(
                    &admin.session.who,
                    &what,
                    &format!("[{}]", projects.join(", ")),
                )
                .await;
            Redirect::to("/tokens").into_response()
        }
        Err(e) => {
            let body = html! { p.problem { (e.to_string()) } };
            (
                StatusCode::NOT_FOUND,
                layout::page(&admin.session, "Tokens", body),
            )
                .into_response()
        }
    }
}
