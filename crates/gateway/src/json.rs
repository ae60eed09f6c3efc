//! A strict JSON reader that reads only the members it is asked for and skips everything else at
//! memory speed: string contents are searched 32 bytes at a time with SSE2 compares (the `wide`
//! crate's safe SIMD types) for a quote, a backslash or a control character, resuming right after
//! each escape; nested values are skipped without recursion and without building anything.
//!
//! It accepts exactly the JSON that `serde_json::from_slice` accepts (RFC 8259: the number
//! grammar, the escapes, no control characters in strings, nothing after the value), with
//! serde_json's leniency where it has one: a string that is skipped is not checked for UTF-8, as
//! serde's `IgnoredAny` does not check it either. Strings that are read (keys of objects that are
//! read, and values asked for) are checked, lone surrogates in their escapes included.
//!
//! Errors carry the byte offset they were found at; [`Error::message`] turns it into serde's
//! `at line L column C`, and never quotes the input.

use std::borrow::Cow;

/// What was wrong, and where (a byte offset into the document)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub at: usize,
}

/// What was wrong
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    EofWhileParsingValue,
    EofWhileParsingString,
    EofWhileParsingObject,
    EofWhileParsingList,
    ExpectedValue,
    ExpectedColon,
    ExpectedObjectCommaOrEnd,
    ExpectedListCommaOrEnd,
    KeyMustBeAString,
    TrailingComma,
    TrailingCharacters,
    ExpectedIdent,
    InvalidNumber,
    InvalidEscape,
    ControlCharacter,
    InvalidUtf8,
    LoneSurrogate,
    /// a value of another type where one type is expected
    InvalidType {
        found: Kind,
        expected: &'static str,
    },
    /// a key given twice in an object that is read
    DuplicateField(&'static str),
}

/// The type of a JSON value, as serde names it in its messages
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Integer,
    Float,
    Bool,
    Null,
    Map,
    Sequence,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Str => "string",
            Kind::Integer => "integer",
            Kind::Float => "floating point",
            Kind::Bool => "boolean",
            Kind::Null => "null",
            Kind::Map => "map",
            Kind::Sequence => "sequence",
        })
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::EofWhileParsingValue => f.write_str("EOF while parsing a value"),
            Code::EofWhileParsingString => f.write_str("EOF while parsing a string"),
            Code::EofWhileParsingObject => f.write_str("EOF while parsing an object"),
            Code::EofWhileParsingList => f.write_str("EOF while parsing a list"),
            Code::ExpectedValue => f.write_str("expected value"),
            Code::ExpectedColon => f.write_str("expected `:`"),
            Code::ExpectedObjectCommaOrEnd => f.write_str("expected `,` or `}`"),
            Code::ExpectedListCommaOrEnd => f.write_str("expected `,` or `]`"),
            Code::KeyMustBeAString => f.write_str("key must be a string"),
            Code::TrailingComma => f.write_str("trailing comma"),
            Code::TrailingCharacters => f.write_str("trailing characters"),
            Code::ExpectedIdent => f.write_str("expected ident"),
            Code::InvalidNumber => f.write_str("invalid number"),
            Code::InvalidEscape => f.write_str("invalid escape"),
            Code::ControlCharacter => {
                f.write_str("control character (\\u0000-\\u001F) found while parsing a string")
            }
            Code::InvalidUtf8 => f.write_str("invalid unicode code point"),
            Code::LoneSurrogate => f.write_str("lone surrogate in hex escape"),
            Code::InvalidType { found, expected } => {
                write!(f, "invalid type: {found}, expected {expected}")
            }
            Code::DuplicateField(name) => write!(f, "duplicate field `{name}`"),
        }
    }
}

impl Error {
    /// `code at line L column C`, as serde_json writes it (columns count bytes)
    pub fn message(&self, doc: &[u8]) -> String {
        let at = self.at.min(doc.len());
        let start_of_line = memchr::memrchr(b'\n', &doc[..at]).map_or(0, |p| p + 1);
        let line = 1 + memchr::memchr_iter(b'\n', &doc[..start_of_line]).count();
        format!("{} at line {line} column {}", self.code, at - start_of_line)
    }
}

/// A cursor over one JSON document
pub struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    /// the containers open while skipping (`true`: an object), kept between skips
    stack: Vec<bool>,
}

type Result<T> = std::result::Result<T, Error>;

