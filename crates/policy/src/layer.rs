//! A layer: one `.factory/`-shaped tree of files, read into typed values with provenance.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::files::cedar::{self, HandPolicy};
use crate::files::markdown::{self, Artifact, ArtifactKind};
use crate::files::mcp::{self, McpServer};
use crate::files::policy_file::PolicyFile;
use crate::files::settings::{EnvLookup, Settings};
use crate::json::Doc;
use crate::origin::Level;
use crate::problem::{Problem, Problems, Severity};

/// The most files one layer may hold
pub const MAX_FILES: usize = 2_000;
/// The largest total size of one layer's files
pub const MAX_TREE_BYTES: usize = 32 * 1024 * 1024;

/// The files of one layer: relative path → bytes. What the CLI reads from disk and what a
/// publish carries over the wire are the same value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileTree {
    /// how files are named in messages: the directory the user gave, or a label
    pub root: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

fn tree_problem(file: &str, code: &'static str, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        code,
        file: file.to_string(),
        line: 0,
        col: 0,
        pointer: String::new(),
        message,
    }
}

/// Whether `rel` is a path this layer format reads
fn is_layer_file(rel: &str) -> bool {
    match rel.split_once('/') {
        None => matches!(
            rel,
            "settings.json" | "settings.local.json" | "config.json" | "mcp.json" | "policy.json"
        ),
        Some((dir, name)) => {
            !name.contains('/')
                && match dir {
                    "droids" | "commands" => name.ends_with(".md"),
                    "policies" => name.ends_with(".cedar"),
                    "tests" => name.ends_with(".json"),
                    _ => false,
                }
        }
    }
}

impl FileTree {
    /// Build a tree from (path, bytes) pairs received from outside: every path must be relative,
    /// `/`-separated, without `..`; sizes are bounded. Files this format does not read are dropped.
    pub fn from_files(
        root: impl Into<String>,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<FileTree, Problems> {
        let root = root.into();
        let mut problems = Problems::default();
        let mut out = BTreeMap::new();
        let mut total = 0usize;
        for (path, bytes) in files {
            let bad = path.is_empty()
                || path.starts_with('/')
                || path.contains('\\')
                || path.contains('\0')
                || path
                    .split('/')
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..");
            if bad {
                problems.push(tree_problem(
                    &path,
                    "bundle.bad_path",
                    format!(
                        "path `{}` must be relative, `/`-separated and free of `..`",
                        path.escape_debug()
                    ),
                ));
                continue;
            }
            total += bytes.len();
            if out.contains_key(&path) {
                problems.push(tree_problem(
                    &path,
                    "bundle.duplicate_path",
                    format!("path `{path}` appears twice"),
                ));
                continue;
            }
            if is_layer_file(&path) {
                out.insert(path, bytes);
            }
        }
        if out.len() > MAX_FILES {
            problems.push(tree_problem(
                &root,
                "bundle.too_many_files",
                format!("{} files, more than the limit of {MAX_FILES}", out.len()),
            ));
        }
        if total > MAX_TREE_BYTES {
            problems.push(tree_problem(
                &root,
                "bundle.too_large",
                format!("{total} bytes, more than the limit of {MAX_TREE_BYTES}"),
            ));
        }
        if problems.has_errors() {
            return Err(problems);
        }
        Ok(FileTree { root, files: out })
    }

    /// Read a `.factory/`-shaped directory. Only the files the format defines are read; a
    /// symlink that leaves the directory is an error.
    pub fn read_dir(dir: &Path) -> Result<FileTree, Problems> {
        let root = dir.display().to_string();
        let canon = dir.canonicalize().map_err(|e| Problems {
            problems: vec![tree_problem(
                &root,
                "layer.unreadable",
                format!("cannot read directory: {e}"),
            )],
        })?;
        if !canon.is_dir() {
            return Err(Problems {
                problems: vec![tree_problem(
                    &root,
                    "layer.not_a_directory",
                    "expected a directory".to_string(),
                )],
            });
        }
        let mut files = Vec::new();
        let mut problems = Problems::default();
        let mut visit = |rel: String, path: &Path| match path.canonicalize() {
            Ok(real) if !real.starts_with(&canon) => problems.push(tree_problem(
                &format!("{root}/{rel}"),
                "layer.symlink_escape",
                format!(
                    "`{rel}` is a link to `{}`, outside the layer",
                    real.display()
                ),
            )),
            Ok(real) if real.is_file() => match std::fs::read(&real) {
                Ok(bytes) => files.push((rel, bytes)),
                Err(e) => problems.push(tree_problem(
                    &format!("{root}/{rel}"),
                    "layer.unreadable",
                    format!("cannot read: {e}"),
                )),
            },
            _ => {}
        };
        for name in [
            "settings.json",
            "settings.local.json",
            "config.json",
            "mcp.json",
            "policy.json",
        ] {
            let p = dir.join(name);
            if p.exists() {
                visit(name.to_string(), &p);
            }
        }
        for sub in ["droids", "commands", "policies", "tests"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let rel = format!("{sub}/{name}");
                if is_layer_file(&rel) {
                    visit(rel.clone(), &dir.join(&rel));
                }
            }
        }
        if problems.has_errors() {
            return Err(problems);
        }
        FileTree::from_files(root, files)
    }

