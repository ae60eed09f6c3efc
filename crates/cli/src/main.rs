use std::process::ExitCode;

use clap::Parser;

/// Every request allocates (headers, bodies, records): mimalloc spends about half the
/// instructions glibc's malloc does on the gateway's path (docs/benchmarks.md). Built with
/// `no_thp`: with transparent huge pages its arenas made a 26 MB process 79 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    strata_cli::run(strata_cli::Cli::parse())
}
