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
/// Default bound on client connections open at once
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time between two fetches of the upstreams' model catalogues
pub const DEFAULT_MODEL_CATALOG_REFRESH_SECS: u64 = 600;

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
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_resolver_calls_in_flight() -> usize {
    DEFAULT_RESOLVER_CALLS_IN_FLIGHT
}
fn default_model_catalog_refresh() -> u64 {
    DEFAULT_MODEL_CATALOG_REFRESH_SECS
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
    /// the resolver's gRPC URL (one resolver; see [`GatewayConfig::resolver_urls`])
    #[serde(default = "default_resolver")]
    pub resolver: String,
    /// several resolvers' gRPC URLs: decisions are balanced over those that answer their health
    /// check, and refused (fail closed) only when none does. Instead of `resolver`, not with it.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// for `https://` resolvers: a PEM file of the CA certificates that sign their certificates;
    /// without it, the system's roots
    #[serde(default)]
    pub resolver_ca_file: Option<String>,
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
    /// a PEM file of CA certificates trusted for upstream TLS besides the system's (an upstream
    /// behind a private CA)
    #[serde(default)]
    pub upstream_ca_file: Option<String>,
    /// the time a client has to send a request's headers, and again its body; a client that
    /// trickles (slowloris) is cut off then
    #[serde(default = "default_client_timeout")]
    pub client_timeout_secs: u64,
    /// client connections open at once; past it, new ones wait in the listen backlog until one
    /// closes (keep it under the process's open-file limit, `ulimit -n`)
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// calls to the resolver open at once; while all are busy, waiting decisions share the next
    /// call (one BatchDecide)
    #[serde(default = "default_resolver_calls_in_flight")]
    pub resolver_calls_in_flight: usize,
    /// seconds between two fetches of each upstream's model catalogue (`GET /v1/models` with its
    /// central key), at start and then this often: the ids the policy allows are listed by
    /// `/v1/models` and `/strata/v1/droid-settings`; 0: never fetched (only models the bundle
    /// names are listed)
    #[serde(default = "default_model_catalog_refresh")]
    pub model_catalog_refresh_secs: u64,
    /// by provider: `anthropic`, `openai`, `generic-chat-completion-api`
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// where the per-request audit log goes; absent: no audit (a warning at start)
    #[serde(default)]
    pub audit: Option<AuditConfig>,
}

/// Where audit records go: daily JSON-lines files in `dir`, or a PostgreSQL database (`store`,
/// or the environment variable named by `store_env`); exactly one of the three
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// directory of the daily `audit-YYYY-MM-DD.jsonl` files
    #[serde(default)]
    pub dir: Option<String>,
    /// a PostgreSQL URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`: records go to the table
    /// `strata_audit` there
    #[serde(default)]
    pub store: Option<String>,
    /// or the environment variable holding that URL (keeps a password out of the file)
    #[serde(default)]
    pub store_env: Option<String>,
    /// days of records kept (files, or rows)
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// records waiting for the writer at most; past it, records are dropped and counted
    #[serde(default = "default_audit_queue")]
    pub queue: usize,
}

/// Where [`AuditConfig`] sends records, once validated
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Dir(String),
    /// the PostgreSQL URL (may hold a password: never log it)
    Postgres(String),
}

impl AuditConfig {
    /// The one target the section names; `Err` says what is wrong with it
    pub fn target(&self) -> Result<AuditTarget, String> {
        match (&self.dir, &self.store, &self.store_env) {
            (Some(d), None, None) => Ok(AuditTarget::Dir(d.clone())),
            (None, Some(u), None) => Ok(AuditTarget::Postgres(u.clone())),
            (None, None, Some(v)) => std::env::var(v)
                .ok()
                .filter(|u| !u.is_empty())
                .map(AuditTarget::Postgres)
                .ok_or_else(|| format!("audit.store_env: ${v} is not set")),
            (None, None, None) => Err("audit: set `dir`, `store` or `store_env`".to_string()),
            _ => Err("audit: set only one of `dir`, `store` and `store_env`".to_string()),
        }
    }
}

