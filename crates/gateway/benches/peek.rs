#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Reading what the decision needs from a request body: the scanner (`peek::peek`, memchr string
//! skipping) against the serde struct it replaced and against a bare `serde_json` pass with
//! `IgnoredAny` (the least serde can do: validate and skip everything), on ~40 KB bodies of the
//! three API shapes with the `model` key first (Droid) and last (the official SDKs), and a 1 MB
//! conversation with a base64 image.
//!
//! Run: `cargo bench -p strata-gateway --bench peek`. Instruction counts, which do not depend on
//! what else the machine runs: `perf stat -e instructions` around a `--profile-time` run of one
//! benchmark (see docs/benchmarks.md).

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use strata_gateway::peek::peek;

/// The serde struct the gateway used before the scanner (fields only; errors aside)
#[derive(Deserialize)]
#[allow(dead_code)]
struct Body<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(borrow, default)]
    mcp_servers: Option<Vec<Named<'a>>>,
    #[serde(borrow, default)]
    tools: Option<Vec<Named<'a>>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Named<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

/// Source-code-like text with the escapes real conversations have (newlines, quotes, tabs)
fn text(seed: usize, len: usize) -> String {
    let words = [
        "fn",
        "let",
        "match",
        "self",
        "return",
        "Result<(), Error>",
        "\"quoted\"",
        "{",
        "}",
        "\n",
        "\t",
        "// a comment",
        "é",
        "->",
        "impl",
        "async",
        "await",
        "path/to/file.rs",
    ];
    let mut s = String::with_capacity(len + 32);
    let mut i = seed;
    while s.len() < len {
        s.push_str(words[i % words.len()]);
        s.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s
}

/// A tool with a JSON schema, as coding agents declare a dozen of them
fn tool(i: usize, openai: bool) -> Value {
    let schema = json!({
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": text(i, 200)},
            "content": {"type": "string", "description": text(i + 1, 300)},
            "options": {"type": "object", "properties": {
                "recursive": {"type": "boolean"}, "limit": {"type": "integer", "minimum": 1}
            }},
            "patterns": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["path"],
    });
    if openai {
        json!({"type": "function", "function": {"name": format!("tool_{i}"), "description": text(i, 400), "parameters": schema}})
    } else {
        json!({"name": format!("tool_{i}"), "description": text(i, 400), "input_schema": schema})
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Messages,
    Responses,
    Chat,
}

/// A ~40 KB body of `shape`, its `model` first or last (`serde_json` keeps insertion order)
fn body(shape: Shape, model_last: bool, filler: usize) -> Vec<u8> {
    let turns: Vec<Value> = (0..12)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            match shape {
                Shape::Messages => {
                    json!({"role": role, "content": [{"type": "text", "text": text(i, filler)}]})
                }
                Shape::Responses => {
                    json!({"role": role, "content": [{"type": "input_text", "text": text(i, filler)}]})
                }
                Shape::Chat => json!({"role": role, "content": text(i, filler)}),
            }
        })
        .collect();
    let openai = !matches!(shape, Shape::Messages);
    let tools: Vec<Value> = (0..12).map(|i| tool(i, openai)).collect();
    let mut m = serde_json::Map::new();
    let model = ("model", json!("claude-sonnet-4-5"));
    if !model_last {
        m.insert(model.0.into(), model.1.clone());
    }
    match shape {
        Shape::Messages => {
            m.insert("max_tokens".into(), json!(32000));
            m.insert(
                "system".into(),
                json!([{"type": "text", "text": text(99, 6000)}]),
            );
            m.insert("messages".into(), Value::Array(turns));
        }
        Shape::Responses => {
            m.insert("max_output_tokens".into(), json!(32000));
            m.insert("instructions".into(), json!(text(99, 6000)));
            m.insert("input".into(), Value::Array(turns));
        }
        Shape::Chat => {
            m.insert("max_completion_tokens".into(), json!(32000));
            let mut all = vec![json!({"role": "system", "content": text(99, 6000)})];
            all.extend(turns);
            m.insert("messages".into(), Value::Array(all));
        }
    }
    m.insert("tools".into(), Value::Array(tools));
    m.insert("stream".into(), json!(true));
    if model_last {
        m.insert(model.0.into(), model.1);
    }
    serde_json::to_vec(&Value::Object(m)).unwrap()
}

/// A 1 MB Messages body: a base64 image in the last turn
fn long_body() -> Vec<u8> {
    let image: String = (0..1_000_000)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i * 7 % 64] as char
        })
        .collect();
    serde_json::to_vec(&json!({
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}
        ]}],
        "model": "claude-sonnet-4-5",
    }))
    .unwrap()
}

fn bodies() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, shape) in [
        ("messages", Shape::Messages),
        ("responses", Shape::Responses),
        ("chat", Shape::Chat),
    ] {
        for (pos, last) in [("first", false), ("last", true)] {
            out.push((format!("{name}_40k_model_{pos}"), body(shape, last, 2300)));
        }
    }
    out.push(("messages_1m_image".to_string(), long_body()));
    out
}

fn bench(c: &mut Criterion) {
    for (name, b) in bodies() {
        assert_eq!(peek(&b).unwrap().model, "claude-sonnet-4-5");
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function("scanner", |x| x.iter(|| peek(black_box(&b)).unwrap()));
        g.bench_function("serde_struct", |x| {
            x.iter(|| {
                serde_json::from_slice::<Body<'_>>(black_box(&b))
                    .unwrap()
                    .stream
            })
        });
        g.bench_function("serde_ignored_any", |x| {
            x.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&b)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
