//! The request path: classify, authenticate, read the few fields the decision needs, ask the
//! resolver, then refuse in the provider's shape or forward the original bytes and stream the
//! answer back unbuffered.

// foldhash: looked up twice per request, by provider
use hashbrown::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use strata_proto::v1::{self, policy_service_client::PolicyServiceClient};
use tonic::transport::Channel;

use crate::audit::{self, Audited, Pending, Record, Telemetry};
use crate::config::{AuditTarget, GatewayConfig, secret};
use crate::decider::Decider;
use crate::peek::{PeekError, peek};
use crate::reply::{Source, error};
use crate::route::{Api, classify, looks_anthropic, model_id};
use crate::upstream::{Base, SendError, Upstream};

/// Headers that carry the gateway token when the client brings its own provider key (BYOK).
/// They never go upstream.
pub const GOVERNANCE_HEADERS: [&str; 2] =
    ["x-strata-governance-token", "x-coder-ai-governance-token"];
/// Optional request headers naming the project and folder the request is made in
pub const PROJECT_HEADER: &str = "x-strata-project";
pub const FOLDER_HEADER: &str = "x-strata-folder";

// the same names, parsed once (a lookup by `&str` parses the name on every call)
static GOVERNANCE: [HeaderName; 2] = [
    HeaderName::from_static(GOVERNANCE_HEADERS[0]),
    HeaderName::from_static(GOVERNANCE_HEADERS[1]),
];
static PROJECT: HeaderName = HeaderName::from_static(PROJECT_HEADER);
static FOLDER: HeaderName = HeaderName::from_static(FOLDER_HEADER);
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Everything a request needs, built once at start
pub struct Gateway {
    pub cfg: GatewayConfig,
    pub policy: PolicyServiceClient<Channel>,
    pub channel: Channel,
    service_auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    http: Upstream,
    /// provider → the header carrying the org's key (central mode), marked sensitive; never logged
    keys: HashMap<String, (HeaderName, HeaderValue)>,
    /// provider → its upstream base URL, parsed once
    bases: HashMap<String, Base>,
    public_base_url: String,
    /// metrics and the audit log
    pub telemetry: Arc<Telemetry>,
    /// every request's decision, batched under load
    decider: Decider,
}

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
        let telemetry = match &cfg.audit {
            Some(a) => match a.target().map_err(StartError::Secret)? {
                AuditTarget::Dir(dir) => {
                    Telemetry::with_audit_dir(PathBuf::from(&dir), a.retention_days, a.queue)
                        .map_err(|e| StartError::Audit(dir, e.to_string()))?
                }
                AuditTarget::Postgres(url) => {
                    Telemetry::with_postgres(&url, a.retention_days, a.queue)
                        .map_err(StartError::AuditStore)?
                }
            },
            None => {
                tracing::warn!("no [audit] section: requests are not audited");
                Telemetry::without_audit()
            }
        };
        let policy = PolicyServiceClient::new(channel.clone());
        let telemetry = Arc::new(telemetry);
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

    fn grpc<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(Duration::from_millis(self.cfg.decision_timeout_ms));
        r.metadata_mut()
            .insert("authorization", self.service_auth.clone());
        r
    }
}

/// How the caller authenticated
struct Caller {
    /// the gateway token
    token: String,
    byok: bool,
}

fn header<'h>(h: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn api_key(h: &HeaderMap) -> Option<&str> {
    header(h, &X_API_KEY).or_else(|| {
        header(h, &header::AUTHORIZATION)
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
    })
}

