//! Token usage read from a response as it streams by, without building the completion.

use serde_json::value::RawValue;

use super::Usage;

/// Reads token usage out of a response as it streams by: SSE `data:` lines (Anthropic
/// `message_start` / `message_delta`, OpenAI Responses `response.completed`, Chat Completions'
/// final chunk) or, for a plain JSON body, the body's `usage` at the end
#[derive(Default)]
pub struct UsageReader {
    sse: bool,
    line: Vec<u8>,
    body: Vec<u8>,
    usage: Option<Usage>,
}

/// The most of a non-streamed body kept to read its usage
const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

impl UsageReader {
    pub fn new(sse: bool) -> Self {
        UsageReader {
            sse,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.body.len() + chunk.len() <= MAX_JSON_BODY {
                self.body.extend_from_slice(chunk);
            }
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                if let Some(data) = line.strip_prefix(b"data:") {
                    self.take(data.trim_ascii());
                }
                // keep the line's buffer for the next one
                self.line = line;
                self.line.clear();
            } else if self.line.len() < MAX_JSON_BODY {
                self.line.push(b);
            }
        }
    }

    /// Read the usage of one JSON document (a body, or one event's data). Only the `usage`
    /// objects are decoded: the rest (the completion itself) is skipped without being built.
    fn take(&mut self, doc: &[u8]) {
        /// The three places providers put usage: the top level, Anthropic's `message_start`
        /// (`message.usage`), OpenAI Responses' `response.completed` (`response.usage`)
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow, default)]
            usage: Option<&'a RawValue>,
            #[serde(borrow, default)]
            message: Option<&'a RawValue>,
            #[serde(borrow, default)]
            response: Option<&'a RawValue>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow, default)]
            usage: Option<&'a RawValue>,
        }
        let Ok(env) = serde_json::from_slice::<Envelope<'_>>(doc) else {
            return;
        };
        fn nested(raw: Option<&RawValue>) -> Option<&RawValue> {
            serde_json::from_str::<Inner<'_>>(raw?.get()).ok()?.usage
        }
        let raw = env
            .usage
            .or_else(|| nested(env.message))
            .or_else(|| nested(env.response));
        /// A usage object's counts, each read only if it is a whole number
        #[derive(serde::Deserialize)]
        struct Counts<'a> {
            #[serde(borrow, default)]
            input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            prompt_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            output_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            completion_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            cache_read_input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            cache_creation_input_tokens: Option<&'a RawValue>,
            #[serde(borrow, default)]
            input_tokens_details: Option<&'a RawValue>,
            #[serde(borrow, default)]
            prompt_tokens_details: Option<&'a RawValue>,
        }
        #[derive(serde::Deserialize)]
        struct Details<'a> {
            #[serde(borrow, default)]
            cached_tokens: Option<&'a RawValue>,
        }
        let Some(u) = raw.and_then(|r| serde_json::from_str::<Counts<'_>>(r.get()).ok()) else {
            return;
        };
        let n = |v: Option<&RawValue>| v.and_then(|v| v.get().parse::<u64>().ok());
        let cached = |v: Option<&RawValue>| {
            n(serde_json::from_str::<Details<'_>>(v?.get())
                .ok()?
                .cached_tokens)
        };
        let cur = self.usage.get_or_insert_with(Usage::default);
        if let Some(x) = n(u.input_tokens).or(n(u.prompt_tokens)) {
            cur.input_tokens = x;
        }
        if let Some(x) = n(u.output_tokens).or(n(u.completion_tokens)) {
            cur.output_tokens = x;
        }
        if let Some(x) = n(u.cache_read_input_tokens)
            .or_else(|| cached(u.input_tokens_details))
            .or_else(|| cached(u.prompt_tokens_details))
        {
            cur.cache_read_tokens = x;
        }
        if let Some(x) = n(u.cache_creation_input_tokens) {
            cur.cache_write_tokens = x;
        }
    }

    pub fn finish(mut self) -> Option<Usage> {
        if !self.sse && !self.body.is_empty() {
            let body = std::mem::take(&mut self.body);
            self.take(&body);
        }
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_anthropic_sse_and_openai_json() {
        let mut r = UsageReader::new(true);
        r.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n");
        r.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_");
        r.feed(b"tokens\":40}}\n\n");
        assert_eq!(
            r.finish(),
            Some(Usage {
                input_tokens: 12,
                output_tokens: 40,
                cache_read_tokens: 5,
                cache_write_tokens: 2
            })
        );
        let mut j = UsageReader::new(false);
        j.feed(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}"#);
        assert_eq!(
            j.finish(),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 1,
                cache_read_tokens: 2,
                cache_write_tokens: 0
            })
        );
    }

    #[test]
    fn usage_skips_what_is_not_usage() {
        // Responses' `response.completed` event, a large body around the usage, and fields of
        // unexpected types that must not hide the usage
        let mut r = UsageReader::new(true);
        r.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"content\":\"x\\ny\"}],\"usage\":{\"input_tokens\":7,\"output_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":4}}}}\n\n");
        assert_eq!(
            r.finish(),
            Some(Usage {
                input_tokens: 7,
                output_tokens: 9,
                cache_read_tokens: 4,
                cache_write_tokens: 0
            })
        );
        let mut j = UsageReader::new(false);
        let text = "a\\\"b ".repeat(10_000);
        j.feed(format!(r#"{{"message":"not an object","content":[{{"text":"{text}"}}],"usage":{{"input_tokens":1,"output_tokens":2}}}}"#).as_bytes());
        assert_eq!(
            j.finish(),
            Some(Usage {
                input_tokens: 1,
                output_tokens: 2,
                ..Usage::default()
            })
        );
        // no usage, a usage of the wrong type, invalid JSON: nothing
        for body in [
            r#"{"id":"x"}"#,
            r#"{"usage":"many"}"#,
            r#"{"usage":null}"#,
            "{not json",
        ] {
            let mut j = UsageReader::new(false);
            j.feed(body.as_bytes());
            assert_eq!(j.finish(), None, "{body}");
        }
    }
}
