//! Audit search over the gateway's records (its JSON-lines directory or its PostgreSQL
//! database, read by the gateway's own reader): filters, paging, a per-day chart of allowed and
//! denied requests, tokens by model; each record links to the explain view of its decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use strata_gateway::audit::{self as reader, Record};

use crate::records::{Filter, Found, tokens};

use crate::auth::Admin;
use crate::explain::Ask;
use crate::layout;
use crate::{AuditSource, Console};

/// Records per page
pub const PAGE: usize = 50;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Search {
    pub user: String,
    pub project: String,
    pub model: String,
    pub decision: String,
    pub rule: String,
    pub since: String,
    pub until: String,
    pub page: usize,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl Search {
    fn filter(&self) -> Result<Filter, String> {
        let now = jiff::Timestamp::now().as_millisecond();
        let time = |s: &str| opt(s).map(|t| reader::parse_time(&t, now)).transpose();
        Ok(Filter {
            query: reader::Query {
                user: opt(&self.user),
                project: opt(&self.project),
                model: opt(&self.model),
                decision: opt(&self.decision),
                since_ms: time(&self.since)?,
                until_ms: time(&self.until)?,
                limit: None,
            },
            rule: opt(&self.rule),
        })
    }

    fn url(&self, page: usize) -> String {
        let enc = crate::explain::enc;
        format!(
            "/audit?user={}&project={}&model={}&decision={}&rule={}&since={}&until={}&page={page}",
            enc(&self.user),
            enc(&self.project),
            enc(&self.model),
            enc(&self.decision),
            enc(&self.rule),
            enc(&self.since),
            enc(&self.until)
        )
    }
}

/// The matches: aggregates and the page asked for (newest first)
async fn read(console: &Arc<Console>, source: &AuditSource, s: &Search) -> Result<Found, String> {
    let f = s.filter()?;
    match source {
        AuditSource::Dir(dir) => {
            let (console, dir, page) = (console.clone(), dir.clone(), s.page);
            tokio::task::spawn_blocking(move || console.audit_cache.search(&dir, &f, page, PAGE))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        AuditSource::Postgres(url) => {
            // the rule is filtered below, in memory
            let records = reader::pg::query(url, &f.query)
                .await
                .map_err(|e| e.to_string())?;
            let mut found = Found::default();
            for r in records.iter().rev().filter(|r| f.matches(r)) {
                found.add(r, s.page, PAGE);
            }
            Ok(found)
        }
    }
}

fn form(s: &Search) -> Markup {
    html! {
        form.grid method="get" action="/audit" #audit-form {
            label { "User " input name="user" value=(s.user); }
            label { "Project " input name="project" value=(s.project); }
            label { "Model " input name="model" value=(s.model); }
            label { "Decision " select name="decision" {
                option value="" selected[s.decision.is_empty()] { "any" }
                @for d in ["allow", "deny", "unauthenticated", "unavailable", "invalid"] {
                    option value=(d) selected[s.decision == d] { (d) }
                }
            } }
            label { "Rule (part of its id) " input name="rule" value=(s.rule); }
            label { "Since " input name="since" value=(s.since) placeholder="7d, 2026-11-30"; }
            label { "Until " input name="until" value=(s.until); }
            button type="submit" { "Search" }
        }
    }
}

/// Requests per day (allowed, denied) as SVG bars
fn per_day(per_day: &BTreeMap<String, (u64, u64)>) -> Markup {
    let days: Vec<_> = per_day
        .iter()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let max = days
        .iter()
        .map(|(_, (a, d))| a + d)
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h, bar) = (40 * days.len().max(1) + 20, 160u64, 30u64);
    html! {
        svg #per-day width=(w) height=(h + 30) viewBox={ "0 0 " (w) " " (h + 30) } role="img" aria-label="requests per day" {
            @for (i, (day, (allow, deny))) in days.iter().enumerate() {
                @let x = 10 + 40 * i as u64;
                @let ha = h * allow / max;
                @let hd = h * deny / max;
                rect x=(x) y=(h - ha - hd) width=(bar) height=(hd) fill="#c62828" { title { (day) ": " (deny) " refused" } }
                rect x=(x) y=(h - ha) width=(bar) height=(ha) fill="#1a7f37" { title { (day) ": " (allow) " allowed" } }
                text x=(x) y=(h + 14) { (day.get(5..).unwrap_or(day)) }
            }
        }
        p.muted { span.allow { "■ allowed" } " " span.deny { "■ refused" } " (last 30 days in the results)" }
    }
}

fn by_model(m: &BTreeMap<String, u64>) -> Markup {
    let mut rows: Vec<(&String, u64)> = m.iter().map(|(k, v)| (k, *v)).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let max = rows.first().map(|r| r.1).unwrap_or(1).max(1);
    html! {
        table #tokens-by-model {
            thead { tr { th { "Model" } th { "Tokens (in + out)" } th {} } }
            tbody { @for (model, t) in rows.iter().take(20) {
                tr { td { (model) } td { (t) } td {
                    svg width="200" height="10" { rect x="0" y="0" width=(200 * t / max) height="10" fill="#2b59c3" {} }
                } }
            } }
        }
    }
}

fn explain_link(r: &Record) -> String {
    Ask {
        user: r.user.clone(),
        project: r.project.clone(),
        key_mode: r.key_mode.clone(),
        provider: r.provider.clone(),
        model: r.model.clone(),
        ..Default::default()
    }
    .url()
}

fn table(records: &[Record]) -> Markup {
    html! {
        table #audit {
            thead { tr { th { "Time (UTC)" } th { "User" } th { "Project" } th { "Model" } th { "Decision" } th { "Rules" } th { "Tokens" } th {} } }
            tbody { @for r in records {
                tr {
                    td { (r.time) } td { (r.user) } td { (r.project) } td { (r.model) }
                    td { span class=(if r.decision == "allow" { "allow" } else { "deny" }) { (r.decision) } }
                    td { @for rule in &r.rules { div { code { (rule) } } } }
                    td { (tokens(r)) }
                    td { @if !r.model.is_empty() { a.explain-link href=(explain_link(r)) { "explain" } } }
                }
            } }
        }
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(s): Query<Search>,
) -> Response {
    let Some(source) = &console.options.audit else {
        let body = html! { h1 { "Audit" } p.muted { "No audit source: start the console with the gateway's audit directory (" code { "--console-audit-dir" } ")." } };
        return layout::page(&admin.session, "Audit", body).into_response();
    };
    let body = match read(&console, source, &s).await {
        Err(e) => html! { h1 { "Audit" } (form(&s)) p.problem #audit-error { (e) } },
        Ok(found) => {
            let pages = found.total.div_ceil(PAGE).max(1);
            let page = s.page;
            html! {
                h1 { "Audit" }
                (form(&s))
                p #audit-count { (found.total) " record(s); page " (page + 1) " of " (pages) }
                (per_day(&found.per_day))
                h2 { "Tokens by model" }
                (by_model(&found.by_model))
                h2 { "Records" }
                (table(&found.page))
                p.paging {
                    @if page > 0 { a #prev href=(s.url(page - 1)) { "← newer" } " " }
                    @if page + 1 < pages { a #next href=(s.url(page + 1)) { "older →" } }
                }
            }
        }
    };
    layout::page(&admin.session, "Audit", body).into_response()
}
