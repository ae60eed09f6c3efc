//! `policy serve`: the resolver on a sled store or a shared PostgreSQL database, until SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata_resolver::{PgStore, Resolver, SledStore, Store};

use crate::exit;
use crate::remote::Failed;

/// The resolver's default listen address
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["data", "store"])))]
pub struct ServeArgs {
    /// The data directory (sled): revisions, project layers, hashed tokens
    #[arg(long, env = "STRATA_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Instead of a data directory: a PostgreSQL database that several resolvers share,
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (tables are created and upgraded at start);
    /// TLS with `?sslmode=verify-full&sslrootcert=CA.pem` (the certificate is always verified)
    #[arg(long, env = "STRATA_STORE", hide_env_values = true, value_name = "URL")]
    pub store: Option<String>,
    /// Where to listen for gRPC
    #[arg(long, env = "STRATA_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The admin token; stored hashed. Without one, the stored hash is kept, or a token is
    /// generated and printed once at first start
    #[arg(
        long,
        env = "STRATA_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// The service token gateways present; stored hashed; generated at first start if absent
    #[arg(
        long,
        env = "STRATA_SERVICE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub service_token: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM); gateways and the CLI then use an
    /// https:// URL. Without it the resolver speaks plain HTTP/2: keep it on a private network
    #[arg(
        long,
        env = "STRATA_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(
        long,
        env = "STRATA_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve the admin console (HTML, sign-in with the admin token) on this address; off unless
    /// given
    #[arg(long, env = "STRATA_CONSOLE_LISTEN", value_name = "ADDR")]
    pub console_listen: Option<SocketAddr>,
    /// The gateway's audit directory, for the console's audit search
    #[arg(
        long,
        env = "STRATA_CONSOLE_AUDIT_DIR",
        value_name = "DIR",
        requires = "console_listen"
    )]
    pub console_audit_dir: Option<PathBuf>,
    /// Instead: the gateways' audit database (`[audit] store`), postgres://USER@HOST:PORT/DB
    #[arg(
        long,
        env = "STRATA_CONSOLE_AUDIT_STORE",
        hide_env_values = true,
        value_name = "URL",
        requires = "console_listen",
        conflicts_with = "console_audit_dir"
    )]
    pub console_audit_store: Option<String>,
    /// The gateway's public URL, for the console's effective diffs (an org that requires a
    /// gateway allows models only through it)
    #[arg(
        long,
        env = "STRATA_CONSOLE_GATEWAY_URL",
        value_name = "URL",
        requires = "console_listen"
    )]
    pub console_gateway_url: Option<String>,
    /// The console is reached over TLS (through a TLS proxy): mark its cookies `Secure`
    #[arg(
        long,
        env = "STRATA_CONSOLE_SECURE_COOKIES",
        requires = "console_listen"
    )]
    pub console_secure_cookies: bool,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Open a sled store and the resolver, printing any secret generated at first start
pub async fn open(
    data: &std::path::Path,
    admin: Option<String>,
    service: Option<String>,
) -> Result<Arc<Resolver>, Failed> {
    let store = SledStore::open(data).map_err(|e| {
        eprintln!(
            "error: cannot open the data directory {}: {e}",
            data.display()
        );
        Failed(exit::FAILURE)
    })?;
    open_on(Arc::new(store), admin, service).await
}

/// Connect to PostgreSQL (migrating its tables) and open the resolver on it
pub async fn open_postgres(
    url: &str,
    admin: Option<String>,
    service: Option<String>,
) -> Result<Arc<Resolver>, Failed> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        eprintln!("error: --store takes a PostgreSQL URL, `postgres://USER@HOST:PORT/DB`");
        return Err(Failed(exit::FAILURE));
    }
    let url = url.to_string();
    let store = tokio::task::spawn_blocking(move || PgStore::open(&url))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| {
            eprintln!("error: cannot open the PostgreSQL store: {e}");
            Failed(exit::FAILURE)
        })?;
    open_on(Arc::new(store), admin, service).await
}

async fn open_on(
    store: Arc<dyn Store>,
    admin: Option<String>,
    service: Option<String>,
) -> Result<Arc<Resolver>, Failed> {
    let (resolver, generated) = Resolver::open(store, admin, service).await.map_err(|e| {
        eprintln!("error: {e}");
        Failed(exit::FAILURE)
    })?;
    if let Some(t) = generated.admin_token {
        eprintln!(
            "generated an admin token (shown once, stored hashed):\n  STRATA_ADMIN_TOKEN={t}"
        );
    }
    if let Some(t) = generated.service_token {
        eprintln!(
            "generated a service token for gateways (shown once, stored hashed):\n  STRATA_SERVICE_TOKEN={t}"
        );
    }
    Ok(Arc::new(resolver))
}

pub async fn run(args: ServeArgs) -> Result<u8, Failed> {
    init_logging();
    // the certificate and key are read before anything else starts: a bad file stops here
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(strata_transport::server_tls(cert, key).map_err(|e| {
                eprintln!("error: --tls-cert/--tls-key: {e}");
                Failed(exit::INVALID)
            })?)
        }
        _ => None,
    };
    let resolver = match (&args.store, &args.data) {
        (Some(url), _) => open_postgres(url, args.admin_token, args.service_token).await?,
        (None, Some(data)) => open(data, args.admin_token, args.service_token).await?,
        (None, None) => {
            eprintln!("error: give --data DIR (sled) or --store postgres://... (PostgreSQL)");
            return Err(Failed(exit::INVALID));
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            Failed(exit::FAILURE)
        })?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let tls_on = tls.is_some();
    match resolver.active() {
        Some(a) => {
            tracing::info!(%addr, tls = tls_on, revision = %a.revision, "resolver listening")
        }
        None => {
            tracing::info!(%addr, tls = tls_on, "resolver listening; no policy published yet (decisions are refused until one is)")
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let console = match args.console_listen {
        Some(addr) => {
            let secure = args.console_secure_cookies;
            let audit = match (&args.console_audit_store, &args.console_audit_dir) {
                (Some(url), _) => Some(strata_console::AuditSource::Postgres(url.clone())),
                (None, Some(dir)) => Some(strata_console::AuditSource::Dir(dir.clone())),
                (None, None) => None,
            };
            let gateway = args.console_gateway_url.clone();
            Some(
                crate::console::start(resolver.clone(), addr, audit, gateway, secure, stopped)
                    .await?,
            )
        }
        None => None,
    };
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let served = strata_resolver::serve_with(resolver, listener, tls, shutdown).await;
    if let Some((_, task)) = console {
        let _ = tokio::time::timeout(strata_resolver::DRAIN_GRACE, task).await;
    }
    served.map_err(|e| {
        eprintln!("error: {e}");
        Failed(exit::FAILURE)
    })?;
    Ok(exit::ALLOW)
}
