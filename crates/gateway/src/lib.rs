#![doc = include_str!("../README.md")]

pub mod audit;
pub mod balance;
pub mod config;
pub mod decider;
pub mod droid;
pub mod metrics;
pub mod peek;
pub mod proxy;
pub mod reply;
pub mod route;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

pub use config::GatewayConfig;
pub use proxy::Gateway;

/// The HTTP app: health endpoints, and the proxy for every other path
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/strata/v1/droid-settings", get(proxy::droid_settings))
        .fallback(proxy::handle)
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
        gw.telemetry.metrics.render(),
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

/// Serve until `shutdown`
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // small responses (refusals, /v1/models) must not wait for Nagle and delayed ACKs
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(gw))
        .with_graceful_shutdown(shutdown)
        .await
}
