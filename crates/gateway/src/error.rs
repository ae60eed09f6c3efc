//! The gateway's errors, and the one place they become responses.
//!
//! Every refusal the gateway writes itself is a [`GatewayError`]; [`GatewayError::response`]
//! turns it into the HTTP status, the provider-shaped body (Anthropic's
//! `{"type":"error","error":{"type","message","code"}}` or OpenAI's
//! `{"error":{"message","type","code","param"}}`) and the `x-strata-error-source` header, and
//! [`GatewayError::code`] gives its stable code for clients, the audit log and tests. Both are
//! exhaustive matches: a new variant does not compile until it has a status, a code and a source.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Response, StatusCode};
use serde_json::json;

use crate::peek::PeekError;

/// Who an error is about, in the `x-strata-error-source` header
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// the request or its credentials
    Client,
    /// a policy decision
    Policy,
    /// the gateway or the resolver
    Gateway,
    /// the upstream provider
    Upstream,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Client => "client",
            Source::Policy => "policy",
            Source::Gateway => "gateway",
            Source::Upstream => "upstream",
        }
    }
}

/// Why the gateway answered a request itself instead of with the upstream's answer
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no such endpoint: {method} {path}")]
    NoSuchEndpoint { method: Method, path: String },
    #[error("{path} takes {expected}")]
    MethodNotAllowed {
        path: &'static str,
        expected: Method,
    },
    #[error(
        "missing API key: send your Strata gateway token as the API key (x-api-key or Authorization: Bearer)"
    )]
    MissingApiKey,
    #[error("invalid API key: the gateway token is unknown or revoked")]
    InvalidApiKey,
    /// the key is a variable the client did not expand (`${STRATA_TOKEN}` from a committed
    /// settings file, with the variable unset where Droid runs)
    #[error(
        "invalid API key: the key is the unexpanded variable `{var}` (sent as `${{{var}}}`): export {var} with your Strata gateway token in the environment Droid runs in"
    )]
    UnexpandedApiKey { var: String },
    #[error(
        "the gateway reads request bodies as plain JSON; `content-encoding: {0}` is not supported"
    )]
    UnsupportedEncoding(String),
    #[error("the request body is larger than the gateway's limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body ended early or is not valid HTTP framing")]
    IncompleteBody,
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    /// the body is not JSON, or names no (or an overlong) model
    #[error(transparent)]
    Body(#[from] PeekError),
    /// the resolver found the request invalid
    #[error("{0}")]
    InvalidRequest(String),
    #[error(
        "the policy resolver cannot answer, so the gateway refuses the request (fail closed): {0}"
    )]
    PolicyUnavailable(String),
    #[error("Strata policy: {reason} (decision {decision_id})")]
    PolicyDenied { reason: String, decision_id: String },
    /// the body asks for more output tokens than the model's `maxOutputTokens`
    #[error(
        "`{field}` is {asked}, more than the {cap} output tokens allowed for model `{model}` by {rule}: ask for at most {cap}"
    )]
    MaxTokensExceeded {
        field: &'static str,
        asked: u64,
        cap: u64,
        model: String,
        /// the rule that set the cap, with its file and line
        rule: String,
    },
    /// the model's own upstream speaks another API than the request
    #[error(
        "model `{model}` is served by its own upstream as `{provider}`: send it to {path}, not {api_path}"
    )]
    WrongApiForModel {
        model: String,
        provider: String,
        path: &'static str,
        api_path: &'static str,
    },
    #[error(
        "model `{0}` is not one you may use through this gateway (GET /v1/models lists those you may)"
    )]
    ModelNotFound(String),
    #[error("the gateway has no upstream for `{provider}` (configure [upstreams.{provider}])")]
    NoUpstream { provider: &'static str },
    #[error("the request's query string cannot be passed on: {0}")]
    InvalidQuery(String),
    #[error(
        "the gateway has no central key for `{provider}` (configure upstreams.{provider}.key_env)"
    )]
    NoCentralKey { provider: &'static str },
    /// the org's `customModels` entry takes its key from a variable the gateway's environment
    /// lacks; the message names the variable, never a value
    #[error(
        "the gateway has no key for model `{model}`: its upstream's key is read from the environment variable `{var}`, which is not set where the gateway runs"
    )]
    MissingCredential { model: String, var: String },
    #[error(
        "the upstream URL `{url}` of model `{model}` (the org's customModels baseUrl) is not usable: {why}"
    )]
    BadModelUpstream {
        model: String,
        url: String,
        why: String,
    },
    #[error(
        "the upstream `{provider}` did not answer within {secs} s; this is not a problem with your configuration"
    )]
    UpstreamTimeout { provider: &'static str, secs: u64 },
    #[error(
        "the upstream `{provider}` cannot be reached; this is not a problem with your configuration"
    )]
    UpstreamUnreachable { provider: &'static str },
    #[error(
        "the upstream `{provider}` closed the connection or did not answer in HTTP; this is not a problem with your configuration"
    )]
    UpstreamFailed { provider: &'static str },
    #[error("the upstream's response could not be relayed")]
    BadUpstreamResponse,
    #[error(
        "the org requires clients that load its policy from Strata (policy.json droid.requireOrgSettings), and this gateway token never has: run Droid with FACTORY_API_BASE_URL={gateway} and FACTORY_API_KEY set to your gateway token, then start a new session"
    )]
    OrgSettingsNotLoaded { gateway: String },
}

