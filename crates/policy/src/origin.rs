//! Where a value came from: level, file, JSON pointer, line.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A layer's place in the hierarchy, most authoritative first
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Org,
    Project,
    Folder,
    User,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Org, Level::Project, Level::Folder, Level::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Org => "org",
            Level::Project => "project",
            Level::Folder => "folder",
            Level::User => "user",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provenance of one value: which layer, which file, where in it
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    pub level: Level,
    /// the file as the user named it (layer root joined with the file's relative path)
    pub file: Arc<str>,
    /// RFC 6901 JSON pointer of the value inside the file ("" for the whole file)
    pub pointer: String,
    /// 1-based line, 0 when unknown
    pub line: u32,
    /// 1-based column, 0 when unknown
    #[serde(skip)]
    pub col: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.level, self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.pointer.is_empty() {
            write!(f, " {}", self.pointer)?;
        }
        Ok(())
    }
}

/// A value with its provenance
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Spanned<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }
}

/// Escape one reference token of a JSON pointer (RFC 6901)
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
