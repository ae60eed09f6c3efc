//! Hand-written Cedar files (`policies/*.cedar`): split into statements, each parsed with an id
//! that encodes its provenance and with the line it starts on.

use std::sync::Arc;

use cedar_policy::{Effect, Policy, PolicyId};
use miette::Diagnostic;

use crate::json::line_col;
use crate::origin::{Level, Origin};
use crate::problem::{Problem, Severity};

/// One hand-written policy with its provenance
#[derive(Clone, Debug)]
pub struct HandPolicy {
    pub id: PolicyId,
    pub policy: Policy,
    pub origin: Origin,
    /// the policy's text, for `explain`
    pub text: String,
}

impl HandPolicy {
    pub fn effect(&self) -> Effect {
        self.policy.effect()
    }
}

/// A statement of a Cedar file: byte offset where it starts and its text (with the final `;`)
fn statements(src: &str) -> Vec<(usize, &str)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                start.get_or_insert(i);
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b';' => {
                let s = start.take().unwrap_or(i);
                out.push((s, &src[s..=i]));
            }
            b if b.is_ascii_whitespace() => {}
            _ => {
                start.get_or_insert(i);
            }
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push((s, &src[s..]));
    }
    out
}

/// Parse every policy in one file. `id_prefix` is e.g. `org#policies/frontier.cedar`; each policy
/// gets `<prefix>/<@id annotation>` or `<prefix>/<index>`.
pub fn read(
    level: Level,
    file: &Arc<str>,
    id_prefix: &str,
    bytes: &[u8],
) -> (Vec<HandPolicy>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let Ok(src) = std::str::from_utf8(bytes) else {
        problems.push(problem(
            file,
            1,
            1,
            "file.not_utf8",
            "file is not valid UTF-8".to_string(),
        ));
        return (out, problems);
    };
    for (index, (offset, text)) in statements(src).into_iter().enumerate() {
        let (line, col) = line_col(bytes, offset);
        match Policy::parse(None, text) {
            Ok(policy) => {
                let name = policy
                    .annotation("id")
                    .map(str::to_string)
                    .unwrap_or_else(|| index.to_string());
                let id = PolicyId::new(format!("{id_prefix}/{name}"));
                if out.iter().any(|p: &HandPolicy| p.id == id) {
                    problems.push(problem(
                        file,
                        line,
                        col,
                        "cedar.duplicate_id",
                        format!("policy id `{id}` is used twice in this file"),
                    ));
                    continue;
                }
                let origin = Origin {
                    level,
                    file: file.clone(),
                    pointer: String::new(),
                    line,
                    col,
                };
                out.push(HandPolicy {
                    policy: policy.new_id(id.clone()),
                    id,
                    origin,
                    text: text.to_string(),
                });
            }
            Err(errs) => {
                for e in errs.iter() {
                    let at = e
                        .labels()
                        .and_then(|mut l| l.next())
                        .map(|l| offset + l.offset())
                        .unwrap_or(offset);
                    let (l, c) = line_col(bytes, at);
                    let mut msg = format!("invalid Cedar: {e}");
                    if let Some(help) = e.help() {
                        msg.push_str(&format!(" ({help})"));
                    }
                    problems.push(problem(file, l, c, "cedar.syntax", msg));
                }
            }
        }
    }
    (out, problems)
}

pub(crate) fn problem(
    file: &Arc<str>,
    line: u32,
    col: u32,
    code: &'static str,
    message: String,
) -> Problem {
    Problem {
        severity: Severity::Error,
        code,
        file: file.to_string(),
        line,
        col,
        pointer: String::new(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_strings_and_comments() {
        let src = "// a; comment\npermit(principal, action, resource) when { context.x == \"a;b\" };\n\nforbid(principal, action, resource);";
        let st = statements(src);
        assert_eq!(st.len(), 2);
        assert!(st[0].1.starts_with("permit"));
        assert!(st[1].1.starts_with("forbid"));
    }

    #[test]
    fn ids_and_lines() {
        let f: Arc<str> = "policies/x.cedar".into();
        let src = b"@id(\"leads\")\nforbid(principal, action, resource);\n\npermit(principal, action, resource);\n";
        let (ps, probs) = read(Level::Org, &f, "org#policies/x.cedar", src);
        assert!(probs.is_empty(), "{probs:?}");
        let got: Vec<_> = ps
            .iter()
            .map(|p| (p.id.to_string(), p.origin.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("org#policies/x.cedar/leads".to_string(), 1),
                ("org#policies/x.cedar/1".to_string(), 4)
            ]
        );
    }

    #[test]
    fn syntax_error_line() {
        let f: Arc<str> = "policies/x.cedar".into();
        let (_, probs) = read(
            Level::Org,
            &f,
            "p",
            b"permit(principal, action, resource);\nforbid(principal, action resource);\n",
        );
        assert_eq!(probs.len(), 1);
        assert_eq!((probs[0].line, probs[0].code), (2, "cedar.syntax"));
    }
}
