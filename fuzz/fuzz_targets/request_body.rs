//! The gateway's request-body reader: model, stream flag, output-token limit, MCP servers
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_gateway::peek::{MAX_MODEL_BYTES, peek};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = peek(data) {
        assert!(!p.model.is_empty() && p.model.len() <= MAX_MODEL_BYTES);
    }
});