fn caller(h: &HeaderMap) -> Option<Caller> {
    if let Some(t) = GOVERNANCE.iter().find_map(|n| header(h, n)) {
        return Some(Caller {
            token: t.to_string(),
            byok: true,
        });
    }
    api_key(h).map(|t| Caller {
        token: t.to_string(),
        byok: false,
    })
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The handler for every path: one audit record per request, whatever happens to it
pub async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response<Body> {
    let (time, unix_ms, _) = audit::now();
    let h = req.headers();
    let mut pending = gw.telemetry.begin(Record {
        time,
        unix_ms,
        project: header(h, &PROJECT).unwrap_or_default().to_string(),
        client: header(h, &header::USER_AGENT)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        ..Default::default()
    });
    let unread = !req.body().is_end_stream();
    let mut body_read = false;
    let mut resp = proxy(&gw, req, &mut pending, &mut body_read).await;
    if unread && !body_read {
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

/// A response the gateway writes itself, noted in the audit record
fn refuse(
    p: &mut Pending,
    anthropic: bool,
    status: StatusCode,
    code: &str,
    message: &str,
    source: Source,
) -> Response<Body> {
    p.set(|r| {
        r.error = Some(code.to_string());
        if r.decision.is_empty() {
            r.decision = if status == StatusCode::UNAUTHORIZED {
                "unauthenticated"
            } else {
                "invalid"
            }
            .to_string();
        }
    });
    error(anthropic, status, code, message, source)
}

/// The request's way through the gateway; `body_read` tells whether its body was read to the end
async fn proxy(
    gw: &Gateway,
    req: Request,
    pending: &mut Pending,
    body_read: &mut bool,
) -> Response<Body> {
    let path = req.uri().path();
    let Some(api) = classify(path) else {
        return refuse(
            pending,
            looks_anthropic(path),
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such endpoint: {} {path}", req.method()),
            Source::Client,
        );
    };
    pending.set(|r| {
        r.api = api.label().to_string();
        r.provider = api.provider().to_string();
    });
    let anthropic = api.anthropic_shaped()
        || (api == Api::Models && req.headers().contains_key("anthropic-version"));
    let expected = if api == Api::Models {
        Method::GET
    } else {
        Method::POST
    };
    if req.method() != expected {
        return refuse(
            pending,
            anthropic,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{} takes {expected}", api.upstream_path()),
            Source::Client,
        );
    }
    let Some(caller) = caller(req.headers()) else {
        return refuse(
            pending,
            anthropic,
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "missing API key: send your Strata gateway token as the API key (x-api-key or Authorization: Bearer)",
            Source::Client,
        );
    };
    let key_hint = audit::key_hint(if caller.byok {
        api_key(req.headers()).unwrap_or_default()
    } else {
        &caller.token
    });
    pending.set(|r| {
        r.key_mode = if caller.byok { "byok" } else { "central" }.to_string();
        r.key_hint = key_hint;
    });
    if api == Api::Models {
        let id = model_id(req.uri().path());
        return models(gw, &caller, req.headers(), anthropic, id, pending).await;
    }
    let (parts, body) = req.into_parts();
    if let Some(encoding) = header(&parts.headers, &header::CONTENT_ENCODING)
        .filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        // the decision reads the model from the body: one it cannot read is refused, not passed on
        return refuse(
            pending,
            anthropic,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            &format!(
                "the gateway reads request bodies as plain JSON; `content-encoding: {}` is not supported",
                encoding.chars().take(64).collect::<String>()
            ),
            Source::Client,
        );
    }
    let too_large = |pending: &mut Pending| {
        refuse(
            pending,
            anthropic,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            &format!(
                "the request body is larger than the gateway's limit of {} bytes",
                gw.cfg.max_body_bytes
            ),
            Source::Client,
        )
    };
    let mut stream = body.into_data_stream();
    if header(&parts.headers, &header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > gw.cfg.max_body_bytes as u64)
    {
        // refused from its declared length, before a byte of it is kept
        linger(stream);
        return too_large(pending);
    }
    let deadline = Duration::from_secs(gw.cfg.client_timeout_secs.max(1));
    let read = read_body(&mut stream, gw.cfg.max_body_bytes);
    let bytes = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            linger(stream);
            return too_large(pending);
        }
        Ok(Err(BodyError::Broken)) => {
            return refuse(
                pending,
                anthropic,
                StatusCode::BAD_REQUEST,
                "incomplete_body",
                "the request body ended early or is not valid HTTP framing",
                Source::Client,
            );
        }
        Err(_) => {
            return refuse(
                pending,
                anthropic,
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
                Source::Client,
            );
        }
    };
    *body_read = true;
    let peeked = match peek(&bytes) {
        Ok(p) => p,
        Err(e) => {
            let code = match e {
                PeekError::Json(_) => "invalid_json",
                PeekError::NoModel => "missing_model",
                PeekError::ModelTooLong(_) => "invalid_model",
            };
            return refuse(
                pending,
                anthropic,
                StatusCode::BAD_REQUEST,
                code,
                &e.to_string(),
                Source::Client,
            );
        }
    };
    pending.set(|r| {
        r.model = peeked.model.clone();
        r.stream = peeked.stream;
    });
    let decide = v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Token(caller.token.clone())),
        project: header(&parts.headers, &PROJECT)
            .unwrap_or_default()
            .to_string(),
        folder: header(&parts.headers, &FOLDER)
            .unwrap_or_default()
            .to_string(),
        gateway: gw.public_base_url.clone(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: peeked.model,
            provider: api.provider().to_string(),
            key_mode: if caller.byok {
                v1::KeyMode::Byok as i32
            } else {
                v1::KeyMode::Central as i32
            },
            base_url: gw.public_base_url.clone(),
            mcp_servers: peeked
                .mcp_servers
                .into_iter()
                .map(|m| v1::McpServerRef {
                    name: m.name,
                    url: m.url,
                    ..Default::default()
                })
                .collect(),
        })),
    };
    let asked = ask(gw, decide).await;
    let decision_ms = audit::ms(pending.elapsed());
    pending.set(|r| r.decision_ms = decision_ms);
    let decision = match asked {
        Ok(d) => d,
        Err(r) => return with_shape(r, anthropic, pending),
    };
    pending.set(|r| {
        r.decision_id = decision.decision_id.clone();
        r.user = decision
            .principal
            .as_ref()
            .map(|p| p.user.clone())
            .unwrap_or_default();
        r.rules = decision
            .determined_by
            .iter()
            .map(|r| r.rule.clone())
            .collect();
        r.revision = decision.revision.clone();
        r.decision = if decision.effect == v1::Effect::Allow as i32 {
            "allow"
        } else {
            "deny"
        }
        .to_string();
    });
    if decision.effect != v1::Effect::Allow as i32 {
        let mut r = refuse(
            pending,
            anthropic,
            StatusCode::FORBIDDEN,
            "policy_denied",
            &format!(
                "Strata policy: {} (decision {})",
                decision.reason, decision.decision_id
            ),
            Source::Policy,
        );
        stamp(r.headers_mut(), &decision);
        return r;
    }
    forward(
        gw, api, &caller, parts, bytes, &decision, anthropic, pending,
    )
    .await
}

