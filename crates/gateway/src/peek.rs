//! Read the few fields a decision needs from a request body without copying the body or
//! re-serialising it: the model, the stream flag, the output-token limit and the MCP servers the
//! body references. Everything else is skipped by the parser.

use std::borrow::Cow;

use serde::Deserialize;

use crate::api::Api;

/// What the decision needs from a request body
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Peeked {
    pub model: String,
    pub stream: bool,
    pub limits: OutputLimits,
    pub mcp_servers: Vec<McpPeek>,
}

/// The output-token limits a body asks for, each field as the APIs name it (absent: not asked)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputLimits {
    /// Anthropic Messages, and Chat Completions (deprecated there)
    pub max_tokens: Option<u64>,
    /// Chat Completions
    pub max_completion_tokens: Option<u64>,
    /// OpenAI Responses
    pub max_output_tokens: Option<u64>,
}

impl OutputLimits {
    /// The largest limit the body asks for among the fields `api` reads, with the field's name;
    /// `None` when it names none (the upstream's default then applies)
    pub fn asked(&self, api: Api) -> Option<(&'static str, u64)> {
        let fields: &[(&'static str, Option<u64>)] = match api {
            Api::Messages => &[("max_tokens", self.max_tokens)],
            Api::ChatCompletions => &[
                ("max_tokens", self.max_tokens),
                ("max_completion_tokens", self.max_completion_tokens),
            ],
            Api::Responses => &[("max_output_tokens", self.max_output_tokens)],
            // counting tokens generates nothing
            Api::CountTokens | Api::Models => &[],
        };
        fields
            .iter()
            .filter_map(|&(name, v)| v.map(|v| (name, v)))
            .max_by_key(|&(_, v)| v)
    }
}

/// An MCP server a request body references
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct McpPeek {
    pub name: String,
    pub url: String,
}

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
    /// Anthropic: `mcp_servers: [{type: "url", url, name}]`
    #[serde(borrow, default)]
    mcp_servers: Option<Vec<AnthropicMcp<'a>>>,
    /// OpenAI Responses: `tools: [{type: "mcp", server_label, server_url}]`
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

/// Why a body cannot be decided on
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeekError {
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    #[error("the request body has no `model`")]
    NoModel,
    #[error("the `model` field is {0} bytes, more than the limit of {MAX_MODEL_BYTES}")]
    ModelTooLong(usize),
}

/// The longest model id accepted
pub const MAX_MODEL_BYTES: usize = 256;

/// The longest parser message returned: serde quotes the offending value, which may be megabytes
const MAX_MESSAGE_CHARS: usize = 300;

/// `s` cut to about `max` characters in the middle, keeping where the error is (its end)
fn shorten(s: String, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s;
    }
    let head: String = s.chars().take(max * 2 / 3).collect();
    let tail: String = s.chars().skip(n - max / 3).collect();
    format!("{head}…{tail}")
}

