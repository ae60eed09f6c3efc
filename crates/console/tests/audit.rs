//! The audit page over real HTTP: filters, paging, the per-day chart, tokens by model, and the
//! link from a record to the explain view

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn audit_search_filters_pages_charts_and_links_to_explain() {
    let run = start(Some(audit_dir(300))).await;
    let s = login(&run.url).await;

    the_300_audit_records_search_page_and_chart(&s).await;

    let bad = s.page("/audit?since=yesterday-ish").await;
    assert!(bad.contains("audit-error"));
}

#[tokio::test]
async fn without_an_audit_source_the_page_says_so() {
    let run = start(None).await;
    let s = login(&run.url).await;
    assert!(s.page("/audit").await.contains("No audit source"));
}
