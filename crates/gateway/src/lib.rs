#![doc = include_str!("../README.md")]

pub mod api;
pub mod audit;
pub mod balance;
pub mod catalogue;
pub mod config;
pub mod credentials;
pub mod decider;
pub mod droid;
pub mod error;
pub mod gateway;
pub mod json;
pub mod metrics;
pub mod model_upstream;
pub mod org_fetches;
pub mod peek;
pub mod pipeline;
pub mod telemetry;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use pipeline::factory_api;

pub use config::GatewayConfig;
pub use error::{GatewayError, StartError};
pub use gateway::Gateway;

/// The HTTP app: health endpoints, and the proxy for every other path
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/strata/v1/droid-settings",
            get(pipeline::settings::droid_settings),
        )
        .route("/strata/v1/droid/org-settings", get(factory_api::plain))
        .route("/api/cli/whoami", get(factory_api::whoami))
        .route(
            "/api/organization/managed-settings",
            get(factory_api::managed_settings),
        )
        .route("/api/llm/custom/usage", post(factory_api::usage))
        .route(api::FACTORY_ROUTES[0], post(pipeline::handle))
        .route(api::FACTORY_ROUTES[1], post(pipeline::handle))
        .route(api::FACTORY_ROUTES[2], post(pipeline::handle))
        .route("/api/{*rest}", any(factory_api::not_offered))
        .fallback(pipeline::handle)
        .with_state(gw)
}

/// Prometheus text
async fn metrics(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gw.telemetry.metrics.render() + &metrics::render_catalogues(&gw.catalogues.sizes()),
    )
}

/// Ready only while a resolver answers its health check (with several, through the same
/// balanced channel as decisions: any one in rotation will do)
async fn readyz(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
) -> (StatusCode, &'static str) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(gw.channel.clone());
    let req = tonic_health::pb::HealthCheckRequest {
        service: "strata.v1.PolicyService".to_string(),
    };
    match tokio::time::timeout(Duration::from_secs(1), health.check(req)).await {
        Ok(Ok(r))
            if r.get_ref().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 =>
        {
            (StatusCode::OK, "ready")
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the policy resolver is not answering",
        ),
    }
}

/// The most header bytes a request may carry (HTTP/1 read buffer, HTTP/2 header list): more is
/// refused with 431 before any handler runs
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most header fields an HTTP/1 request may carry (more: 431)
pub const MAX_HEADERS: usize = 100;

/// The start of an HTTP/2 connection without TLS (prior knowledge)
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Wait, at most `deadline`, until a new connection has sent enough to tell HTTP/1 from HTTP/2:
/// hyper-util reads those bytes without a deadline of its own, so a client that connects and
/// sends nothing (or a piece of the HTTP/2 preface) would hold the connection forever. `false`:
/// close it.
async fn first_bytes(tcp: &tokio::net::TcpStream, deadline: Duration) -> bool {
    let sniff = async {
        let mut buf = [0u8; 24];
        loop {
            // waits for data, consumes none of it
            let n = tcp.peek(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            if n >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&buf[..n]) {
                return true;
            }
            // a prefix of the preface: wait for the rest (peek returns at once while data waits)
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(deadline, sniff).await.unwrap_or(false)
}

/// Serve until `shutdown`, then let the connections finish what they were doing.
///
/// hyper directly rather than `axum::serve`, for the limits a server facing the network needs:
/// a deadline for a request's headers (slowloris), a bound on header size and count, and the
/// same bound for HTTP/2 header lists.
/// Keeps a timer due within a second for as long as the server runs.
///
/// Every request sets timers: the header read timeout, the upstream read timeout. When tokio's
/// timer wheel holds no timer at all, it wakes its I/O driver (a write to an eventfd, and one more
/// turn of `epoll_wait`) for each new timer. That is two syscalls per request for nothing, because
/// the worker is running anyway. With this timer always near, the per-request timers are all
/// later than the driver's next wake-up, and inserting them wakes nothing. The cost is one wake-up
/// a second.
async fn timer_tick() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A client connection, counted while it is open; its slot frees when it ends
struct OpenConnection {
    gw: Arc<Gateway>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(gw: Arc<Gateway>, slot: tokio::sync::OwnedSemaphorePermit) -> OpenConnection {
        gw.telemetry.metrics.connection_opened();
        OpenConnection { gw, _slot: slot }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gw.telemetry.metrics.connection_closed();
    }
}

// Longer than a screen: the accept loop keeps the connection limit, the shutdown and the
// per-connection setup side by side, so that how a connection is admitted reads in one place.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let header_timeout = Duration::from_secs(gw.cfg.client_timeout_secs.max(1));
    let app = app(Arc::clone(&gw));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    let tick = tokio::spawn(timer_tick());
    // the upstreams' model catalogues, and the key variables each revision names
    let background = [
        tokio::spawn(Arc::clone(&gw).follow_catalogues()),
        tokio::spawn(credentials::watch(Arc::clone(&gw))),
    ];
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // a slot per open connection: with none free, the loop stops accepting (the kernel's backlog
    // holds new connections) until one closes
    let slots = Arc::new(tokio::sync::Semaphore::new(gw.cfg.max_connections.max(1)));
    let mut warned_full = None::<std::time::Instant>;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                gw.telemetry.metrics.connection_limit_reached();
                if warned_full.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = gw.cfg.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                    warned_full = Some(std::time::Instant::now());
                }
                tokio::select! {
                    s = Arc::clone(&slots).acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break, // closed: never, the semaphore lives here
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // out of file descriptors and the like: wait rather than spin
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        // small responses (refusals, /v1/models) must not wait for Nagle and delayed ACKs
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (builder, watcher) = (Arc::clone(&builder), graceful.watcher());
        let open = OpenConnection::new(Arc::clone(&gw), slot);
        tokio::spawn(async move {
            let _open = open;
            if !first_bytes(&tcp, header_timeout).await {
                return; // nothing to serve: closed
            }
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    tick.abort();
    for task in background {
        task.abort();
    }
    Ok(())
}
