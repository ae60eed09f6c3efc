//! Readers for each file a layer may hold.

pub mod cedar;
pub mod markdown;
pub mod mcp;
pub mod policy_file;
pub mod settings;
