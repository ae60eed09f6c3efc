//! Responses the gateway writes itself, in the shape of the API the client speaks: Anthropic's
//! `{"type":"error","error":{"type","message"}}` or OpenAI's `{"error":{"message","type","code"}}`.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use serde_json::json;

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

/// An error response; `code` is a stable string for clients and tests
pub fn error(
    anthropic: bool,
    status: StatusCode,
    code: &str,
    message: &str,
    source: Source,
) -> Response<Body> {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => "overloaded_error",
        StatusCode::BAD_GATEWAY => "api_error",
        s if s.is_client_error() => "invalid_request_error",
        _ => "api_error",
    };
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
