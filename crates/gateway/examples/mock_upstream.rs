//! A fast mock LLM provider for benchmarks: fixed Anthropic Messages, OpenAI Responses and Chat
//! Completions answers, JSON or SSE (when the body asks for `"stream": true`), on loopback.
//!
//! ```sh
//! cargo run --release -p strata-gateway --example mock_upstream -- 127.0.0.1:9100
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::Response;

const MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":10,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#;
const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764547200,"model":"gpt-5-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;
const RESPONSE: &str = r#"{"id":"resp_bench","object":"response","created_at":1764547200,"status":"completed","model":"gpt-5-mini","output":[{"type":"message","id":"msg_bench","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello! How can I help you today?","annotations":[]}]}],"usage":{"input_tokens":12,"output_tokens":10,"total_tokens":22}}"#;

const MESSAGE_SSE: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello! How can I help you today?\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":10}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);
const CHAT_SSE: &str = concat!(
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764547200,\"model\":\"gpt-5-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764547200,\"model\":\"gpt-5-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello! How can I help you today?\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764547200,\"model\":\"gpt-5-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":10,\"total_tokens\":22}}\n\n",
    "data: [DONE]\n\n",
);
const RESPONSE_SSE: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5-mini\",\"output\":[]}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_bench\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello! How can I help you today?\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_bench\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-5-mini\",\"output\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":10,\"total_tokens\":22}}}\n\n",
);

async fn answer(req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let stream = body
        .windows(13)
        .any(|w| w == b"\"stream\":true" || w == b"\"stream\": tru");
    let (json, sse) = if path.ends_with("/messages") {
        (MESSAGE, MESSAGE_SSE)
    } else if path.ends_with("/responses") {
        (RESPONSE, RESPONSE_SSE)
    } else if path.ends_with("/chat/completions") {
        (CHAT, CHAT_SSE)
    } else {
        return Response::builder()
            .status(404)
            .body(Body::from("{\"error\":{\"message\":\"not found\"}}"))
            .unwrap();
    };
    let (ctype, text) = if stream {
        ("text/event-stream", sse)
    } else {
        ("application/json", json)
    };
    Response::builder()
        .header("content-type", ctype)
        .body(Body::from(Bytes::from_static(text.as_bytes())))
        .unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("mock upstream on {}", listener.local_addr().expect("addr"));
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, axum::Router::new().fallback(answer))
        .await
        .expect("serve");
}
