//! Talking to a running resolver: the admin commands and `explain --resolver`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use prost::Message;
use strata_policy::FileTree;
use strata_proto::v1::{
    self, admin_service_client::AdminServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::transport::Channel;

use crate::exit;

/// The resolver's default address
pub const DEFAULT_RESOLVER: &str = "http://127.0.0.1:50051";

#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The resolver's URL
    #[arg(long, env = "STRATA_RESOLVER", default_value = DEFAULT_RESOLVER, value_name = "URL")]
    pub resolver: String,
    /// The admin token (admin commands) or service token (explain)
    #[arg(
        long,
        env = "STRATA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// For an https:// resolver: the CA certificates (PEM) that sign its certificate; without
    /// it, the system's roots
    #[arg(long, env = "STRATA_RESOLVER_CA", value_name = "FILE")]
    pub resolver_ca: Option<PathBuf>,
}

/// Why a remote command failed, already printed; the exit code to use
pub struct Failed(pub u8);

pub fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Failed(exit::FAILURE)
        })
}

impl Conn {
    pub async fn channel(&self) -> Result<Channel, Failed> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = strata_transport::endpoint(&self.resolver, self.resolver_ca.as_deref())
            .map_err(|e| {
                eprintln!("error: {e}");
                Failed(exit::FAILURE)
            })?;
        endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                eprintln!(
                    "error: cannot reach the resolver at {}: {}",
                    self.resolver,
                    strata_transport::error_chain(&e)
                );
                Failed(exit::FAILURE)
            })
    }

    pub fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, Failed> {
        let mut req = tonic::Request::new(msg);
        let Some(token) = self.token.as_deref() else {
            eprintln!("error: no token: pass --token or set STRATA_TOKEN");
            return Err(Failed(exit::FAILURE));
        };
        let value = format!("Bearer {token}").parse().map_err(|_| {
            eprintln!("error: the token holds characters that cannot go in a header");
            Failed(exit::FAILURE)
        })?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

/// Print a failed call the way a person can act on; INVALID_ARGUMENT lists every problem
pub fn status(s: tonic::Status) -> Failed {
    match s.code() {
        tonic::Code::InvalidArgument => {
            match v1::Problems::decode(s.details()) {
                Ok(p) if !p.problems.is_empty() => {
                    let errors = p.problems.iter().filter(|x| x.severity == "error").count();
                    for x in &p.problems {
                        outln!("{x}");
                    }
                    outln!(
                        "{errors} error(s), {} warning(s)",
                        p.problems.len() - errors
                    );
                    eprintln!("rejected: the resolver kept the active revision");
                }
                _ => eprintln!("error: {}", s.message()),
            }
            Failed(exit::INVALID)
        }
        tonic::Code::Unauthenticated => {
            eprintln!(
                "error: the resolver rejected the credentials (check --token / STRATA_TOKEN)"
            );
            Failed(exit::FAILURE)
        }
        _ => {
            eprintln!("error: {} ({:?})", s.message(), s.code());
            Failed(exit::FAILURE)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PublishCmd {
    /// Publish an org bundle (a .factory/-shaped directory)
    Org {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// A note kept with the revision
        #[arg(short, long, default_value = "")]
        message: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Publish a project's layer (its .factory/), as the project's CI would
    Project {
        /// The project id decisions name
        #[arg(long)]
        id: String,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// A folder layer: PATH=DIR, e.g. services/billing=services/billing/.factory; repeatable
        #[arg(long = "folder", value_name = "PATH=DIR")]
        folders: Vec<String>,
        #[arg(short, long, default_value = "")]
        message: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a gateway token; it is printed once and stored only as a hash
    Create {
        #[arg(long)]
        user: String,
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Limit the token to these projects; repeatable [default: any project]
        #[arg(long = "project")]
        projects: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List gateway tokens (never their values)
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke a gateway token by id
    Revoke {
        #[arg(value_name = "TOKEN_ID")]
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// A layer directory's files, as a publish sends them
pub fn read_tree_files(dir: &std::path::Path) -> Result<Vec<v1::File>, Failed> {
    Ok(strata_proto::files(&read_tree(dir)?))
}

fn read_tree(dir: &std::path::Path) -> Result<FileTree, Failed> {
    FileTree::read_path(dir).map_err(|p| {
        eprint!("{}", crate::render::problem_report(&p));
        Failed(exit::INVALID)
    })
}

fn print_published(r: v1::PublishResponse) {
    for w in &r.warnings {
        eprintln!("{w}");
    }
    if r.changed {
        outln!("active revision {}", r.revision);
    } else {
        outln!("unchanged: revision {} is already active", r.revision);
    }
}

async fn admin(conn: &Conn) -> Result<AdminServiceClient<Channel>, Failed> {
    Ok(AdminServiceClient::new(conn.channel().await?)
        .max_decoding_message_size(strata_resolver::MAX_ADMIN_MESSAGE))
}

pub async fn publish(cmd: PublishCmd) -> Result<u8, Failed> {
    match cmd {
        PublishCmd::Org { dir, message, conn } => {
            let tree = read_tree(&dir)?;
            let req = conn.request(v1::PublishOrgRequest {
                files: strata_proto::files(&tree),
                message,
            })?;
            let r = admin(&conn)
                .await?
                .publish_org(req)
                .await
                .map_err(status)?
                .into_inner();
            print_published(r);
        }
        PublishCmd::Project {
            id,
            dir,
            folders,
            message,
            conn,
        } => {
            let tree = read_tree(&dir)?;
            let mut layers = Vec::new();
            for f in folders {
                let Some((path, d)) = f.split_once('=') else {
                    eprintln!("error: --folder takes PATH=DIR, got `{f}`");
                    return Err(Failed(exit::FAILURE));
                };
                let t = read_tree(std::path::Path::new(d))?;
                layers.push(v1::FolderLayer {
                    path: path.to_string(),
                    files: strata_proto::files(&t),
                });
            }
            let req = conn.request(v1::PublishProjectRequest {
                project_id: id,
                files: strata_proto::files(&tree),
                folders: layers,
                message,
            })?;
            let r = admin(&conn)
                .await?
                .publish_project(req)
                .await
                .map_err(status)?
                .into_inner();
            print_published(r);
        }
    }
    Ok(exit::ALLOW)
}

/// `YYYY-MM-DD HH:MM:SSZ` of a unix time in ms
fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

pub async fn revisions(conn: Conn) -> Result<u8, Failed> {
    let r = admin(&conn)
        .await?
        .list_revisions(conn.request(v1::ListRevisionsRequest {})?)
        .await
        .map_err(status)?
        .into_inner();
    if r.revisions.is_empty() {
        outln!("no revisions yet");
    }
    for rev in r.revisions {
        let mark = if rev.active { "*" } else { " " };
        let msg = if rev.message.is_empty() {
            String::new()
        } else {
            format!("  {}", rev.message)
        };
        let changed = match rev.changed_projects.as_slice() {
            [] => String::new(),
            ids => format!(" (changed: {})", ids.join(", ")),
        };
        outln!(
            "{mark} {}  {}  {:<15} projects: {}{changed}{msg}",
            &rev.revision[..rev.revision.len().min(12)],
            when(rev.created_at_unix_ms),
            rev.kind,
            rev.project_count
        );
    }
    Ok(exit::ALLOW)
}

pub async fn rollback(revision: String, conn: Conn) -> Result<u8, Failed> {
    let r = admin(&conn)
        .await?
        .rollback(conn.request(v1::RollbackRequest { revision })?)
        .await
        .map_err(status)?
        .into_inner();
    outln!("active revision {}", r.revision);
    Ok(exit::ALLOW)
}

pub async fn token(cmd: TokenCmd) -> Result<u8, Failed> {
    match cmd {
        TokenCmd::Create {
            user,
            groups,
            projects,
            description,
            conn,
        } => {
            let req = conn.request(v1::CreateTokenRequest {
                user,
                groups,
                projects,
                description,
            })?;
            let r = admin(&conn)
                .await?
                .create_token(req)
                .await
                .map_err(status)?
                .into_inner();
            eprintln!(
                "token id {} (the token below is shown once; only its hash is stored)",
                r.token_id
            );
            outln!("{}", r.token);
        }
        TokenCmd::List { conn } => {
            let r = admin(&conn)
                .await?
                .list_tokens(conn.request(v1::ListTokensRequest {})?)
                .await
                .map_err(status)?
                .into_inner();
            for t in r.tokens {
                let state = if t.revoked { "revoked" } else { "active" };
                let projects = if t.projects.is_empty() {
                    "any project".to_string()
                } else {
                    t.projects.join(",")
                };
                outln!(
                    "{}  {state:<7}  user {}  groups [{}]  {projects}  {}  {}",
                    t.token_id,
                    t.user,
                    t.groups.join(","),
                    when(t.created_at_unix_ms),
                    t.description
                );
            }
        }
        TokenCmd::Revoke { id, conn } => {
            admin(&conn)
                .await?
                .revoke_token(conn.request(v1::RevokeTokenRequest {
                    token_id: id.clone(),
                })?)
                .await
                .map_err(status)?;
            outln!("revoked {id}");
        }
    }
    Ok(exit::ALLOW)
}

/// `explain model|mcp --resolver URL`: the live snapshot's answer, printed like the local one
pub async fn explain(
    conn: &Conn,
    req: &strata_policy::Request,
    json: bool,
    subject: &str,
) -> Result<u8, Failed> {
    let mut client = PolicyServiceClient::new(conn.channel().await?);
    let r = client
        .explain(conn.request(v1::ExplainRequest {
            request: Some(strata_proto::decide_request(req)),
        })?)
        .await
        .map_err(status)?
        .into_inner();
    let d = r.decision.unwrap_or_default();
    if json {
        outln!("{}", r.explanation_json);
    } else {
        out!("{}", crate::render::remote_decision(&d, subject));
    }
    Ok(if d.effect == v1::Effect::Allow as i32 {
        exit::ALLOW
    } else {
        exit::DENY
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_in_utc() {
        assert_eq!(super::when(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::when(1_796_083_199_999), "2026-11-30 23:59:59Z");
    }
}
