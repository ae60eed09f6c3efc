//! `policy gateway` (the gateway alone) and `policy up` (resolver and gateway in one process, on
//! an embedded sled store, with the example bundle published).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use strata_gateway::{Gateway, GatewayConfig};
use strata_policy::Request;
use strata_resolver::Resolver;

use crate::exit;
use crate::remote::Failed;
use crate::serve::{init_logging, shutdown_signal};

/// How long a stopping gateway waits for its audit writer
const AUDIT_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The gateway's TOML configuration (see docs/operations.md)
    #[arg(long, env = "STRATA_GATEWAY_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

pub async fn gateway(args: GatewayArgs) -> Result<u8, Failed> {
    init_logging();
    let cfg = GatewayConfig::load(&args.config).map_err(|e| {
        eprintln!("error: {e}");
        Failed(exit::INVALID)
    })?;
    run_gateway(cfg, None, shutdown_signal()).await
}

/// The resolver's policy service, asked by the gateway in the same process
struct InProcess(strata_resolver::service::PolicySvc);

impl strata_gateway::decider::LocalPolicy for InProcess {
    fn decide(
        &self,
        req: &strata_proto::v1::DecideRequest,
    ) -> Result<strata_proto::v1::DecideResponse, tonic::Status> {
        self.0.decide_in_process(req)
    }
}

async fn run_gateway(
    cfg: GatewayConfig,
    local: Option<Arc<Resolver>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<u8, Failed> {
    let listen = cfg.listen;
    let mut gw = Gateway::new(cfg).map_err(|e| {
        eprintln!("error: {e}");
        Failed(exit::FAILURE)
    })?;
    if let Some(resolver) = local {
        gw = gw.with_local_resolver(Arc::new(InProcess(strata_resolver::service::PolicySvc {
            resolver,
        })));
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        eprintln!("error: cannot listen on {listen}: {e}");
        Failed(exit::FAILURE)
    })?;
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "gateway listening");
    let telemetry = Arc::clone(&gw.telemetry);
    let served = strata_gateway::serve(Arc::new(gw), listener, shutdown).await;
    // the records of the last requests, before the process ends
    let flushed = tokio::task::spawn_blocking(move || telemetry.flush(AUDIT_FLUSH_GRACE)).await;
    if matches!(flushed, Ok(false)) {
        tracing::warn!("stopping before every audit record was written");
    }
    served.map_err(|e| {
        eprintln!("error: {e}");
        Failed(exit::FAILURE)
    })?;
    Ok(exit::ALLOW)
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The embedded store
    #[arg(
        long,
        env = "STRATA_DATA",
        default_value = ".strata",
        value_name = "DIR"
    )]
    pub data: PathBuf,
    /// The org bundle to publish
    #[arg(long, default_value = "policies/examples/acme/org", value_name = "DIR")]
    pub org: PathBuf,
    /// A project layer to publish, as ID=DIR (its `.factory/`); every `.factory/` below the
    /// project's root is published as one of its folders; repeatable
    #[arg(
        long = "project",
        default_value = "web=policies/examples/acme/project/.factory",
        value_name = "ID=DIR"
    )]
    pub projects: Vec<String>,
    /// The resolver's gRPC address
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub resolver_listen: SocketAddr,
    /// The gateway's HTTP address
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// The admin console's address (sign in with the printed admin token)
    #[arg(long, default_value = "127.0.0.1:8788", value_name = "ADDR")]
    pub console_listen: SocketAddr,
    /// The user the printed gateway token is for
    #[arg(long, default_value = "alice")]
    pub user: String,
    /// Their groups; repeatable
    #[arg(long = "group", default_values_t = vec!["leads".to_string()])]
    pub groups: Vec<String>,
}

/// The folder layers of a project whose `.factory/` is `dir`: every `.factory/` below the
/// project's root (`dir`'s parent), as (path below the root, directory), in path order
fn folder_layers(dir: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let Some(root) = dir.parent() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) || e.file_name() == ".git" {
                continue;
            }
            if e.file_name() == ".factory" {
                if d != root
                    && let Ok(rel) = d.strip_prefix(root)
                {
                    out.push((rel.to_string_lossy().replace('\\', "/"), p));
                }
                continue;
            }
            stack.push(p);
        }
    }
    out.sort();
    out
}

fn upstream(base_env: &str, default: &str, key_env: &str) -> String {
    let base = std::env::var(base_env).unwrap_or_else(|_| default.to_string());
    format!("base_url = {base:?}\nkey_env = {key_env:?}\n")
}

fn fail(m: String) -> Failed {
    eprintln!("error: {m}");
    Failed(exit::FAILURE)
}

