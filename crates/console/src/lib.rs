#![doc = include_str!("../README.md")]

mod audit;
mod auth;
mod changes;
mod diff;
mod explain;
mod layout;
mod publish;
mod records;
mod revisions;
mod session;
mod tokens;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use strata_resolver::Resolver;

pub use auth::MAX_FAILURES as MAX_FAILED_SIGN_INS;
pub use upload::MAX_REQUEST_BYTES as MAX_UPLOAD_BYTES;

/// The Content-Security-Policy of every response: scripts and styles only from the console itself
/// (no inline script, no CDN), no framing, forms only back to the console
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Where the gateway writes its audit records
#[derive(Clone, Debug)]
pub enum AuditSource {
    /// its daily JSON-lines files (`[audit] dir`)
    Dir(PathBuf),
    /// its PostgreSQL database (`[audit] store`), `postgres://...`
    Postgres(String),
}

/// How the console is deployed
#[derive(Clone, Debug, Default)]
pub struct ConsoleOptions {
    /// The gateway's audit records, for the audit pages; `None` hides them
    pub audit: Option<AuditSource>,
    /// The gateway's public URL: the effective diff decides models as requested through it (an
    /// org may require a gateway; without it such models count as refused)
    pub gateway_url: Option<String>,
    /// Mark cookies `Secure` (the console is reached over TLS, e.g. behind a TLS proxy)
    pub secure_cookies: bool,
}

/// The console's state: the resolver it shows and changes (the change log is in its store),
/// sessions and the sign-in limiter. None of it is on the decision path: the console reads the resolver's active
/// snapshot through the same lock-free pointer the decisions read.
pub struct Console {
    pub(crate) resolver: Arc<Resolver>,
    pub(crate) options: ConsoleOptions,
    pub(crate) sessions: session::Sessions,
    pub(crate) limiter: auth::Limiter,
    pub(crate) audit_cache: records::DirCache,
    pub(crate) loaded: revisions::Loaded,
    pub(crate) staged: upload::Staged,
}

impl Console {
    pub fn new(resolver: Arc<Resolver>, options: ConsoleOptions) -> Arc<Console> {
        Arc::new(Console {
            resolver,
            options,
            sessions: session::Sessions::default(),
            limiter: auth::Limiter::default(),
            audit_cache: records::DirCache::default(),
            loaded: revisions::Loaded::default(),
            staged: upload::Staged::default(),
        })
    }
}

/// Every page and form of the console
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(revisions::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/console.css", get(layout::css))
        .route("/static/console.js", get(layout::js))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/revoke", post(tokens::revoke))
        .route("/tokens/bind", post(tokens::bind))
        .route("/explain", get(explain::page))
        .route("/file", get(explain::file))
        .route("/revisions", get(revisions::list))
        .route("/revisions/diff", get(revisions::diff))
        .route(
            "/revisions/rollback",
            get(revisions::confirm).post(revisions::rollback),
        )
        .route("/publish", get(publish::page))
        .route("/publish/preview", post(publish::preview))
        .route(
            "/publish/upload",
            post(publish::upload).layer(DefaultBodyLimit::max(upload::MAX_REQUEST_BYTES)),
        )
        .route("/publish/activate", post(publish::activate))
        .route("/audit", get(audit::page))
        .route("/changes", get(changes::page))
        .layer(axum::middleware::from_fn(headers))
        .with_state(console)
}

/// The security headers of every response
async fn headers(req: Request<axum::body::Body>, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Serve the console on `listener` until `shutdown` resolves
pub async fn serve(
    console: Arc<Console>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // read the audit files once now, so that the first search does not wait for it
    if let Some(AuditSource::Dir(dir)) = console.options.audit.clone() {
        let c = console.clone();
        tokio::task::spawn_blocking(move || {
            let all = records::Filter::default();
            if let Err(e) = c.audit_cache.search(&dir, &all, 0, 1) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the audit directory");
            }
        });
    }
    axum::serve(
        listener,
        router(console).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
