//! A whole publish: the input is split into files (`path\0content\0path\0content...`), checked as
//! a file tree (paths, sizes) and compiled as an org bundle and, the same files again, as a
//! project on top of an empty org
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_fuzz::compile_bundle;
use strata_policy::FileTree;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let mut files = Vec::new();
    while let (Some(path), Some(content)) = (parts.next(), parts.next()) {
        files.push((String::from_utf8_lossy(path).into_owned(), content.to_vec()));
        if files.len() > 16 {
            break;
        }
    }
    let Ok(org) = FileTree::from_files("org", files.clone()) else {
        return;
    };
    compile_bundle(org, None);
    if let (Ok(empty), Ok(project)) = (
        FileTree::from_files("org", Vec::new()),
        FileTree::from_files("project", files),
    ) {
        compile_bundle(empty, Some(project));
    }
});
