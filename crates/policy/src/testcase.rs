//! Decision cases shipped in a bundle (`tests/*.json`): layers, requests, expected decision and
//! determining rules. Strata's own format: strict, unknown fields are errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compile::{Bundle, ProjectTrees};
use crate::decide::{Effect, KeyMode, McpRef, Request, Target, decide};
use crate::files::settings::Provider;
use crate::layer::FileTree;
use crate::problem::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSpec>,
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// environment for `${VAR}` expansion while loading the layers (the real one is not read)
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub path: String,
    #[serde(default)]
    pub folders: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseRequest {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub folder: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub key_mode: Option<KeyModeSpec>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub mcp: Option<McpSpec>,
    #[serde(default)]
    pub mcp_servers: Vec<McpSpec>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyModeSpec {
    Central,
    Byok,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum McpSpec {
    Name(String),
    Ref(McpRefSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpRefSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

impl From<McpSpec> for McpRef {
    fn from(s: McpSpec) -> McpRef {
        match s {
            McpSpec::Name(n) => McpRef {
                name: Some(n),
                ..Default::default()
            },
            McpSpec::Ref(r) => McpRef {
                name: r.name,
                url: r.url,
                command: r.command,
                args: r.args,
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    pub decision: Effect,
    /// compared as a set; absent = not checked
    #[serde(default)]
    pub determined_by: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for Effect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "allow" => Ok(Effect::Allow),
            "deny" => Ok(Effect::Deny),
            other => Err(serde::de::Error::custom(format!(
                "invalid decision `{other}`: expected `allow` or `deny`"
            ))),
        }
    }
}

impl CaseRequest {
    pub fn to_request(&self) -> Result<Request, String> {
        let target = match (&self.model, &self.mcp) {
            (Some(model), None) => Target::Model {
                model: model.clone(),
                provider: match &self.provider {
                    Some(p) => {
                        Some(Provider::parse(p).ok_or_else(|| Provider::invalid_message(p))?)
                    }
                    None => None,
                },
                key_mode: match self.key_mode {
                    Some(KeyModeSpec::Byok) => KeyMode::Byok,
                    _ => KeyMode::Central,
                },
                base_url: self.base_url.clone(),
                mcp_servers: self.mcp_servers.iter().cloned().map(McpRef::from).collect(),
            },
            (None, Some(mcp)) => Target::Mcp {
                server: mcp.clone().into(),
            },
            _ => return Err("a request names exactly one of `model` and `mcp`".to_string()),
        };
        Ok(Request {
            user: self.user.clone(),
            groups: self.groups.clone(),
            project: self.project.clone(),
            folder: self.folder.clone(),
            gateway: self.gateway.clone(),
            token_projects: None,
            target,
        })
    }
}

/// The outcome of one case
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    /// `None` = passed; `Some(why)` = failed
    pub failure: Option<String>,
}

/// Why a test file could not be run at all
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("{file}: cannot read: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{file}:{line}:{col}: invalid test file: {message}")]
    Parse {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{file}: the layers it names are invalid")]
    Layers { file: String, problems: Problems },
}

fn rel(base: &Path, p: &str) -> PathBuf {
    base.join(p)
}

/// Run one test file of the bundle at `bundle_dir`
// Longer than a screen: read the test file, load its layers, compile, then check each case against
// the decision; one sequence, as a reader of a failing test file follows it.
pub fn run_file(
    bundle_dir: &Path,
    org: &FileTree,
    file: &Path,
) -> Result<Vec<CaseResult>, TestFileError> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|error| TestFileError::Read {
        file: shown.clone(),
        error,
    })?;
    let spec: TestFile = serde_json::from_str(&text).map_err(|e| TestFileError::Parse {
        file: shown.clone(),
        line: e.line(),
        col: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    let mut problems = Problems::default();
    let mut load = |p: &str| match FileTree::read_path(&rel(bundle_dir, p)) {
        Ok(t) => t,
        Err(e) => {
            problems.extend(e);
            FileTree::default()
        }
    };
    let projects = spec
        .projects
        .iter()
        .map(|(id, p)| ProjectTrees {
            id: id.clone(),
            project: load(&p.path),
            folders: p
                .folders
                .iter()
                .map(|(path, dir)| (path.clone(), load(dir)))
                .collect(),
        })
        .collect();
    let users = spec
        .users
        .iter()
        .map(|(id, p)| (id.clone(), load(p)))
        .collect();
    if problems.has_errors() {
        return Err(TestFileError::Layers {
            file: shown,
            problems,
        });
    }
    let bundle = Bundle {
        org: org.clone(),
        projects,
        users,
    };
    let env = |k: &str| spec.env.get(k).cloned();
    let snap = crate::compile(&bundle, &env).map_err(|problems| TestFileError::Layers {
        file: shown.clone(),
        problems,
    })?;
    let mut out = Vec::new();
    for case in &spec.cases {
        let failure = match case.request.to_request() {
            Err(e) => Some(format!("invalid request: {e}")),
            Ok(req) => {
                let d = decide(&snap, &req);
                let got: BTreeSet<String> =
                    d.determined_by.iter().map(|x| x.rule.clone()).collect();
                if d.effect != case.expect.decision {
                    Some(format!(
                        "expected {:?}, got {:?}: {}",
                        case.expect.decision, d.effect, d.reason
                    ))
                } else {
                    match &case.expect.determined_by {
                        Some(want) => {
                            let want: BTreeSet<String> = want.iter().cloned().collect();
                            (want != got)
                                .then(|| format!("determined by {got:?}, expected {want:?}"))
                        }
                        None => None,
                    }
                }
            }
        };
        out.push(CaseResult {
            file: shown.clone(),
            name: case.name.clone(),
            failure,
        });
    }
    Ok(out)
}

/// The test files of a bundle directory, sorted
pub fn test_files(bundle_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(bundle_dir.join("tests"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
