//! `mcp.json` at every level
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_policy::Level;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::load("mcp.json", data, &Level::ALL);
});
