//! The audit page over the gateway's PostgreSQL audit table (`[audit] store`): the records the
//! gateway's own writer put there, searched, paged and charted as from its files. The server
//! comes from crates/resolver/tests/support/pg.rs (`STRATA_TEST_PG`, a private instance, or a
//! skip line; `STRATA_REQUIRE_PG=1` makes a skip a failure).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../resolver/tests/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use common::*;
use strata_gateway::audit::Msg;

/// Write `records` to the audit table at `url` with the gateway's writer, and wait until they
/// are committed (its flush, not a sleep)
fn write_with_the_gateways_writer(url: &str, records: Vec<strata_gateway::audit::Record>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(records.len() + 1);
    let dropped = Arc::new(AtomicU64::new(0));
    strata_gateway::audit::pg::start(url, 3650, rx, dropped.clone()).expect("audit writer");
    for r in records {
        tx.send(Msg::Record(Box::new(r))).expect("queue");
    }
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    tx.send(Msg::Flush(done_tx)).expect("flush");
    done.recv().expect("flushed");
    assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn audit_search_pages_and_charts_from_postgresql() {
    let Some(db) = pg::database("console_audit", false).await else {
        return;
    };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || write_with_the_gateways_writer(&url, audit_records(300)))
        .await
        .expect("writer");

    let store = Arc::new(strata_resolver::MemStore::default());
    let source = strata_console::AuditSource::Postgres(db.url.clone());
    let run = start_on(store, Some(source), false, std::future::pending()).await;
    let s = login(&run.url).await;

    let all = s.page("/audit").await;
    assert!(all.contains("300 record(s); page 1 of 6"), "paging: {all}");
    assert_eq!(
        all.matches("class=\"explain-link\"").count(),
        50,
        "50 a page"
    );
    assert!(
        all.contains("11-28") && all.contains("11-30"),
        "one bar per day"
    );
    let chart = &all[all.find("id=\"per-day\"").expect("chart")..];
    let chart = &chart[..chart.find("</svg>").expect("end")];
    assert_eq!(
        chart.matches("<rect ").count(),
        6,
        "allowed and refused, 3 days"
    );
    assert!(
        all.contains("<td>claude-sonnet-4-5</td><td>3000</td>"),
        "tokens by model: 200 allowed x 15"
    );
    // newest first: the first row is the last record of the 30th
    let table = &all[all.find("id=\"audit\"").expect("records")..];
    let first = &table[table.find("<tbody><tr>").expect("rows")..];
    assert!(
        first.contains("2026-11-30"),
        "{}",
        &first[..300.min(first.len())]
    );

    let denied = s.page("/audit?decision=deny&user=alice").await;
    assert!(
        denied.contains("50 record(s)"),
        "every 6th of 300: {denied}"
    );
    assert!(!denied.contains(">allow</span>"));
    assert!(denied.contains("<code>org#modelPolicy.blockedModelIds</code>"));
    let by_rule = s.page("/audit?rule=blockedModelIds").await;
    assert!(
        by_rule.contains("100 record(s)"),
        "the rule, filtered in memory"
    );
    let by_model = s.page("/audit?model=gpt-4o&user=bob").await;
    assert!(by_model.contains("50 record(s)"));
    let one_day = s.page("/audit?since=2026-11-29&until=2026-11-30").await;
    assert!(one_day.contains("100 record(s)"), "the 29th only");
    let last = s.page("/audit?page=5").await;
    assert!(
        last.contains("page 6 of 6")
            && last.contains("id=\"prev\"")
            && !last.contains("id=\"next\"")
    );

    // a record opens its question in the explain view
    let at = denied.find("class=\"explain-link\" href=\"").expect("link") + 27;
    let href = denied[at..at + denied[at..].find('"').expect("end")].replace("&amp;", "&");
    assert!(s.page(&href).await.contains("DENY"));
}

/// A database that is not there: the page says why, naming it without a password
#[tokio::test]
async fn an_unreachable_audit_database_is_an_error_on_the_page() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://strata:secret-pw@127.0.0.1:{port}/audit");
    let store = Arc::new(strata_resolver::MemStore::default());
    let source = strata_console::AuditSource::Postgres(url);
    let run = start_on(store, Some(source), false, std::future::pending()).await;
    let s = login(&run.url).await;
    let page = s.page("/audit").await;
    assert!(page.contains("id=\"audit-error\""), "{page}");
    assert!(page.contains(&format!("127.0.0.1:{port}")), "{page}");
    assert!(!page.contains("secret-pw"), "never the password");
}
