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

    the_300_audit_records_search_page_and_chart(&s).await;
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