    /// One IT-managed settings file (e.g. `/etc/factory/settings.json`) as an org layer
    pub fn read_settings_file(path: &Path) -> Result<FileTree, Problems> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Problems {
            problems: vec![tree_problem(
                &shown,
                "layer.unreadable",
                format!("cannot read: {e}"),
            )],
        })?;
        let (root, name) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => (
                parent.display().to_string(),
                name.to_string_lossy().into_owned(),
            ),
            _ => (".".to_string(), shown.clone()),
        };
        let mut files = BTreeMap::new();
        files.insert("settings.json".to_string(), bytes);
        Ok(FileTree { root, files }.renamed_settings(name))
    }

    fn renamed_settings(mut self, name: String) -> FileTree {
        if name != "settings.json" {
            self.root = format!("{}/{name}#", self.root);
        }
        self
    }

    /// The name of `rel` as messages show it
    pub fn display(&self, rel: &str) -> Arc<str> {
        if let Some(single) = self.root.strip_suffix('#') {
            return Arc::from(single);
        }
        if self.root.is_empty() {
            Arc::from(rel)
        } else {
            Arc::from(format!("{}/{rel}", self.root.trim_end_matches('/')))
        }
    }

    /// Read from disk: a directory is a layer, a file is a single settings file
    pub fn read_path(path: &Path) -> Result<FileTree, Problems> {
        if path.is_file() {
            FileTree::read_settings_file(path)
        } else {
            FileTree::read_dir(path)
        }
    }
}

/// One settings file of a layer, kept for the effective-settings view
#[derive(Clone, Debug)]
pub struct SettingsSource {
    pub doc: Doc,
    /// the legacy snake_case `config.json`
    pub legacy: bool,
    /// this file's top-level keys that its level's `settings.local.json` replaces
    /// ([`crate::merge::local_replaces`]): they are read from the local file alone
    pub replaced: Vec<String>,
}

/// A layer read and checked: its files as typed values, each with provenance
#[derive(Clone, Debug)]
pub struct Layer {
    pub level: Level,
    pub root: String,
    pub settings: Settings,
    /// settings files, highest priority first (`settings.local.json`, `settings.json`, `config.json`)
    pub sources: Vec<SettingsSource>,
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub droids: Vec<Artifact>,
    pub commands: Vec<Artifact>,
    pub cedar: Vec<HandPolicy>,
    pub policy: PolicyFile,
}

impl Layer {
    /// Read every file of `tree` as a layer of `level`. Problems (errors and warnings) are
    /// returned beside the layer; the layer is usable only if no error was found.
    pub fn load(level: Level, tree: &FileTree, env: EnvLookup<'_>) -> (Layer, Problems) {
        let mut problems = Problems::default();
        let mut layer = Layer {
            level,
            root: tree.root.trim_end_matches('#').to_string(),
            settings: Settings::default(),
            sources: Vec::new(),
            mcp_servers: BTreeMap::new(),
            droids: Vec::new(),
            commands: Vec::new(),
            cedar: Vec::new(),
            policy: PolicyFile::default(),
        };
        let (settings, sources) = read_settings(level, tree, env, &mut problems);
        layer.settings = settings;
        layer.sources = sources;

        if let Some(d) = doc(level, tree, "mcp.json", &mut problems) {
            layer.mcp_servers = mcp::read(&d, env, &mut problems);
        }
        if tree.files.contains_key("policy.json") {
            if level == Level::Org {
                if let Some(d) = doc(level, tree, "policy.json", &mut problems) {
                    layer.policy = PolicyFile::read(&d, &mut problems);
                }
            } else {
                warn_ignored(
                    tree,
                    &mut problems,
                    "policy.json",
                    "policy.json is read only in the org bundle",
                );
            }
        }

        for (rel, bytes) in &tree.files {
            let Some((dir, name)) = rel.split_once('/') else {
                continue;
            };
            match dir {
                "droids" | "commands" => {
                    layer.read_artifact(tree, rel, dir, name, bytes, &mut problems)
                }
                "policies" => layer.read_cedar(tree, rel, bytes, &mut problems),
                _ => {}
            }
        }
        (layer, problems)
    }

    /// One file of `droids/` or `commands/`; a name given twice in the layer is an error
    fn read_artifact(
        &mut self,
        tree: &FileTree,
        rel: &str,
        dir: &str,
        name: &str,
        bytes: &[u8],
        problems: &mut Problems,
    ) {
        let file = tree.display(rel);
        let kind = if dir == "droids" {
            ArtifactKind::Droid
        } else {
            ArtifactKind::Command
        };
        let stem = name.trim_end_matches(".md");
        match markdown::read(kind, self.level, &file, stem, bytes) {
            Ok(a) => {
                let list = if kind == ArtifactKind::Droid {
                    &mut self.droids
                } else {
                    &mut self.commands
                };
                if list.iter().any(|x| x.name == a.name) {
                    problems.push(cedar::problem(
                        &file,
                        1,
                        1,
                        "layer.duplicate_name",
                        format!(
                            "{} `{}` is defined twice in this layer",
                            dir.trim_end_matches('s'),
                            a.name
                        ),
                    ));
                } else {
                    list.push(a);
                }
            }
            Err(p) => problems.push(p),
        }
    }

