//! The channel to the resolvers: one address, or several balanced.
//!
//! With several, decisions go over one tonic channel that balances (power of two choices) over
//! the resolvers currently in rotation. A resolver is in rotation while its gRPC health service
//! reports `strata.v1.PolicyService` as `SERVING`: each address has a task that keeps a health
//! `Watch` stream open on a connection of its own and adds or removes the address as the stream
//! reports. A resolver that dies breaks its stream at once; one that stops gracefully reports
//! `NOT_SERVING` first; a hung one is caught by HTTP/2 keep-alive pings. The task watches again
//! with backoff (with jitter), so a resolver that comes back rejoins within about a second. With none in
//! rotation, decisions wait for one until their deadline and are refused: fail closed.
//!
//! A decision already sent to a resolver as it dies, or in the moment before its watcher notices,
//! fails (503): the gateway does not retry a decision elsewhere.
//!
//! With one address the channel is a plain lazily connected one, as it always was.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::error::StartError;

/// How long to wait for a TCP connection to a resolver
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Keep-alive pings on the health connection: a resolver that answers none within this long is
/// taken out of rotation
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// The first and the longest wait before watching a resolver's health again
pub const RETRY_MIN: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(1);
/// The service whose health puts a resolver in rotation
const SERVICE: &str = "strata.v1.PolicyService";

fn endpoint(url: &str, ca_file: Option<&Path>) -> Result<Endpoint, StartError> {
    Ok(strata_transport::endpoint(url, ca_file)
        .map_err(StartError::Resolver)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

/// A channel to the resolvers at `urls` (TLS for `https://` ones, trusting `ca_file` or the
/// system's roots); must be called on a Tokio runtime (it spawns the health watchers, which end
/// when the channel is dropped)
pub fn resolver_channel(urls: &[String], ca_file: Option<&Path>) -> Result<Channel, StartError> {
    let endpoints = urls
        .iter()
        .map(|u| endpoint(u, ca_file))
        .collect::<Result<Vec<_>, _>>()?;
    if let [one] = &endpoints[..] {
        return Ok(one.connect_lazy());
    }
    let (channel, changes) = Channel::balance_channel(endpoints.len() * 2 + 8);
    for (key, ep) in endpoints.into_iter().enumerate() {
        tokio::spawn(watch(key, ep, changes.clone()));
    }
    Ok(channel)
}

/// One resolver's health, for as long as the channel lives
async fn watch(key: usize, ep: Endpoint, changes: Sender<Change<usize, Endpoint>>) {
    let url = ep.uri().to_string();
    let health = ep
        .clone()
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .connect_lazy();
    let mut member = false;
    let mut quiet = false;
    let mut backoff = strata_transport::Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let since = Instant::now();
        let (why, joined) = tokio::select! {
            r = follow(&health, key, &ep, &changes, &mut member) => r,
            () = changes.closed() => return,
        };
        if joined {
            quiet = false;
        }
        if member {
            member = false;
            if changes.send(Change::Remove(key)).await.is_err() {
                return;
            }
            tracing::warn!(resolver = %url, reason = %why, "a resolver left the rotation");
            quiet = true;
        } else if !quiet {
            // once per run of failures, not at every retry
            tracing::warn!(resolver = %url, reason = %why, "a resolver is not in rotation");
            quiet = true;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.wait_after(since.elapsed())) => {}
            () = changes.closed() => return,
        }
    }
}

/// Follow one health stream, putting the resolver in rotation while it reports `SERVING`;
/// returns why it ended (a break, or any other status: the caller takes the resolver out and
/// watches again, on a new connection if this one is closing) and whether it joined meanwhile
async fn follow(
    health: &Channel,
    key: usize,
    ep: &Endpoint,
    changes: &Sender<Change<usize, Endpoint>>,
    member: &mut bool,
) -> (String, bool) {
    let mut joined = false;
    let mut client = HealthClient::new(health.clone());
    let req = HealthCheckRequest {
        service: SERVICE.to_string(),
    };
    let mut stream = match client.watch(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return (s.message().to_string(), joined),
    };
    loop {
        match stream.message().await {
            Ok(Some(m)) if m.status == ServingStatus::Serving as i32 => {
                if !*member {
                    if changes.send(Change::Insert(key, ep.clone())).await.is_err() {
                        return ("the gateway is stopping".to_string(), joined);
                    }
                    *member = true;
                    joined = true;
                    tracing::info!(resolver = %ep.uri(), "a resolver joined the rotation");
                }
            }
            Ok(Some(_)) => return ("it reports not serving".to_string(), joined),
            Ok(None) => return ("its health stream ended".to_string(), joined),
            Err(s) => return (s.message().to_string(), joined),
        }
    }
}
