//! The legacy `~/.factory/config.json` (read in the user layer only)
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_policy::Level;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::load("config.json", data, &[Level::User]);
});
