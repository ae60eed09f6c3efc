//! The layers that apply to one request: org, the folders on the request's path, the project and
//! the user (in Droid's precedence: [`ScopeRef::layers`]), with the rule sets of the innermost
//! scope.

use crate::compile::{CompiledLayer, ScopeSets, Snapshot};
use crate::decision::{KeyMode, Request};
use crate::files::mcp::McpServer;
use crate::files::settings::CustomModel;
use crate::layer::is_path_prefix;
use crate::matchers::model_id::canonical_str;
use crate::origin::Level;

/// The layers that apply to one request
pub struct ScopeRef<'s> {
    pub org: &'s CompiledLayer,
    pub project: Option<&'s CompiledLayer>,
    /// outermost first
    pub folders: Vec<&'s CompiledLayer>,
    pub user: Option<&'s CompiledLayer>,
    pub sets: &'s ScopeSets,
}

impl<'s> ScopeRef<'s> {
    /// In Droid's precedence, highest first: the org, the folders nearest first, the project,
    /// the user. Where one value wins (a custom model's or an MCP server's definition, a scalar
    /// of the effective-settings view), it is the first of these that sets it; the rules of
    /// every layer apply whatever the order.
    pub fn layers(&self) -> impl Iterator<Item = &'s CompiledLayer> + '_ {
        std::iter::once(self.org)
            .chain(self.folders.iter().rev().copied())
            .chain(self.project)
            .chain(self.user)
    }

    pub(crate) fn at(&self, level: Level) -> impl Iterator<Item = &'s CompiledLayer> + '_ {
        self.layers().filter(move |l| l.level == level)
    }

    /// The custom model entry for `model`: the user's own for BYOK, else the org's, project's or folder's
    pub fn custom_entry(
        &self,
        model: &str,
        key_mode: KeyMode,
    ) -> Option<(&'s CompiledLayer, &'s CustomModel)> {
        let model = &*canonical_str(model);
        match key_mode {
            KeyMode::Byok => self
                .user
                .and_then(|u| u.custom_model_canonical(model).map(|c| (u, c))),
            KeyMode::Central => None,
        }
        .or_else(|| {
            self.layers()
                .filter(|l| l.level != Level::User && l.adds_models)
                .find_map(|l| l.custom_model_canonical(model).map(|c| (l, c)))
        })
    }

    /// The definition of MCP server `name` (the highest layer that defines it)
    pub fn mcp_definition(&self, name: &str) -> Option<&'s McpServer> {
        self.layers()
            .find_map(|l| l.mcp_servers.get(name).filter(|s| !s.toggle_only))
    }

    /// The layer that says whether `name` is disabled, and what it says: the person's own
    /// `mcp.json` first (their opt-out or opt-in), else the highest of the folders (nearest
    /// first), the project and the org that says
    pub fn mcp_disabled(&self, name: &str) -> Option<(Level, &'s McpServer)> {
        self.user
            .into_iter()
            .chain(self.folders.iter().rev().copied())
            .chain(self.project)
            .chain(std::iter::once(self.org))
            .find_map(|l| {
                l.mcp_servers
                    .get(name)
                    .filter(|s| s.disabled.is_some())
                    .map(|s| (l.level, s))
            })
    }
}

impl Snapshot {
    /// The layers that apply to `req`. An unknown project gets the org's layer alone.
    pub fn scope(&self, req: &Request) -> ScopeRef<'_> {
        let user = self.users.get(&req.user);
        let Some(p) = req.project.as_deref().and_then(|id| self.projects.get(id)) else {
            return ScopeRef {
                org: &self.org,
                project: None,
                folders: Vec::new(),
                user,
                sets: &self.org_sets,
            };
        };
        let mut folders: Vec<(&str, &CompiledLayer, &ScopeSets)> = Vec::new();
        if let Some(req_folder) = req.folder.as_deref().map(|f| f.trim_matches('/')) {
            folders = p
                .folders
                .iter()
                .filter(|(path, _, _)| is_path_prefix(path, req_folder))
                .map(|(p, l, s)| (p.as_str(), l, s))
                .collect();
            folders.sort_by_key(|(p, _, _)| p.len());
        }
        // the innermost folder's sets hold the rules of every folder on the path
        let sets = folders.last().map(|(_, _, s)| *s).unwrap_or(&p.sets);
        let folders = folders.into_iter().map(|(_, l, _)| l).collect();
        ScopeRef {
            org: &self.org,
            project: Some(&p.layer),
            folders,
            user,
            sets,
        }
    }
}
