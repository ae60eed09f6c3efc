//! The client the gateway forwards with: hyper's pooled client (HTTP/1.1, and HTTP/2 where TLS
//! negotiates it) with each upstream's address parsed once at start. A request costs one
//! path-and-query parse, not a URL parse per layer as a general-purpose client does.
//!
//! Timeouts: connecting, then the same `read` limit for the response head and for every gap
//! between two chunks of the body, so a stream that goes quiet ends with an error rather than
//! holding the client forever.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, Method, Request, Response, Uri};
use bytes::Bytes;
use futures::Stream;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use strata_transport::error_chain as chain;
use tokio::time::{Instant, Sleep};

/// Connections kept open per upstream host between requests
const IDLE_PER_HOST: usize = 64;

/// Where one provider's requests go: scheme and authority, and the base path the API's own path
/// is appended to
#[derive(Clone, Debug)]
pub struct Base {
    scheme: Scheme,
    authority: Authority,
    /// without a trailing `/` (and without a trailing `/v1`: the API path brings its own)
    path: String,
    /// the API path goes after `path` without its leading `/v1` (an OpenAI-style SDK base URL,
    /// which names the version itself)
    unversioned: bool,
}

impl Base {
    /// Parse an upstream base URL such as `https://api.anthropic.com` or
    /// `http://10.0.0.5:8080/proxy/v1`
    pub fn parse(url: &str) -> Result<Base, String> {
        Base::parse_as(url, false)
    }

