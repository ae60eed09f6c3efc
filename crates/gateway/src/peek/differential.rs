//! The scanner against the serde struct it replaced, on random bodies: the same fields, or the
//! same kind of refusal.

use std::borrow::Cow;

use proptest::prelude::*;
use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
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
    mcp_servers: Option<Vec<AnthropicMcp<'a>>>,
    #[serde(borrow, default)]
    tools: Option<Vec<Tool<'a>>>,
}

#[derive(Deserialize)]
struct AnthropicMcp<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    server_label: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    server_url: Option<Cow<'a, str>>,
}

/// The peek before the scanner (serde_json into a borrowed struct)
fn serde_peek(body: &[u8]) -> Result<Peeked, PeekError> {
    let b: Body<'_> = serde_json::from_slice(body).map_err(|e| PeekError::Json(e.to_string()))?;
    let model = b.model.ok_or(PeekError::NoModel)?;
    if model.is_empty() {
        return Err(PeekError::NoModel);
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(PeekError::ModelTooLong(model.len()));
    }
    let s = |c: Option<Cow<'_, str>>| c.map(Cow::into_owned).unwrap_or_default();
    let mut mcp_servers: Vec<McpPeek> = (b.mcp_servers.unwrap_or_default().into_iter())
        .map(|m| McpPeek {
            name: s(m.name),
            url: s(m.url),
        })
        .collect();
    for t in b.tools.unwrap_or_default() {
        if t.kind.as_deref() == Some("mcp") {
            mcp_servers.push(McpPeek {
                name: s(t.server_label),
                url: s(t.server_url),
            });
        }
    }
    Ok(Peeked {
        model: model.into_owned(),
        stream: b.stream.unwrap_or(false),
        limits: OutputLimits {
            max_tokens: b.max_tokens,
            max_completion_tokens: b.max_completion_tokens,
            max_output_tokens: b.max_output_tokens,
        },
        mcp_servers,
    })
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"claude-sonnet-4-5\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"mcp\"".to_string()),
        Just("\"gpt\\u002d5\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("\"\u{e9}\\ud83d\\ude00\"".to_string()),
        "\"[a-z\\-]{0,300}\"",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        string(),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        prop::sample::select(vec![
            "0",
            "7",
            "-1",
            "-0",
            "1.0",
            "1e3",
            "18446744073709551615",
            "18446744073709551616"
        ])
        .prop_map(str::to_string),
        Just(r#"[{"a":[1,{"b":"\n"}]},[]]"#.to_string()),
        Just(r#"{"x":{"y":[]}}"#.to_string()),
    ]
}

/// An entry of `mcp_servers` or `tools`: an object (serde also takes a struct written as an
/// array, which the scanner refuses on purpose) or a value of another type
fn entry() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "\"name\"",
        "\"url\"",
        "\"type\"",
        "\"server_label\"",
        "\"server_url\"",
        "\"na\\u006de\"",
        "\"other\"",
    ]);
    prop_oneof![
        4 => prop::collection::vec((key, scalar()), 0..4).prop_map(|m| {
            let m: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", m.join(","))
        }),
        1 => scalar().prop_filter("not an array", |s| !s.starts_with('[')),
    ]
}

fn body() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "\"model\"",
        "\"mod\\u0065l\"",
        "\"stream\"",
        "\"max_tokens\"",
        "\"max_completion_tokens\"",
        "\"max_output_tokens\"",
        "\"mcp_servers\"",
        "\"tools\"",
        "\"messages\"",
        "\"other\"",
    ]);
    let value = prop_oneof![
        3 => scalar(),
        2 => prop::collection::vec(entry(), 0..4).prop_map(|e| format!("[{}]", e.join(","))),
    ];
    prop::collection::vec((key, value), 0..7).prop_map(|m| {
        let m: Vec<String> = m.into_iter().map(|(k, v)| format!("{k} : {v}")).collect();
        format!("{{ {} }}", m.join(" , "))
    })
}

fn same(body: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    match (peek(body), serde_peek(body)) {
        // serde reads a struct written as an array (`[["docs","https://…"]]`); the scanner
        // refuses what no API accepts
        (Err(PeekError::Json(m)), _)
            if m.starts_with("invalid type: sequence, expected struct") => {}
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", text),
        (Err(a), Err(b)) => prop_assert_eq!(
            std::mem::discriminant(&a),
            std::mem::discriminant(&b),
            "{}: {:?} / {:?}",
            text,
            a,
            b
        ),
        (a, b) => prop_assert!(false, "{}: {:?} / {:?}", text, a, b),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn same_fields_or_same_refusal_as_serde(body in body(), at in any::<usize>(), op in any::<u8>(), byte in any::<u8>()) {
        same(body.as_bytes())?;
        // and once more with one byte replaced, inserted or removed
        let mut d = body.into_bytes();
        let at = at % d.len().max(1);
        let table = b"{}[]\",:\\ 0e-.ntx\x01";
    let byte = table[usize::from(byte) % table.len()];
        match op % 3 {
            0 if !d.is_empty() => d[at] = byte,
            1 => d.insert(at.min(d.len()), byte),
            _ if !d.is_empty() => {
                d.remove(at);
            }
            _ => {}
        }
        same(&d)?;
    }
}