impl GatewayError {
    /// A stable code for clients, the audit log, metrics and tests
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NoSuchEndpoint { .. } => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::MissingApiKey => "missing_api_key",
            GatewayError::InvalidApiKey | GatewayError::UnexpandedApiKey { .. } => {
                "invalid_api_key"
            }
            GatewayError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::IncompleteBody => "incomplete_body",
            GatewayError::BodyTimeout { .. } => "request_timeout",
            GatewayError::Body(PeekError::Json(_)) => "invalid_json",
            GatewayError::Body(PeekError::NoModel) => "missing_model",
            GatewayError::Body(PeekError::ModelTooLong(_)) => "invalid_model",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::PolicyUnavailable(_) => "policy_unavailable",
            GatewayError::PolicyDenied { .. } => "policy_denied",
            GatewayError::MaxTokensExceeded { .. } => "max_tokens_exceeded",
            GatewayError::OrgSettingsNotLoaded { .. } => "org_settings_not_loaded",
            GatewayError::WrongApiForModel { .. } => "wrong_api_for_model",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::NoUpstream { .. } => "no_upstream",
            GatewayError::InvalidQuery(_) => "invalid_query",
            GatewayError::NoCentralKey { .. } => "no_central_key",
            GatewayError::MissingCredential { .. } => "missing_credential",
            GatewayError::BadModelUpstream { .. } => "bad_model_upstream",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::UpstreamUnreachable { .. } => "upstream_unreachable",
            GatewayError::UpstreamFailed { .. } => "upstream_failed",
            GatewayError::BadUpstreamResponse => "bad_upstream_response",
        }
    }

    /// The HTTP status and who the error is about
    pub fn status(&self) -> (StatusCode, Source) {
        use Source::{Client, Gateway, Policy, Upstream};
        match self {
            GatewayError::NoSuchEndpoint { .. } | GatewayError::ModelNotFound(_) => {
                (StatusCode::NOT_FOUND, Client)
            }
            GatewayError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, Client),
            GatewayError::MissingApiKey
            | GatewayError::InvalidApiKey
            | GatewayError::UnexpandedApiKey { .. } => (StatusCode::UNAUTHORIZED, Client),
            GatewayError::UnsupportedEncoding(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Client),
            GatewayError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, Client),
            GatewayError::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, Client),
            GatewayError::IncompleteBody
            | GatewayError::Body(_)
            | GatewayError::InvalidRequest(_)
            | GatewayError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, Client),
            GatewayError::PolicyDenied { .. } | GatewayError::OrgSettingsNotLoaded { .. } => {
                (StatusCode::FORBIDDEN, Policy)
            }
            GatewayError::MaxTokensExceeded { .. } | GatewayError::WrongApiForModel { .. } => {
                (StatusCode::BAD_REQUEST, Policy)
            }
            GatewayError::PolicyUnavailable(_)
            | GatewayError::NoCentralKey { .. }
            | GatewayError::MissingCredential { .. } => (StatusCode::SERVICE_UNAVAILABLE, Gateway),
            GatewayError::NoUpstream { .. } | GatewayError::BadModelUpstream { .. } => {
                (StatusCode::BAD_GATEWAY, Gateway)
            }
            GatewayError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, Upstream),
            GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamFailed { .. }
            | GatewayError::BadUpstreamResponse => (StatusCode::BAD_GATEWAY, Upstream),
        }
    }

    /// The audit record's `decision` for a request refused before a decision was made
    pub fn undecided(&self) -> &'static str {
        match self.status().0 {
            StatusCode::UNAUTHORIZED => "unauthenticated",
            _ if matches!(self, GatewayError::PolicyUnavailable(_)) => "unavailable",
            _ => "invalid",
        }
    }

    /// The response, in the shape of the API the client speaks (`anthropic`, or OpenAI's)
    pub fn response(&self, anthropic: bool) -> Response<Body> {
        let (status, source) = self.status();
        let kind = match status {
            // not busy: misconfigured, and retrying will not help
            _ if matches!(self, GatewayError::MissingCredential { .. }) => "api_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => "overloaded_error",
            StatusCode::BAD_GATEWAY => "api_error",
            s if s.is_client_error() => "invalid_request_error",
            _ => "api_error",
        };
        let (code, message) = (self.code(), self.to_string());
        let body = if anthropic {
            json!({ "type": "error", "error": { "type": kind, "message": message, "code": code } })
        } else {
            json!({ "error": { "message": message, "type": kind, "code": code, "param": null } })
        };
        let mut r = Response::new(Body::from(body.to_string()));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "x-strata-error-source",
            HeaderValue::from_static(source.as_str()),
        );
        r
    }
}

