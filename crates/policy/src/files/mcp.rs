//! `mcp.json`: the MCP servers a layer defines, uses, or opts in and out of.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::files::settings::{EnvLookup, expand};
use crate::json::{Doc, Reader, child};
use crate::origin::{Origin, Spanned};
use crate::problem::Problems;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

/// One entry of `mcpServers`, with variables expanded in what governance matches on
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// the names of the variables its `env` sets, each where it is set
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Spanned<String>>,
    /// the entry says nothing but `disabled`: an opt-in or opt-out, not a definition
    #[serde(skip)]
    pub toggle_only: bool,
    pub origin: Origin,
}

impl McpServer {
    /// The hostname of an http/sse server's URL, lowercased
    pub fn host(&self) -> Option<String> {
        self.url.as_deref().and_then(crate::matchers::url::mcp_host)
    }

    /// `command args...` of a stdio server, as an allowlist entry spells it
    pub fn command_line(&self) -> Option<String> {
        let cmd = self.command.as_deref()?;
        let mut s = cmd.to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        Some(s)
    }

    /// The first variable of its `env` that changes what a stdio server runs, with why
    pub fn exec_env(&self) -> Option<(&Spanned<String>, &'static str)> {
        if self.transport != Some(Transport::Stdio) {
            return None;
        }
        self.env
            .iter()
            .find_map(|e| crate::matchers::exec_env::exec_env(&e.value).map(|why| (e, why)))
    }

    /// Whether two entries define the same server (what `disabled` says aside)
    pub fn same_definition(&self, other: &McpServer) -> bool {
        self.transport == other.transport
            && self.command == other.command
            && self.args == other.args
            && self.url == other.url
    }
}

/// Read `mcp.json`; unset variables in what governance matches on are errors, elsewhere warnings
// Longer than a screen: one field of a server entry after another (command, url, args, env,
// headers, ...), each expanded with the same environment and reported at its own pointer, so that
// every problem in the file is reported.
pub fn read(doc: &Doc, env: EnvLookup<'_>, problems: &mut Problems) -> BTreeMap<String, McpServer> {
    let mut r = Reader::new(doc, problems);
    let mut out = BTreeMap::new();
    let Some(root) = r.root() else { return out };
    let Some(servers) = r.field_object(root, "mcpServers", "") else {
        return out;
    };
    for (name, v) in servers {
        let ptr = child("/mcpServers", name);
        let Some(m) = r.object(v, &ptr) else { continue };
        let expand_field =
            |r: &mut Reader<'_>, raw: &str, pointer: &str| match expand(raw, env, true) {
                Ok(s) => Some(s),
                Err(var) => {
                    r.error(
                        "mcp.unset_variable",
                        pointer,
                        format!("environment variable `{var}` is not set and has no default"),
                    );
                    None
                }
            };
        let command = r
            .field_str(m, "command", &ptr)
            .and_then(|(s, p)| expand_field(&mut r, s, &p));
        let url = r
            .field_str(m, "url", &ptr)
            .and_then(|(s, p)| expand_field(&mut r, s, &p));
        let args = r
            .field_strings(m, "args", &ptr)
            .map(|(items, _)| {
                items
                    .into_iter()
                    .filter_map(|(s, p)| expand_field(&mut r, &s, &p))
                    .collect()
            })
            .unwrap_or_default();
        let mut env_names = Vec::new();
        for section in ["env", "headers"] {
            if let Some(obj) = r.field_object(m, section, &ptr) {
                let base = child(&ptr, section);
                for (k, v) in obj {
                    if section == "env" {
                        env_names.push(Spanned::new(k.clone(), doc.origin(&child(&base, k))));
                    }
                    if let Value::String(s) = v
                        && let Err(var) = expand(s, env, true)
                    {
                        r.warn(
                            "mcp.unset_variable",
                            &child(&base, k),
                            format!("environment variable `{var}` is not set and has no default"),
                        );
                    }
                }
            }
        }
        let transport = match r.field_str(m, "type", &ptr) {
            Some(("stdio", _)) => Some(Transport::Stdio),
            Some(("http", _)) => Some(Transport::Http),
            Some(("sse", _)) => Some(Transport::Sse),
            Some((other, p)) => {
                r.error(
                    "mcp.invalid_type",
                    &p,
                    format!(
                        "invalid server type `{other}`: expected one of `stdio`, `http`, `sse`"
                    ),
                );
                None
            }
            None if command.is_some() => Some(Transport::Stdio),
            None if url.is_some() => Some(Transport::Http),
            None => None,
        };
        let disabled = r.field_bool(m, "disabled", &ptr).map(|(b, _)| b);
        let toggle_only = m.keys().all(|k| k == "disabled");
        if !toggle_only && !m.contains_key("command") && !m.contains_key("url") {
            r.error(
                "mcp.missing_field",
                &ptr,
                format!("server `{name}` has neither `command` nor `url`"),
            );
        }
        out.insert(
            name.clone(),
            McpServer {
                name: name.clone(),
                transport,
                command,
                args,
                url,
                disabled,
                env: env_names,
                toggle_only,
                origin: doc.origin(&ptr),
            },
        );
    }
    out
}
