//! The audit page over real HTTP: filters, paging, the per-day chart, tokens by model, and the
//! link from a record to the explain view

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn audit_search_filters_pages_charts_and_links_to_explain() {
    let run = start(Some(audit_dir(300))).await;
    let s = login(&run.url).await;

    let all = s.page("/audit").await;
    assert!(all.contains("300 record(s); page 1 of 6"), "paging");
    assert_eq!(
        all.matches("class=\"explain-link\"").count(),
        50,
        "50 a page"
    );
    assert!(all.contains("id=\"per-day\""));
    assert!(
        all.contains("11-28") && all.contains("11-30"),
        "one bar per day"
    );
    assert!(
        all.contains("<td>claude-sonnet-4-5</td><td>3000</td>"),
        "tokens by model: 200 allowed x 15"
    );

    let denied = s.page("/audit?decision=deny&user=alice").await;
    assert!(denied.contains("50 record(s)"), "every 6th of 300");
    assert!(!denied.contains(">allow</span>"));
    let by_rule = s.page("/audit?rule=blockedModelIds").await;
    assert!(by_rule.contains("100 record(s)"));
    let one_day = s.page("/audit?since=2026-11-29&until=2026-11-30").await;
    assert!(one_day.contains("100 record(s)"), "the 29th only");

    let last = s.page("/audit?page=5").await;
    assert!(
        last.contains("page 6 of 6")
            && last.contains("id=\"prev\"")
            && !last.contains("id=\"next\"")
    );

    // a refused record opens its question in the explain view, which says why
    let at = denied.find("class=\"explain-link\" href=\"").expect("link") + 27;
    let href = denied[at..at + denied[at..].find('"').expect("end")].replace("&amp;", "&");
    assert!(
        href.contains("user=alice") && href.contains("model=gpt-4o"),
        "{href}"
    );
    let why = s.page(&href).await;
    assert!(why.contains("DENY"), "{why}");

    let bad = s.page("/audit?since=yesterday-ish").await;
    assert!(bad.contains("audit-error"));
}

#[tokio::test]
async fn without_an_audit_source_the_page_says_so() {
    let run = start(None).await;
    let s = login(&run.url).await;
    assert!(s.page("/audit").await.contains("No audit source"));
}