/// Why an upstream's model catalogue could not be read (the last one read is kept)
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("no complete answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Send(crate::upstream::SendError),
    #[error("the upstream answered {0}")]
    Status(u16),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Body(crate::upstream::BodyError),
    #[error("the answer is not a model list: {0}")]
    Json(serde_json::Error),
    #[error("more than {0} model ids")]
    TooMany(usize),
    #[error("cannot build the catalogue's URL: {0}")]
    Url(String),
}

/// Why the gateway cannot start
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("resolver: {0}")]
    Resolver(strata_transport::TransportError),
    #[error("no service token: set ${0} or `service_token_file`")]
    NoServiceToken(String),
    #[error("{0}")]
    Secret(String),
    #[error("invalid base URL `{1}` for upstream `{0}`: {2}")]
    UpstreamUrl(String, String, String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot write the audit log in `{0}`: {1}")]
    Audit(String, String),
    #[error("cannot use the audit database: {0}")]
    AuditStore(crate::audit::pg::AuditStoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_codes() {
        let e = GatewayError::PolicyDenied {
            reason: "blocked".into(),
            decision_id: "d1".into(),
        };
        assert_eq!(e.status(), (StatusCode::FORBIDDEN, Source::Policy));
        assert_eq!(e.code(), "policy_denied");
        assert_eq!(e.to_string(), "Strata policy: blocked (decision d1)");
        let r = e.response(true);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-strata-error-source"], "policy");
        assert_eq!(
            GatewayError::Body(PeekError::NoModel).code(),
            "missing_model"
        );
        assert_eq!(GatewayError::InvalidApiKey.undecided(), "unauthenticated");
        assert_eq!(
            GatewayError::PolicyUnavailable(String::new()).undecided(),
            "unavailable"
        );
        assert_eq!(GatewayError::IncompleteBody.undecided(), "invalid");
    }
}
