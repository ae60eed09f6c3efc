//! Writes one `PolicyService/Decide` request as a gRPC message frame (the 5-byte prefix, then the
//! protobuf) to stdout, for load generators that send raw HTTP/2 such as `h2load`
//! (`bench/resolver.sh`).
//!
//! `cargo run -p strata-resolver --example decide_frame -- TOKEN [MODEL [PROJECT]]`

use prost::Message;
use std::io::Write;
use std::process::ExitCode;
use strata_proto::v1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(token) = args.first() else {
        eprintln!("usage: decide_frame TOKEN [MODEL [PROJECT]]");
        return ExitCode::from(2);
    };
    let model = args.get(1).map_or("claude-sonnet-4-5", String::as_str);
    let project = args.get(2).map_or("web", String::as_str);
    let request = v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Token(token.clone())),
        project: project.to_string(),
        folder: String::new(),
        gateway: String::new(),
        target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.to_string(),
            provider: "anthropic".to_string(),
            key_mode: v1::KeyMode::Central as i32,
            base_url: "http://127.0.0.1:8787".to_string(),
            mcp_servers: Vec::new(),
        })),
    };
    let body = request.encode_to_vec();
    let Ok(len) = u32::try_from(body.len()) else {
        eprintln!("request too large");
        return ExitCode::FAILURE;
    };
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    match std::io::stdout().lock().write_all(&frame) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}
