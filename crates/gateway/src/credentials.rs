//! Per-model keys the gateway lacks, said before a request needs them: at start and whenever a
//! new revision becomes active (the resolver's `Watch` stream), the org's `customModels` entries
//! whose key is a `${VAR}` of the gateway's environment (on an upstream of their own, where the
//! gateway sends it) are checked; one warning per model whose variable is unset, naming the model
//! and the variable (never a value), and the gauge `strata_gateway_missing_credentials`.
//!
//! The entries come from `ResolveSettings` for the org's scope (each view carries the variable a
//! decision would name, `ModelView.credential_env`): only org entries choose a key, so no other
//! scope can add one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_proto::v1;
use strata_transport::Backoff;

use crate::gateway::Gateway;
use crate::model_upstream::Target;

/// Who the org-scope listing is asked for (any name does: both lists are read)
const PRINCIPAL: &str = "strata-gateway";

/// Follow the active revision for as long as the gateway runs, watching again with backoff
pub async fn watch(gw: Arc<Gateway>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut checked: Option<String> = None;
    loop {
        let started = Instant::now();
        if let Err(e) = follow(&gw, &mut checked).await {
            tracing::debug!(error = %e.message(), "the resolver's revision stream ended");
        }
        // not knowing the active revision, the gateway keeps no org document in memory
        gw.org_fetches.set_revision(None);
        tokio::time::sleep(backoff.wait_after(started.elapsed())).await;
    }
}

/// Check each revision the stream announces (once each: a new stream repeats the active one)
async fn follow(gw: &Gateway, checked: &mut Option<String>) -> Result<(), tonic::Status> {
    let mut client = gw.policy.clone();
    let mut stream = client
        .watch(gw.grpc_stream(v1::WatchRequest {}))
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        gw.org_fetches.set_revision(Some(&event.revision));
        if checked.as_deref() == Some(event.revision.as_str()) {
            continue;
        }
        check(gw, &event.revision).await?;
        *checked = Some(event.revision);
    }
    Ok(())
}

/// Warn about every org model of `revision` whose key variable is unset, and set the gauge
async fn check(gw: &Gateway, revision: &str) -> Result<(), tonic::Status> {
    let req = v1::ResolveSettingsRequest {
        identity: Some(v1::resolve_settings_request::Identity::Principal(
            v1::Principal {
                user: PRINCIPAL.to_string(),
                groups: Vec::new(),
            },
        )),
        base_url: gw.public_base_url.clone(),
        ..Default::default()
    };
    let settings = gw
        .policy
        .clone()
        .resolve_settings(gw.grpc(req))
        .await?
        .into_inner();
    let views = settings.models.iter().chain(&settings.hidden_models);
    let missing = missing(
        views,
        |url, anthropic| gw.models.target(url, anthropic),
        is_set,
    );
    gw.telemetry.metrics.set_missing_credentials(missing.len());
    for (model, variable) in &missing {
        tracing::warn!(
            model,
            variable,
            revision,
            "the customModels entry for `{model}` takes its key from ${variable}, which is not set in the gateway's environment: its requests will be refused with 503 missing_credential"
        );
    }
    Ok(())
}

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// The (model, variable) of each view whose key the gateway would read from an unset variable:
/// a `credential_env` on a base URL that is an upstream of its own (an entry pointing at this
/// gateway uses the configured upstream and its key); each model once
fn missing<'v>(
    views: impl Iterator<Item = &'v v1::ModelView>,
    target: impl Fn(&str, bool) -> Target,
    set: impl Fn(&str) -> bool,
) -> Vec<(&'v str, &'v str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for m in views {
        let own = !m.base_url.is_empty()
            && matches!(
                target(&m.base_url, m.provider == "anthropic"),
                Target::Upstream(_)
            );
        let pair = (m.model.as_str(), m.credential_env.as_str());
        if own && !m.credential_env.is_empty() && !set(&m.credential_env) && !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_upstream::ModelUpstreams;

    #[test]
    fn only_unset_variables_of_entries_on_their_own_upstream_are_missing() {
        let view = |model: &str, url: &str, var: &str| v1::ModelView {
            model: model.into(),
            base_url: url.into(),
            provider: "openai".into(),
            credential_env: var.into(),
            ..Default::default()
        };
        let views = [
            view("own-unset", "https://llm.acme.internal/v1", "NOT_SET_1"),
            view("own-set", "https://llm.acme.internal/v1", "IS_SET"),
            view("via-gateway", "http://127.0.0.1:8787/v1", "NOT_SET_2"),
            view("no-key", "https://llm.acme.internal/v1", ""),
            view("own-unset", "https://llm.acme.internal/v1", "NOT_SET_1"),
        ];
        let m = ModelUpstreams::new("http://127.0.0.1:8787");
        let found = missing(views.iter(), |u, a| m.target(u, a), |v| v == "IS_SET");
        assert_eq!(found, [("own-unset", "NOT_SET_1")]);
    }
}