    /// One file of `policies/`: ignored in the user layer, `forbid` only below the org
    fn read_cedar(&mut self, tree: &FileTree, rel: &str, bytes: &[u8], problems: &mut Problems) {
        let level = self.level;
        if level == Level::User {
            warn_ignored(
                tree,
                problems,
                rel,
                "Cedar policies are read in org, project and folder layers only",
            );
            return;
        }
        let file = tree.display(rel);
        let (ps, probs) = cedar::read(level, &file, &format!("{level}#{rel}"), bytes);
        for p in &ps {
            if level != Level::Org && p.effect() != cedar_policy::Effect::Forbid {
                problems.push(cedar::problem(
                    &file,
                    p.origin.line,
                    p.origin.col,
                    "cedar.project_permit",
                    format!(
                        "policy `{}` is a `permit`: {level} layers may only add `forbid` rules, a permit could lift a restriction from above",
                        p.id.to_string().split_once('#').map(|(_, name)| name).unwrap_or_default()
                    ),
                ));
            }
        }
        problems.problems.extend(probs);
        self.cedar.extend(ps);
    }
}

/// The file `rel` of `tree` parsed, if it is there; a parse error goes to `problems`
fn doc(level: Level, tree: &FileTree, rel: &str, problems: &mut Problems) -> Option<Doc> {
    let bytes = tree.files.get(rel)?;
    match Doc::parse(level, tree.display(rel), bytes) {
        Ok(d) => Some(d),
        Err(p) => {
            problems.push(p);
            None
        }
    }
}

fn warn_ignored(tree: &FileTree, problems: &mut Problems, rel: &str, why: &str) {
    problems.push(Problem {
        severity: Severity::Warning,
        code: "layer.ignored_file",
        file: tree.display(rel).to_string(),
        line: 0,
        col: 0,
        pointer: String::new(),
        message: format!("ignored: {why}"),
    })
}

/// A layer's settings from `settings.local.json`, `settings.json` and (user layer only) the
/// legacy `config.json`, with the files they came from, highest priority first
fn read_settings(
    level: Level,
    tree: &FileTree,
    env: EnvLookup<'_>,
    problems: &mut Problems,
) -> (Settings, Vec<SettingsSource>) {
    let mut settings = Settings::default();
    let mut sources = Vec::new();
    // Droid's rule for one directory: a top-level key of settings.local.json replaces the
    // same key of settings.json (except what Strata governs above the user level)
    let mut local_keys: Vec<String> = Vec::new();
    for rel in ["settings.local.json", "settings.json"] {
        if let Some(d) = doc(level, tree, rel, problems) {
            let mut s = Settings::read(&d, env, problems);
            let mut replaced = Vec::new();
            if rel == "settings.local.json" {
                if matches!(level, Level::Project | Level::Folder) {
                    s = s.without_widening(&d, problems);
                }
                local_keys = d
                    .value
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
            } else {
                replaced = d
                    .value
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|k| {
                        local_keys.contains(k) && crate::merge::algebra::local_replaces(level, k)
                    })
                    .cloned()
                    .collect();
                s.drop_keys(&replaced);
            }
            settings = settings.overlay(s);
            sources.push(SettingsSource {
                doc: d,
                legacy: false,
                replaced,
            });
        }
    }
    if tree.files.contains_key("config.json") {
        if level == Level::User {
            if let Some(d) = doc(level, tree, "config.json", problems) {
                settings = settings.overlay(Settings::read_legacy(&d, problems));
                sources.push(SettingsSource {
                    doc: d,
                    legacy: true,
                    replaced: Vec::new(),
                });
            }
        } else {
            warn_ignored(
                tree,
                problems,
                "config.json",
                "the legacy config.json is read only in the user layer (~/.factory)",
            );
        }
    }
    if level != Level::Org {
        drop_user_model_policies(&mut settings, problems);
    }
    (settings, sources)
}

/// `userModelPolicies` below the org layer: dropped, with a warning
fn drop_user_model_policies(settings: &mut Settings, problems: &mut Problems) {
    if settings.user_model_policies.is_empty() {
        return;
    }
    let origin = settings
        .user_model_policies
        .values()
        .find_map(|p| {
            p.allowed_model_ids
                .as_ref()
                .or(p.blocked_model_ids.as_ref())
        })
        .map(|l| l.origin.clone());
    if let Some(o) = origin {
        problems.push(Problem {
            severity: Severity::Warning,
            code: "layer.ignored_field",
            file: o.file.to_string(),
            line: o.line,
            col: o.col,
            pointer: "/userModelPolicies".to_string(),
            message: "ignored: `userModelPolicies` is read only in the org layer".to_string(),
        });
    }
    settings.user_model_policies.clear();
}

/// Whether folder path `prefix` is `path` or one of its ancestors (`""` is every path's)
pub(crate) fn is_path_prefix(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}
