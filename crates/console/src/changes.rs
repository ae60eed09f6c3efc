//! The change log: who changed what, when, through the console (sign-ins, tokens, rollbacks,
//! publishes). Kept in the resolver's store (sled, or PostgreSQL shared by the replicas), so it
//! survives a restart; also written to the process log (never a secret).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use strata_proto::v1::StoredChange;

use crate::Console;
use crate::auth::Admin;
use crate::layout;

/// Changes per page
pub const PAGE: usize = 50;

/// A store time (unix ms), RFC 3339 to the second
fn shown(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .and_then(|t| t.round(jiff::Unit::Second))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Console {
    /// Record a change in the store's change log. The change itself is done by then: a log that
    /// cannot be written is reported in the process log, not to the admin as a failed change.
    pub(crate) async fn record(&self, who: &str, what: &str, detail: &str) {
        tracing::info!(who, what, detail, "console change");
        let change = StoredChange {
            at_unix_ms: strata_resolver::state::now_ms(),
            who: who.to_string(),
            what: what.to_string(),
            detail: detail.to_string(),
        };
        if let Err(e) = self.resolver.record_change(change).await {
            tracing::error!(who, what, error = %e, "cannot write the console's change log");
        }
    }
}

pub fn table(changes: &[StoredChange]) -> Markup {
    html! {
        table #changes {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Detail" } } }
            tbody {
                @for c in changes {
                    tr { td { (shown(c.at_unix_ms)) } td { (c.who) } td { (c.what) } td { (c.detail) } }
                }
            }
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    pub page: usize,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Query(p): Query<Paging>,
) -> Response {
    let page = p.page;
    let body = match console.resolver.changes(page * PAGE, PAGE).await {
        Err(e) => html! { h1 { "Changes made in the console" } p.problem #changes-error { (e) } },
        Ok((changes, total)) => {
            let pages = (total as usize).div_ceil(PAGE).max(1);
            html! {
                h1 { "Changes made in the console" }
                p.muted #changes-count { (total) " change(s), newest first; page " (page + 1) " of " (pages) }
                (table(&changes))
                p.paging {
                    @if page > 0 { a #prev href={ "/changes?page=" (page - 1) } { "← newer" } " " }
                    @if page + 1 < pages { a #next href={ "/changes?page=" (page + 1) } { "older →" } }
                }
            }
        }
    };
    layout::page(&admin.session, "Changes", body).into_response()
}