/// Why a request body could not be read
enum BodyError {
    TooLarge,
    /// the client went away mid-body, or sent broken chunked framing
    Broken,
}

/// How long, and how many bytes, the rest of a refused body is read and thrown away
pub const LINGER: Duration = Duration::from_secs(5);
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Read and discard the rest of a body refused as too large, for at most [`LINGER`] and
/// [`LINGER_BYTES`], while the refusal is written.
///
/// Closing a connection with unread bytes in its receive buffer makes the kernel answer with a
/// reset, and a client still sending its body then loses the 413 it was sent (the reset discards
/// what it had not read yet): it sees "connection reset" instead of the reason. So the gateway
/// keeps reading (and the connection open) a little longer, as web servers do with lingering
/// close; a client that sends more, or for longer, is cut off as before.
fn linger(mut stream: axum::body::BodyDataStream) {
    use futures::StreamExt;
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(chunk)) = stream.next().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    });
}

/// Read a request body of at most `max` bytes; a body that arrives in one piece is not copied
async fn read_body(
    stream: &mut axum::body::BodyDataStream,
    max: usize,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        len += chunk.len();
        if len > max {
            return Err(BodyError::TooLarge);
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

fn stamp(h: &mut HeaderMap, d: &v1::DecideResponse) {
    if let Ok(v) = HeaderValue::from_str(&d.decision_id) {
        h.insert("x-strata-decision-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&d.revision) {
        h.insert("x-strata-revision", v);
    }
}

/// An error the decision step produced, before the response shape is known
enum Refusal {
    Unauthenticated,
    BadRequest(String),
    Unavailable(String),
}

fn with_shape(r: Refusal, anthropic: bool, p: &mut Pending) -> Response<Body> {
    match r {
        Refusal::Unauthenticated => refuse(
            p,
            anthropic,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "invalid API key: the gateway token is unknown or revoked",
            Source::Client,
        ),
        Refusal::BadRequest(m) => refuse(
            p,
            anthropic,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &m,
            Source::Client,
        ),
        Refusal::Unavailable(m) => {
            p.set(|r| r.decision = "unavailable".to_string());
            refuse(
                p,
                anthropic,
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_unavailable",
                &format!(
                    "the policy resolver cannot answer, so the gateway refuses the request (fail closed): {m}"
                ),
                Source::Gateway,
            )
        }
    }
}

async fn ask(gw: &Gateway, req: v1::DecideRequest) -> Result<v1::DecideResponse, Refusal> {
    let deadline = Duration::from_millis(gw.cfg.decision_timeout_ms);
    match tokio::time::timeout(deadline, gw.decider.decide(req)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(s)) => Err(match s.code() {
            tonic::Code::Unauthenticated => Refusal::Unauthenticated,
            tonic::Code::InvalidArgument => Refusal::BadRequest(s.message().to_string()),
            _ => Refusal::Unavailable(s.message().to_string()),
        }),
        Err(_) => Err(Refusal::Unavailable(format!(
            "no decision within {} ms",
            gw.cfg.decision_timeout_ms
        ))),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, each used once"
)]
async fn forward(
    gw: &Gateway,
    api: Api,
    caller: &Caller,
    parts: axum::http::request::Parts,
    body: Bytes,
    d: &v1::DecideResponse,
    anthropic: bool,
    pending: &mut Pending,
) -> Response<Body> {
    let provider = api.provider();
    // the path is the API's own, whatever prefix the client used; the query string goes along
    // (Anthropic's `?beta=true`, Azure-style `?api-version=`)
    let Some(base) = gw.bases.get(provider) else {
        return refuse(
            pending,
            anthropic,
            StatusCode::BAD_GATEWAY,
            "no_upstream",
            &format!(
                "the gateway has no upstream for `{provider}` (configure [upstreams.{provider}])"
            ),
            Source::Gateway,
        );
    };
    let uri = match base.uri(api.upstream_path(), parts.uri.query()) {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                pending,
                anthropic,
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &format!("the request's query string cannot be passed on: {e}"),
                Source::Client,
            );
        }
    };
    let mut out = HeaderMap::with_capacity(parts.headers.len() + 1);
    for (k, v) in &parts.headers {
        let n = k.as_str();
        if hop_by_hop(k)
            || GOVERNANCE_HEADERS.contains(&n)
            || n.starts_with("x-strata-")
            || (!caller.byok && (n == "authorization" || n == "x-api-key"))
        {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    if !caller.byok {
        let Some(key) = gw.keys.get(provider) else {
            return refuse(
                pending,
                anthropic,
                StatusCode::SERVICE_UNAVAILABLE,
                "no_central_key",
                &format!(
                    "the gateway has no central key for `{provider}` (configure upstreams.{provider}.key_env)"
                ),
                Source::Gateway,
            );
        };
        out.insert(key.0.clone(), key.1.clone());
    }
    let sent_at = std::time::Instant::now();
    let sent = gw.http.post(uri, out, body).await;
    let upstream_ms = audit::ms(sent_at.elapsed());
    pending.set(|r| r.upstream_ms = Some(upstream_ms));
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            // a timeout is 504, anything else (refused, reset, not HTTP) 502; both marked upstream
            let (status, code, what) = match e {
                SendError::Timeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("did not answer within {} s", gw.cfg.upstream_timeout_secs),
                ),
                SendError::Connect(_) => (
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    "cannot be reached".to_string(),
                ),
                SendError::Failed(_) => (
                    StatusCode::BAD_GATEWAY,
                    "upstream_failed",
                    "closed the connection or did not answer in HTTP".to_string(),
                ),
            };
            tracing::warn!(provider, error = %e, "upstream {what}");
            let mut r = refuse(
                pending,
                anthropic,
                status,
                code,
                &format!(
                    "the upstream `{provider}` {what}; this is not a problem with your configuration"
                ),
                Source::Upstream,
            );
            stamp(r.headers_mut(), d);
            return r;
        }
    };
    let status = upstream.status();
    pending.set(|r| {
        r.upstream_status = Some(status.as_u16());
        r.status = status.as_u16();
    });
    let sse = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut resp = Response::builder().status(status.as_u16());
    if let Some(h) = resp.headers_mut() {
        for (k, v) in upstream.headers() {
            if !hop_by_hop(k) {
                h.append(k.clone(), v.clone());
            }
        }
        stamp(h, d);
        if status.is_client_error() || status.is_server_error() {
            h.insert(
                "x-strata-error-source",
                HeaderValue::from_static(Source::Upstream.as_str()),
            );
        }
    }
    // chunk by chunk as the upstream sends them; the body carries the audit record and ends it
    // when it ends. A client that goes away drops the body, which drops the upstream request.
    let body = Audited::new(upstream.into_body(), sse, pending.detach());
    resp.body(Body::from_stream(body)).unwrap_or_else(|_| {
        error(
            anthropic,
            StatusCode::BAD_GATEWAY,
            "bad_upstream_response",
            "the upstream's response could not be relayed",
            Source::Upstream,
        )
    })
}

