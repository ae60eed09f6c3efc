//! A hand-written Cedar file through the whole bundle compile path: in the org bundle (any
//! effect), and in a project (restrict-only, checked at publish time)
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_fuzz::{compile_bundle, tree};

fuzz_target!(|data: &[u8]| {
    let Some(org) = tree("org", &[("policies/fuzz.cedar", data)]) else {
        return;
    };
    compile_bundle(org, None);
    let (Some(org), Some(project)) = (
        tree("org", &[]),
        tree("project", &[("policies/fuzz.cedar", data)]),
    ) else {
        return;
    };
    compile_bundle(org, Some(project));
});
