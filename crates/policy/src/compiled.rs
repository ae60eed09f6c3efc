//! The compiled form of one layer: every list as a [`Matcher`], the layer's custom models, MCP
//! servers, droids and commands (what a layer above locks already removed), and what the org's
//! `policy.json` says.

use std::collections::BTreeMap;
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::FastMap;
use crate::files::markdown::Artifact;
use crate::files::mcp::McpServer;
use crate::files::settings::{CustomModel, List, Provider};
use crate::layer::Layer;
use crate::matchers::mcp::{HostRule, McpEntry, McpTarget, normalise_target_host};
use crate::matchers::model_id::{canonical_pattern, canonical_str};
use crate::matchers::url::{BaseUrl, UrlPattern};
use crate::origin::{Level, Origin, Spanned};
use crate::problem::{self, Problem, Problems, Severity, warn_at};
use crate::rules::Field;

/// How a list's entries match. Only model lists are globs; base URLs are [`UrlList`]s and MCP
/// entries [`McpList`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// model ids: both the entries and the ids asked for in canonical form
    /// ([`crate::matchers::model_id`]: NFKC, look-alike dashes and spaces folded, lowercase,
    /// router prefixes such as `openai/` removed), `*` matches any characters
    Model,
}

/// Patterns per glob set: globset builds one automaton per set, and a very large one fails to
/// build, so a long list is split into several sets
const GLOBS_PER_SET: usize = 500;

/// One list compiled for matching. Literal entries are a hash lookup; glob entries are glob sets.
/// Model ids and MCP hosts/commands match case-insensitively: patterns and inputs are lowercased,
/// which also lets globset use its fast literal, prefix and suffix strategies.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub origin: Origin,
    pub entries: Vec<Spanned<String>>,
    /// literal pattern (folded) → first entry that produced it
    exact: FastMap<String, usize>,
    /// glob sets, and for each set the entry behind each of its patterns
    sets: Vec<(GlobSet, Vec<usize>)>,
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Matcher {
    /// Compile `list`; entries naming a category in `categories` stand for its patterns. A list
    /// that cannot be compiled is an error, never an empty (match-nothing) set.
    pub fn build(
        list: &List,
        kind: MatchKind,
        categories: &[(String, List)],
        problems: &mut Problems,
    ) -> Matcher {
        let mut exact = FastMap::default();
        let mut globs: Vec<(globset::Glob, usize, &Spanned<String>)> = Vec::new();
        for (i, entry) in list.entries.iter().enumerate() {
            let expanded: Vec<&str> =
                match (kind, categories.iter().find(|(n, _)| *n == entry.value)) {
                    (MatchKind::Model, Some((_, cat))) => {
                        cat.entries.iter().map(|e| e.value.as_str()).collect()
                    }
                    _ => vec![entry.value.as_str()],
                };
            for pat in expanded {
                let raw = pat;
                let pat = canonical_pattern(pat);
                // a router prefix on a pattern widens it: `openai/*` is every model
                if pat == "*" && raw.trim() != "*" {
                    problems.push(warn_at(
                        &entry.origin,
                        "model.prefix_stripped",
                        format!("`{raw}` is read as `*` (model ids are compared without router prefixes such as `openai/`): it matches every model"),
                    ));
                }
                if !has_glob(&pat) {
                    exact.entry(pat).or_insert(i);
                    continue;
                }
                match GlobBuilder::new(&pat).backslash_escape(true).build() {
                    Ok(g) => globs.push((g, i, entry)),
                    Err(e) => problems.push(problem::at(
                        Severity::Error,
                        &entry.origin,
                        "glob.invalid",
                        format!("invalid pattern `{pat}`: {}", e.kind()),
                    )),
                }
            }
        }
        let mut sets = Vec::new();
        for chunk in globs.chunks(GLOBS_PER_SET) {
            let mut b = GlobSetBuilder::new();
            for (g, _, _) in chunk {
                b.add(g.clone());
            }
            match b.build() {
                Ok(set) => sets.push((set, chunk.iter().map(|(_, i, _)| *i).collect())),
                Err(e) => {
                    let first = chunk[0].2;
                    problems.push(Problem {
                        severity: Severity::Error,
                        code: "glob.too_complex",
                        file: first.origin.file.to_string(),
                        line: first.origin.line,
                        col: first.origin.col,
                        pointer: list.origin.pointer.clone(),
                        message: format!("the patterns of this list cannot be compiled together ({e}); simplify or split them"),
                    });
                }
            }
        }
        Matcher {
            origin: list.origin.clone(),
            entries: list.entries.clone(),
            exact,
            sets,
        }
    }

    fn folded<'s>(&self, s: &'s str) -> std::borrow::Cow<'s, str> {
        canonical_str(s)
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.is_match_canonical(&self.folded(s))
    }

    /// [`Matcher::is_match`] for an id already in canonical form (`canonical_str`): the decision
    /// path canonicalises a request's model once, not once per list
    pub fn is_match_canonical(&self, canonical: &str) -> bool {
        self.exact.contains_key(canonical)
            || self.sets.iter().any(|(set, _)| set.is_match(canonical))
    }

    /// The first entry (in list order) that matches `s`
    pub fn first_match(&self, s: &str) -> Option<&Spanned<String>> {
        let s = self.folded(s);
        let mut best = self.exact.get(s.as_ref()).copied();
        for (set, entries) in &self.sets {
            if let Some(i) = set
                .matches(s.as_ref())
                .first()
                .and_then(|p| entries.get(*p))
            {
                best = Some(best.map_or(*i, |b| b.min(*i)));
            }
        }
        best.and_then(|i| self.entries.get(i))
    }

    /// Whether the list has literal (non-glob) entries only; those can be listed as models
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|e| e.value.as_str())
            .filter(|s| !has_glob(s))
    }
}

