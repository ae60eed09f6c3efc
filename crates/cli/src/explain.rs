//! `policy explain model|mcp|settings`

use clap::{Args, Subcommand, ValueEnum};
use strata_policy::explain::{effective_settings, explain};
use strata_policy::{Effect, KeyMode, McpRef, Provider, Request, Target};

use crate::exit;
use crate::layers::{LayerArgs, Resolved, default_user};
use crate::render;

#[derive(Debug, Subcommand)]
pub enum ExplainCmd {
    /// May this user invoke MODEL? Exit 0 allow, 2 deny, 3 invalid configuration
    Model(ModelArgs),
    /// May this user connect MCP server SERVER (a name from mcp.json, or a URL)?
    Mcp(McpArgs),
    /// The effective settings, every value with the layer, file and line it comes from
    Settings(SettingsArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub layers: LayerArgs,
    /// The user to decide for [default: $STRATA_USER, else $USER]
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    /// A group the user belongs to; may be repeated
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// Print JSON (a stable shape, for tools)
    #[arg(long)]
    pub json: bool,
    /// Ask this running resolver (its active snapshot) instead of reading local files
    #[arg(long, value_name = "URL")]
    pub resolver: Option<String>,
    /// The service or admin token for --resolver
    #[arg(
        long,
        env = "STRATA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// For an https:// --resolver: the CA certificates (PEM) that sign its certificate
    #[arg(long, env = "STRATA_RESOLVER_CA", value_name = "FILE")]
    pub resolver_ca: Option<std::path::PathBuf>,
    /// The project id to decide in [default: the name of the directory holding --project]
    #[arg(long, value_name = "ID")]
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyModeArg {
    Central,
    Byok,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model id, as the client sends it
    pub model: String,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Whose key: the org's (central, through the gateway) or the user's own (byok)
    #[arg(long, value_enum, default_value = "central")]
    pub key_mode: KeyModeArg,
    /// anthropic, openai or generic-chat-completion-api [default: from the model's customModels entry]
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// The base URL the traffic goes to [default: from the model's customModels entry]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The gateway base URL models would be used through (for the org's gateway requirement)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The server's name in mcp.json, or its URL
    pub server: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn load(common: &CommonArgs) -> Result<(Resolved, String), u8> {
    let user = common.as_user.clone().unwrap_or_else(default_user);
    match common.layers.resolve(&user, common.project_id.as_deref()) {
        Ok(r) => Ok((r, user)),
        Err(problems) => {
            if common.json {
                outln!(
                    "{}",
                    serde_json::json!({ "error": "invalid configuration", "problems": problems.problems })
                );
            } else {
                eprint!(
                    "invalid configuration:\n{}",
                    render::problem_report(&problems)
                );
            }
            Err(exit::INVALID)
        }
    }
}

/// Explain one target against the local layers, or with `--resolver` against the live snapshot
fn explain_target(c: &CommonArgs, target: Target, subject: &str) -> u8 {
    if let Some(url) = c.resolver.clone() {
        let req = Request {
            user: c.as_user.clone().unwrap_or_else(default_user),
            groups: c.groups.clone(),
            project: c.project_id.clone(),
            folder: None,
            gateway: None,
            token_projects: None,
            target,
        };
        let conn = crate::remote::Conn {
            resolver: url,
            token: c.token.clone(),
            resolver_ca: c.resolver_ca.clone(),
        };
        return match crate::remote::runtime() {
            Ok(rt) => rt
                .block_on(crate::remote::explain(&conn, &req, c.json, subject))
                .unwrap_or_else(|crate::remote::Failed(code)| code),
            Err(crate::remote::Failed(code)) => code,
        };
    }
    let (r, user) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let req = base_request(&r, user, c.groups.clone(), target);
    decide_and_print(&r, &req, c.json, subject)
}

fn base_request(r: &Resolved, user: String, groups: Vec<String>, target: Target) -> Request {
    Request {
        user,
        groups,
        project: r.project_id.clone(),
        folder: r.folder.clone(),
        gateway: None,
        token_projects: None,
        target,
    }
}

fn print_json(v: &impl serde::Serialize) -> bool {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            outln!("{s}");
            true
        }
        Err(e) => {
            eprintln!("error: cannot encode JSON: {e}");
            false
        }
    }
}

pub fn run(cmd: ExplainCmd) -> u8 {
    match cmd {
        ExplainCmd::Model(a) => {
            let provider = match a.provider.as_deref().map(|p| Provider::parse(p).ok_or(p)) {
                Some(Err(p)) => {
                    eprintln!("error: {}", Provider::invalid_message(p));
                    return exit::FAILURE;
                }
                Some(Ok(p)) => Some(p),
                None => None,
            };
            let key_mode = match a.key_mode {
                KeyModeArg::Central => KeyMode::Central,
                KeyModeArg::Byok => KeyMode::Byok,
            };
            let target = Target::Model {
                model: a.model.clone(),
                provider,
                key_mode,
                base_url: a.base_url,
                mcp_servers: Vec::new(),
            };
            let subject = format!("model `{}` ({} key)", a.model, key_mode.as_str());
            explain_target(&a.common, target, &subject)
        }
        ExplainCmd::Mcp(a) => {
            let server = if a.server.contains("://") {
                McpRef {
                    url: Some(a.server.clone()),
                    ..Default::default()
                }
            } else {
                McpRef {
                    name: Some(a.server.clone()),
                    ..Default::default()
                }
            };
            explain_target(
                &a.common,
                Target::Mcp { server },
                &format!("MCP server `{}`", a.server),
            )
        }
        ExplainCmd::Settings(SettingsArgs {
            common: c,
            base_url,
        }) => {
            let (r, user) = match load(&c) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let req = base_request(&r, user, c.groups.clone(), Target::none());
            let s = effective_settings(&r.snapshot, &req, base_url.as_deref(), &[]);
            if c.json {
                if !print_json(&s) {
                    return exit::FAILURE;
                }
            } else {
                out!("{}", render::settings(&s));
            }
            exit::ALLOW
        }
    }
}

fn decide_and_print(r: &Resolved, req: &Request, json: bool, subject: &str) -> u8 {
    let x = explain(&r.snapshot, req);
    if json {
        if !print_json(&x) {
            return exit::FAILURE;
        }
    } else {
        out!("{}", render::explanation(&x, subject));
    }
    match x.decision {
        Effect::Allow => exit::ALLOW,
        Effect::Deny => exit::DENY,
    }
}
