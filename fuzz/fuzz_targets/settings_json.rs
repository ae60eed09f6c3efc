//! `settings.json` (and `settings.local.json`) at every level
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_policy::Level;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::load("settings.json", data, &Level::ALL);
    strata_fuzz::load("settings.local.json", data, &[Level::User]);
});
