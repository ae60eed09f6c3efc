//! [`Gateway`]: everything a request needs, built once at start from the configuration: the
//! channel to the resolvers, the decider, the upstream client with each provider's base URL and
//! central key, and the telemetry (metrics and audit log).

// foldhash: looked up twice per request, by provider
use hashbrown::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use strata_proto::v1::policy_service_client::PolicyServiceClient;
use tonic::transport::Channel;

use crate::catalogue::Catalogues;
use crate::config::{AuditTarget, GatewayConfig, secret};
use crate::decider::Decider;
use crate::error::StartError;
use crate::model_upstream::ModelUpstreams;
use crate::telemetry::Telemetry;
use crate::upstream::{Base, Upstream};

/// Everything a request needs, built once at start
pub struct Gateway {
    pub cfg: GatewayConfig,
    pub policy: PolicyServiceClient<Channel>,
    pub channel: Channel,
    service_auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    pub(crate) http: Upstream,
    /// provider → the header carrying the org's key (central mode), marked sensitive; never logged
    pub(crate) keys: Keys,
    /// provider → its upstream base URL, parsed once
    pub(crate) bases: HashMap<String, Base>,
    pub(crate) public_base_url: String,
    /// the upstreams and keys org `customModels` entries name, worked out once each
    pub(crate) models: ModelUpstreams,
    /// the upstreams' own model catalogues, read in the background
    pub catalogues: Catalogues,
    /// metrics and the audit log
    pub telemetry: Arc<Telemetry>,
    /// every request's decision, batched under load
    pub(crate) decider: Decider,
    /// when each token last loaded Droid's org document from this gateway
    pub(crate) org_fetches: crate::org_fetches::OrgFetches,
}

impl Gateway {
    pub fn new(cfg: GatewayConfig) -> Result<Gateway, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let channel = crate::balance::resolver_channel(
            &cfg.resolver_urls(),
            cfg.resolver_ca_file.as_deref().map(Path::new),
        )?;
        let token = secret(
            Some(&cfg.service_token_env),
            cfg.service_token_file.as_deref(),
        )
        .map_err(StartError::Secret)?
        .ok_or_else(|| StartError::NoServiceToken(cfg.service_token_env.clone()))?;
        let service_auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {token}").parse().map_err(|_| {
                StartError::Secret(
                    "the service token holds characters that cannot go in a header".to_string(),
                )
            })?;
        let (keys, bases) = upstreams(&cfg)?;
        let http = Upstream::new(
            Duration::from_secs(10),
            Duration::from_secs(cfg.upstream_timeout_secs),
            cfg.upstream_ca_file.as_deref().map(Path::new),
        )
        .map_err(StartError::Http)?;
        let public_base_url = cfg
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cfg.listen));
        let telemetry = telemetry(&cfg)?;
        let policy = PolicyServiceClient::new(channel.clone());
        Ok(Gateway {
            decider: Decider::start(
                policy.clone(),
                service_auth.clone(),
                Duration::from_millis(cfg.decision_timeout_ms),
                cfg.resolver_calls_in_flight,
                Arc::clone(&telemetry),
            ),
            telemetry,
            policy,
            channel,
            service_auth,
            http,
            keys,
            bases,
            models: ModelUpstreams::new(&public_base_url),
            org_fetches: Default::default(),
            catalogues: Catalogues::default(),
            public_base_url,
            cfg,
        })
    }

    /// Take every request's decision from a resolver in this process (`policy up`), without a
    /// network round-trip; `/v1/models` and `/readyz` still use the gRPC channel
    pub fn with_local_resolver(mut self, local: Arc<dyn crate::decider::LocalPolicy>) -> Gateway {
        self.decider = self.decider.in_process(local);
        self
    }

    /// A request to the resolver, with the decision deadline and the service token
    pub(crate) fn grpc<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(Duration::from_millis(self.cfg.decision_timeout_ms));
        r.metadata_mut()
            .insert("authorization", self.service_auth.clone());
        r
    }

    /// A request to the resolver that opens a stream (`Watch`): the service token, no deadline
    pub(crate) fn grpc_stream<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", self.service_auth.clone());
        r
    }
}

/// provider → the header carrying the org's key (central mode)
type Keys = HashMap<String, (HeaderName, HeaderValue)>;

/// Each provider's central key (as the header it goes in, marked sensitive) and base URL
fn upstreams(cfg: &GatewayConfig) -> Result<(Keys, HashMap<String, Base>), StartError> {
    let mut keys = HashMap::new();
    let mut bases = HashMap::new();
    for (provider, up) in &cfg.upstreams {
        if let Some(k) =
            secret(up.key_env.as_deref(), up.key_file.as_deref()).map_err(StartError::Secret)?
        {
            let (name, value) = if provider == "anthropic" {
                (header::HeaderName::from_static("x-api-key"), k)
            } else {
                (header::AUTHORIZATION, format!("Bearer {k}"))
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                StartError::Secret(format!(
                    "the central key for `{provider}` holds characters that cannot go in a header"
                ))
            })?;
            value.set_sensitive(true);
            keys.insert(provider.clone(), (name, value));
        }
        // the API's own path goes after the base, whatever prefix the client used
        let base = Base::parse(&up.base_url)
            .map_err(|e| StartError::UpstreamUrl(provider.clone(), up.base_url.clone(), e))?;
        bases.insert(provider.clone(), base);
    }
    Ok((keys, bases))
}

/// The metrics, and the audit log the configuration names (files or PostgreSQL), if any
fn telemetry(cfg: &GatewayConfig) -> Result<Arc<Telemetry>, StartError> {
    let telemetry = match &cfg.audit {
        Some(a) => match a.target().map_err(StartError::Secret)? {
            AuditTarget::Dir(dir) => {
                Telemetry::with_audit_dir(PathBuf::from(&dir), a.retention_days, a.queue)
                    .map_err(|e| StartError::Audit(dir, e.to_string()))?
            }
            AuditTarget::Postgres(url) => Telemetry::with_postgres(&url, a.retention_days, a.queue)
                .map_err(StartError::AuditStore)?,
        },
        None => {
            tracing::warn!("no [audit] section: requests are not audited");
            Telemetry::without_audit()
        }
    };
    Ok(Arc::new(telemetry))
}

/// The upstreams' model catalogues, read in the background
impl Gateway {
    /// Read every configured upstream's catalogue at start, then every
    /// `model_catalog_refresh_secs` (never when it is 0)
    pub async fn follow_catalogues(self: Arc<Self>) {
        let gw = self;
        let every = gw.cfg.model_catalog_refresh_secs;
        if every == 0 {
            return;
        }
        loop {
            gw.read_catalogues().await;
            tokio::time::sleep(Duration::from_secs(every)).await;
        }
    }

    /// Read each configured upstream's catalogue once, with its central key (an upstream without
    /// one is not asked)
    pub async fn read_catalogues(&self) {
        let gw = self;
        let reads = gw.bases.iter().filter_map(|(provider, base)| {
            let key = gw.keys.get(provider)?;
            Some(async move {
                let read = tokio::time::timeout(
                    crate::catalogue::TIMEOUT,
                    crate::catalogue::fetch(&gw.http, provider, base, key),
                )
                .await;
                (
                    provider,
                    read.unwrap_or(Err(crate::error::CatalogueError::Timeout(
                        crate::catalogue::TIMEOUT,
                    ))),
                )
            })
        });
        for (provider, read) in futures::future::join_all(reads).await {
            crate::catalogue::note(&gw.catalogues, provider, read);
        }
    }
}
