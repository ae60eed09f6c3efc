//! Differences between two revisions: file-level (which layer files changed, line by line) and
//! effective-level (what each project and group may use: models, BYOK models, MCP servers).

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};
use strata_policy::{Effect, KeyMode, Request, Snapshot};
use strata_proto::v1::StoredOrg;
use strata_resolver::state::Projects;

/// Every file of a revision, named as origins name them: `org/settings.json`,
/// `project:web/settings.json`, `project:web/services/billing/settings.json`
pub fn layer_files(org: &StoredOrg, projects: &Projects) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in &org.files {
        out.insert(format!("org/{}", f.path), f.content.clone());
    }
    for (id, entry) in projects {
        let p = &entry.layer;
        for f in &p.files {
            out.insert(format!("project:{id}/{}", f.path), f.content.clone());
        }
        for folder in &p.folders {
            for f in &folder.files {
                out.insert(
                    format!("project:{id}/{}/{}", folder.path, f.path),
                    f.content.clone(),
                );
            }
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Same(&'a str),
    Add(&'a str),
    Del(&'a str),
}

/// Files longer than this (in lines) are shown as replaced rather than diffed line by line
const MAX_DIFF_LINES: usize = 4000;

/// A line diff (longest common subsequence)
pub fn lines<'a>(old: &'a str, new: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > MAX_DIFF_LINES || b.len() > MAX_DIFF_LINES {
        let mut out: Vec<Line> = a.into_iter().map(Line::Del).collect();
        out.extend(b.into_iter().map(Line::Add));
        return out;
    }
    // lcs[i][j]: the common subsequence of a[i..] and b[j..]
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(Line::Same(a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Line::Add(b[j]));
            j += 1;
        } else {
            out.push(Line::Del(a[i]));
            i += 1;
        }
    }
    out
}

/// The file-level diff: each file added, removed or changed, line by line
pub fn files(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, Vec<u8>>) -> Markup {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let changed: Vec<&String> = names
        .into_iter()
        .filter(|n| old.get(*n) != new.get(*n))
        .collect();
    html! {
        @if changed.is_empty() { p.muted #no-file-changes { "No file changed." } }
        @for name in changed {
            @let a = old.get(name).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            @let b = new.get(name).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            h3.file-name {
                code { (name) } " "
                @if !old.contains_key(name) { span.badge { "added" } }
                @else if !new.contains_key(name) { span.badge { "removed" } }
                @else { span.badge { "changed" } }
            }
            table.diff {
                @for l in lines(&a, &b) {
                    @match l {
                        Line::Same(t) => tr { td { " " } td { (t) } },
                        Line::Add(t) => tr.add { td { "+" } td { (t) } },
                        Line::Del(t) => tr.del { td { "-" } td { (t) } },
                    }
                }
            }
        }
    }
}

/// What one scope (a project or none, a group or none) may use
#[derive(Default, PartialEq, Eq)]
struct Effective {
    models: BTreeSet<String>,
    byok: BTreeSet<String>,
    mcp: BTreeSet<String>,
}

const NOBODY: &str = "(any user)";

fn effective(
    snap: &Snapshot,
    via: Option<&str>,
    project: Option<&String>,
    group: Option<&String>,
) -> Effective {
    let req = Request::scope(
        NOBODY.to_string(),
        group.into_iter().cloned().collect(),
        project.cloned(),
        None,
    );
    let s = strata_policy::explain::effective_settings(snap, &req, via, &[]);
    let mut e = Effective::default();
    for m in s.models {
        match m.key_mode {
            KeyMode::Central => e.models.insert(m.model),
            KeyMode::Byok => e.byok.insert(m.model),
        };
    }
    for m in s.mcp_servers {
        if m.decision == Effect::Allow {
            e.mcp.insert(m.name);
        }
    }
    e
}

/// The groups the rules of a revision name (`Group::"leads"` in Cedar files, `groups` in JSON)
pub fn groups_named(files: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for content in files.values() {
        let text = String::from_utf8_lossy(content);
        for part in text.split("Group::\"").skip(1) {
            if let Some((g, _)) = part.split_once('"') {
                out.insert(g.to_string());
            }
        }
    }
    out
}

/// One scope's change
pub struct ScopeChange {
    pub project: Option<String>,
    pub group: Option<String>,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

fn change(kind: &str, old: &BTreeSet<String>, new: &BTreeSet<String>, c: &mut ScopeChange) {
    c.gained
        .extend(new.difference(old).map(|m| format!("{kind} {m}")));
    c.lost
        .extend(old.difference(new).map(|m| format!("{kind} {m}")));
}

/// Which decisions change between two snapshots, per project (and none) and group (and none),
/// for requests through the gateway at `via` (when known: the org may require one)
pub fn effective_changes(
    old: &Snapshot,
    new: &Snapshot,
    via: Option<&str>,
    projects: &BTreeSet<String>,
    groups: &BTreeSet<String>,
) -> Vec<ScopeChange> {
    let projects: Vec<Option<&String>> = std::iter::once(None)
        .chain(projects.iter().map(Some))
        .collect();
    let groups: Vec<Option<&String>> = std::iter::once(None)
        .chain(groups.iter().map(Some))
        .collect();
    let mut out = Vec::new();
    for p in &projects {
        for g in &groups {
            let (a, b) = (effective(old, via, *p, *g), effective(new, via, *p, *g));
            if a == b {
                continue;
            }
            let mut c = ScopeChange {
                project: p.cloned(),
                group: g.cloned(),
                gained: Vec::new(),
                lost: Vec::new(),
            };
            change("model", &a.models, &b.models, &mut c);
            change("BYOK model", &a.byok, &b.byok, &mut c);
            change("MCP server", &a.mcp, &b.mcp, &mut c);
            out.push(c);
        }
    }
    out
}

pub fn effective_table(changes: &[ScopeChange]) -> Markup {
    html! {
        @if changes.is_empty() { p.muted #no-effective-changes { "No decision changes: every project and group may use the same models and MCP servers." } }
        @else {
            table #effective-diff {
                thead { tr { th { "Project" } th { "Group" } th { "Gained" } th { "Lost" } } }
                tbody {
                    @for c in changes {
                        tr {
                            td { (c.project.as_deref().unwrap_or("(no project)")) }
                            td { (c.group.as_deref().unwrap_or("(any group)")) }
                            td.gained { @for g in &c.gained { div { (g) } } }
                            td.lost { @for l in &c.lost { div { (l) } } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_keeps_common_lines() {
        let d = lines("a\nb\nc", "a\nx\nc");
        assert_eq!(
            d,
            vec![
                Line::Same("a"),
                Line::Add("x"),
                Line::Del("b"),
                Line::Same("c")
            ]
        );
    }

    #[test]
    fn groups_are_read_from_cedar() {
        let mut f = BTreeMap::new();
        f.insert(
            "org/p.cedar".to_string(),
            b"principal in Group::\"leads\"".to_vec(),
        );
        assert_eq!(
            groups_named(&f).into_iter().collect::<Vec<_>>(),
            vec!["leads"]
        );
    }
}
