#![doc = include_str!("../README.md")]

/// `println!` that does not panic when stdout is closed (`policy ... | head`)
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that does not panic when stdout is closed
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod audit;
mod console;
mod droid;
mod explain;
mod layers;
mod remote;
mod render;
mod serve;
mod test_cmd;
mod up;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use layers::LayerArgs;

/// Exit codes of every command
pub mod exit {
    pub const ALLOW: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const DENY: u8 = 2;
    pub const INVALID: u8 = 3;
}

/// Strata's `policy` command: explain, validate and test layered governance for AI coding agents
#[derive(Debug, Parser)]
#[command(name = "policy", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a decision (model, MCP server) or the effective settings, with provenance
    #[command(subcommand)]
    Explain(Box<explain::ExplainCmd>),
    /// Validate layers (an org bundle, a project's or user's .factory/); exit 0 valid, 3 invalid
    Validate(validate::ValidateArgs),
    /// Run the decision cases a bundle ships in tests/*.json
    Test(test_cmd::TestArgs),
    /// Run the resolver (gRPC) on a sled data directory or a shared PostgreSQL database; graceful
    /// shutdown on SIGTERM
    Serve(serve::ServeArgs),
    /// Publish an org bundle or a project layer to a resolver
    #[command(subcommand)]
    Publish(remote::PublishCmd),
    /// List the resolver's revisions (* marks the active one)
    Revisions(remote::Conn),
    /// Make an earlier revision active again
    Rollback {
        /// A revision or a unique prefix of one
        revision: String,
        #[command(flatten)]
        conn: remote::Conn,
    },
    /// Manage gateway tokens
    #[command(subcommand)]
    Token(remote::TokenCmd),
    /// Run the gateway (the LLM proxy) from a TOML configuration
    Gateway(up::GatewayArgs),
    /// Run resolver and gateway together on an embedded store, with the example bundle published
    Up(up::UpArgs),
    /// Write Droid's settings.json customModels for exactly the models you may use, through the gateway
    DroidSettings(droid::DroidSettingsArgs),
    /// Show the gateway's audit records (who used which model, the decision, tokens), filtered
    Audit(audit::AuditArgs),
}

/// Run an async command on a fresh runtime
fn block_on(f: impl std::future::Future<Output = Result<u8, remote::Failed>>) -> u8 {
    match remote::runtime() {
        Ok(rt) => rt.block_on(f).unwrap_or_else(|remote::Failed(code)| code),
        Err(remote::Failed(code)) => code,
    }
}

/// Run one parsed command line; the process exit code follows the contract in [`exit`]
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Explain(cmd) => explain::run(*cmd),
        Command::Validate(args) => validate::run(args),
        Command::Test(args) => test_cmd::run(args),
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Publish(cmd) => block_on(remote::publish(cmd)),
        Command::Revisions(conn) => block_on(remote::revisions(conn)),
        Command::Rollback { revision, conn } => block_on(remote::rollback(revision, conn)),
        Command::Token(cmd) => block_on(remote::token(cmd)),
        Command::Gateway(args) => block_on(up::gateway(args)),
        Command::Up(args) => block_on(up::up(args)),
        Command::DroidSettings(args) => block_on(droid::run(args)),
        Command::Audit(args) => audit::run(args),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
