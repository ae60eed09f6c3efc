//! Read the few fields a decision needs from a request body without copying the body or
//! re-serialising it: the model, the stream flag, the output-token limit and the MCP servers the
//! body references. Everything else is skipped by the parser.

use std::borrow::Cow;

use crate::api::Api;
use crate::json::{self, Reader};

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

/// Read the decision's fields from a request body. A key the gateway reads given twice
/// (`"model"` and the escaped `"mod\u0065l"` included) is an error: the gateway and the upstream
/// must not read different models from one body.
///
/// The body must be one JSON object and valid JSON throughout (what serde_json accepts); members
/// the decision does not need are skipped without being built ([`crate::json`]), so a `"model"`
/// after 40 KB of messages costs one pass over the bytes at memory speed.
pub fn peek(body: &[u8]) -> Result<Peeked, PeekError> {
    let mut r = Reader::new(body);
    let mut fields = Fields::default();
    let read = r
        .object("a JSON object", |r, key| fields.member(r, &key))
        .and_then(|()| r.end());
    if let Err(e) = read {
        return Err(PeekError::Json(e.message(body)));
    }
    let model = fields.model.flatten().ok_or(PeekError::NoModel)?;
    if model.is_empty() {
        return Err(PeekError::NoModel);
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(PeekError::ModelTooLong(model.len()));
    }
    let mut mcp_servers = fields.mcp_servers.flatten().unwrap_or_default();
    mcp_servers.extend(fields.tools.flatten().unwrap_or_default());
    Ok(Peeked {
        model: model.into_owned(),
        stream: fields.stream.flatten().unwrap_or(false),
        limits: OutputLimits {
            max_tokens: fields.max_tokens.flatten(),
            max_completion_tokens: fields.max_completion_tokens.flatten(),
            max_output_tokens: fields.max_output_tokens.flatten(),
        },
        mcp_servers,
    })
}

/// The members read so far: `None` not seen, `Some(None)` seen as `null`
#[derive(Default)]
struct Fields<'a> {
    model: Option<Option<Cow<'a, str>>>,
    stream: Option<Option<bool>>,
    max_tokens: Option<Option<u64>>,
    max_completion_tokens: Option<Option<u64>>,
    max_output_tokens: Option<Option<u64>>,
    /// Anthropic: `mcp_servers: [{type: "url", url, name}]`
    mcp_servers: Option<Option<Vec<McpPeek>>>,
    /// OpenAI Responses: `tools: [{type: "mcp", server_label, server_url}]`, only those
    tools: Option<Option<Vec<McpPeek>>>,
}

impl<'a> Fields<'a> {
    fn member(&mut self, r: &mut Reader<'a>, key: &str) -> Result<(), json::Error> {
        match key {
            "model" => once(r, &mut self.model, "model", |r| r.string()),
            "stream" => once(r, &mut self.stream, "stream", Reader::bool),
            "max_tokens" => once(r, &mut self.max_tokens, "max_tokens", Reader::u64),
            "max_completion_tokens" => once(
                r,
                &mut self.max_completion_tokens,
                "max_completion_tokens",
                Reader::u64,
            ),
            "max_output_tokens" => once(
                r,
                &mut self.max_output_tokens,
                "max_output_tokens",
                Reader::u64,
            ),
            "mcp_servers" => once(r, &mut self.mcp_servers, "mcp_servers", anthropic_mcp),
            "tools" => once(r, &mut self.tools, "tools", mcp_tools),
            _ => r.skip(),
        }
    }
}

/// Read a member's value (`null` as `None`) into `slot`, an error if it was already there
fn once<'a, T>(
    r: &mut Reader<'a>,
    slot: &mut Option<Option<T>>,
    name: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, json::Error>,
) -> Result<(), json::Error> {
    if slot.is_some() {
        return Err(json::Error {
            code: json::Code::DuplicateField(name),
            at: r.position(),
        });
    }
    *slot = Some(if r.null()? { None } else { Some(read(r)?) });
    Ok(())
}

/// A string member of an entry, `null` as absent
fn opt_string<'a>(
    r: &mut Reader<'a>,
    slot: &mut Option<Option<Cow<'a, str>>>,
    name: &'static str,
) -> Result<(), json::Error> {
    once(r, slot, name, |r| r.string())
}

fn owned(s: Option<Option<Cow<'_, str>>>) -> String {
    s.flatten().map(Cow::into_owned).unwrap_or_default()
}

/// Anthropic's `mcp_servers`: objects with a `name` and a `url`
fn anthropic_mcp(r: &mut Reader<'_>) -> Result<Vec<McpPeek>, json::Error> {
    let mut out = Vec::new();
    r.array("a sequence", |r| {
        let (mut name, mut url) = (None, None);
        r.object("struct AnthropicMcp", |r, key| match &*key {
            "name" => opt_string(r, &mut name, "name"),
            "url" => opt_string(r, &mut url, "url"),
            _ => r.skip(),
        })?;
        out.push(McpPeek {
            name: owned(name),
            url: owned(url),
        });
        Ok(())
    })?;
    Ok(out)
}

/// OpenAI Responses' `tools`: the MCP servers among them (`type: "mcp"`)
fn mcp_tools(r: &mut Reader<'_>) -> Result<Vec<McpPeek>, json::Error> {
    let mut out = Vec::new();
    r.array("a sequence", |r| {
        let (mut kind, mut label, mut url) = (None, None, None);
        r.object("struct Tool", |r, key| match &*key {
            "type" => opt_string(r, &mut kind, "type"),
            "server_label" => opt_string(r, &mut label, "server_label"),
            "server_url" => opt_string(r, &mut url, "server_url"),
            _ => r.skip(),
        })?;
        if kind.flatten().as_deref() == Some("mcp") {
            out.push(McpPeek {
                name: owned(label),
                url: owned(url),
            });
        }
        Ok(())
    })?;
    Ok(out)
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
        assert!(m.len() < 100, "{}", m.len());
        assert!(m.starts_with("invalid type: string"), "{m}");
        assert!(m.ends_with("column 1000024"), "{m}");
    }
}

#[cfg(test)]
mod differential;
