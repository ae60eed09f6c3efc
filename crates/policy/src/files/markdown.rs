//! Droids and commands: Markdown files with YAML front matter.

use serde::Serialize;
use yaml_rust2::{Yaml, YamlLoader};

use crate::origin::{Level, Origin};
use crate::problem::{Problem, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Droid,
    Command,
}

impl ArtifactKind {
    pub fn dir(self) -> &'static str {
        match self {
            ArtifactKind::Droid => "droids",
            ArtifactKind::Command => "commands",
        }
    }
}

/// One droid or command file
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub kind: ArtifactKind,
    /// front matter `name`, else the file stem
    pub name: String,
    /// a droid's pinned model, if any
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// sha-256 of the file, to tell a copy from a redefinition
    #[serde(skip)]
    pub digest: [u8; 32],
    pub origin: Origin,
}

/// Read one droid or command; files without front matter are commands/droids named by their stem
pub fn read(
    kind: ArtifactKind,
    level: Level,
    file: &std::sync::Arc<str>,
    stem: &str,
    bytes: &[u8],
) -> Result<Artifact, Problem> {
    use sha2::Digest;
    let problem = |line: u32, code: &'static str, message: String| Problem {
        severity: Severity::Error,
        code,
        file: file.to_string(),
        line,
        col: 1,
        pointer: String::new(),
        message,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| problem(1, "file.not_utf8", "file is not valid UTF-8".to_string()))?;
    let origin = Origin {
        level,
        file: file.clone(),
        pointer: String::new(),
        line: 1,
        col: 1,
    };
    let mut out = Artifact {
        kind,
        name: stem.to_string(),
        model: None,
        description: None,
        digest: sha2::Sha256::digest(bytes).into(),
        origin,
    };
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = body
        .strip_prefix("---")
        .filter(|r| r.starts_with('\n') || r.starts_with("\r\n"))
    else {
        return Ok(out);
    };
    let Some(end) = rest.find("\n---") else {
        return Err(problem(
            1,
            "frontmatter.unterminated",
            "front matter opened with `---` is never closed".to_string(),
        ));
    };
    let yaml = &rest[..end];
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| {
        // the front matter starts on line 2 of the file
        problem(
            e.marker().line() as u32 + 1,
            "frontmatter.yaml",
            format!("invalid YAML front matter: {}", e.info()),
        )
    })?;
    let Some(doc) = docs.into_iter().next() else {
        return Ok(out);
    };
    if !matches!(doc, Yaml::Hash(_)) {
        return Err(problem(
            2,
            "frontmatter.type",
            "front matter must be a mapping of keys to values".to_string(),
        ));
    }
    if let Some(name) = doc["name"].as_str() {
        out.name = name.to_string();
    }
    out.model = doc["model"].as_str().map(str::to_string);
    out.description = doc["description"].as_str().map(str::to_string);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_name_and_model() {
        let f: std::sync::Arc<str> = "droids/rev.md".into();
        let a = read(
            ArtifactKind::Droid,
            Level::Org,
            &f,
            "rev",
            b"---\nname: reviewer\nmodel: claude-opus-4-1\n---\nbody",
        );
        let a = a.map(|a| (a.name, a.model));
        assert_eq!(
            a,
            Ok(("reviewer".to_string(), Some("claude-opus-4-1".to_string())))
        );
    }

    #[test]
    fn bad_yaml_names_its_line() {
        let f: std::sync::Arc<str> = "droids/rev.md".into();
        let e = read(
            ArtifactKind::Droid,
            Level::Org,
            &f,
            "rev",
            b"---\nname: ok\nmodel: [unclosed\n---\n",
        );
        assert_eq!(e.map_err(|p| p.code), Err("frontmatter.yaml"));
    }
}
