//! The gateway's TOML configuration (an operator's file, but its errors quote positions in it)
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_gateway::GatewayConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = GatewayConfig::parse("fuzz.toml", text);
    }
});
