//! JSON with positions: parse a file, map every JSON pointer to its line and column, and read
//! typed fields while collecting every problem (not just the first).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::origin::{Level, Origin, escape_token};
use crate::problem::{Problem, Problems, Severity};

/// Line and column (1-based) of the start of every value, by JSON pointer
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    map: HashMap<String, (u32, u32)>,
}

impl PosIndex {
    /// Index a document that `serde_json` already accepted
    pub fn build(text: &str) -> Self {
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            at: 0,
            line: 1,
            col: 1,
            map: HashMap::new(),
        };
        scanner.value(String::new(), 0);
        PosIndex { map: scanner.map }
    }

    /// Position of `pointer`, or of its nearest indexed ancestor
    pub fn pos(&self, pointer: &str) -> (u32, u32) {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.map.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }
}

const MAX_DEPTH: usize = 128;

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u32,
    col: u32,
    map: HashMap<String, (u32, u32)>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) {
        if let Some(b) = self.peek() {
            self.at += 1;
            if b == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                self.col += 1;
            }
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn string(&mut self) -> String {
        let start = self.at;
        self.bump(); // opening quote
        while let Some(b) = self.peek() {
            match b {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => {
                    self.bump();
                    break;
                }
                _ => self.bump(),
            }
        }
        let raw = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("\"\"");
        serde_json::from_str::<String>(raw).unwrap_or_default()
    }

    fn value(&mut self, pointer: String, depth: usize) {
        self.ws();
        self.map.insert(pointer.clone(), (self.line, self.col));
        if depth > MAX_DEPTH {
            return;
        }
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b'"') => {
                            let key = self.string();
                            self.ws();
                            self.bump(); // colon
                            self.value(format!("{pointer}/{}", escape_token(&key)), depth + 1);
                            self.ws();
                            if self.peek() == Some(b',') {
                                self.bump();
                            }
                        }
                        Some(b'}') => {
                            self.bump();
                            break;
                        }
                        None => break,
                        Some(_) => self.bump(),
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut i = 0usize;
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            break;
                        }
                        None => break,
                        Some(b',') => self.bump(),
                        Some(_) => {
                            self.value(format!("{pointer}/{i}"), depth + 1);
                            i += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            _ => {
                while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                {
                    self.bump();
                }
            }
        }
    }
}

/// One parsed JSON file of a layer, with what is needed to point into it
#[derive(Debug, Clone)]
pub struct Doc {
    pub level: Level,
    pub file: Arc<str>,
    pub value: Value,
    pub pos: PosIndex,
}

/// The largest JSON file a layer may hold
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

impl Doc {
    /// Parse `bytes`; a syntax error becomes one problem with line and column
    pub fn parse(level: Level, file: Arc<str>, bytes: &[u8]) -> Result<Doc, Problem> {
        let problem = |line: u32, col: u32, code: &'static str, message: String| Problem {
            severity: Severity::Error,
            code,
            file: file.to_string(),
            line,
            col,
            pointer: String::new(),
            message,
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(problem(
                1,
                1,
                "file.too_large",
                format!(
                    "file is {} bytes, more than the limit of {MAX_FILE_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let (line, col) = line_col(bytes, e.valid_up_to());
            problem(
                line,
                col,
                "file.not_utf8",
                "file is not valid UTF-8".to_string(),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends " at line L column C"; we print those in front instead
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            problem(
                e.line() as u32,
                (e.column() as u32).max(1),
                "json.syntax",
                format!("invalid JSON: {msg}"),
            )
        })?;
        let pos = PosIndex::build(text);
        Ok(Doc {
            level,
            file,
            value,
            pos,
        })
    }

    pub fn origin(&self, pointer: &str) -> Origin {
        let (line, col) = self.pos.pos(pointer);
        Origin {
            level: self.level,
            file: self.file.clone(),
            pointer: pointer.to_string(),
            line,
            col,
        }
    }

    pub fn problem(
        &self,
        severity: Severity,
        code: &'static str,
        pointer: &str,
        message: String,
    ) -> Problem {
        let (line, col) = self.pos.pos(pointer);
        Problem {
            severity,
            code,
            file: self.file.to_string(),
            line,
            col,
            pointer: pointer.to_string(),
            message,
        }
    }
}

/// 1-based line and column of a byte offset
pub fn line_col(bytes: &[u8], offset: usize) -> (u32, u32) {
    let upto = &bytes[..offset.min(bytes.len())];
    let line = upto.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let col = upto
        .iter()
        .rev()
        .take_while(|b| **b != b'\n')
        .filter(|b| **b & 0xC0 != 0x80)
        .count() as u32
        + 1;
    (line, col)
}

/// JSON type names for error messages
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads typed fields out of a [`Doc`], recording a problem for each field of the wrong type
pub struct Reader<'d> {
    pub doc: &'d Doc,
    pub problems: &'d mut Problems,
}

impl<'d> Reader<'d> {
    pub fn new(doc: &'d Doc, problems: &'d mut Problems) -> Self {
        Self { doc, problems }
    }

