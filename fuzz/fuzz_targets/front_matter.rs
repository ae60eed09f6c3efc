//! Droid and command Markdown files with YAML front matter, at the org and project levels
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_policy::Level;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::load("droids/fuzz.md", data, &[Level::Org, Level::Project]);
    strata_fuzz::load("commands/fuzz.md", data, &[Level::User]);
});