    fn parse_as(url: &str, unversioned: bool) -> Result<Base, String> {
        let trimmed = url.trim().trim_end_matches('/');
        let trimmed = if unversioned {
            trimmed
        } else {
            trimmed.trim_end_matches("/v1")
        };
        let uri: Uri = trimmed
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or("no scheme: write http:// or https://")?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "scheme `{scheme}` is not supported: write http:// or https://"
            ));
        }
        let authority = uri.authority().cloned().ok_or("no host")?;
        if uri.query().is_some() {
            return Err("a base URL takes no query string".to_string());
        }
        Ok(Base {
            scheme,
            authority,
            path: uri.path().trim_end_matches('/').to_string(),
            unversioned,
        })
    }

    /// Parse a base URL as Droid and the official SDKs use it (a `customModels` entry's
    /// `baseUrl`): Anthropic's appends `/v1/messages` (a trailing `/v1` dropped first, as in
    /// [`Base::parse`]); OpenAI's append `/responses` or `/chat/completions` to the URL as
    /// written. A URL ending in `/v1` gives the same URIs either way.
    pub fn parse_sdk(url: &str, anthropic: bool) -> Result<Base, String> {
        Base::parse_as(url, !anthropic)
    }

    /// The same scheme and host as `other`, and a path at or below `other`'s
    pub fn within(&self, other: &Base) -> bool {
        self.scheme == other.scheme
            && self.authority == other.authority
            && (self.path == other.path
                || self
                    .path
                    .strip_prefix(other.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// The URI of `api_path` (the API's own path, e.g. `/v1/messages`) under this base, with the
    /// client's query string, if any
    pub fn uri(&self, api_path: &str, query: Option<&str>) -> Result<Uri, String> {
        let api_path = match api_path.strip_prefix("/v1") {
            Some(rest) if self.unversioned => rest,
            _ => api_path,
        };
        let mut pq = String::with_capacity(
            self.path.len() + api_path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.path);
        pq.push_str(api_path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::from_maybe_shared(Bytes::from(pq)).map_err(|e| e.to_string())?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Why an upstream request failed before its response head arrived
#[derive(Debug)]
pub enum SendError {
    /// no head within the read timeout
    Timeout,
    /// the connection could not be made (refused, unreachable, TLS handshake failed)
    Connect(String),
    /// the connection broke, or what came back was not HTTP
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => f.write_str("timed out waiting for the response head"),
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Failed(e) => f.write_str(e),
        }
    }
}

/// The pooled client
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    read_timeout: Duration,
}

impl Upstream {
    /// A client that trusts the system's roots, and those in `ca_file` (PEM) when given
    pub fn new(
        connect_timeout: Duration,
        read_timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Upstream, String> {
        let tls = strata_transport::client_config(ca_file).map_err(|e| match e {
            strata_transport::TransportError::File { .. } => format!("upstream_ca_file {e}"),
            e => e.to_string(),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Upstream {
            client,
            read_timeout,
        })
    }

    /// POST `body` to `uri`; the response head within the read timeout, and a body that ends
    /// with an error when the upstream goes quiet for as long
    pub async fn post(
        &self,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        self.send(Method::POST, uri, headers, body).await
    }

    /// GET `uri` (a model catalogue), as [`Upstream::post`] sends
    pub async fn get(
        &self,
        uri: Uri,
        headers: HeaderMap,
    ) -> Result<Response<UpstreamBody>, SendError> {
        self.send(Method::GET, uri, headers, Bytes::new()).await
    }

    async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        match tokio::time::timeout(self.read_timeout, self.client.request(req)).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(SendError::Connect(chain(&e))),
            Ok(Err(e)) => Err(SendError::Failed(chain(&e))),
            Ok(Ok(resp)) => {
                let idle = self.read_timeout;
                Ok(resp.map(|inner| UpstreamBody {
                    inner,
                    idle,
                    timer: Box::pin(tokio::time::sleep(idle)),
                }))
            }
        }
    }
}

/// A response body as a stream of chunks, each within the read timeout of the one before
pub struct UpstreamBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

/// Why an upstream body ended early
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the upstream sent nothing for {0:?}")]
    Stalled(Duration),
    #[error("the upstream broke off the response: {0}")]
    Broken(String),
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // trailers carry nothing the client reads through a gateway
                    if let Ok(data) = frame.into_data() {
                        this.timer.as_mut().reset(Instant::now() + this.idle);
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(BodyError::Broken(chain(&e)))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    return match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled(this.idle)))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_and_paths() {
        let b = Base::parse("https://api.anthropic.com").unwrap();
        assert_eq!(
            b.uri("/v1/messages", Some("beta=true"))
                .unwrap()
                .to_string(),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        let b = Base::parse("http://10.0.0.5:8080/proxy/v1/").unwrap();
        assert_eq!(
            b.uri("/v1/chat/completions", None).unwrap().to_string(),
            "http://10.0.0.5:8080/proxy/v1/chat/completions"
        );
        assert!(
            Base::parse("ftp://x")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Base::parse("localhost:8080").is_err());
        assert!(Base::parse("http://x/?a=1").is_err());
        assert!(Base::parse("not a url").is_err());
    }

    #[test]
    fn sdk_base_urls_are_joined_as_the_sdks_join_them() {
        let chat = |url: &str| {
            Base::parse_sdk(url, false)
                .unwrap()
                .uri("/v1/chat/completions", None)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            chat("https://llm-gateway.acme.internal/v1"),
            "https://llm-gateway.acme.internal/v1/chat/completions"
        );
        assert_eq!(
            chat("https://llm-gateway.acme.internal/v1/"),
            "https://llm-gateway.acme.internal/v1/chat/completions"
        );
        assert_eq!(
            chat("http://10.0.0.5:8000/qwen"),
            "http://10.0.0.5:8000/qwen/chat/completions"
        );
        assert_eq!(chat("http://h:1"), "http://h:1/chat/completions");
        let b = Base::parse_sdk("https://llm.acme.internal/anthropic/v1", true).unwrap();
        assert_eq!(
            b.uri("/v1/messages", Some("beta=true"))
                .unwrap()
                .to_string(),
            "https://llm.acme.internal/anthropic/v1/messages?beta=true"
        );
        assert!(Base::parse_sdk("ftp://x", false).is_err());
        assert!(Base::parse_sdk("http://x/?a=1", false).is_err());
    }

    #[test]
    fn a_base_within_another() {
        let gw = Base::parse("http://127.0.0.1:8787").unwrap();
        for url in [
            "http://127.0.0.1:8787",
            "http://127.0.0.1:8787/v1",
            "http://127.0.0.1:8787/anthropic",
        ] {
            assert!(Base::parse(url).unwrap().within(&gw), "{url}");
        }
        for url in ["http://127.0.0.1:8788/v1", "https://127.0.0.1:8787"] {
            assert!(!Base::parse(url).unwrap().within(&gw), "{url}");
        }
        let gw = Base::parse("https://gw.acme.com/strata").unwrap();
        assert!(
            !Base::parse("https://gw.acme.com/stratax")
                .unwrap()
                .within(&gw)
        );
        assert!(
            Base::parse("https://GW.acme.com/strata/v1")
                .unwrap()
                .within(&gw)
        );
    }
}