/// A list of base-URL patterns, each parsed into components (WHATWG): matched against parsed
/// URLs, never as text
#[derive(Clone, Debug)]
pub struct UrlList {
    pub origin: Origin,
    pub entries: Vec<(UrlPattern, Spanned<String>)>,
}

impl UrlList {
    /// Parse every entry; one that does not parse is an error naming it, never a silent miss
    pub fn build(list: &List, problems: &mut Problems) -> UrlList {
        let mut entries = Vec::new();
        for e in &list.entries {
            match UrlPattern::parse(&e.value) {
                Ok(p) => entries.push((p, e.clone())),
                Err(err) => problems.push(problem::at(
                    Severity::Error,
                    &e.origin,
                    err.code(),
                    err.to_string(),
                )),
            }
        }
        UrlList {
            origin: list.origin.clone(),
            entries,
        }
    }

    /// The first entry that admits `url`
    pub fn first_match(&self, url: &BaseUrl) -> Option<&Spanned<String>> {
        self.entries
            .iter()
            .find(|(p, _)| p.matches(url))
            .map(|(_, e)| e)
    }

    pub fn is_match(&self, url: &BaseUrl) -> bool {
        self.first_match(url).is_some()
    }
}

/// An MCP allowlist or blocklist: each entry typed (host, command or bare word); a host entry
/// never matches a command line, nor a command entry a host.
///
/// Matching is a few hash lookups, not a scan of the list: a remote server's host is looked up
/// whole and by each of its label suffixes, a stdio server's command by itself and by its last
/// path component; the first entry (in list order) among the candidates that admits the server
/// wins, exactly as [`McpList::first_match_linear`] (the reference) would find it.
#[derive(Clone, Debug)]
pub struct McpList {
    pub origin: Origin,
    pub entries: Vec<(McpEntry, Spanned<String>)>,
    /// the first `*` host entry
    any_host: Option<usize>,
    /// host a remote server must equal → first entry (`Domain`, `Exact`, lowercased `Word`)
    host_equal: FastMap<String, usize>,
    /// domain a remote server's host must be a strict subdomain of → first entry (`Domain`,
    /// `Subdomains`)
    host_parent: FastMap<String, usize>,
    /// program token → the command and word entries with it, in list order
    programs: FastMap<String, Vec<usize>>,
}

impl McpList {
    pub fn build(list: &List) -> McpList {
        let entries: Vec<(McpEntry, Spanned<String>)> = list
            .entries
            .iter()
            .map(|e| (McpEntry::parse(&e.value), e.clone()))
            .collect();
        let mut any_host = None;
        let mut host_equal = FastMap::default();
        let mut host_parent = FastMap::default();
        let mut programs: FastMap<String, Vec<usize>> = FastMap::default();
        for (i, (entry, _)) in entries.iter().enumerate() {
            match entry {
                McpEntry::Host(h) => match &h.rule {
                    HostRule::Any => {
                        any_host.get_or_insert(i);
                    }
                    HostRule::Domain(d) => {
                        host_equal.entry(d.clone()).or_insert(i);
                        host_parent.entry(d.clone()).or_insert(i);
                    }
                    HostRule::Subdomains(d) => {
                        host_parent.entry(d.clone()).or_insert(i);
                    }
                    HostRule::Exact(h) => {
                        host_equal.entry(h.clone()).or_insert(i);
                    }
                },
                McpEntry::Word(w) => {
                    host_equal.entry(w.to_ascii_lowercase()).or_insert(i);
                    programs.entry(w.clone()).or_default().push(i);
                }
                McpEntry::Command(c) => {
                    // an empty program admits nothing
                    if !c.program.is_empty() {
                        programs.entry(c.program.clone()).or_default().push(i);
                    }
                }
            }
        }
        McpList {
            origin: list.origin.clone(),
            entries,
            any_host,
            host_equal,
            host_parent,
            programs,
        }
    }

