//! What a decision is asked and what it answers: [`Request`] (who, where, what) and [`Decision`]
//! (allow or deny, the determining rules with their provenance, the gateway's obligations).

use cedar_policy::Effect as CedarEffect;
use serde::Serialize;

use crate::compile::Revision;
use crate::files::settings::Provider;
use crate::origin::Level;

/// Whose key pays: the org's (through the gateway) or the person's own
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    #[default]
    Central,
    Byok,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Central => "central",
            KeyMode::Byok => "byok",
        }
    }
}

/// An MCP server as a request names it: by name (from `mcp.json`), by URL, or by command
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl McpRef {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.url.clone())
            .or_else(|| self.command.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Target {
    /// invoke a model (with the central key, or the person's own: BYOK)
    #[serde(rename = "model")]
    Model {
        model: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        provider: Option<Provider>,
        #[serde(rename = "keyMode")]
        key_mode: KeyMode,
        #[serde(rename = "baseUrl", skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        /// MCP servers the request body references; each must be allowed too
        #[serde(rename = "mcpServers", skip_serializing_if = "Vec::is_empty")]
        mcp_servers: Vec<McpRef>,
    },
    /// connect an MCP server
    #[serde(rename = "mcp")]
    Mcp { server: McpRef },
}

/// One decision request
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub user: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// path below the project root (monorepo folder)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// the projects the caller's gateway token is bound to (`None`: the token is not bound, or
    /// there is no token): a request for any other project, or for none, is denied by
    /// `token#projects`
    #[serde(rename = "tokenProjects", skip_serializing_if = "Option::is_none")]
    pub token_projects: Option<Vec<String>>,
    #[serde(flatten)]
    pub target: Target,
}

impl Target {
    /// A target that names nothing: for requests that only select a scope (effective settings,
    /// model listings)
    pub fn none() -> Target {
        Target::Model {
            model: String::new(),
            provider: None,
            key_mode: KeyMode::Central,
            base_url: None,
            mcp_servers: Vec::new(),
        }
    }
}

impl Request {
    /// A request that selects a scope only (user, groups, project, folder), for
    /// [`crate::explain::effective_settings`] and [`crate::explain::models`]
    pub fn scope(
        user: String,
        groups: Vec<String>,
        project: Option<String>,
        folder: Option<String>,
    ) -> Request {
        Request {
            token_projects: None,
            user,
            groups,
            project,
            folder,
            gateway: None,
            target: Target::none(),
        }
    }

    pub fn model(user: &str, model: &str) -> Request {
        Request {
            user: user.to_string(),
            groups: Vec::new(),
            project: None,
            folder: None,
            gateway: None,
            token_projects: None,
            target: Target::Model {
                model: model.to_string(),
                provider: None,
                key_mode: KeyMode::Central,
                base_url: None,
                mcp_servers: Vec::new(),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleEffect {
    Permit,
    Forbid,
}

impl From<CedarEffect> for RuleEffect {
    fn from(e: CedarEffect) -> Self {
        match e {
            CedarEffect::Permit => RuleEffect::Permit,
            CedarEffect::Forbid => RuleEffect::Forbid,
        }
    }
}

pub use crate::rules::Enforcement;

/// A rule that determined a decision, with where it comes from
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Determining {
    /// the Cedar policy id, e.g. `org#modelPolicy.blockedModelIds`
    pub rule: String,
    pub level: Level,
    pub file: Option<String>,
    pub pointer: Option<String>,
    pub line: Option<u32>,
    pub effect: RuleEffect,
    /// the list entry that matched, if the rule is about a list
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// what the rule says about this request, in words
    pub reason: String,
    /// where the rule is enforced, from [`crate::rules::enforced_by`]
    pub enforced_by: Enforcement,
}

/// What the gateway must do with an allowed request
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Obligations {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// the environment variable holding the key to inject (never the key itself)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// the org requires clients that loaded its Droid org level (`droid.requireOrgSettings`):
    /// the gateway refuses a token that never fetched it
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_org_settings: bool,
}

/// The outcome of one request; a deny is an ordinary value
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub effect: Effect,
    /// empty with `Deny`: nothing permitted it
    pub determined_by: Vec<Determining>,
    /// one sentence saying why
    pub reason: String,
    /// the model id every rule compared, when it differs from the one the request sent
    /// (`openai/gpt-4o`, `GPT‑4o` with a non-breaking hyphen, ... are `gpt-4o`)
    #[serde(rename = "canonicalModel", skip_serializing_if = "Option::is_none")]
    pub canonical_model: Option<String>,
    /// with `Allow`: the restrictions in scope the request passed (allowlists of MCP hosts and
    /// commands, base-URL lists), each with the entry that admitted it
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admitted_by: Vec<Determining>,
    pub obligations: Obligations,
    pub revision: Revision,
    /// Cedar evaluation errors (a forbid that errors counts as a deny)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}
