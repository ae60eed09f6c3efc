//! Problems found while reading, merging or compiling layers.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file; `Display` is `file:line:col: pointer: message`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// stable code for tools and tests, e.g. `json.syntax`, `settings.invalid_provider`
    pub code: &'static str,
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub pointer: String,
    pub message: String,
}

impl Problem {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.pointer)?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a set of layers; the error type of loading and compiling
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{} problem(s) in the policy layers", .problems.len())]
pub struct Problems {
    pub problems: Vec<Problem>,
}

impl Problems {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    pub fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    pub fn extend(&mut self, other: Problems) {
        self.problems.extend(other.problems);
    }
}

/// A problem of `severity` at `origin`
pub(crate) fn at(
    severity: Severity,
    origin: &crate::origin::Origin,
    code: &'static str,
    message: String,
) -> Problem {
    Problem {
        severity,
        code,
        file: origin.file.to_string(),
        line: origin.line,
        col: origin.col,
        pointer: origin.pointer.clone(),
        message,
    }
}

/// A warning at `origin`
pub(crate) fn warn_at(
    origin: &crate::origin::Origin,
    code: &'static str,
    message: String,
) -> Problem {
    at(Severity::Warning, origin, code, message)
}
