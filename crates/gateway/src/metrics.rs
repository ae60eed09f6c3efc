//! `/metrics` in the Prometheus text format: requests by provider, model, decision and status;
//! decision and upstream latency histograms; tokens; requests in flight; audit records dropped.
//!
//! Everything is updated once per request, from its audit record, when the request ends.

use hashbrown::{Equivalent, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::audit::Record;

/// Upper bounds of the latency buckets, in seconds
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Distinct label sets per counter at most. A model name comes from the request body, so a client
/// could otherwise grow the registry without bound; past the limit, new models count as `_other`.
pub const MAX_SERIES: usize = 2_000;
const OTHER: &str = "_other";

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    /// observations past the last bucket are only in `count`
    count: AtomicU64,
    /// microseconds
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, ms: f64) {
        let secs = ms / 1000.0;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0).round() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    provider: String,
    model: String,
    decision: String,
    status: u16,
}

/// A [`RequestKey`] borrowed from a record: counting a series that exists allocates nothing.
/// Hashes as the key does (same fields, same order; a `String` hashes as its `str`).
#[derive(Hash)]
struct RequestRef<'a> {
    provider: &'a str,
    model: &'a str,
    decision: &'a str,
    status: u16,
}

impl Equivalent<RequestKey> for RequestRef<'_> {
    fn equivalent(&self, k: &RequestKey) -> bool {
        self.status == k.status
            && self.model == k.model
            && self.decision == k.decision
            && self.provider == k.provider
    }
}

impl RequestRef<'_> {
    fn to_key(&self) -> RequestKey {
        RequestKey {
            provider: self.provider.to_string(),
            model: self.model.to_string(),
            decision: self.decision.to_string(),
            status: self.status,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    provider: String,
    model: String,
    kind: &'static str,
}

/// A [`TokenKey`] borrowed from a record
#[derive(Hash)]
struct TokenRef<'a> {
    provider: &'a str,
    model: &'a str,
    kind: &'static str,
}

impl Equivalent<TokenKey> for TokenRef<'_> {
    fn equivalent(&self, k: &TokenKey) -> bool {
        self.kind == k.kind && self.model == k.model && self.provider == k.provider
    }
}

impl TokenRef<'_> {
    fn to_key(&self) -> TokenKey {
        TokenKey {
            provider: self.provider.to_string(),
            model: self.model.to_string(),
            kind: self.kind,
        }
    }
}

#[derive(Default)]
struct Counters {
    requests: HashMap<RequestKey, u64>,
    tokens: HashMap<TokenKey, u64>,
}

/// The gateway's metrics
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    decision: Histogram,
    upstream: Histogram,
    in_flight: AtomicI64,
    connections: AtomicI64,
    connection_waits: AtomicU64,
    /// shared with the audit writer, which drops records too (a batch its database refused)
    audit_dropped: Arc<AtomicU64>,
    resolver_calls: AtomicU64,
    batched_decisions: AtomicU64,
    org_settings_served: AtomicU64,
    without_org_settings: AtomicU64,
    /// org models whose key variable the gateway's environment lacks (active revision)
    missing_credentials: AtomicI64,
}

/// Add `by` to `key`'s series; a new series past [`MAX_SERIES`] goes to `other`'s instead
fn bump<K, Q>(map: &mut HashMap<K, u64>, key: Q, other: Q, by: u64, to_key: impl Fn(&Q) -> K)
where
    K: Eq + std::hash::Hash,
    Q: std::hash::Hash + Equivalent<K>,
{
    if let Some(n) = map.get_mut(&key) {
        *n += by;
    } else if map.len() < MAX_SERIES {
        map.insert(to_key(&key), by);
    } else if let Some(n) = map.get_mut(&other) {
        *n += by;
    } else {
        map.insert(to_key(&other), by);
    }
}

