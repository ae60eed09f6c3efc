//! The layer flags shared by `explain`: which org, project, folder and user layers to read.

use std::path::{Path, PathBuf};

use clap::Args;
use strata_policy::{Bundle, FileTree, Problems, ProjectTrees, Snapshot, compile};

/// The IT-managed org settings file read when `--org` is not given
pub const MANAGED_ORG_FILE: &str = "/etc/factory/settings.json";

#[derive(Debug, Clone, Args)]
pub struct LayerArgs {
    /// The org bundle: a directory shaped like .factory/, or one settings file [default: /etc/factory/settings.json if present]
    #[arg(long, env = "STRATA_ORG", value_name = "PATH")]
    pub org: Option<PathBuf>,
    /// The project's .factory/ directory [default: the .factory/ at the git root above the current directory]
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// A folder's .factory/ below the project root (monorepos); may be repeated, outermost first
    #[arg(long, value_name = "DIR")]
    pub folder: Vec<PathBuf>,
    /// The user layer [default: ~/.factory]
    #[arg(long, value_name = "DIR")]
    pub user: Option<PathBuf>,
    /// Skip the user layer
    #[arg(long)]
    pub no_user: bool,
}

/// The layers found for one command, and what the request needs to name them
pub struct Resolved {
    pub snapshot: Snapshot,
    pub project_id: Option<String>,
    pub folder: Option<String>,
}

fn git_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The project id: the name of the directory that holds the project's .factory/
fn project_id_of(dir: &Path) -> String {
    let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let root = if abs.file_name().is_some_and(|n| n == ".factory") {
        abs.parent().map(Path::to_path_buf)
    } else {
        Some(abs.clone())
    };
    root.and_then(|r| r.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".to_string())
}

/// A folder's path below the project root, e.g. `services/billing`
fn folder_path(project: Option<&Path>, folder: &Path) -> String {
    let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let f = abs(folder);
    let f = if f.file_name().is_some_and(|n| n == ".factory") {
        f.parent().map(Path::to_path_buf).unwrap_or(f)
    } else {
        f
    };
    if let Some(p) = project {
        let p = abs(p);
        let root = if p.file_name().is_some_and(|n| n == ".factory") {
            p.parent().map(Path::to_path_buf).unwrap_or(p)
        } else {
            p
        };
        if let Ok(rel) = f.strip_prefix(&root) {
            return rel.to_string_lossy().replace('\\', "/");
        }
    }
    f.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "folder".to_string())
}

impl LayerArgs {
    /// Read and compile the layers for user `user`. `Err` carries every problem found.
    pub fn resolve(&self, user: &str, id_override: Option<&str>) -> Result<Resolved, Problems> {
        let mut problems = Problems::default();
        let mut read = |p: &Path| match FileTree::read_path(p) {
            Ok(t) => t,
            Err(e) => {
                problems.extend(e);
                FileTree::default()
            }
        };
        let org = match &self.org {
            Some(p) => read(p),
            None if Path::new(MANAGED_ORG_FILE).is_file() => read(Path::new(MANAGED_ORG_FILE)),
            None => FileTree {
                root: "(no org layer)".to_string(),
                files: Default::default(),
            },
        };
        let project_dir = self.project.clone().or_else(|| {
            let cwd = std::env::current_dir().ok()?;
            let d = git_root(&cwd)?.join(".factory");
            d.is_dir().then_some(d)
        });
        let mut bundle = Bundle {
            org,
            ..Default::default()
        };
        let mut project_id = None;
        let mut folder = None;
        if let Some(dir) = &project_dir {
            let id = id_override
                .map(str::to_string)
                .unwrap_or_else(|| project_id_of(dir));
            let folders: Vec<(String, FileTree)> = self
                .folder
                .iter()
                .map(|f| (folder_path(Some(dir), f), read(f)))
                .collect();
            folder = folders.last().map(|(p, _)| p.clone());
            bundle.projects.push(ProjectTrees {
                id: id.clone(),
                project: read(dir),
                folders,
            });
            project_id = Some(id);
        }
        if !self.no_user {
            let user_dir = self
                .user
                .clone()
                .or_else(|| home().map(|h| h.join(".factory")).filter(|d| d.is_dir()));
            if let Some(dir) = user_dir {
                bundle.users.push((user.to_string(), read(&dir)));
            }
        }
        if problems.has_errors() {
            return Err(problems);
        }
        let env = |k: &str| std::env::var(k).ok();
        let snapshot = compile(&bundle, &env)?;
        Ok(Resolved {
            snapshot,
            project_id,
            folder,
        })
    }
}

/// The user id to decide for: `--as`, else `$STRATA_USER`, else `$USER`
pub fn default_user() -> String {
    std::env::var("STRATA_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "local-user".to_string())
}
