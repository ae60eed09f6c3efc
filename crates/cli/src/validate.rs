//! `policy validate DIR...`: every problem as `file:line:col: pointer: message`, then a count.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use strata_policy::{Bundle, FileTree, Level, Problems, ProjectTrees, compile};

use crate::exit;
use crate::render;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    Org,
    Project,
    Folder,
    User,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Layer directories (or an org settings file) to validate
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The level to read them as [default: guessed: a file or a directory with policy.json is an
    /// org bundle, ~/.factory is a user layer, any other .factory/ a project]
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
}

fn guess(path: &Path) -> Level {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".factory"));
    if path.is_file() || path.join("policy.json").is_file() {
        Level::Org
    } else if home.is_some_and(|h| h.canonicalize().is_ok_and(|h| h == abs)) {
        Level::User
    } else if abs.file_name().is_some_and(|n| n == ".factory") {
        Level::Project
    } else {
        Level::Org
    }
}

/// Validate one layer as `level`: read it, and compile it into a bundle of its own
pub fn validate_one(path: &Path, level: Level) -> Problems {
    let tree = match FileTree::read_path(path) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let empty = FileTree {
        root: "(empty org)".to_string(),
        files: Default::default(),
    };
    let bundle = match level {
        Level::Org => Bundle {
            org: tree,
            ..Default::default()
        },
        Level::Project => Bundle {
            org: empty,
            projects: vec![ProjectTrees {
                id: "project".to_string(),
                project: tree,
                folders: vec![],
            }],
            users: vec![],
        },
        Level::Folder => Bundle {
            org: empty.clone(),
            projects: vec![ProjectTrees {
                id: "project".to_string(),
                project: empty,
                folders: vec![("folder".to_string(), tree)],
            }],
            users: vec![],
        },
        Level::User => Bundle {
            org: empty,
            projects: vec![],
            users: vec![("user".to_string(), tree)],
        },
    };
    let env = |k: &str| std::env::var(k).ok();
    match compile(&bundle, &env) {
        Ok(snap) => {
            // where Droid, which enforces mcpPolicy itself, reads an entry differently
            let droid = strata_policy::droid::mcp_warnings(&snap);
            Problems {
                problems: snap.diagnostics().iter().cloned().chain(droid).collect(),
            }
        }
        Err(p) => p,
    }
}

pub fn run(args: ValidateArgs) -> u8 {
    let mut all = Problems::default();
    for dir in &args.dirs {
        let level = match args.level {
            Some(LevelArg::Org) => Level::Org,
            Some(LevelArg::Project) => Level::Project,
            Some(LevelArg::Folder) => Level::Folder,
            Some(LevelArg::User) => Level::User,
            None => guess(dir),
        };
        let problems = validate_one(dir, level);
        if !problems.has_errors() {
            eprintln!("{}: valid {level} layer", dir.display());
        }
        all.extend(problems);
    }
    out!("{}", render::problem_report(&all));
    if all.has_errors() {
        exit::INVALID
    } else {
        exit::ALLOW
    }
}