    pub fn error(&mut self, code: &'static str, pointer: &str, message: String) {
        let p = self.doc.problem(Severity::Error, code, pointer, message);
        self.problems.push(p);
    }

    pub fn warn(&mut self, code: &'static str, pointer: &str, message: String) {
        let p = self.doc.problem(Severity::Warning, code, pointer, message);
        self.problems.push(p);
    }

    fn wrong_type(&mut self, pointer: &str, want: &str, got: &Value) {
        self.error(
            "json.type",
            pointer,
            format!("expected {want}, found {}", type_name(got)),
        );
    }

    /// The document root as an object
    pub fn root(&mut self) -> Option<&'d Map<String, Value>> {
        match &self.doc.value {
            Value::Object(m) => Some(m),
            other => {
                self.wrong_type("", "an object", other);
                None
            }
        }
    }

    pub fn object(&mut self, v: &'d Value, pointer: &str) -> Option<&'d Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                self.wrong_type(pointer, "an object", other);
                None
            }
        }
    }

    pub fn field_object(
        &mut self,
        m: &'d Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<&'d Map<String, Value>> {
        let v = m.get(key)?;
        self.object(v, &child(base, key))
    }

    pub fn field_bool(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<(bool, String)> {
        let pointer = child(base, key);
        match m.get(key)? {
            Value::Bool(b) => Some((*b, pointer)),
            Value::Null => None,
            other => {
                self.wrong_type(&pointer, "a boolean", other);
                None
            }
        }
    }

    pub fn field_str(
        &mut self,
        m: &'d Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<(&'d str, String)> {
        let pointer = child(base, key);
        match m.get(key)? {
            Value::String(s) => Some((s.as_str(), pointer)),
            Value::Null => None,
            other => {
                self.wrong_type(&pointer, "a string", other);
                None
            }
        }
    }

    pub fn field_u64(&mut self, m: &Map<String, Value>, key: &str, base: &str) -> Option<u64> {
        let pointer = child(base, key);
        match m.get(key)? {
            Value::Number(n) => match n.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.error(
                        "json.type",
                        &pointer,
                        format!("expected a non-negative integer, found `{n}`"),
                    );
                    None
                }
            },
            Value::Null => None,
            other => {
                self.wrong_type(&pointer, "a non-negative integer", other);
                None
            }
        }
    }

    /// An array of strings, each with its pointer; `None` when the field is absent
    pub fn field_strings(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        base: &str,
    ) -> Option<(Vec<(String, String)>, String)> {
        let pointer = child(base, key);
        match m.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{pointer}/{i}");
                    match item {
                        Value::String(s) => out.push((s.clone(), p)),
                        other => self.wrong_type(&p, "a string", other),
                    }
                }
                Some((out, pointer))
            }
            Value::Null => None,
            other => {
                self.wrong_type(&pointer, "an array of strings", other);
                None
            }
        }
    }

    /// Strict files: every key not in `known` is an error
    pub fn deny_unknown(&mut self, m: &Map<String, Value>, base: &str, known: &[&str]) {
        self.check_keys(m, base, known, Severity::Error);
    }

    /// Report every key of `m` not in `known` with `severity`, with the closest known key
    pub fn check_keys(
        &mut self,
        m: &Map<String, Value>,
        base: &str,
        known: &[&str],
        severity: Severity,
    ) {
        for key in m.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let message = match crate::matchers::suggest::did_you_mean(key, known) {
                Some(k) => format!("unknown field `{key}`: did you mean `{k}`?"),
                None => {
                    let expected = known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("unknown field `{key}`, expected one of {expected}")
                }
            };
            let p = self
                .doc
                .problem(severity, "json.unknown_field", &child(base, key), message);
            self.problems.push(p);
        }
    }
}

/// The pointer of `key` below `base`
pub fn child(base: &str, key: &str) -> String {
    format!("{base}/{}", escape_token(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_values() {
        let text = "{\n  \"a\": {\n    \"b\": [1,\n      \"x\"]\n  },\n  \"c/d\": true\n}";
        let idx = PosIndex::build(text);
        assert_eq!(idx.pos("/a"), (2, 8));
        assert_eq!(idx.pos("/a/b/1"), (4, 7));
        assert_eq!(idx.pos("/c~1d"), (6, 10));
        assert_eq!(
            idx.pos("/a/b/9"),
            (3, 10),
            "missing index falls back to its parent"
        );
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = Doc::parse(Level::Org, Arc::from("s.json"), b"{\n  \"a\": 1,\n}").err();
        let err = err.map(|e| (e.line, e.col, e.code));
        assert_eq!(err, Some((3, 1, "json.syntax")));
    }
}