    /// The first entry that admits `server` by Strata's rule
    pub fn first_match(&self, server: &McpTarget<'_>) -> Option<&Spanned<String>> {
        let best = match server {
            McpTarget::Remote { host } => {
                let host = normalise_target_host(host);
                let mut best = self.any_host;
                let mut take = |i: Option<&usize>| {
                    if let Some(&i) = i {
                        best = Some(best.map_or(i, |b| b.min(i)));
                    }
                };
                take(self.host_equal.get(host.as_str()));
                // `host` is a strict subdomain of `d` when it is `prefix.d` with a non-empty
                // prefix of non-empty labels: every `.` of the host starts such a `d`
                for (dot, _) in host.match_indices('.') {
                    let prefix = &host[..dot];
                    if !prefix.is_empty() && !prefix.split('.').any(str::is_empty) {
                        take(self.host_parent.get(&host[dot + 1..]));
                    }
                }
                best
            }
            McpTarget::Stdio { command, .. } => {
                let base = command.rsplit(['/', '\\']).next().unwrap_or(command);
                [Some(*command), (base != *command).then_some(base)]
                    .into_iter()
                    .flatten()
                    .filter_map(|k| self.programs.get(k))
                    .filter_map(|candidates| {
                        candidates
                            .iter()
                            .copied()
                            .find(|&i| self.entries[i].0.strata_admits(server))
                    })
                    .min()
            }
        };
        best.map(|i| &self.entries[i].1)
    }

    /// The first entry that admits `server`, by trying each in turn: the reference for
    /// [`McpList::first_match`]
    pub fn first_match_linear(&self, server: &McpTarget<'_>) -> Option<&Spanned<String>> {
        self.entries
            .iter()
            .find(|(m, _)| m.strata_admits(server))
            .map(|(_, e)| e)
    }

    pub fn is_match(&self, server: &McpTarget<'_>) -> bool {
        self.first_match(server).is_some()
    }
}

/// The per-user part of `userModelPolicies`
#[derive(Clone, Debug, Default)]
pub struct CompiledUserPolicy {
    pub allowed: Option<Matcher>,
    pub blocked: Option<Matcher>,
}

/// One layer, compiled
#[derive(Clone, Debug)]
pub struct CompiledLayer {
    pub level: Level,
    pub layer: Arc<Layer>,
    pub allowed: Option<Matcher>,
    pub blocked: Option<Matcher>,
    /// custom models this layer defines (locked keys from above removed)
    pub custom_models: Vec<CustomModel>,
    /// the canonical id of each of `custom_models`, in the same order (folded once, here, rather
    /// than on every lookup of a decision)
    custom_ids: Vec<String>,
    pub allow_custom_models: Option<Spanned<bool>>,
    pub allowed_base_urls: Option<UrlList>,
    pub mcp_enabled: Option<Spanned<bool>>,
    pub mcp_allowlist: Option<McpList>,
    /// MCP servers this layer defines or toggles
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub droids: Vec<Artifact>,
    pub commands: Vec<Artifact>,
    pub user_policies: FastMap<String, CompiledUserPolicy>,
    /// may this layer's additions (allowedModelIds, customModels) widen the allowed set
    pub adds_models: bool,
}

