//! The change log: who changed what, when, through the console (sign-ins, tokens, rollbacks,
//! publishes). Kept in memory and written to the process log (without secrets).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use maud::{Markup, html};

use crate::Console;
use crate::auth::Admin;
use crate::layout;

#[derive(Clone)]
pub struct Change {
    pub at: String,
    pub who: String,
    pub what: String,
    pub detail: String,
}

#[derive(Default)]
pub struct Log(Mutex<Vec<Change>>);

/// The time now, RFC 3339 to the second
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Log {
    pub fn record(&self, who: &str, what: &str, detail: &str) {
        tracing::info!(who, what, detail, "console change");
        if let Ok(mut log) = self.0.lock() {
            log.push(Change {
                at: now(),
                who: who.to_string(),
                what: what.to_string(),
                detail: detail.to_string(),
            });
        }
    }

    /// The changes, newest first
    pub fn all(&self) -> Vec<Change> {
        self.0
            .lock()
            .map(|l| l.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

pub fn table(changes: &[Change]) -> Markup {
    html! {
        table #changes {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Detail" } } }
            tbody {
                @for c in changes {
                    tr { td { (c.at) } td { (c.who) } td { (c.what) } td { (c.detail) } }
                }
            }
        }
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
) -> axum::response::Html<String> {
    let body = html! {
        h1 { "Changes made in the console" }
        (table(&console.changes.all()))
    };
    layout::page(&admin.session, "Changes", body)
}
