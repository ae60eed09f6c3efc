#![doc = include_str!("../README.md")]

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
pub mod matchers;
pub mod merge;
pub mod origin;
pub mod problem;
pub mod provenance;
pub mod rules;
pub mod scope;
pub mod testcase;

pub use compile::{Bundle, ProjectTrees, Revision, Snapshot, compile};
pub use decide::{
    Decision, Determining, Effect, Enforcement, KeyMode, McpRef, Request, Target, decide,
};
pub use files::settings::Provider;
pub use layer::{FileTree, Layer};
pub use origin::{Level, Origin};
pub use problem::{Problem, Problems, Severity};