/// A label value, escaped as the text format wants
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Droid's org document was served
    pub fn org_settings_served(&self) {
        self.org_settings_served.fetch_add(1, Ordering::Relaxed);
    }

    /// A model request came with a token that never loaded the org document here
    pub fn without_org_settings(&self) {
        self.without_org_settings.fetch_add(1, Ordering::Relaxed);
    }

    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection accepted; [`Metrics::connection_closed`] when it ends
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The server stopped accepting for a while: `max_connections` were open
    pub fn connection_limit_reached(&self) {
        self.connection_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// One call to the resolver carrying `decisions` decisions
    pub fn resolver_call(&self, decisions: usize) {
        self.resolver_calls.fetch_add(1, Ordering::Relaxed);
        if decisions > 1 {
            self.batched_decisions
                .fetch_add(decisions as u64, Ordering::Relaxed);
        }
    }

    /// How many org models of the active revision take their key from an unset variable
    pub fn set_missing_credentials(&self, n: usize) {
        self.missing_credentials
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// One audit record dropped; returns how many so far
    pub fn audit_dropped(&self) -> u64 {
        self.audit_dropped.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The counter of dropped audit records, for the writer
    pub fn audit_dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.audit_dropped)
    }

    /// Count a request that has ended
    pub fn ended(&self, r: &Record) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if r.decision_ms > 0.0 {
            self.decision.observe(r.decision_ms);
        }
        if let Some(ms) = r.upstream_ms {
            self.upstream.observe(ms);
        }
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        let key = |model| RequestRef {
            provider: &r.provider,
            model,
            decision: &r.decision,
            status: r.status,
        };
        bump(
            &mut c.requests,
            key(&r.model),
            key(OTHER),
            1,
            RequestRef::to_key,
        );
        if let Some(u) = &r.usage {
            for (kind, n) in [
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cache_read", u.cache_read_tokens),
                ("cache_write", u.cache_write_tokens),
            ] {
                if n == 0 {
                    continue;
                }
                let key = |model| TokenRef {
                    provider: &r.provider,
                    model,
                    kind,
                };
                bump(
                    &mut c.tokens,
                    key(&r.model),
                    key(OTHER),
                    n,
                    TokenRef::to_key,
                );
            }
        }
    }

    /// The Prometheus text exposition
    // Longer than a screen: one flat write per metric family, in the order they are exposed;
    // splitting it would only scatter that list.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP strata_gateway_requests_total Requests by provider, model, decision and the status returned to the client\n# TYPE strata_gateway_requests_total counter\n");
        let (mut requests, mut tokens) = match self.counters.lock() {
            Ok(c) => (
                c.requests
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
                c.tokens
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        };
        requests.sort_by(|a, b| {
            (&a.0.provider, &a.0.model, &a.0.decision, a.0.status).cmp(&(
                &b.0.provider,
                &b.0.model,
                &b.0.decision,
                b.0.status,
            ))
        });
        for (k, v) in requests {
            let _ = writeln!(
                out,
                "strata_gateway_requests_total{{provider=\"{}\",model=\"{}\",decision=\"{}\",status=\"{}\"}} {v}",
                esc(&k.provider),
                esc(&k.model),
                esc(&k.decision),
                k.status
            );
        }
        out.push_str("# HELP strata_gateway_tokens_total Tokens the upstream reported, by provider, model and kind\n# TYPE strata_gateway_tokens_total counter\n");
        tokens.sort_by(|a, b| {
            (&a.0.provider, &a.0.model, a.0.kind).cmp(&(&b.0.provider, &b.0.model, b.0.kind))
        });
        for (k, v) in tokens {
            let _ = writeln!(
                out,
                "strata_gateway_tokens_total{{provider=\"{}\",model=\"{}\",kind=\"{}\"}} {v}",
                esc(&k.provider),
                esc(&k.model),
                k.kind
            );
        }
        out.push_str("# HELP strata_gateway_decision_seconds Time to the resolver's decision\n# TYPE strata_gateway_decision_seconds histogram\n");
        self.decision
            .render(&mut out, "strata_gateway_decision_seconds", "");
        out.push_str("# HELP strata_gateway_upstream_seconds Time from sending a request upstream to its response headers\n# TYPE strata_gateway_upstream_seconds histogram\n");
        self.upstream
            .render(&mut out, "strata_gateway_upstream_seconds", "");
        let _ = writeln!(
            out,
            "# HELP strata_gateway_in_flight Requests being handled, streams included\n# TYPE strata_gateway_in_flight gauge\nstrata_gateway_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_connections Client connections open\n# TYPE strata_gateway_connections gauge\nstrata_gateway_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_connection_limit_reached_total Times the server stopped accepting connections because max_connections were open\n# TYPE strata_gateway_connection_limit_reached_total counter\nstrata_gateway_connection_limit_reached_total {}",
            self.connection_waits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_org_settings_served_total Droid org documents served (managed-settings and the plain URL)\n# TYPE strata_gateway_org_settings_served_total counter\nstrata_gateway_org_settings_served_total {}",
            self.org_settings_served.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_requests_without_org_settings_total Model requests whose token never loaded Droid's org document from this gateway (a client that may run without the org's client-side rules)\n# TYPE strata_gateway_requests_without_org_settings_total counter\nstrata_gateway_requests_without_org_settings_total {}",
            self.without_org_settings.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_resolver_calls_total Calls to the resolver for decisions (Decide or BatchDecide)\n# TYPE strata_gateway_resolver_calls_total counter\nstrata_gateway_resolver_calls_total {}",
            self.resolver_calls.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_batched_decisions_total Decisions that shared a BatchDecide call with others\n# TYPE strata_gateway_batched_decisions_total counter\nstrata_gateway_batched_decisions_total {}",
            self.batched_decisions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_missing_credentials Org models of the active revision whose key variable is not set in the gateway's environment\n# TYPE strata_gateway_missing_credentials gauge\nstrata_gateway_missing_credentials {}",
            self.missing_credentials.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP strata_gateway_audit_dropped_total Audit records dropped because the writer fell behind (its queue was full) or its database refused them\n# TYPE strata_gateway_audit_dropped_total counter\nstrata_gateway_audit_dropped_total {}",
            self.audit_dropped.load(Ordering::Relaxed)
        );
        out
    }
}

