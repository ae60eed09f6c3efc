//! A recording mock of the three provider APIs (Anthropic Messages, OpenAI Responses, Chat
//! Completions) over plain HTTP/1.1, for end-to-end tests with real clients: every request is
//! kept (method, path, headers, body) and answered with a minimal valid completion whose text
//! is `answer`, as one JSON body or as the provider's server-sent events when the request asks
//! for `stream: true`. The event sequences are the ones the Droid CLI 0.225.2 accepts to finish
//! a turn (see docs/droid-observed.md).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// names lower-cased, in arrival order
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Does `needle` appear anywhere in the request line, headers or body?
    pub fn contains(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self
                .headers
                .iter()
                .any(|(k, v)| k.contains(needle) || v.contains(needle))
            || String::from_utf8_lossy(&self.body).contains(needle)
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves on 127.0.0.1:0 until the test process ends
pub fn start(answer: &str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (rec, answer) = (Arc::clone(&seen), answer.to_string());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (rec, answer) = (Arc::clone(&rec), answer.clone());
            std::thread::spawn(move || {
                let _ = serve(conn, &rec, &answer);
            });
        }
    });
    Upstream { addr, seen }
}

fn serve(conn: TcpStream, rec: &Mutex<Vec<Recorded>>, answer: &str) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        let req = Recorded {
            method,
            path,
            headers,
            body,
        };
        let reply = reply(&req, answer);
        rec.lock().unwrap().push(req);
        match reply {
            Reply::Json(status, v) => {
                let b = v.to_string();
                write!(
                    w,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                    b.len()
                )?;
            }
            Reply::Events(events) => {
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
                )?;
                for (event, data) in events {
                    let mut chunk = String::new();
                    if let Some(e) = event {
                        chunk.push_str(&format!("event: {e}\n"));
                    }
                    chunk.push_str(&format!("data: {data}\n\n"));
                    write!(w, "{:x}\r\n{chunk}\r\n", chunk.len())?;
                    w.flush()?;
                }
                write!(w, "0\r\n\r\n")?;
            }
        }
        w.flush()?;
    }
}

enum Reply {
    Json(&'static str, Value),
    Events(Vec<(Option<&'static str>, String)>),
}

fn reply(req: &Recorded, answer: &str) -> Reply {
    let body = req.json();
    let model = body["model"].as_str().unwrap_or("mock-model").to_string();
    let stream = body["stream"] == true;
    let path = req.path.split('?').next().unwrap_or_default();
    let ev = |name: &'static str, v: Value| (Some(name), v.to_string());
    if path.ends_with("/messages") {
        let message = json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 5}});
        if !stream {
            return Reply::Json("200 OK", message);
        }
        let mut start = message.clone();
        start["content"] = json!([]);
        start["stop_reason"] = Value::Null;
        start["usage"]["output_tokens"] = json!(1);
        return Reply::Events(vec![
            ev(
                "message_start",
                json!({"type": "message_start", "message": start}),
            ),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": answer}}),
            ),
            ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            ev(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 5}}),
            ),
            ev("message_stop", json!({"type": "message_stop"})),
        ]);
    }
    if path.ends_with("/chat/completions") {
        if !stream {
            return Reply::Json(
                "200 OK",
                json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
            );
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut last = chunk(json!({}), json!("stop"));
        last["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
        return Reply::Events(vec![
            (
                None,
                chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string(),
            ),
            (
                None,
                chunk(json!({"content": answer}), Value::Null).to_string(),
            ),
            (None, last.to_string()),
            (None, "[DONE]".to_string()),
        ]);
    }
    if path.ends_with("/responses") {
        let item = json!({"id": "msg_mock", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}]});
        let response = json!({"id": "resp_mock", "object": "response", "created_at": 1, "status": "completed",
            "model": model, "output": [item],
            "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}});
        if !stream {
            return Reply::Json("200 OK", response);
        }
        let mut created = response.clone();
        created["status"] = json!("in_progress");
        created["output"] = json!([]);
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        added["content"] = json!([]);
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
        let at = |n: u32, mut v: Value| {
            v["sequence_number"] = json!(n);
            v
        };
        return Reply::Events(vec![
            ev(
                "response.created",
                at(0, json!({"type": "response.created", "response": created})),
            ),
            ev(
                "response.output_item.added",
                at(
                    1,
                    json!({"type": "response.output_item.added", "output_index": 0, "item": added}),
                ),
            ),
            ev(
                "response.content_part.added",
                at(
                    2,
                    json!({"type": "response.content_part.added", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part("")}),
                ),
            ),
            ev(
                "response.output_text.delta",
                at(
                    3,
                    json!({"type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": answer}),
                ),
            ),
            ev(
                "response.output_text.done",
                at(
                    4,
                    json!({"type": "response.output_text.done", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": answer}),
                ),
            ),
            ev(
                "response.content_part.done",
                at(
                    5,
                    json!({"type": "response.content_part.done", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part(answer)}),
                ),
            ),
            ev(
                "response.output_item.done",
                at(
                    6,
                    json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
                ),
            ),
            ev(
                "response.completed",
                at(
                    7,
                    json!({"type": "response.completed", "response": response}),
                ),
            ),
        ]);
    }
    Reply::Json(
        "404 Not Found",
        json!({"error": {"type": "not_found", "message": format!("the mock upstream has no {path}")}}),
    )
}
