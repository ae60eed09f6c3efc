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
use crate::matchers::mcp::{McpEntry, McpTarget};
use crate::matchers::model_id::{canonical_pattern, canonical_str};
use crate::matchers::url::{BaseUrl, UrlPattern};
use crate::origin::{Level, Origin, Spanned};
use crate::problem::{Problem, Problems, Severity};
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
                let pat = canonical_pattern(pat);
                if !has_glob(&pat) {
                    exact.entry(pat).or_insert(i);
                    continue;
                }
                match GlobBuilder::new(&pat).backslash_escape(true).build() {
                    Ok(g) => globs.push((g, i, entry)),
                    Err(e) => problems.push(Problem {
                        severity: Severity::Error,
                        code: "glob.invalid",
                        file: entry.origin.file.to_string(),
                        line: entry.origin.line,
                        col: entry.origin.col,
                        pointer: entry.origin.pointer.clone(),
                        message: format!("invalid pattern `{pat}`: {}", e.kind()),
                    }),
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
        let s = self.folded(s);
        self.exact.contains_key(s.as_ref())
            || self.sets.iter().any(|(set, _)| set.is_match(s.as_ref()))
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
                Err(err) => problems.push(problem_at(&e.origin, err.code(), err.to_string())),
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
/// never matches a command line, nor a command entry a host
#[derive(Clone, Debug)]
pub struct McpList {
    pub origin: Origin,
    pub entries: Vec<(McpEntry, Spanned<String>)>,
}

impl McpList {
    pub fn build(list: &List) -> McpList {
        McpList {
            origin: list.origin.clone(),
            entries: list
                .entries
                .iter()
                .map(|e| (McpEntry::parse(&e.value), e.clone()))
                .collect(),
        }
    }

    /// The first entry that admits `server` by Strata's rule
    pub fn first_match(&self, server: &McpTarget<'_>) -> Option<&Spanned<String>> {
        self.entries
            .iter()
            .find(|(m, _)| m.strata_admits(server))
            .map(|(_, e)| e)
    }

    pub fn is_match(&self, server: &McpTarget<'_>) -> bool {
        self.first_match(server).is_some()
    }
}

fn problem_at(o: &Origin, code: &'static str, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        code,
        file: o.file.to_string(),
        line: o.line,
        col: o.col,
        pointer: o.pointer.clone(),
        message,
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
        let model = canonical_str(model);
        self.custom_models
            .iter()
            .find(|c| canonical_str(&c.model) == model)
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
}
