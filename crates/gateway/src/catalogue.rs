//! The upstreams' own model catalogues: each configured upstream's `GET /v1/models`, read with
//! its central key at start and every `model_catalog_refresh_secs`, so that a model the policy
//! allows only by a pattern (`claude-sonnet-4-*`) or a category is listed by `/v1/models` and
//! `/strata/v1/droid-settings`: the gateway passes these ids to the resolver as
//! `candidate_models`, which decides each exactly as a request for it.
//!
//! Anthropic answers `{"data": [{"id", "type": "model"}], "has_more", "last_id"}` (pages follow
//! with `after_id`, and want `x-api-key` and `anthropic-version`); OpenAI and Chat Completions
//! servers `{"object": "list", "data": [{"id"}]}` (Bearer). Every read is bounded: in time, in
//! bytes, in ids. A failed read keeps the last catalogue read and logs one warning per streak of
//! failures; the key never appears in a log line (only the provider, and the error: a status, a
//! connection failure, a parse error).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Uri};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::error::CatalogueError;
use crate::model_upstream::Key;
use crate::upstream::{Base, Upstream};

/// Ids kept per upstream at most (and what the resolver accepts per request)
pub const MAX_IDS: usize = 10_000;
/// Bytes of one page of a catalogue at most
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// The time one upstream's catalogue, every page of it, may take
pub const TIMEOUT: Duration = Duration::from_secs(30);
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic's largest page
const PAGE_LIMIT: u32 = 1000;
/// What a query value escapes: all but RFC 3986's unreserved characters
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One page of a catalogue, in either shape (OpenAI's has no `has_more`)
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Item>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    id: String,
}

/// One upstream's last catalogue, and whether its reads are failing
#[derive(Default)]
struct Held {
    ids: Arc<[String]>,
    failing: bool,
}

/// The catalogues read so far, by provider
#[derive(Default)]
pub struct Catalogues {
    held: RwLock<BTreeMap<String, Held>>,
}

impl Catalogues {
    /// Every id of every upstream's last catalogue, each once (by provider, then as served), at
    /// most [`MAX_IDS`]
    pub fn ids(&self) -> Vec<String> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        held.values()
            .flat_map(|h| h.ids.iter())
            .filter(|id| seen.insert(id.as_str()))
            .take(MAX_IDS)
            .cloned()
            .collect()
    }

    /// The first provider (by name) whose catalogue lists `id`
    pub fn provider_of(&self, id: &str) -> Option<String> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        held.iter()
            .find(|(_, h)| h.ids.iter().any(|i| i == id))
            .map(|(p, _)| p.clone())
    }

    /// How many ids each provider's catalogue holds
    pub fn sizes(&self) -> Vec<(String, usize)> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        held.iter().map(|(p, h)| (p.clone(), h.ids.len())).collect()
    }

    /// Keep `ids` as `provider`'s catalogue; `true` when its reads were failing until now
    pub fn store(&self, provider: &str, ids: Vec<String>) -> bool {
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        let h = held.entry(provider.to_string()).or_default();
        h.ids = ids.into();
        std::mem::replace(&mut h.failing, false)
    }

    /// A failed read of `provider`'s catalogue (the last one stays): the number of ids kept
    /// when this is the first failure of a streak, `None` when it is not
    pub fn failed(&self, provider: &str) -> Option<usize> {
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        let h = held.entry(provider.to_string()).or_default();
        (!std::mem::replace(&mut h.failing, true)).then_some(h.ids.len())
    }
}

/// Keep what a read found, or log its failure (once per streak)
pub(crate) fn note(
    catalogues: &Catalogues,
    provider: &str,
    read: Result<Vec<String>, CatalogueError>,
) {
    match read {
        Ok(ids) => {
            let n = ids.len();
            if catalogues.store(provider, ids) {
                tracing::info!(
                    provider,
                    models = n,
                    "the upstream's model catalogue is back"
                );
            }
            tracing::debug!(provider, models = n, "read the upstream's model catalogue");
        }
        Err(e) => {
            if let Some(kept) = catalogues.failed(provider) {
                tracing::warn!(
                    provider,
                    error = %e,
                    kept,
                    "cannot read the upstream's model catalogue (GET /v1/models): the last one read stays in use"
                );
            }
        }
    }
}