fn default_retention() -> u32 {
    60
}
fn default_audit_queue() -> usize {
    crate::audit::QUEUE
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
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_string(),
            message,
        };
        if !cfg.resolvers.is_empty() {
            // `resolver` has a default, so whether it was written needs the raw table
            let written = text
                .parse::<toml::Table>()
                .is_ok_and(|t| t.contains_key("resolver"));
            if written {
                return Err(invalid(
                    "set `resolver` (one) or `resolvers` (several), not both".to_string(),
                ));
            }
        }
        if let Some(a) = &cfg.audit {
            if a.dir.is_some() as u8 + a.store.is_some() as u8 + a.store_env.is_some() as u8 != 1 {
                return Err(invalid(
                    "audit: set exactly one of `dir`, `store` and `store_env`".to_string(),
                ));
            }
            if let Some(u) = &a.store
                && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
            {
                return Err(invalid(
                    "audit.store: expected a PostgreSQL URL, postgres://USER@HOST[:PORT]/DB"
                        .to_string(),
                ));
            }
            if a.queue == 0 {
                return Err(invalid("audit.queue: must be at least 1".to_string()));
            }
        }
        if cfg.max_connections == 0 {
            return Err(invalid("max_connections: must be at least 1".to_string()));
        }
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

    /// The resolvers' URLs: `resolvers`, or else the one `resolver`
    pub fn resolver_urls(&self) -> Vec<String> {
        if self.resolvers.is_empty() {
            vec![self.resolver.clone()]
        } else {
            self.resolvers.clone()
        }
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

    #[test]
    fn max_connections_defaults_and_must_be_positive() {
        let cfg = GatewayConfig::parse("g.toml", "").unwrap();
        assert_eq!(cfg.max_connections, DEFAULT_MAX_CONNECTIONS);
        let cfg = GatewayConfig::parse("g.toml", "max_connections = 64").unwrap();
        assert_eq!(cfg.max_connections, 64);
        let e = GatewayConfig::parse("g.toml", "max_connections = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("g.toml") && e.contains("max_connections"), "{e}");
    }

    #[test]
    fn model_catalogs_refresh_every_ten_minutes_unless_told() {
        let cfg = GatewayConfig::parse("g.toml", "").unwrap();
        assert_eq!(cfg.model_catalog_refresh_secs, 600);
        let cfg = GatewayConfig::parse("g.toml", "model_catalog_refresh_secs = 0").unwrap();
        assert_eq!(cfg.model_catalog_refresh_secs, 0);
    }

    #[test]
    fn one_resolver_or_several() {
        let one = GatewayConfig::parse("g.toml", "resolver = \"http://a:1\"\n").unwrap();
        assert_eq!(one.resolver_urls(), ["http://a:1"]);
        let default = GatewayConfig::parse("g.toml", "").unwrap();
        assert_eq!(default.resolver_urls(), ["http://127.0.0.1:50051"]);
        let two = GatewayConfig::parse("g.toml", "resolvers = [\"http://a:1\", \"http://b:2\"]\n")
            .unwrap();
        assert_eq!(two.resolver_urls(), ["http://a:1", "http://b:2"]);
        let e = GatewayConfig::parse(
            "g.toml",
            "resolver = \"http://a:1\"\nresolvers = [\"http://b:2\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn audit_goes_to_a_directory_or_to_postgres() {
        let t = |text: &str| {
            GatewayConfig::parse("g.toml", text).map(|c| c.audit.map(|a| a.target().unwrap()))
        };
        assert_eq!(
            t("[audit]\ndir = \"/x\"\n").unwrap(),
            Some(AuditTarget::Dir("/x".into()))
        );
        assert_eq!(
            t("[audit]\nstore = \"postgres://u@h/db\"\nqueue = 10\n").unwrap(),
            Some(AuditTarget::Postgres("postgres://u@h/db".into()))
        );
        for (bad, says) in [
            ("[audit]\nretention_days = 3\n", "exactly one"),
            (
                "[audit]\ndir = \"/x\"\nstore = \"postgres://u@h/db\"\n",
                "exactly one",
            ),
            ("[audit]\nstore = \"mysql://u@h/db\"\n", "PostgreSQL URL"),
            ("[audit]\ndir = \"/x\"\nqueue = 0\n", "at least 1"),
        ] {
            let e = t(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
