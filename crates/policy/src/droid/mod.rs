//! Where Droid reads the same files differently from Strata, said in Strata's outputs: Droid
//! enforces `mcpPolicy` itself (it decides which MCP servers it starts), with a looser rule for
//! stdio servers than Strata's (`docs/merge.md`, "MCP allowlist entries: Strata and Droid").

pub mod catalogue;
pub mod org;
pub mod schema;

use serde::Serialize;

use crate::compile::Snapshot;
use crate::matchers::mcp::{McpTarget, droid_disagreement};
use crate::origin::Level;
use crate::problem::{Problem, warn_at};
use crate::scope::ScopeRef;

/// One warning per `mcpPolicy.allowlist` entry that Droid reads differently (code
/// `droid.mcp_entry`), for `policy validate`
pub fn mcp_warnings(snap: &Snapshot) -> Vec<Problem> {
    let layers = std::iter::once(&snap.org)
        .chain(
            snap.projects
                .values()
                .flat_map(|p| std::iter::once(&p.layer).chain(p.folders.iter().map(|(_, l, _)| l))),
        )
        .chain(snap.users.values());
    let mut out: Vec<Problem> = layers
        .filter_map(|l| l.mcp_allowlist.as_ref())
        .flat_map(|list| list.entries.iter())
        .filter_map(|(_, e)| {
            let why = droid_disagreement(&e.value)?;
            Some(warn_at(&e.origin, "droid.mcp_entry", why))
        })
        .collect();
    out.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    out
}

/// What Droid itself would do with an MCP server, by its own rule, beside Strata's decision
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroidMcpVerdict {
    /// Droid starts the server: the allowlist Droid uses admits it by Droid's rule
    pub starts: bool,
    /// the allowlist Droid uses: its level and the entry Droid matches, if any
    pub lists: Vec<DroidListVerdict>,
}

/// What Droid itself does with a model of its catalogue under the org level Strata serves
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroidModelVerdict {
    /// Droid refuses it locally (`Model blocked by organization policy`), before any request
    pub refuses: bool,
    /// why, in a few words
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroidListVerdict {
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// Droid's verdict on `target` in `scope`, by Droid's own merge: the first level with
/// `mcpPolicy.enabled: true`, in Droid's order (org, the folders nearest first, the project, the
/// person), supplies the one allowlist. The org level is the one Strata serves (`served`: its
/// rendered allowlist, when it sets one), else the org's own file. `None` when no level enables
/// it: Droid then starts any server it is configured with.
pub fn mcp_verdict(
    scope: &ScopeRef<'_>,
    target: &McpTarget<'_>,
    served: Option<&[String]>,
) -> Option<DroidMcpVerdict> {
    if let Some(list) = served {
        let entry = list
            .iter()
            .find(|e| crate::matchers::mcp::droid_admits_entry(e, target))
            .cloned();
        return Some(DroidMcpVerdict {
            starts: entry.is_some(),
            lists: vec![DroidListVerdict {
                level: Level::Org,
                entry,
            }],
        });
    }
    let droid_order = std::iter::once(scope.org)
        .chain(scope.folders.iter().rev().copied())
        .chain(scope.project)
        .chain(scope.user);
    let layer = droid_order
        .into_iter()
        .find(|l| l.mcp_enabled.as_ref().is_some_and(|b| b.value))?;
    let entry = layer.mcp_allowlist.as_ref().and_then(|list| {
        list.entries
            .iter()
            .find(|(m, _)| m.droid_admits(target))
            .map(|(_, e)| e.value.clone())
    });
    Some(DroidMcpVerdict {
        starts: entry.is_some(),
        lists: vec![DroidListVerdict {
            level: layer.level,
            entry,
        }],
    })
}
