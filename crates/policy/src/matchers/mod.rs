//! Matchers over what requests carry: URLs parsed by the WHATWG rules, MCP allowlist entries,
//! canonical model ids, exec-affecting environment variables, and "did you mean" suggestions.
//!
//! Architecture Invariant: nothing here knows about layers, Cedar or files. Each matcher takes
//! strings (or parsed values) and gives back values; callers decide what a match means.

pub mod exec_env;
pub mod mcp;
pub mod model_id;
pub mod suggest;
pub mod url;
