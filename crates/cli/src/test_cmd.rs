//! `policy test BUNDLE_DIR`: run the decision cases in the bundle's tests/*.json

use std::path::PathBuf;

use clap::Args;
use strata_policy::FileTree;
use strata_policy::testcase::{TestFileError, run_file, test_files};

use crate::exit;
use crate::render;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The org bundle directory; its tests/*.json are run
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
}

pub fn run(args: TestArgs) -> u8 {
    let org = match FileTree::read_path(&args.bundle) {
        Ok(t) => t,
        Err(p) => {
            eprint!("invalid bundle:\n{}", render::problem_report(&p));
            return exit::INVALID;
        }
    };
    let files = test_files(&args.bundle);
    if files.is_empty() {
        eprintln!("error: {} has no tests/*.json", args.bundle.display());
        return exit::FAILURE;
    }
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, 0usize);
    for file in files {
        match run_file(&args.bundle, &org, &file) {
            Ok(results) => {
                for r in results {
                    match r.failure {
                        None => {
                            passed += 1;
                            outln!("ok   {} :: {}", r.file, r.name);
                        }
                        Some(why) => {
                            failed += 1;
                            outln!("FAIL {} :: {}\n       {why}", r.file, r.name);
                        }
                    }
                }
            }
            Err(e) => {
                broken += 1;
                outln!("ERROR {e}");
                if let TestFileError::Layers { problems, .. } = &e {
                    out!("{}", render::problem_report(problems));
                }
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    if broken > 0 {
        exit::INVALID
    } else if failed > 0 {
        exit::FAILURE
    } else {
        exit::ALLOW
    }
}