/// The catalogue gauge: how many model ids each upstream's last catalogue holds
pub fn render_catalogues(sizes: &[(String, usize)]) -> String {
    let mut out = String::from(
        "# HELP strata_gateway_model_catalogue_models Model ids in the upstream's last catalogue read\n# TYPE strata_gateway_model_catalogue_models gauge\n",
    );
    for (provider, n) in sizes {
        let _ = writeln!(
            out,
            "strata_gateway_model_catalogue_models{{provider=\"{}\"}} {n}",
            esc(provider)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Usage;

    fn record(model: &str, decision: &str, status: u16) -> Record {
        Record {
            provider: "anthropic".into(),
            model: model.into(),
            decision: decision.into(),
            status,
            decision_ms: 0.4,
            upstream_ms: Some(12.0),
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 2,
                cache_read_tokens: 0,
                cache_write_tokens: 3,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn counts_render_and_cap_cardinality() {
        let m = Metrics::default();
        m.started();
        m.started();
        m.started();
        m.ended(&record("claude-sonnet-4-5", "allow", 200));
        m.ended(&record("claude-sonnet-4-5", "allow", 200));
        let text = m.render();
        // the second request is counted in the first one's series (found by its borrowed labels)
        assert!(text.contains("strata_gateway_requests_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",decision=\"allow\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("strata_gateway_tokens_total{provider=\"anthropic\",model=\"claude-sonnet-4-5\",kind=\"cache_write\"} 6"), "{text}");
        assert!(!text.contains("kind=\"cache_read\""), "{text}");
        assert!(text.contains("strata_gateway_in_flight 1"), "{text}");
        assert!(text.contains("strata_gateway_decision_seconds_bucket{le=\"0.0005\"} 2"));
        assert!(text.contains("strata_gateway_decision_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("strata_gateway_upstream_seconds_count 2"));
        for i in 0..MAX_SERIES + 10 {
            m.started();
            m.ended(&record(&format!("m\"{i}"), "deny", 403));
        }
        let text = m.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("strata_gateway_requests_total{"))
            .count();
        assert_eq!(series, MAX_SERIES + 1, "capped, plus the `_other` series");
        assert!(text.contains("model=\"_other\",decision=\"deny\",status=\"403\"} 11"));
        assert!(text.contains("model=\"m\\\"0\""), "quotes escaped");
    }
}
