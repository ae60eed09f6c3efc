//! The example bundle's own decision cases (`policies/examples/acme/org/tests/*.json`) run in
//! `cargo test`: through the `policy test` binary, and through `testcase::run_file` directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_policy::FileTree;
use strata_policy::testcase::{run_file, test_files};

fn example_org() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples/acme/org")
}

#[test]
fn policy_test_passes_every_case_of_the_example_bundle() {
    let out = Command::new(env!("CARGO_BIN_EXE_policy"))
        .arg("test")
        .arg(example_org())
        .env_remove("STRATA_ORG")
        .env_remove("STRATA_USER")
        .output()
        .expect("run policy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // the last line counts them: `N passed, 0 failed`
    let summary = stdout.lines().last().unwrap_or_default();
    let (passed, failed) = summary
        .strip_suffix(" failed")
        .and_then(|s| s.split_once(" passed, "))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    let passed: usize = passed.parse().unwrap();
    assert_eq!(failed, "0", "{stdout}");
    assert!(passed > 0, "no case ran: {stdout}");
    let ok_lines = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ok_lines, passed, "{stdout}");
}

#[test]
fn run_file_passes_every_case_of_the_example_bundle() {
    let dir = example_org();
    let org = FileTree::read_path(&dir).unwrap();
    let files = test_files(&dir);
    assert!(!files.is_empty(), "no tests/*.json in {}", dir.display());
    let mut cases = 0;
    for file in &files {
        let results = run_file(&dir, &org, file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!results.is_empty(), "{} has no case", file.display());
        for r in &results {
            assert_eq!(r.failure, None, "{} :: {}", r.file, r.name);
        }
        cases += results.len();
    }
    assert!(cases > 0);
}
