//! The part of Factory's API Droid needs from the server at `FACTORY_API_BASE_URL` to load its
//! org level from Strata (`docs/droid-observed.md`, "(c)"):
//!
//! - `GET /api/cli/whoami`: who the bearer (a gateway token, Droid's `FACTORY_API_KEY`) is. An
//!   answer lets Droid cache the org level on disk and keep enforcing it from there when this
//!   server is briefly unreachable;
//! - `GET /api/organization/managed-settings`: `{"success": true, "settings": …, "revision": N}`,
//!   the org level rendered for that person by the resolver (without a bearer: for nobody in
//!   particular, the org scope);
//! - `GET /strata/v1/droid/org-settings`: the bare document, for `FACTORY_ORG_MANAGED_SETTINGS_URL`
//!   (Droid sends no credentials there: `?user=&groups=a,b&projects=p` say whom it is for);
//! - `POST /api/llm/custom/usage`: token usage Droid reports for calls it made straight to a
//!   provider, recorded in the audit beside gateway traffic, marked client-reported.
//!
//! Every other `/api/` path answers 404, which Droid takes as "not offered".

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use strata_proto::v1;
use strata_proto::v1::droid_org_settings_request::Identity;

use super::authenticate::{caller, unexpanded};
use crate::audit::{self, Record, Usage};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Droid's `orgId` for every person of this deployment: constant, so that Droid's on-disk cache
/// of the org level (kept while whoami answers the same ids) survives new revisions
pub const ORG_ID: &str = "strata";

/// The most bytes of a usage report read
const MAX_USAGE_BODY: usize = 64 * 1024;

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Factory's API shape for a failure: `{"success": false, "errors": [{path, message}]}`
fn failure(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({"success": false, "errors": [{"path": "", "message": message}]});
    json(status, body.to_string())
}

fn refusal(e: &GatewayError) -> Response<Body> {
    let (status, _) = e.status();
    failure(status, &e.to_string())
}

/// The bearer as a gateway token; `None` without one, an error for one Droid sent unexpanded
fn bearer(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    let Some(c) = caller(headers) else {
        return Ok(None);
    };
    if let Some(var) = unexpanded(&c.token) {
        return Err(GatewayError::UnexpandedApiKey {
            var: var.to_string(),
        });
    }
    Ok(Some(c.token))
}

/// The document for `identity`, from the resolver (which renders it once per revision and
/// person)
async fn fetch(
    gw: &Gateway,
    identity: Identity,
    projects: Vec<String>,
) -> Result<v1::DroidOrgSettingsResponse, GatewayError> {
    let req = v1::DroidOrgSettingsRequest {
        identity: Some(identity),
        gateway_url: gw.public_base_url.clone(),
        projects,
    };
    let mut client = gw.policy.clone();
    let deadline = Duration::from_millis(gw.cfg.decision_timeout_ms.max(1000));
    match tokio::time::timeout(deadline, client.droid_org_settings(gw.grpc(req))).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => Err(GatewayError::InvalidApiKey),
        Ok(Err(s)) => Err(GatewayError::PolicyUnavailable(s.message().to_string())),
        Err(_) => Err(GatewayError::PolicyUnavailable(
            "no answer in time".to_string(),
        )),
    }
}

/// Whom a request is about: its bearer's token, or nobody in particular
fn identity_of(token: Option<String>) -> Identity {
    match token {
        Some(t) => Identity::Token(t),
        None => Identity::Principal(v1::Principal::default()),
    }
}

/// `GET /api/cli/whoami`
pub async fn whoami(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    let token = match bearer(&headers) {
        Ok(Some(t)) => t,
        Ok(None) => return refusal(&GatewayError::MissingApiKey),
        Err(e) => return refusal(&e),
    };
    let hash = crate::org_fetches::token_hash(&token);
    let user = match fetch(&gw, Identity::Token(token), Vec::new()).await {
        Ok(d) => {
            gw.org_fetches.record_user(hash, &d.user);
            d.user
        }
        // the resolver is away: the person this gateway last saw, so that Droid goes on
        // enforcing the org level it cached (it keeps its cache only while whoami answers the
        // same ids); a token the resolver refused is never remembered
        Err(GatewayError::PolicyUnavailable(why)) => match gw.org_fetches.user(&hash) {
            Some(u) => u,
            None => return refusal(&GatewayError::PolicyUnavailable(why)),
        },
        Err(e) => return refusal(&e),
    };
    json(
        StatusCode::OK,
        serde_json::json!({"userId": user, "orgId": ORG_ID}).to_string(),
    )
}

