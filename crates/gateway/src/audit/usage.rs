//! Token usage read from a response as it streams by, without building the completion.

use bytes::Bytes;

use super::Usage;
use crate::json::{self, Code, Reader};

/// Reads token usage out of a response as it streams by: SSE `data:` lines (Anthropic
/// `message_start` / `message_delta`, OpenAI Responses `response.completed`, Chat Completions'
/// final chunk) or, for a plain JSON body, the body's `usage` at the end.
///
/// A plain JSON body is kept as the chunks it arrived in (not copied while it streams), joined
/// once at the end if it came in several, and read in one pass: the completion is skipped with
/// [`crate::json`], only the `usage` object (top level, `message.usage` or `response.usage`) is
/// read.
#[derive(Default)]
pub struct UsageReader {
    sse: bool,
    line: Vec<u8>,
    chunks: Vec<Bytes>,
    kept: usize,
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

    pub fn feed(&mut self, chunk: &Bytes) {
        if !self.sse {
            if self.kept + chunk.len() <= MAX_JSON_BODY {
                self.kept += chunk.len();
                self.chunks.push(chunk.clone());
            }
            return;
        }
        let mut rest: &[u8] = chunk;
        while let Some(n) = memchr::memchr(b'\n', rest) {
            let (part, after) = (&rest[..n], &rest[n + 1..]);
            rest = after;
            if self.line.is_empty() {
                // a whole line in this chunk: read in place
                self.line_done(part);
            } else {
                self.keep_line(part);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
                // keep the line's buffer for the next one
                self.line = line;
                self.line.clear();
            }
        }
        self.keep_line(rest);
    }

    /// Part of a line that goes on in the next chunk (a line is kept up to the body limit)
    fn keep_line(&mut self, part: &[u8]) {
        let room = MAX_JSON_BODY.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn line_done(&mut self, line: &[u8]) {
        if let Some(data) = line.strip_prefix(b"data:") {
            self.take(data.trim_ascii());
        }
    }

    /// Read the usage of one JSON document (a body, or one event's data), in one pass
    fn take(&mut self, doc: &[u8]) {
        let Some(u) = find_usage(doc).and_then(counts) else {
            return;
        };
        let n = |v: Option<&[u8]>| std::str::from_utf8(v?).ok()?.parse::<u64>().ok();
        let cached = |v: Option<&[u8]>| n(field(v?, "cached_tokens"));
        let cur = self.usage.get_or_insert_with(Usage::default);
        if let Some(x) = n(u[0]).or(n(u[1])) {
            cur.input_tokens = x;
        }
        if let Some(x) = n(u[2]).or(n(u[3])) {
            cur.output_tokens = x;
        }
        if let Some(x) = n(u[4]).or_else(|| cached(u[6])).or_else(|| cached(u[7])) {
            cur.cache_read_tokens = x;
        }
        if let Some(x) = n(u[5]) {
            cur.cache_write_tokens = x;
        }
    }

    pub fn finish(mut self) -> Option<Usage> {
        if !self.sse && !self.chunks.is_empty() {
            let chunks = std::mem::take(&mut self.chunks);
            match chunks.as_slice() {
                [one] => self.take(one),
                many => self.take(&many.concat()),
            }
        }
        self.usage
    }
}

/// A value given twice in an object read here: the document has no usage
fn twice<T>(r: &Reader<'_>, slot: &Option<T>) -> Result<(), json::Error> {
    match slot {
        Some(_) => Err(json::Error {
            code: Code::DuplicateField("usage"),
            at: r.position(),
        }),
        None => Ok(()),
    }
}

/// The text of a document's usage object: the top level's `usage`, else `message.usage`
/// (Anthropic's `message_start`), else `response.usage` (OpenAI's `response.completed`); `null`
/// counts as absent. `None` when the document is not valid JSON or names a member twice.
fn find_usage(doc: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(doc);
    // outer `None`: not seen; inner: null, or no usage inside
    let (mut top, mut message, mut response) = (None, None, None);
    r.object("an object", |r, key| match &*key {
        "usage" => {
            twice(r, &top)?;
            top = Some(if r.null()? { None } else { Some(r.raw()?) });
            Ok(())
        }
        "message" => {
            twice(r, &message)?;
            message = Some(inner_usage(r)?);
            Ok(())
        }
        "response" => {
            twice(r, &response)?;
            response = Some(inner_usage(r)?);
            Ok(())
        }
        _ => r.skip(),
    })
    .and_then(|()| r.end())
    .ok()?;
    top.flatten().or(message.flatten()).or(response.flatten())
}

/// The `usage` inside an object (skipped entirely if it is not an object or names `usage` twice)
fn inner_usage<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, json::Error> {
    if r.kind()? != json::Kind::Map {
        r.skip()?;
        return Ok(None);
    }
    let (mut usage, mut twice) = (None, false);
    r.object("an object", |r, key| {
        if key == "usage" {
            twice |= usage.is_some();
            usage = Some(if r.null()? { None } else { Some(r.raw()?) });
            Ok(())
        } else {
            r.skip()
        }
    })?;
    Ok(if twice { None } else { usage.flatten() })
}

/// The counts a usage object may hold, in this order
const COUNTS: [&str; 8] = [
    "input_tokens",
    "prompt_tokens",
    "output_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "input_tokens_details",
    "prompt_tokens_details",
];

/// The text of each of [`COUNTS`] in a usage object; `None` unless it is an object naming each
/// at most once
fn counts(usage: &[u8]) -> Option<[Option<&[u8]>; 8]> {
    let mut out = [None; 8];
    let mut r = Reader::new(usage);
    r.object("an object", |r, key| {
        match COUNTS.iter().position(|c| *c == key) {
            Some(i) => {
                twice(r, &out[i])?;
                out[i] = Some(r.raw()?);
                Ok(())
            }
            None => r.skip(),
        }
    })
    .ok()?;
    Some(out)
}

/// The text of `name` in the object `obj`; `None` unless it is an object naming it once
fn field<'a>(obj: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut found = None;
    let mut r = Reader::new(obj);
    r.object("an object", |r, key| {
        if key == name {
            twice(r, &found)?;
            found = Some(r.raw()?);
            Ok(())
        } else {
            r.skip()
        }
    })
    .ok()?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_anthropic_sse_and_openai_json() {
        let mut r = UsageReader::new(true);
        r.feed(&Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n"));
        r.feed(&Bytes::from_static(
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_",
        ));
        r.feed(&Bytes::from_static(b"tokens\":40}}\n\n"));
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
        j.feed(&Bytes::from_static(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}"#));
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
        r.feed(&Bytes::from_static(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"content\":\"x\\ny\"}],\"usage\":{\"input_tokens\":7,\"output_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":4}}}}\n\n"));
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
        let body = format!(
            r#"{{"message":"not an object","content":[{{"text":"{text}"}}],"usage":{{"input_tokens":1,"output_tokens":2}}}}"#
        );
        // in three chunks, cut inside a string and inside the usage
        let body = Bytes::from(body);
        let n = body.len();
        for part in [body.slice(..7), body.slice(7..n - 10), body.slice(n - 10..)] {
            j.feed(&part);
        }
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
            r#"{"usage":{"input_tokens":1},"usage":{"input_tokens":2}}"#,
            r#"{"usage":{"input_tokens":1}} x"#,
        ] {
            let mut j = UsageReader::new(false);
            j.feed(&Bytes::from_static(body.as_bytes()));
            assert_eq!(j.finish(), None, "{body}");
        }
    }
}
