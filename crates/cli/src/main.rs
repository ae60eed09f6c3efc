use std::process::ExitCode;

use clap::Parser;

/// Every request allocates (headers, bodies, records): mimalloc spends about half the
/// instructions glibc's malloc does on the gateway's path (docs/benchmarks.md)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    strata_cli::run(strata_cli::Cli::parse())
}
