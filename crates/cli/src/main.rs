use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    strata_cli::run(strata_cli::Cli::parse())
}