/// `GET /strata/v1/droid-settings`: Droid `customModels` for exactly the models the caller may
/// use, pointed at this gateway with the caller's own gateway token
pub async fn droid_settings(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    let Some(caller) = caller(&headers) else {
        return error(
            false,
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "missing API key: send your Strata gateway token",
            Source::Client,
        );
    };
    let settings = match resolve(&gw, &caller, &headers).await {
        Ok(s) => s,
        Err(r) => return with_shape(r, false, &mut Pending::detached(&gw.telemetry)),
    };
    let v: serde_json::Value = serde_json::from_str(&settings.settings_json).unwrap_or_default();
    let models = v["models"].as_array().cloned().unwrap_or_default();
    let body = serde_json::json!({ "customModels": crate::droid::custom_models(&models, &gw.public_base_url, &caller.token) });
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The caller's effective settings, from the resolver
async fn resolve(
    gw: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<v1::ResolveSettingsResponse, Refusal> {
    let req = v1::ResolveSettingsRequest {
        identity: Some(v1::resolve_settings_request::Identity::Token(
            caller.token.clone(),
        )),
        project: header(headers, &PROJECT).unwrap_or_default().to_string(),
        folder: header(headers, &FOLDER).unwrap_or_default().to_string(),
        base_url: gw.public_base_url.clone(),
    };
    let mut client = gw.policy.clone();
    let deadline = Duration::from_millis(gw.cfg.decision_timeout_ms.max(1000));
    match tokio::time::timeout(deadline, client.resolve_settings(gw.grpc(req))).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => Err(Refusal::Unauthenticated),
        Ok(Err(s)) => Err(Refusal::Unavailable(s.message().to_string())),
        Err(_) => Err(Refusal::Unavailable("no answer in time".to_string())),
    }
}

/// `GET /v1/models`: only what this user may use, in the shape the client speaks. With an id
/// (`GET /v1/models/{id}`), that model alone, or 404 when it is not one this user may use.
async fn models(
    gw: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
    anthropic: bool,
    id: Option<String>,
    pending: &mut Pending,
) -> Response<Body> {
    let settings = match resolve(gw, caller, headers).await {
        Ok(s) => s,
        Err(r) => return with_shape(r, anthropic, pending),
    };
    pending.set(|r| {
        r.decision = "allow".to_string();
        r.revision = settings.revision.clone();
    });
    let v: serde_json::Value = serde_json::from_str(&settings.settings_json).unwrap_or_default();
    let listed: Vec<(String, String)> = v["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["keyMode"] == "central" || caller.byok)
                .filter_map(|m| {
                    Some((
                        m["model"].as_str()?.to_string(),
                        m["displayName"]
                            .as_str()
                            .or(m["model"].as_str())?
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let object = |(id, name): &(String, String)| {
        if anthropic {
            serde_json::json!({"type": "model", "id": id, "display_name": name, "created_at": "1970-01-01T00:00:00Z"})
        } else {
            serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "strata"})
        }
    };
    let body = if let Some(id) = id {
        match listed.iter().find(|m| m.0 == id) {
            Some(m) => object(m),
            None => {
                pending.set(|r| {
                    r.model = id.clone();
                    r.decision = "deny".to_string();
                });
                return refuse(
                    pending,
                    anthropic,
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    &format!(
                        "model `{id}` is not one you may use through this gateway (GET /v1/models lists those you may)"
                    ),
                    Source::Client,
                );
            }
        }
    } else if anthropic {
        let data: Vec<_> = listed.iter().map(object).collect();
        serde_json::json!({ "data": data, "has_more": false, "first_id": listed.first().map(|m| &m.0), "last_id": listed.last().map(|m| &m.0) })
    } else {
        let data: Vec<_> = listed.iter().map(object).collect();
        serde_json::json!({ "object": "list", "data": data })
    };
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&settings.revision) {
        r.headers_mut().insert("x-strata-revision", v);
    }
    r
}
