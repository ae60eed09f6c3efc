//! Helpers shared by the fuzz targets: one layer read from one file, and a bundle compiled.

use strata_policy::{Bundle, FileTree, Layer, Level, ProjectTrees, compile};

/// No environment: `${VAR}` references resolve to nothing
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A tree holding `files` (what a publish carries), or `None` when the paths are refused
pub fn tree(root: &str, files: &[(&str, &[u8])]) -> Option<FileTree> {
    FileTree::from_files(root, files.iter().map(|(p, b)| (p.to_string(), b.to_vec()))).ok()
}

/// Read `bytes` as the file `rel` of a layer at each of `levels`; the result is dropped, only a
/// panic, a hang or a runaway allocation matters
pub fn load(rel: &str, bytes: &[u8], levels: &[Level]) {
    let Some(t) = tree("fuzz", &[(rel, bytes)]) else {
        return;
    };
    for level in levels {
        let (layer, problems) = Layer::load(*level, &t, &no_env);
        // every problem renders (messages quote the input)
        for p in &problems.problems {
            let _ = p.to_string();
        }
        std::hint::black_box(layer);
    }
}

/// Compile an org bundle, with an optional project `web`
pub fn compile_bundle(org: FileTree, project: Option<FileTree>) {
    let bundle = Bundle {
        org,
        projects: project
            .map(|p| ProjectTrees {
                id: "web".to_string(),
                project: p,
                folders: Vec::new(),
            })
            .into_iter()
            .collect(),
        users: Vec::new(),
    };
    match compile(&bundle, &no_env) {
        Ok(s) => {
            std::hint::black_box(s);
        }
        Err(problems) => {
            for p in &problems.problems {
                let _ = p.to_string();
            }
        }
    }
}