/// `GET /api/organization/managed-settings`
pub async fn managed_settings(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Response<Body> {
    let token = match bearer(&headers) {
        Ok(t) => t,
        Err(e) => return refusal(&e),
    };
    let hash = token.as_deref().map(crate::org_fetches::token_hash);
    // served before under the active revision: from memory, no call to the resolver
    if let Some((h, body)) = hash.and_then(|h| gw.org_fetches.doc(&h).map(|b| (h, b))) {
        gw.org_fetches.record(h, audit::now().1);
        gw.telemetry.metrics.org_settings_served();
        return json(StatusCode::OK, body.to_string());
    }
    match fetch(&gw, identity_of(token), Vec::new()).await {
        Ok(d) => {
            let body: Arc<str> = format!(
                r#"{{"success":true,"revision":{},"settings":{}}}"#,
                d.droid_revision, d.settings_json
            )
            .into();
            if let Some(h) = hash {
                gw.org_fetches.record(h, audit::now().1);
                gw.org_fetches.record_user(h, &d.user);
                gw.org_fetches.keep_doc(h, &d.revision, body.clone());
            }
            gw.telemetry.metrics.org_settings_served();
            json(StatusCode::OK, body.to_string())
        }
        Err(e) => refusal(&e),
    }
}

/// Whom a plain-URL document is for
#[derive(Debug, Default, Deserialize)]
pub struct PlainQuery {
    #[serde(default)]
    user: String,
    /// comma-separated
    #[serde(default)]
    groups: String,
    /// comma-separated
    #[serde(default)]
    projects: String,
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /strata/v1/droid/org-settings`: the bare document
pub async fn plain(State(gw): State<Arc<Gateway>>, q: Query<PlainQuery>) -> Response<Body> {
    let principal = v1::Principal {
        user: q.user.clone(),
        groups: split(&q.groups),
    };
    match fetch(&gw, Identity::Principal(principal), split(&q.projects)).await {
        Ok(d) => {
            gw.telemetry.metrics.org_settings_served();
            json(StatusCode::OK, d.settings_json)
        }
        Err(e) => e.response(false),
    }
}

/// A usage report, as Droid 0.225.2 sends it
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageReport {
    model: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    usage: ReportedTokens,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportedTokens {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

/// `POST /api/llm/custom/usage`: one audit record, `decision: "client-reported"`
pub async fn usage(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let token = match bearer(&headers) {
        Ok(Some(t)) => t,
        Ok(None) => return refusal(&GatewayError::MissingApiKey),
        Err(e) => return refusal(&e),
    };
    if body.len() > MAX_USAGE_BODY {
        return failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the usage report is too large",
        );
    }
    let report: UsageReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("invalid usage report: {e}"),
            );
        }
    };
    let who = match fetch(&gw, Identity::Token(token.clone()), Vec::new()).await {
        Ok(d) => d,
        Err(e) => return refusal(&e),
    };
    let (time, unix_ms, _) = audit::now();
    let t = &report.usage;
    let record = Record {
        time,
        unix_ms,
        user: who.user,
        client: super::header_text(&headers, &axum::http::header::USER_AGENT)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        api: "client_usage".to_string(),
        provider: report.base_url.chars().take(300).collect(),
        model: report.model.chars().take(300).collect(),
        key_mode: "byok".to_string(),
        key_hint: audit::key_hint(&token),
        decision: "client-reported".to_string(),
        revision: who.revision,
        usage: Some(Usage {
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_write_tokens: t.cache_creation_input_tokens,
            cache_read_tokens: t.cache_read_input_tokens,
        }),
        ..Default::default()
    };
    gw.telemetry.begin(record).end(200);
    json(StatusCode::OK, r#"{"success":true}"#.to_string())
}

/// Any other path under `/api/`: not offered
pub async fn not_offered() -> Response<Body> {
    failure(StatusCode::NOT_FOUND, "not offered by this Strata gateway")
}
