//! The usage reader over a streamed (SSE) or plain JSON upstream response, fed in chunks whose
//! boundaries the input chooses: the first byte picks SSE or JSON and the chunk size
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_gateway::audit::UsageReader;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let sse = first & 1 == 0;
    let chunk = usize::from(first >> 1).max(1);
    let mut r = UsageReader::new(sse);
    for c in body.chunks(chunk) {
        r.feed(c);
    }
    std::hint::black_box(r.finish());
});
