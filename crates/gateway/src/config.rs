//! The gateway's configuration file (TOML, strict: unknown keys are errors).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// Default listen address
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default body limit: Droid's bodies are tens of KB and grow with the conversation
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default deadline for one decision
pub const DEFAULT_DECISION_TIMEOUT_MS: u64 = 500;
/// Default number of calls to the resolver open at once
pub const DEFAULT_RESOLVER_CALLS_IN_FLIGHT: usize = 4;
/// Default upstream timeout (a long generation streams for minutes)
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 600;
/// Default time a client has to send a request's headers, and again its body
pub const DEFAULT_CLIENT_TIMEOUT_SECS: u64 = 60;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_resolver() -> String {
    "http://127.0.0.1:50051".to_string()
}
fn default_service_token_env() -> String {
    "STRATA_SERVICE_TOKEN".to_string()
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_decision_timeout() -> u64 {
    DEFAULT_DECISION_TIMEOUT_MS
}
fn default_upstream_timeout() -> u64 {
    DEFAULT_UPSTREAM_TIMEOUT_SECS
}
fn default_client_timeout() -> u64 {
    DEFAULT_CLIENT_TIMEOUT_SECS
}
fn default_resolver_calls_in_flight() -> usize {
    DEFAULT_RESOLVER_CALLS_IN_FLIGHT
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// where the gateway listens
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// the base URL clients use to reach this gateway; decisions match the org's gateway
    /// requirement (`policy.json` `gateway.requiredBaseUrls`) against it
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// the resolver's gRPC URL
    #[serde(default = "default_resolver")]
    pub resolver: String,
    /// the environment variable holding the service token for the resolver
    #[serde(default = "default_service_token_env")]
    pub service_token_env: String,
    /// or a file holding it
    #[serde(default)]
    pub service_token_file: Option<String>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_decision_timeout")]
    pub decision_timeout_ms: u64,
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_secs: u64,
    /// the time a client has to send a request's headers, and again its body; a client that
    /// trickles (slowloris) is cut off then
    #[serde(default = "default_client_timeout")]
    pub client_timeout_secs: u64,
    /// calls to the resolver open at once; while all are busy, waiting decisions share the next
    /// call (one BatchDecide)
    #[serde(default = "default_resolver_calls_in_flight")]
    pub resolver_calls_in_flight: usize,
    /// by provider: `anthropic`, `openai`, `generic-chat-completion-api`
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// where the per-request audit log goes; absent: no audit (a warning at start)
    #[serde(default)]
    pub audit: Option<AuditConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// directory of the daily `audit-YYYY-MM-DD.jsonl` files
    pub dir: String,
    /// days of files kept
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

fn default_retention() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// e.g. `https://api.anthropic.com` (the gateway appends `/v1/messages`)
    pub base_url: String,
    /// the environment variable holding the org's provider key (central key mode)
    #[serde(default)]
    pub key_env: Option<String>,
    /// or a file holding it
    #[serde(default)]
    pub key_file: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

const PROVIDERS: [&str; 3] = ["anthropic", "openai", "generic-chat-completion-api"];

impl GatewayConfig {
    pub fn parse(file: &str, text: &str) -> Result<GatewayConfig, ConfigError> {
        let cfg: GatewayConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| crate::config::line_col(text, s.start))
                .map(|(l, c)| format!("{l}:{c}: "))
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.to_string(),
                message: format!("{at}{}", e.message()),
            }
        })?;
        for name in cfg.upstreams.keys() {
            if !PROVIDERS.contains(&name.as_str()) {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    message: format!(
                        "upstreams.{name}: invalid provider `{name}`: expected one of `anthropic`, `openai`, `generic-chat-completion-api`"
                    ),
                });
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: file.clone(),
            error,
        })?;
        Self::parse(&file, &text)
    }
}

/// Read a secret from an environment variable or a file (trailing newline dropped)
pub fn secret(env: Option<&str>, file: Option<&str>) -> Result<Option<String>, String> {
    if let Some(f) = file {
        return std::fs::read_to_string(f)
            .map(|s| Some(s.trim_end().to_string()))
            .map_err(|e| format!("cannot read `{f}`: {e}"));
    }
    Ok(env
        .and_then(|v| std::env::var(v).ok())
        .filter(|s| !s.is_empty()))
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys_and_providers() {
        let ok = GatewayConfig::parse("g.toml", "listen = \"127.0.0.1:0\"\n[upstreams.anthropic]\nbase_url = \"http://x\"\nkey_env = \"K\"\n").unwrap();
        assert_eq!(ok.upstreams["anthropic"].base_url, "http://x");
        assert_eq!(ok.decision_timeout_ms, DEFAULT_DECISION_TIMEOUT_MS);
        let e = GatewayConfig::parse("g.toml", "listen = \"127.0.0.1:0\"\nlisen = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("g.toml: 2:1: unknown field `lisen`"), "{e}");
        let e = GatewayConfig::parse("g.toml", "[upstreams.azure]\nbase_url = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid provider `azure`"), "{e}");
    }
}
