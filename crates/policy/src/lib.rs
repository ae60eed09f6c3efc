#![doc = include_str!("../README.md")]

pub mod buckets;
pub mod compile;
pub mod compiled;

/// Maps and sets that decisions read: foldhash rather than SipHash. Their keys come from the
/// bundle; a request only looks keys up, so there is no flooding to defend against.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub mod decide;
pub mod decision;
pub mod droid;
pub mod eval;
pub mod explain;
pub mod facts;
pub mod files;
pub mod json;
pub mod layer;
pub mod listing;
pub mod matchers;
pub mod merge;
pub mod origin;
pub mod problem;
pub mod provenance;
pub mod rules;
pub mod scope;
pub mod testcase;

pub use compile::{Bundle, ProjectTrees, Revision, Snapshot};

/// Compile a bundle into the snapshot decisions read ([`compile::compile`]), and refuse one
/// whose org keys Droid's schema rejects: Droid would drop the whole org level Strata serves it
/// and run unrestricted (`droid.schema` errors, at the org file and line)
pub fn compile(bundle: &Bundle, env: files::settings::EnvLookup<'_>) -> Result<Snapshot, Problems> {
    let snap = compile::compile(bundle, env)?;
    let droid = droid::org::passthrough_errors(&snap);
    if droid.is_empty() {
        return Ok(snap);
    }
    Err(Problems {
        problems: snap.diagnostics().iter().cloned().chain(droid).collect(),
    })
}
pub use decide::{
    Decision, Determining, Effect, Enforcement, KeyMode, McpRef, Request, Target, decide,
};
pub use files::settings::Provider;
pub use layer::{FileTree, Layer};
pub use origin::{Level, Origin};
pub use problem::{Problem, Problems, Severity};
