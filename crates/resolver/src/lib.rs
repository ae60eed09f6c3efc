#![doc = include_str!("../README.md")]

pub mod coalesce;
pub mod droid_org;
pub mod error;
pub mod pg;
pub mod service;
pub mod state;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use strata_proto::v1::admin_service_server::AdminServiceServer;
use strata_proto::v1::policy_service_server::PolicyServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

pub use error::ResolverError;
pub use pg::PgStore;
pub use state::{Generated, Resolver};
pub use store::{MemStore, SledStore, Store, StoreWatch};

/// The largest PolicyService message (a decision request with its MCP references)
pub const MAX_POLICY_MESSAGE: usize = 4 * 1024 * 1024;
/// The largest AdminService message (a bundle)
pub const MAX_ADMIN_MESSAGE: usize = 64 * 1024 * 1024;

/// How long in-flight calls may take to finish after a shutdown signal
pub const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How soon a follower retries catching up with a shared store after a failed attempt
pub const SYNC_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Catch up once; false if the store could not be read (logged once per run of failures)
async fn sync(resolver: &Resolver, failing: bool) -> bool {
    match resolver.sync().await {
        Ok(()) => true,
        Err(e) => {
            if !failing {
                tracing::warn!(error = %e, "cannot catch up with the store yet; serving the last snapshot, retrying");
            }
            false
        }
    }
}

/// On a store shared with other resolvers: catch up whenever the store signals a change, and
/// report the admin service as not serving while the store cannot take writes (decisions go on
/// from the last snapshot either way)
async fn follow(
    resolver: Arc<Resolver>,
    mut watch: StoreWatch,
    health: tonic_health::server::HealthReporter,
) {
    type Admin = AdminServiceServer<service::AdminSvc>;
    let mut ready = *watch.ready.borrow_and_update();
    if !ready {
        health.set_not_serving::<Admin>().await;
    }
    let mut failed = !sync(&resolver, false).await;
    loop {
        tokio::select! {
            r = watch.changed.changed() => {
                if r.is_err() {
                    return;
                }
                failed = !sync(&resolver, failed).await;
            }
            r = watch.ready.changed() => {
                if r.is_err() {
                    return;
                }
                let now = *watch.ready.borrow_and_update();
                if now != ready {
                    ready = now;
                    if ready {
                        health.set_serving::<Admin>().await;
                    } else {
                        health.set_not_serving::<Admin>().await;
                    }
                }
            }
            _ = tokio::time::sleep(SYNC_RETRY), if failed => {
                failed = !sync(&resolver, failed).await;
            }
        }
    }
}

/// Serve the policy and admin services, gRPC health and reflection on `listener` until `shutdown`
pub async fn serve(
    resolver: Arc<Resolver>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ResolverError> {
    serve_with(resolver, listener, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (see [`strata_proto::transport::server_tls`])
// Longer than a screen: wiring in the order the server needs it (services, health, reflection, the
// accepted sockets, TLS, the drain on shutdown); the steps share the shutdown channels and the
// health reporter.
pub async fn serve_with(
    resolver: Arc<Resolver>,
    listener: TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ResolverError> {
    let policy = PolicyServiceServer::new(service::PolicySvc {
        resolver: resolver.clone(),
    })
    .max_decoding_message_size(MAX_POLICY_MESSAGE)
    .max_encoding_message_size(MAX_ADMIN_MESSAGE);
    let watch = resolver.store_watch();
    let follower_resolver = resolver.clone();
    let stopping_resolver = resolver.clone();
    let admin = AdminServiceServer::new(service::AdminSvc { resolver })
        .max_decoding_message_size(MAX_ADMIN_MESSAGE);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<PolicyServiceServer<service::PolicySvc>>()
        .await;
    reporter
        .set_serving::<AdminServiceServer<service::AdminSvc>>()
        .await;
    let follower = watch.map(|w| tokio::spawn(follow(follower_resolver, w, reporter.clone())));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ResolverError::Internal(format!("reflection: {e}")))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ResolverError::Internal(format!("reflection: {e}")))?;
    // gateways keep their channels open: after the signal, in-flight calls get DRAIN_GRACE to
    // finish, then the server stops whoever is still connected
    // tonic's `tcp_nodelay` applies only to sockets it accepts itself; without it on ours, Nagle
    // and delayed ACKs add ~40 ms to every small unary call
    // and each connection's writes are coalesced (see `coalesce`)
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.map(|c| {
            let _ = c.set_nodelay(true);
            coalesce::Coalesced::new(c)
        })
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut stopping = rx.clone();
    let mut draining = rx;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ResolverError::Internal(format!("TLS: {e}")))?;
    }
    let server = builder
        .tcp_nodelay(true)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(policy)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopping.wait_for(|s| *s).await;
        });
    let stopping_health = reporter.clone();
    let trigger = async move {
        shutdown.await;
        // health watchers (gateways balancing over several resolvers) take this one out of
        // rotation before its connections start refusing new calls
        stopping_health
            .set_not_serving::<PolicyServiceServer<service::PolicySvc>>()
            .await;
        stopping_health
            .set_not_serving::<AdminServiceServer<service::AdminSvc>>()
            .await;
        stopping_health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        // revision streams end, so that the drain waits for calls only
        stopping_resolver.stop_watches();
        let _ = tx.send(true);
        std::future::pending::<()>().await
    };
    let deadline = async move {
        let _ = draining.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    let r = tokio::select! {
        r = server => r.map_err(|e| ResolverError::Internal(format!("server: {e}"))),
        _ = trigger => Ok(()),
        _ = deadline => {
            tracing::info!("closing the connections still open after the drain grace period");
            Ok(())
        }
    };
    if let Some(f) = follower {
        f.abort();
    }
    r
}
