//! The admin console's listener, started by `policy serve --console-listen` and `policy up`

use std::net::SocketAddr;
use std::sync::Arc;

use strata_console::{AuditSource, Console, ConsoleOptions};
use strata_resolver::Resolver;
use tokio::sync::watch;

use crate::exit;
use crate::remote::Failed;

/// Bind `addr` and serve the console on it until `stop` turns true; the URL it is reached at
pub async fn start(
    resolver: Arc<Resolver>,
    addr: SocketAddr,
    audit: Option<AuditSource>,
    gateway_url: Option<String>,
    secure_cookies: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<(String, tokio::task::JoinHandle<()>), Failed> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("error: cannot listen on {addr} for the console: {e}");
        Failed(exit::FAILURE)
    })?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let options = ConsoleOptions {
        audit,
        gateway_url,
        secure_cookies,
    };
    let console = Console::new(resolver, options);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = strata_console::serve(console, listener, stopped).await {
            tracing::error!(error = %e, "the console stopped");
        }
    });
    tracing::info!(%url, "admin console listening");
    Ok((url, task))
}
