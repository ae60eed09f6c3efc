//! Per-model upstreams: where a request goes when its decision's obligations name one (an org
//! `customModels` entry's `baseUrl`), and the key it takes (the entry's `${VAR}`, from the
//! gateway's environment).
//!
//! Both are worked out once and kept: a base URL is parsed once per URL (requests then share
//! the one pooled client, which keeps connections per host), and a variable is read once per
//! name, the first time a decision names it. The values are marked sensitive and never logged;
//! only a variable's name appears in a warning or an error.

use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{HeaderName, HeaderValue, header};
use hashbrown::HashMap;

use crate::upstream::Base;

/// Entries kept at most in each cache; past it the cache starts again (a bundle names a few)
const MAX_ENTRIES: usize = 1024;

/// Where a `customModels` base URL sends a request
#[derive(Clone, Debug)]
pub enum Target {
    /// the URL is this gateway's own public URL (an entry that routes Droid through the gateway):
    /// the provider's configured upstream, as without an entry, and no loop
    Gateway,
    /// the model's own upstream
    Upstream(Arc<Base>),
    /// a URL that cannot be used, and why
    Invalid(String),
}

/// A key to inject: the header it goes in, marked sensitive
pub type Key = (HeaderName, HeaderValue);

/// The per-model upstreams and keys seen so far
pub struct ModelUpstreams {
    /// this gateway's public base URL, parsed; `None` when it does not parse
    public: Option<Base>,
    /// (URL, Anthropic-style) → where it goes
    targets: RwLock<HashMap<(String, bool), Target>>,
    /// (variable, Anthropic-style) → the key in its header; `None`: the variable is not set
    keys: RwLock<HashMap<(String, bool), Option<Key>>>,
}

impl ModelUpstreams {
    pub fn new(public_base_url: &str) -> ModelUpstreams {
        ModelUpstreams {
            public: Base::parse(public_base_url).ok(),
            targets: RwLock::default(),
            keys: RwLock::default(),
        }
    }

    /// Where a request in an Anthropic-style (`anthropic`) or OpenAI-style API goes for an
    /// entry whose `baseUrl` is `url`
    pub fn target(&self, url: &str, anthropic: bool) -> Target {
        let k = (url.to_string(), anthropic);
        if let Some(t) = read(&self.targets).get(&k) {
            return t.clone();
        }
        let t = match Base::parse_sdk(url, anthropic) {
            Err(why) => Target::Invalid(why),
            Ok(b) if self.public.as_ref().is_some_and(|p| b.within(p)) => Target::Gateway,
            Ok(b) => Target::Upstream(Arc::new(b)),
        };
        insert(&self.targets, k, t.clone());
        t
    }

    /// The key held by the environment variable `var`, in the header an Anthropic-style
    /// (`anthropic`) or OpenAI-style upstream reads; `None` when it is not set (or cannot go in
    /// a header), with a warning naming the variable the first time
    pub fn key(&self, var: &str, anthropic: bool) -> Option<Key> {
        let k = (var.to_string(), anthropic);
        if let Some(key) = read(&self.keys).get(&k) {
            return key.clone();
        }
        let key = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .and_then(|v| {
                let (name, value) = if anthropic {
                    (HeaderName::from_static("x-api-key"), v)
                } else {
                    (header::AUTHORIZATION, format!("Bearer {v}"))
                };
                let mut value = HeaderValue::from_str(&value).ok()?;
                value.set_sensitive(true);
                Some((name, value))
            });
        if key.is_none() {
            tracing::warn!(
                variable = var,
                "a customModels entry takes its key from ${var}, which is not set (or not a valid \
                 header value) in the gateway's environment: its requests are refused with 503"
            );
        }
        insert(&self.keys, k, key.clone());
        key
    }
}

fn read<K, V>(lock: &RwLock<HashMap<K, V>>) -> std::sync::RwLockReadGuard<'_, HashMap<K, V>> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn insert<K: std::hash::Hash + Eq, V>(lock: &RwLock<HashMap<K, V>>, k: K, v: V) {
    let mut map = lock.write().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_own_url_is_not_an_upstream() {
        let m = ModelUpstreams::new("http://127.0.0.1:8787");
        assert!(matches!(
            m.target("http://127.0.0.1:8787/v1", false),
            Target::Gateway
        ));
        assert!(matches!(
            m.target("http://127.0.0.1:8787", true),
            Target::Gateway
        ));
        let Target::Upstream(b) = m.target("https://llm-gateway.acme.internal/v1", false) else {
            panic!("an upstream")
        };
        assert_eq!(
            b.uri("/v1/chat/completions", None).unwrap().to_string(),
            "https://llm-gateway.acme.internal/v1/chat/completions"
        );
        assert!(matches!(m.target("not a url", false), Target::Invalid(_)));
    }

    #[test]
    fn an_unset_variable_is_no_key() {
        let m = ModelUpstreams::new("http://127.0.0.1:8787");
        assert!(
            m.key("STRATA_TEST_SURELY_UNSET_VARIABLE_42", false)
                .is_none()
        );
        // the miss is kept too
        assert!(
            m.key("STRATA_TEST_SURELY_UNSET_VARIABLE_42", false)
                .is_none()
        );
        let (name, value) = m.key("PATH", false).unwrap();
        assert_eq!(name, header::AUTHORIZATION);
        assert!(value.is_sensitive());
        let (name, _) = m.key("PATH", true).unwrap();
        assert_eq!(name, "x-api-key");
    }
}