impl<'a> Reader<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Reader {
            s,
            i: 0,
            stack: Vec::new(),
        }
    }

    /// The offset of the next byte to read
    pub fn position(&self) -> usize {
        self.i
    }

    /// An error about the byte at the cursor (its column, counted from 1, as serde counts)
    fn err<T>(&self, code: Code) -> Result<T> {
        Err(Error {
            code,
            at: (self.i + 1).min(self.s.len()),
        })
    }

    /// An error about what ends just before the cursor (a value of the wrong type)
    fn err_before<T>(&self, code: Code) -> Result<T> {
        Err(Error { code, at: self.i })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    /// The type of the next value (whitespace skipped), without consuming it
    pub fn kind(&mut self) -> Result<Kind> {
        Ok(match self.peek() {
            Some(b'"') => Kind::Str,
            Some(b'{') => Kind::Map,
            Some(b'[') => Kind::Sequence,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.number()?;
                let float = self.s[start..self.i]
                    .iter()
                    .any(|b| matches!(b, b'.' | b'e' | b'E'));
                self.i = start;
                if float { Kind::Float } else { Kind::Integer }
            }
            Some(_) => return self.err(Code::ExpectedValue),
            None => return self.err(Code::EofWhileParsingValue),
        })
    }

    /// An error for a value of the wrong type, at the end of that value (where serde reports it)
    fn wrong_type<T>(&mut self, expected: &'static str) -> Result<T> {
        let found = self.kind()?;
        self.skip()?;
        self.err_before(Code::InvalidType { found, expected })
    }

    /// Only whitespace is left
    pub fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err(Code::TrailingCharacters),
        }
    }

    /// Consume a `null` if one comes next
    pub fn null(&mut self) -> Result<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        for &w in word {
            match self.s.get(self.i) {
                Some(&b) if b == w => self.i += 1,
                Some(_) => return self.err(Code::ExpectedIdent),
                None => return self.err(Code::EofWhileParsingValue),
            }
        }
        Ok(())
    }

    /// A boolean
    pub fn bool(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => self.wrong_type("a boolean"),
        }
    }

    /// A whole number from 0 to `u64::MAX` (serde reads `-0`, `1.0` and `1e3` as floats, and so
    /// refuses them here as well)
    pub fn u64(&mut self) -> Result<u64> {
        if self.kind()? != Kind::Integer || self.s.get(self.i) == Some(&b'-') {
            return self.wrong_type("u64");
        }
        let start = self.i;
        self.number()?;
        // digits only, so the text is ASCII
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        match text.parse::<u64>() {
            Ok(n) => Ok(n),
            Err(_) => self.err_before(Code::InvalidType {
                found: Kind::Float,
                expected: "u64",
            }),
        }
    }

    /// The number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<()> {
        let digits = |r: &mut Self| {
            let start = r.i;
            while let Some(b'0'..=b'9') = r.s.get(r.i) {
                r.i += 1;
            }
            r.i - start
        };
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.s.get(self.i) {
                    return self.err(Code::InvalidNumber);
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.err(Code::InvalidNumber),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err(Code::InvalidNumber);
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err(Code::InvalidNumber);
            }
        }
        Ok(())
    }

    /// Skip a string whose opening quote is consumed, up to and including its closing quote;
    /// `true` if it holds escapes. The bytes are searched 32 at a time (SIMD) for a quote, a
    /// backslash or a control character, resuming right after each escape.
    fn skip_string(&mut self) -> Result<bool> {
        let s = self.s;
        let mut i = self.i;
        let mut escaped = false;
        loop {
            let at = match s.get(i..i + 32) {
                Some(block) => {
                    let hits = special_mask(block);
                    if hits == 0 {
                        i += 32;
                        continue;
                    }
                    i + hits.trailing_zeros() as usize
                }
                None => match s[i..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                {
                    Some(p) => i + p,
                    None => {
                        self.i = s.len();
                        return self.err(Code::EofWhileParsingString);
                    }
                },
            };
            match s[at] {
                b'"' => {
                    self.i = at + 1;
                    return Ok(escaped);
                }
                b'\\' => {}
                _ => {
                    self.i = at;
                    return self.err(Code::ControlCharacter);
                }
            }
            escaped = true;
            self.i = at + 1;
            match s.get(self.i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    self.i += 1;
                    self.hex4()?;
                }
                Some(_) => return self.err(Code::InvalidEscape),
                None => return self.err(Code::EofWhileParsingString),
            }
            i = self.i;
        }
    }

    /// Four hex digits after `\u`
    fn hex4(&mut self) -> Result<u16> {
        let mut n = 0u16;
        for _ in 0..4 {
            let Some(&b) = self.s.get(self.i) else {
                self.i = self.s.len();
                return self.err(Code::EofWhileParsingString);
            };
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return self.err(Code::InvalidEscape),
            };
            self.i += 1;
            n = n * 16 + u16::from(d);
        }
        Ok(n)
    }

    /// A string, checked and unescaped: borrowed from the document unless it holds escapes
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return self.wrong_type("a string");
        }
        self.i += 1;
        let start = self.i;
        let escaped = self.skip_string()?;
        let raw = &self.s[start..self.i - 1];
        if !escaped {
            return match std::str::from_utf8(raw) {
                Ok(s) => Ok(Cow::Borrowed(s)),
                Err(e) => Err(Error {
                    code: Code::InvalidUtf8,
                    at: start + e.valid_up_to() + 1,
                }),
            };
        }
        unescape(raw).map(Cow::Owned).map_err(|(code, at)| Error {
            code,
            at: start + at,
        })
    }

    /// Skip one value of any type, however deeply nested, without recursion
    pub fn skip(&mut self) -> Result<()> {
        let base = self.stack.len();
        loop {
            // a value
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    self.skip_string()?;
                }
                Some(b'{') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'}') => self.i += 1,
                        _ => {
                            self.stack.push(true);
                            self.skip_key()?;
                            continue;
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b']') => self.i += 1,
                        None => return self.err(Code::EofWhileParsingList),
                        _ => {
                            self.stack.push(false);
                            continue;
                        }
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.err(Code::ExpectedValue),
                None => return self.err(Code::EofWhileParsingValue),
            }
            // what follows a value: close containers until one takes another member
            loop {
                if self.stack.len() == base {
                    return Ok(());
                }
                let object = self.stack.last().copied().unwrap_or(false);
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        if let Some(b'}' | b']') = self.peek() {
                            return self.err(Code::TrailingComma);
                        }
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        self.stack.pop();
                    }
                    (None, true) => return self.err(Code::EofWhileParsingObject),
                    (None, false) => return self.err(Code::EofWhileParsingList),
                    (Some(_), true) => return self.err(Code::ExpectedObjectCommaOrEnd),
                    (Some(_), false) => return self.err(Code::ExpectedListCommaOrEnd),
                }
            }
        }
    }

    /// Skip a key and its colon
    fn skip_key(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.skip_string()?;
            }
            Some(_) => return self.err(Code::KeyMustBeAString),
            None => return self.err(Code::EofWhileParsingObject),
        }
        self.colon()
    }

    fn colon(&mut self) -> Result<()> {
        match self.peek() {
            Some(b':') => {
                self.i += 1;
                Ok(())
            }
            Some(_) => self.err(Code::ExpectedColon),
            None => self.err(Code::EofWhileParsingObject),
        }
    }

    /// Read an object: `member` is called with each key (checked and unescaped) and must consume
    /// its value. Anything but an object is an error expecting `expected`.
    pub fn object(
        &mut self,
        expected: &'static str,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        if self.peek() != Some(b'{') {
            return self.wrong_type(expected);
        }
        self.i += 1;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            match self.peek() {
                Some(b'"') => {}
                Some(_) => return self.err(Code::KeyMustBeAString),
                None => return self.err(Code::EofWhileParsingObject),
            }
            let key = self.string()?;
            self.colon()?;
            member(self, key)?;
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    if self.peek() == Some(b'}') {
                        return self.err(Code::TrailingComma);
                    }
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(_) => return self.err(Code::ExpectedObjectCommaOrEnd),
                None => return self.err(Code::EofWhileParsingObject),
            }
        }
    }

    /// Read an array: `element` is called for each element and must consume it. Anything but an
    /// array is an error expecting `expected`.
    pub fn array(
        &mut self,
        expected: &'static str,
        mut element: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        if self.peek() != Some(b'[') {
            return self.wrong_type(expected);
        }
        self.i += 1;
        match self.peek() {
            Some(b']') => {
                self.i += 1;
                return Ok(());
            }
            None => return self.err(Code::EofWhileParsingList),
            _ => {}
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    if self.peek() == Some(b']') {
                        return self.err(Code::TrailingComma);
                    }
                }
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(_) => return self.err(Code::ExpectedListCommaOrEnd),
                None => return self.err(Code::EofWhileParsingList),
            }
        }
    }

    /// Skip a value and return its text (whitespace around it excluded)
    pub fn raw(&mut self) -> Result<&'a [u8]> {
        self.ws();
        let start = self.i;
        self.skip()?;
        Ok(&self.s[start..self.i])
    }
}