impl CompiledLayer {
    pub(crate) fn build(
        layer: Arc<Layer>,
        categories: &[(String, List)],
        adds_models: bool,
        problems: &mut Problems,
    ) -> CompiledLayer {
        let s = &layer.settings;
        let m = |l: &Option<List>, k: MatchKind, p: &mut Problems| {
            l.as_ref().map(|l| Matcher::build(l, k, categories, p))
        };
        let user_policies = s
            .user_model_policies
            .iter()
            .map(|(u, p)| {
                (
                    u.clone(),
                    CompiledUserPolicy {
                        allowed: m(&p.allowed_model_ids, MatchKind::Model, problems),
                        blocked: m(&p.blocked_model_ids, MatchKind::Model, problems),
                    },
                )
            })
            .collect();
        CompiledLayer {
            level: layer.level,
            allowed: m(
                &s.model_policy.allowed_model_ids,
                MatchKind::Model,
                problems,
            ),
            blocked: m(
                &s.model_policy.blocked_model_ids,
                MatchKind::Model,
                problems,
            ),
            custom_models: s.custom_models.clone(),
            custom_ids: s
                .custom_models
                .iter()
                .map(|c| canonical_str(&c.model).into_owned())
                .collect(),
            allow_custom_models: s.model_policy.allow_custom_models.clone(),
            allowed_base_urls: s
                .model_policy
                .allowed_base_urls
                .as_ref()
                .map(|l| UrlList::build(l, problems)),
            mcp_enabled: s.mcp_policy.enabled.clone(),
            mcp_allowlist: s.mcp_policy.allowlist.as_ref().map(McpList::build),
            mcp_servers: layer.mcp_servers.clone(),
            droids: layer.droids.clone(),
            commands: layer.commands.clone(),
            user_policies,
            adds_models,
            layer,
        }
    }

    /// The custom model `model` names (ids compared in canonical form)
    pub fn custom_model(&self, model: &str) -> Option<&CustomModel> {
        self.custom_model_canonical(&canonical_str(model))
    }

    /// The custom model whose canonical id is `canonical` (a decision's model, folded once)
    pub fn custom_model_canonical(&self, canonical: &str) -> Option<&CustomModel> {
        let at = self.custom_ids.iter().position(|id| id == canonical)?;
        self.custom_models.get(at)
    }

    /// Whether a base rule of this layer's level has something to enforce here
    pub fn defines(&self, field: Field) -> bool {
        match field {
            Field::Blocked => self.blocked.is_some(),
            Field::UserAllowlist => self.level == Level::User && self.allowed.is_some(),
            Field::Allowed => self.adds_models && self.allowed.is_some(),
            Field::CustomModels => self.adds_models && !self.custom_models.is_empty(),
            Field::AllowCustomModels => self.allow_custom_models.as_ref().is_some_and(|b| !b.value),
            Field::AllowedBaseUrls => self.allowed_base_urls.is_some(),
            Field::McpAllowlist => self.mcp_enabled.as_ref().is_some_and(|b| b.value),
            Field::McpDisabled => self.mcp_servers.values().any(|s| s.disabled.is_some()),
            Field::UserPolicyBlocked | Field::UserPolicyAllowed => !self.user_policies.is_empty(),
            Field::NoAllowlist => self.level == Level::Org && self.allowed.is_none(),
            Field::McpDefault | Field::ByokDefault => self.level == Level::Org,
            Field::GatewayRequired
            | Field::ByokProviders
            | Field::ByokBaseUrls
            | Field::McpBlocklist
            | Field::McpExecEnv => false,
        }
    }
}

