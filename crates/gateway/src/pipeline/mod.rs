//! The request path, as a pipeline of small stages:
//!
//! 1. [`authenticate`](authenticate::authenticate): which gateway token, central key or BYOK;
//! 2. [`read_model`](read_model::read_model): read the body (bounded in size and time) and peek
//!    at the model, stream flag and MCP servers;
//! 3. [`decide`](decide::decide): ask the resolver, with a deadline (fail closed), and
//!    [`enforce`](decide::enforce) its answer;
//! 4. [`route`](route::route): which upstream, at which URI, with which headers and key;
//! 5. [`forward`](forward::forward): send the original bytes;
//! 6. [`account`](account::account): relay the answer chunk by chunk, reading its token usage
//!    into the request's audit record, which ends when the body does.
//!
//! Each stage returns a [`GatewayError`] to refuse; [`handle`] turns it into the response once,
//! notes it in the audit record, and ends the record. `GET /v1/models` and
//! `/strata/v1/droid-settings` leave the pipeline after authentication for [`settings`].

pub mod account;
pub mod authenticate;
pub mod decide;
pub mod factory_api;
pub mod forward;
pub mod read_model;
pub mod route;
pub mod settings;

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, header};
use strata_proto::v1;

use crate::api::{Api, classify, looks_anthropic, model_id};
use crate::audit::{self, Pending, Record};
use crate::error::{GatewayError, Source};
use crate::gateway::Gateway;

pub use authenticate::GOVERNANCE_HEADERS;

/// Optional request headers naming the project and folder the request is made in
pub const PROJECT_HEADER: &str = "x-strata-project";
pub const FOLDER_HEADER: &str = "x-strata-folder";

// the same names, parsed once (a lookup by `&str` parses the name on every call)
static PROJECT: HeaderName = HeaderName::from_static(PROJECT_HEADER);
static FOLDER: HeaderName = HeaderName::from_static(FOLDER_HEADER);

/// A header's value, trimmed; `None` when absent, empty or not visible ASCII
fn header_text<'h>(h: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// What the handler learns about a request as the stages go, for the response it writes itself
#[derive(Default)]
struct Exchange {
    /// refusals in Anthropic's shape rather than OpenAI's
    anthropic: bool,
    /// the body was read to its end
    body_read: bool,
    /// the decision's id and revision, once there is one
    decided: Option<(String, String)>,
}

/// The handler for every path: one audit record per request, whatever happens to it
pub async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response<Body> {
    let (time, unix_ms, _) = audit::now();
    let h = req.headers();
    let mut pending = gw.telemetry.begin(Record {
        time,
        unix_ms,
        project: header_text(h, &PROJECT).unwrap_or_default().to_string(),
        client: header_text(h, &header::USER_AGENT)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        ..Default::default()
    });
    let unread = !req.body().is_end_stream();
    let mut ex = Exchange {
        anthropic: looks_anthropic(req.uri().path()),
        ..Exchange::default()
    };
    let mut resp = match proxy(&gw, req, &mut pending, &mut ex).await {
        Ok(r) => r,
        Err(e) => refuse(&mut pending, &ex, e),
    };
    if unread && !ex.body_read {
        // hyper will not reuse a connection whose request body was left unread and closes it
        // after this answer, but may write the head without saying so; a pooling client (httpx
        // in the official SDKs) then sends its next request on a closing connection, which fails
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // a response with a streamed body took the record with it; this ends only the others
    pending.end(resp.status().as_u16());
    resp
}

/// The request's way through the stages
async fn proxy(
    gw: &Gateway,
    mut req: Request,
    pending: &mut Pending,
    ex: &mut Exchange,
) -> Result<Response<Body>, GatewayError> {
    let api = api(&req, pending, ex)?;
    if crate::api::is_factory_route(req.uri().path()) {
        // Droid's built-in models: the gateway token is the bearer (`FACTORY_API_KEY`), the
        // `x-api-key` it sends beside it a placeholder
        req.headers_mut().remove("x-api-key");
    }
    let caller = authenticate::authenticate(req.headers(), pending)?;
    if api == Api::Models {
        let id = model_id(req.uri().path());
        return settings::models(gw, &caller, req.headers(), ex.anthropic, id, pending).await;
    }
    let (parts, body) = req.into_parts();
    let (bytes, peeked) =
        read_model::read_model(gw, &parts.headers, body, pending, &mut ex.body_read).await?;
    let limits = peeked.limits;
    let model = peeked.model.clone();
    let decision = decide::decide(gw, api, &caller, &parts.headers, peeked, pending).await?;
    ex.decided = Some((decision.decision_id.clone(), decision.revision.clone()));
    decide::enforce(&decision)?;
    decide::cap(&decision, api, limits, &model)?;
    decide::org_level(gw, &caller, &decision, pending)?;
    let outgoing = route::route(gw, api, &caller, &parts, &decision, &model)?;
    let upstream = forward::forward(gw, api.provider(), outgoing, bytes, pending).await?;
    account::account(upstream, &decision, pending)
}

/// The API a request's path names, and whether it came with the method that API takes
fn api(req: &Request, pending: &mut Pending, ex: &mut Exchange) -> Result<Api, GatewayError> {
    let path = req.uri().path();
    let api = classify(path).ok_or_else(|| GatewayError::NoSuchEndpoint {
        method: req.method().clone(),
        path: path.to_string(),
    })?;
    pending.set(|r| {
        r.api = api.label().to_string();
        r.provider = api.provider().to_string();
    });
    ex.anthropic = api.anthropic_shaped()
        || (api == Api::Models && req.headers().contains_key("anthropic-version"));
    let expected = if api == Api::Models {
        Method::GET
    } else {
        Method::POST
    };
    if req.method() != expected {
        return Err(GatewayError::MethodNotAllowed {
            path: api.upstream_path(),
            expected,
        });
    }
    Ok(api)
}

/// The response to a refused request, noted in its audit record; a refusal about the decision or
/// the upstream carries the decision's id and revision
fn refuse(pending: &mut Pending, ex: &Exchange, e: GatewayError) -> Response<Body> {
    pending.set(|r| {
        r.error = Some(e.code().to_string());
        if r.decision.is_empty() {
            r.decision = e.undecided().to_string();
        }
    });
    let mut resp = e.response(ex.anthropic);
    if let Some((id, revision)) = &ex.decided
        && matches!(e.status().1, Source::Policy | Source::Upstream)
    {
        stamp(resp.headers_mut(), id, revision);
    }
    resp
}

/// The decision's id and revision, in the response's headers
fn stamp(h: &mut HeaderMap, decision_id: &str, revision: &str) {
    if let Ok(v) = HeaderValue::from_str(decision_id) {
        h.insert("x-strata-decision-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(revision) {
        h.insert("x-strata-revision", v);
    }
}

/// Whether the decision allows the request
fn allowed(d: &v1::DecideResponse) -> bool {
    d.effect == v1::Effect::Allow as i32
}
