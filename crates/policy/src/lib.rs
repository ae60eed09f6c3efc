#![doc = include_str!("../README.md")]

pub mod compile;

/// Maps and sets that decisions read: foldhash rather than SipHash. Their keys come from the
/// bundle; a request only looks keys up, so there is no flooding to defend against.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub mod decide;
pub mod explain;
pub mod files;
pub mod hand;
pub mod json;
pub mod layer;
pub mod matchers;
pub mod origin;
pub mod problem;
pub mod rules;
pub mod testcase;

pub use compile::{Bundle, ProjectTrees, Revision, Snapshot, compile};
pub use decide::{Decision, Determining, Effect, KeyMode, McpRef, Request, Target, decide};
pub use files::settings::Provider;
pub use layer::{FileTree, Layer};
pub use origin::{Level, Origin};
pub use problem::{Problem, Problems, Severity};
