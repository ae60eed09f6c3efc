//! The audit record: one per request, no prompt content, keys only as masked hints.

use serde::{Deserialize, Serialize};

/// Token usage as the upstream reported it
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
}

/// One request
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC
    pub time: String,
    pub unix_ms: i64,
    pub decision_id: String,
    pub user: String,
    pub project: String,
    /// the client, from User-Agent
    pub client: String,
    pub api: String,
    pub provider: String,
    /// the model as the request sent it
    pub model: String,
    /// the id the rules compared, when it differs from `model` (`openai/gpt-5-mini` is
    /// `gpt-5-mini`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_model: Option<String>,
    pub key_mode: String,
    /// the last characters of the key that was used, never the key
    pub key_hint: String,
    /// `allow`, `deny`; or, without a decision: `unauthenticated`, `unavailable` (the resolver
    /// did not answer), `invalid` (the request was refused before a decision)
    pub decision: String,
    /// the stable code of an error the gateway returned or met (`invalid_json`,
    /// `upstream_unreachable`, `upstream_broke_off`, ...)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rules: Vec<String>,
    pub revision: String,
    pub upstream_status: Option<u16>,
    /// the status the client got
    pub status: u16,
    pub decision_ms: f64,
    /// from sending the request upstream to its response headers
    #[serde(default)]
    pub upstream_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
    pub usage: Option<Usage>,
    pub stream: bool,
    /// the client went away before the response ended
    #[serde(default)]
    pub client_disconnected: bool,
    /// whether the request's gateway token had loaded Droid's org level from this gateway (a
    /// client without it may not enforce the org's client-side rules); `None` before a decision
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_settings_loaded: Option<bool>,
}

pub fn key_hint(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".to_string();
    }
    format!("…{}", key.chars().skip(n - 4).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hints_mask_the_key() {
        assert_eq!(key_hint("strata_gw_0123456789abcdef"), "…cdef");
        assert_eq!(key_hint("short"), "****");
    }
}