/// Every page of one upstream's catalogue
pub(crate) async fn fetch(
    http: &Upstream,
    provider: &str,
    base: &Base,
    (name, value): &Key,
) -> Result<Vec<String>, CatalogueError> {
    let anthropic = provider == "anthropic";
    let mut headers = HeaderMap::new();
    headers.insert(name.clone(), value.clone());
    if anthropic {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
    }
    let mut ids: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = anthropic.then(|| page_query(after.as_deref()));
        let uri = base
            .uri("/v1/models", query.as_deref())
            .map_err(CatalogueError::Url)?;
        let page = page(http, uri, headers.clone()).await?;
        let before = ids.len();
        ids.extend(
            page.data
                .into_iter()
                .map(|m| m.id)
                .filter(|id| !id.is_empty()),
        );
        if ids.len() > MAX_IDS {
            return Err(CatalogueError::TooMany(MAX_IDS));
        }
        match page.last_id {
            // a page that adds nothing ends the walk, whatever `has_more` says
            Some(last) if anthropic && page.has_more && ids.len() > before => after = Some(last),
            _ => return Ok(ids),
        }
    }
}

/// Anthropic's page query: the largest page, after `after`
fn page_query(after: Option<&str>) -> String {
    match after {
        Some(id) => format!(
            "limit={PAGE_LIMIT}&after_id={}",
            utf8_percent_encode(id, QUERY_VALUE)
        ),
        None => format!("limit={PAGE_LIMIT}"),
    }
}

/// One page, read whole up to [`MAX_BYTES`]
async fn page(http: &Upstream, uri: Uri, headers: HeaderMap) -> Result<Page, CatalogueError> {
    let resp = http.get(uri, headers).await.map_err(CatalogueError::Send)?;
    if !resp.status().is_success() {
        return Err(CatalogueError::Status(resp.status().as_u16()));
    }
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(CatalogueError::Body)?;
        if bytes.len() + chunk.len() > MAX_BYTES {
            return Err(CatalogueError::TooLarge(MAX_BYTES));
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(CatalogueError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_catalogue_and_is_reported_once_per_streak() {
        let c = Catalogues::default();
        assert!(!c.store("openai", vec!["gpt-5".into(), "gpt-4o".into()]));
        assert!(!c.store("anthropic", vec!["claude-x".into(), "gpt-5".into()]));
        assert_eq!(c.ids(), ["claude-x", "gpt-5", "gpt-4o"]);
        assert_eq!(c.failed("openai"), Some(2));
        assert_eq!(c.failed("openai"), None);
        assert_eq!(c.ids(), ["claude-x", "gpt-5", "gpt-4o"]);
        assert!(c.store("openai", vec!["gpt-5".into()]));
        assert_eq!(c.failed("openai"), Some(1));
        assert_eq!(c.provider_of("gpt-5").as_deref(), Some("anthropic"));
        assert_eq!(c.provider_of("nope"), None);
    }

    #[test]
    fn both_shapes_parse_and_pages_follow_the_last_id() {
        let a: Page = serde_json::from_str(
            r#"{"data":[{"id":"claude-x","type":"model","display_name":"X"}],"has_more":true,"first_id":"claude-x","last_id":"claude-x"}"#,
        )
        .unwrap();
        assert!(a.has_more && a.last_id.as_deref() == Some("claude-x") && a.data.len() == 1);
        let o: Page = serde_json::from_str(
            r#"{"object":"list","data":[{"id":"gpt-5","object":"model"},{"object":"model"}]}"#,
        )
        .unwrap();
        assert!(!o.has_more && o.data.len() == 2 && o.data[1].id.is_empty());
        assert_eq!(page_query(None), "limit=1000");
        assert_eq!(
            page_query(Some("claude-3.5_x~ b/c")),
            "limit=1000&after_id=claude-3.5_x~%20b%2Fc"
        );
    }
}
