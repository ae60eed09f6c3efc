//! Strata's strict `policy.json` (read in the org bundle only)
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_policy::Level;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::load("policy.json", data, &[Level::Org]);
});
