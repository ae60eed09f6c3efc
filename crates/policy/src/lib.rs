#![doc = include_str!("../README.md")]

pub mod compile;
pub mod decide;
pub mod explain;
pub mod files;
pub mod hand;
pub mod json;
pub mod layer;
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