/// Read the decision's fields from a request body. A key given twice (`"model"` and the escaped
/// `"mod\u0065l"` included) is an error: the gateway and the upstream must not read different
/// models from one body.
pub fn peek(body: &[u8]) -> Result<Peeked, PeekError> {
    let b: Body<'_> = serde_json::from_slice(body)
        .map_err(|e| PeekError::Json(shorten(e.to_string(), MAX_MESSAGE_CHARS)))?;
    let model = b.model.ok_or(PeekError::NoModel)?;
    if model.is_empty() {
        return Err(PeekError::NoModel);
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(PeekError::ModelTooLong(model.len()));
    }
    let mut mcp_servers: Vec<McpPeek> = b
        .mcp_servers
        .unwrap_or_default()
        .into_iter()
        .map(|m| McpPeek {
            name: m.name.map(Cow::into_owned).unwrap_or_default(),
            url: m.url.map(Cow::into_owned).unwrap_or_default(),
        })
        .collect();
    for t in b.tools.unwrap_or_default() {
        if t.kind.as_deref() == Some("mcp") {
            mcp_servers.push(McpPeek {
                name: t.server_label.map(Cow::into_owned).unwrap_or_default(),
                url: t.server_url.map(Cow::into_owned).unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_body() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":"long...","messages":[{"role":"user","content":"hi"}],
            "mcp_servers":[{"type":"url","url":"https://docs.acme.internal/mcp","name":"docs"}]}"#;
        let p = peek(body).unwrap();
        assert_eq!(p.model, "claude-sonnet-4-5");
        assert!(p.stream);
        assert_eq!(p.limits.asked(Api::Messages), Some(("max_tokens", 1024)));
        assert_eq!(p.limits.asked(Api::Responses), None);
        assert_eq!(
            p.mcp_servers,
            vec![McpPeek {
                name: "docs".into(),
                url: "https://docs.acme.internal/mcp".into()
            }]
        );
    }

    #[test]
    fn responses_body_with_mcp_tools() {
        let body = br#"{"model":"gpt-5","input":"x","tools":[{"type":"function","name":"f"},{"type":"mcp","server_label":"gh","server_url":"https://api.github.com/mcp"}],"max_output_tokens":50}"#;
        let p = peek(body).unwrap();
        assert_eq!(p.mcp_servers.len(), 1);
        assert_eq!(p.mcp_servers[0].url, "https://api.github.com/mcp");
        assert_eq!(
            p.limits.asked(Api::Responses),
            Some(("max_output_tokens", 50))
        );
        assert!(!p.stream);
    }

    #[test]
    fn chat_completions_limits_take_the_larger_field() {
        let body = br#"{"model":"m","max_tokens":10,"max_completion_tokens":900}"#;
        let p = peek(body).unwrap();
        assert_eq!(
            p.limits.asked(Api::ChatCompletions),
            Some(("max_completion_tokens", 900))
        );
        assert_eq!(p.limits.asked(Api::Messages), Some(("max_tokens", 10)));
        assert_eq!(p.limits.asked(Api::CountTokens), None);
        // a limit that is not a whole number is not a body to decide on
        assert!(matches!(
            peek(br#"{"model":"m","max_tokens":-1}"#),
            Err(PeekError::Json(_))
        ));
    }

    #[test]
    fn escaped_model_and_bad_bodies() {
        assert_eq!(
            peek(br#"{"model":"gpt\u002d5"}"#).map(|p| p.model),
            Ok("gpt-5".to_string())
        );
        assert!(matches!(peek(b"{not json"), Err(PeekError::Json(_))));
        assert_eq!(peek(br#"{"messages":[]}"#), Err(PeekError::NoModel));
        assert!(matches!(peek(br#"{"model": 5}"#), Err(PeekError::Json(_))));
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(1000));
        assert_eq!(peek(long.as_bytes()), Err(PeekError::ModelTooLong(1000)));
    }

    #[test]
    fn a_key_given_twice_is_refused_however_it_is_spelled() {
        for body in [
            r#"{"model":"claude-sonnet-4-5","model":"gpt-4o"}"#,
            r#"{"model":"claude-sonnet-4-5","mod\u0065l":"gpt-4o"}"#,
            r#"{"model":"claude-sonnet-4-5","stream":false,"stream":true}"#,
        ] {
            let e = peek(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, PeekError::Json(m) if m.starts_with("duplicate field")),
                "{body}: {e:?}"
            );
        }
    }

    #[test]
    fn parser_messages_do_not_echo_megabytes() {
        let body = format!(r#"{{"model":"m","stream":"{}"}}"#, "x".repeat(1_000_000));
        let Err(PeekError::Json(m)) = peek(body.as_bytes()) else {
            panic!("a string is not a bool")
        };
        assert!(m.chars().count() <= MAX_MESSAGE_CHARS + 1, "{}", m.len());
        assert!(m.starts_with("invalid type: string"), "{m}");
        assert!(m.ends_with("column 1000024"), "{m}");
    }
}