pub async fn up(args: UpArgs) -> Result<u8, Failed> {
    init_logging();
    let admin =
        strata_resolver::state::new_secret("strata_admin_").map_err(|e| fail(e.to_string()))?;
    let service =
        strata_resolver::state::new_secret("strata_svc_").map_err(|e| fail(e.to_string()))?;
    let resolver =
        crate::serve::open(&args.data, Some(admin.clone()), Some(service.clone())).await?;
    publish(&resolver, &args).await?;
    let (token, _) = resolver
        .create_token(
            args.user.clone(),
            args.groups.clone(),
            Vec::new(),
            "policy up".to_string(),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;

    let rl = tokio::net::TcpListener::bind(args.resolver_listen)
        .await
        .map_err(|e| fail(format!("cannot listen on {}: {e}", args.resolver_listen)))?;
    let resolver_url = format!(
        "http://{}",
        rl.local_addr().map_err(|e| fail(e.to_string()))?
    );
    let gateway_url = format!("http://{}", args.listen);
    let cfg = gateway_config(&args, &resolver_url, &gateway_url, &service)?;

    let active = resolver
        .active()
        .ok_or_else(|| fail("nothing is active".to_string()))?;
    let (snippet, refused) = droid_models(&active.snapshot, &args, &gateway_url, &token);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let audit = Some(strata_console::AuditSource::Dir(args.data.join("audit")));
    let (console_url, console) = crate::console::start(
        resolver.clone(),
        args.console_listen,
        audit,
        Some(gateway_url.clone()),
        false,
        stopped,
    )
    .await?;
    let urls = Urls {
        resolver: &resolver_url,
        gateway: &gateway_url,
        console: &console_url,
    };
    let revision = active.revision.to_string();
    print_next_steps(&args, &urls, &revision, &admin, &token, &snippet, refused);
    let code = serve_both(resolver, rl, cfg).await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(strata_resolver::DRAIN_GRACE, console).await;
    code
}

/// The org bundle and each `--project ID=DIR` (with its folder layers), published
async fn publish(resolver: &Resolver, args: &UpArgs) -> Result<(), Failed> {
    let org = crate::remote::read_tree_files(&args.org)?;
    resolver
        .publish_org(org, "policy up".to_string())
        .await
        .map_err(|e| report(resolver, e))?;
    for (id, dir) in args.projects.iter().filter_map(|p| p.split_once('=')) {
        let dir = std::path::Path::new(dir);
        let files = crate::remote::read_tree_files(dir)?;
        let mut folders = Vec::new();
        for (path, tree) in folder_layers(dir) {
            folders.push(strata_proto::v1::FolderLayer {
                path,
                files: crate::remote::read_tree_files(&tree)?,
            });
        }
        resolver
            .publish_project(id.to_string(), files, folders, "policy up".to_string())
            .await
            .map_err(|e| report(resolver, e))?;
    }
    Ok(())
}

/// The in-process gateway's configuration, with the service token written to a private file
fn gateway_config(
    args: &UpArgs,
    resolver_url: &str,
    gateway_url: &str,
    service: &str,
) -> Result<GatewayConfig, Failed> {
    // the service token reaches the in-process gateway through a private file, never argv
    let token_file = args.data.join("service-token");
    std::fs::write(&token_file, service)
        .map_err(|e| fail(format!("cannot write {}: {e}", token_file.display())))?;
    GatewayConfig::parse(
        "policy up",
        &format!(
            "listen = {:?}\npublic_base_url = {gateway_url:?}\nresolver = {resolver_url:?}\nservice_token_file = {:?}\n[audit]\ndir = {:?}\n[upstreams.anthropic]\n{}[upstreams.openai]\n{}[upstreams.generic-chat-completion-api]\n{}",
            args.listen.to_string(),
            token_file.display().to_string(),
            args.data.join("audit").display().to_string(),
            upstream("ANTHROPIC_BASE_URL", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
            upstream("OPENAI_BASE_URL", "https://api.openai.com", "OPENAI_API_KEY"),
            upstream("STRATA_CHAT_BASE_URL", "https://api.openai.com", "OPENAI_API_KEY"),
        ),
    )
    .map_err(|e| fail(e.to_string()))
}

/// The `customModels` snippet for the user's own Droid settings, and, when the gateway would
/// refuse every model, the first refused model with the reason
fn droid_models(
    snapshot: &strata_policy::Snapshot,
    args: &UpArgs,
    gateway_url: &str,
    token: &str,
) -> (String, Option<(String, String)>) {
    // the person's own settings: the org's scope, as the gateway decides a request that names no
    // project (Droid sends a project only from the project's own .factory/settings.json, below)
    let base = Request::scope(args.user.clone(), args.groups.clone(), None, None);
    // decided as the gateway decides each request, through its own URL: when none of them gets
    // through (the org's gateway requirement, say), that is better said now than on each request
    let (models, hidden) = strata_policy::explain::models(snapshot, &base, Some(gateway_url), &[]);
    let refused = if models.is_empty() {
        hidden.first().map(|m| (m.model.clone(), m.reason.clone()))
    } else {
        None
    };
    let views: Vec<strata_proto::v1::ModelView> = models
        .iter()
        .map(strata_proto::v1::ModelView::from)
        .collect();
    let entries = strata_gateway::droid::custom_models(&views, gateway_url, token);
    let snippet = serde_json::to_string_pretty(&serde_json::json!({ "customModels": entries }))
        .unwrap_or_default();
    (snippet, refused)
}

struct Urls<'a> {
    resolver: &'a str,
    gateway: &'a str,
    console: &'a str,
}

/// What to do next: the tokens, how to point Droid at the gateway, the audit directory
fn print_next_steps(
    args: &UpArgs,
    urls: &Urls<'_>,
    revision: &str,
    admin: &str,
    token: &str,
    snippet: &str,
    refused: Option<(String, String)>,
) {
    let (resolver_url, gateway_url) = (urls.resolver, urls.gateway);
    eprintln!(
        "\nStrata is up: resolver {resolver_url}, gateway {gateway_url}, revision {}\n\n\
         admin console: {} (sign in with the admin token)\n\n\
         admin token (for the console, `policy publish`, `policy token`; shown once):\n  STRATA_ADMIN_TOKEN={admin}\n\n\
         gateway token for user `{}` (groups: {}):\n  {token}\n\n\
         Point Droid at Strata: it then loads the org level from this gateway and refuses locally what the\n\
         bundle forbids (models, MCP servers, hooks, commands, autonomy), with this gateway's models offered:\n  \
         export FACTORY_API_BASE_URL={gateway_url} FACTORY_API_KEY={token}\n\n\
         Or, without the org level, paste into ~/.factory/settings.json the models this user may use through the gateway:\n",
        revision,
        urls.console,
        args.user,
        args.groups.join(", ")
    );
    outln!("{snippet}");
    let project = args
        .projects
        .first()
        .and_then(|p| p.split_once('='))
        .map(|(id, dir)| (id.to_string(), dir.to_string()));
    if let Some((id, dir)) = &project {
        let checkout = std::path::Path::new(dir)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".to_string());
        eprintln!(
            "\nIn a checkout of project `{id}`, its models (and its bans) apply when Droid sends the project: write the\n\
             project's .factory/settings.json (commit it; the key is ${{STRATA_TOKEN}} from each person's environment):\n  \
             policy droid-settings --gateway {gateway_url} --token $STRATA_TOKEN --project {id} --project-dir {checkout}\n  \
             export STRATA_TOKEN={token}"
        );
    }
    if let Some((model, reason)) = refused {
        eprintln!(
            "\nwarning: the gateway would refuse every model for `{}` (`{model}`: {reason})",
            args.user
        );
        eprintln!(
            "  Listen where the org bundle's gateway.requiredBaseUrls allows (--listen), or publish an org bundle that allows {gateway_url}."
        );
    }
    eprintln!(
        "\nAudit records: {} (`policy audit --dir {}`); metrics: {gateway_url}/metrics\nStop with Ctrl-C.",
        args.data.join("audit").display(),
        args.data.join("audit").display()
    );
}

/// The resolver on `rl` and the gateway, until Ctrl-C stops both
async fn serve_both(
    resolver: Arc<Resolver>,
    rl: tokio::net::TcpListener,
    cfg: GatewayConfig,
) -> Result<u8, Failed> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let resolver_task = tokio::spawn(strata_resolver::serve(resolver.clone(), rl, async move {
        let _ = rx2.wait_for(|s| *s).await;
    }));
    let mut rx3 = rx;
    // the gateway asks this resolver directly: a decision per request without a network hop
    let gateway = run_gateway(cfg, Some(resolver), async move {
        let _ = rx3.wait_for(|s| *s).await;
    });
    let signal = async move {
        shutdown_signal().await;
        let _ = tx.send(true);
        std::future::pending::<()>().await
    };
    let code = tokio::select! {
        r = gateway => r?,
        _ = signal => exit::ALLOW,
    };
    let _ = tokio::time::timeout(strata_resolver::DRAIN_GRACE, resolver_task).await;
    Ok(code)
}

fn report(_r: &Resolver, e: strata_resolver::ResolverError) -> Failed {
    if let strata_resolver::ResolverError::Invalid(p) = &e {
        eprint!("{}", crate::render::problem_report(p));
        return Failed(exit::INVALID);
    }
    eprintln!("error: {e}");
    Failed(exit::FAILURE)
}