/// One bit for each of the 32 bytes of `block` that is a quote, a backslash or below 0x20
fn special_mask(block: &[u8]) -> u32 {
    let half = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        let v = wide::u8x16::new(a);
        let hits = v.cmp_eq(wide::u8x16::splat(b'"'))
            | v.cmp_eq(wide::u8x16::splat(b'\\'))
            | v.max(wide::u8x16::splat(0x1f))
                .cmp_eq(wide::u8x16::splat(0x1f));
        wide::i8x16::new(hits.to_array().map(|x| x as i8)).move_mask() as u32
    };
    half(&block[..16]) | half(&block[16..32]) << 16
}

/// The text of a string's contents (between the quotes, checked by [`Reader::skip_string`]) with
/// its escapes resolved; an error with the offset into `raw` when it is not UTF-8 or an escape
/// names a lone surrogate
fn unescape(raw: &[u8]) -> std::result::Result<String, (Code, usize)> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex = |at: usize| -> u32 {
        raw.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    while i < raw.len() {
        let Some(n) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + n]);
        i += n + 1;
        let c = raw.get(i).copied().unwrap_or(b'"');
        i += 1;
        let ch = match c {
            b'b' => '\x08',
            b'f' => '\x0c',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex(i);
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // a leading surrogate must be followed by `\u` and a trailing one
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return Err((Code::LoneSurrogate, i));
                    }
                    let lo = hex(i + 2);
                    i += 6;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err((Code::LoneSurrogate, i));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(ch) => ch,
                    None => return Err((Code::LoneSurrogate, i)),
                }
            }
            other => char::from(other),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|e| (Code::InvalidUtf8, e.utf8_error().valid_up_to() + 1))
}

#[cfg(test)]
mod tests;