/// What only the org's `policy.json` says, compiled
#[derive(Clone, Debug, Default)]
pub struct OrgPolicy {
    pub categories: Vec<(String, Matcher)>,
    pub projects_may_add_models: Option<Spanned<bool>>,
    pub byok_providers: Option<Spanned<Vec<Spanned<Provider>>>>,
    pub byok_base_urls: Option<UrlList>,
    pub mcp_blocklist: Option<McpList>,
    /// `mcpExecEnv: "deny"`, where it is set
    pub mcp_exec_env_deny: Option<Origin>,
    pub gateway_required: Option<UrlList>,
    /// `droid.requireOrgSettings: true`, where it is set
    pub require_org_settings: Option<Origin>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: impl IntoIterator<Item = String>) -> List {
        let origin = Origin {
            level: Level::Org,
            file: Arc::from("settings.json"),
            pointer: "/modelPolicy/blockedModelIds".into(),
            line: 1,
            col: 1,
        };
        List {
            entries: entries
                .into_iter()
                .map(|e| Spanned::new(e, origin.clone()))
                .collect(),
            origin,
        }
    }

    #[test]
    fn ten_thousand_globs_still_match() {
        // globset cannot build one automaton for this many case-insensitive patterns; an empty
        // set in its place would let every banned model through
        let mut problems = Problems::default();
        let m = Matcher::build(
            &list((0..10_000).map(|i| format!("vendor-{i}-*-preview"))),
            MatchKind::Model,
            &[],
            &mut problems,
        );
        assert!(problems.problems.is_empty(), "{problems:?}");
        assert!(m.is_match("vendor-7-big-preview"));
        assert!(m.is_match("VENDOR-9999-x-PREVIEW"));
        assert!(!m.is_match("vendor-7-big"));
        assert_eq!(
            m.first_match("vendor-7123-x-preview")
                .map(|e| e.value.as_str()),
            Some("vendor-7123-*-preview")
        );
    }

    #[test]
    fn model_ids_match_in_canonical_form() {
        let mut problems = Problems::default();
        let m = Matcher::build(
            &list(["GPT-4o".to_string(), "claude-*".to_string()]),
            MatchKind::Model,
            &[],
            &mut problems,
        );
        assert!(m.is_match("gpt-4O") && m.is_match("Claude-Opus") && !m.is_match("gpt-4"));
        // every spelling of a banned id is the id
        let mut wide = Problems::default();
        Matcher::build(
            &list(["openai/*".to_string()]),
            MatchKind::Model,
            &[],
            &mut wide,
        );
        assert_eq!(
            wide.problems.iter().map(|p| p.code).collect::<Vec<_>>(),
            vec!["model.prefix_stripped"]
        );
        for spelling in [
            "openai/gpt-4o",
            "openrouter/openai/GPT-4o",
            "gpt\u{2011}4o",
            " gpt-4o\u{a0}",
            "ｇｐｔ－４ｏ",
            "custom:gpt-4o",
        ] {
            assert!(m.is_match(spelling), "{spelling:?}");
        }
        assert!(problems.problems.is_empty());
    }

    use proptest::prelude::*;

    fn mcp_entry() -> impl Strategy<Value = String> {
        proptest::sample::select(vec![
            "*",
            "acme.dev",
            "ACME.dev",
            "*.acme.dev",
            "a.acme.dev",
            "*.a.acme.dev",
            "dev",
            "b.a.acme.dev",
            "localhost",
            "LocalHost",
            "10.0.0.1",
            "[::1]",
            "::1",
            "https://mcp.acme.dev/mcp",
            "http://localhost:3000/mcp",
            "https://10.0.0.1/x",
            "npx",
            "npx -y @acme/mcp",
            "npx -y @acme/*",
            "npx -y @acme/mcp **",
            "npx *",
            "/usr/bin/npx -y @acme/mcp",
            "uvx",
            "uvx mcp-server-git",
            "node server.js",
            "bin\\npx",
            "npx **",
            "./run.sh",
            "run.sh",
            "-",
            "a..b",
            ".acme.dev",
        ])
        .prop_map(str::to_string)
    }

    fn mcp_target() -> impl Strategy<Value = (Option<String>, String, Vec<String>)> {
        let host = proptest::sample::select(vec![
            "acme.dev",
            "ACME.DEV.",
            "a.acme.dev",
            "b.a.acme.dev",
            "x.b.a.acme.dev",
            "mcp.acme.dev",
            "localhost",
            "localhost.",
            "10.0.0.1",
            "[::1]",
            "::1",
            "dev",
            "..acme.dev",
            "a..acme.dev",
            ".acme.dev",
            "evil-acme.dev",
            "acme.dev.evil",
            "",
        ]);
        let command = proptest::sample::select(vec![
            "npx",
            "/usr/bin/npx",
            "/usr/local/bin/npx",
            "C:\\bin\\npx",
            "bin\\npx",
            "uvx",
            "node",
            "./run.sh",
            "run.sh",
            "/opt/run.sh",
            "-",
            "npx/",
        ]);
        let arg = proptest::sample::select(vec![
            "-y",
            "@acme/mcp",
            "@acme/other",
            "mcp-server-git",
            "server.js",
            "--x",
        ]);
        (
            proptest::option::of(host.prop_map(str::to_string)),
            command.prop_map(str::to_string),
            proptest::collection::vec(arg.prop_map(str::to_string), 0..4),
        )
    }

    proptest! {
        /// The indexed lookup finds the same entry as trying each entry in list order
        #[test]
        fn mcp_list_index_agrees_with_the_scan(
            entries in proptest::collection::vec(mcp_entry(), 0..24),
            targets in proptest::collection::vec(mcp_target(), 1..16),
        ) {
            let m = McpList::build(&list(entries));
            for (host, command, args) in &targets {
                let t = match host {
                    Some(host) => McpTarget::Remote { host },
                    None => McpTarget::Stdio { command, args },
                };
                let fast = m.first_match(&t).map(std::ptr::from_ref);
                let slow = m.first_match_linear(&t).map(std::ptr::from_ref);
                prop_assert_eq!(fast, slow, "{:?}", t);
            }
        }
    }
}
