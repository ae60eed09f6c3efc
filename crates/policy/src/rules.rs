//! The base rules (`policies/base.cedar`): their ids, what each enforces, and the schema.

use std::fmt;

use crate::origin::Level;

/// The Cedar schema every policy is validated against
pub const SCHEMA_SRC: &str = include_str!("../../../policies/strata.cedarschema");
/// The base rules: what the settings files of every layer mean
pub const BASE_RULES_SRC: &str = include_str!("../../../policies/base.cedar");
/// The label the base rules' file carries in provenance
pub const BASE_RULES_FILE: &str = "policies/base.cedar";

/// The field of a layer a base rule enforces
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Blocked,
    UserPolicyBlocked,
    UserPolicyAllowed,
    UserAllowlist,
    GatewayRequired,
    AllowCustomModels,
    AllowedBaseUrls,
    ByokProviders,
    ByokBaseUrls,
    NoAllowlist,
    ByokDefault,
    Allowed,
    CustomModels,
    McpDefault,
    McpBlocklist,
    McpExecEnv,
    McpAllowlist,
    McpDisabled,
}

/// Which actions a field's rule is about
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// invoke_model and use_byok
    Model,
    /// use_byok only
    Byok,
    Mcp,
}

impl Field {
    pub fn name(self, level: Level) -> &'static str {
        match (self, level) {
            (Field::Blocked, _) => "modelPolicy.blockedModelIds",
            (Field::UserPolicyBlocked, _) => "userModelPolicies.blockedModelIds",
            (Field::UserPolicyAllowed, _) => "userModelPolicies.allowedModelIds",
            (Field::UserAllowlist, _) | (Field::Allowed, _) => "modelPolicy.allowedModelIds",
            (Field::GatewayRequired, _) => "policy.gateway.requiredBaseUrls",
            (Field::AllowCustomModels, _) => "modelPolicy.allowCustomModels",
            (Field::AllowedBaseUrls, _) => "modelPolicy.allowedBaseUrls",
            (Field::ByokProviders, _) => "policy.byok.allowedProviders",
            (Field::ByokBaseUrls, _) => "policy.byok.allowedBaseUrls",
            (Field::NoAllowlist, _) => "default.noAllowlist",
            (Field::ByokDefault, _) => "default.byok",
            (Field::CustomModels, _) => "customModels",
            (Field::McpDefault, _) => "default.mcpServers",
            (Field::McpBlocklist, _) => "policy.mcpBlocklist",
            (Field::McpExecEnv, _) => "policy.mcpExecEnv",
            (Field::McpAllowlist, _) => "mcpPolicy.allowlist",
            (Field::McpDisabled, _) => "mcpServers.disabled",
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            Field::AllowCustomModels
            | Field::ByokDefault
            | Field::AllowedBaseUrls
            | Field::ByokProviders
            | Field::ByokBaseUrls => Scope::Byok,
            Field::McpDefault
            | Field::McpBlocklist
            | Field::McpExecEnv
            | Field::McpAllowlist
            | Field::McpDisabled => Scope::Mcp,
            _ => Scope::Model,
        }
    }
}

/// A base rule: a field at a level; its policy id is `<level>#<field name>`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    pub level: Level,
    pub field: Field,
}

const FIELDS: [Field; 18] = [
    Field::Blocked,
    Field::UserPolicyBlocked,
    Field::UserPolicyAllowed,
    Field::UserAllowlist,
    Field::GatewayRequired,
    Field::AllowCustomModels,
    Field::AllowedBaseUrls,
    Field::ByokProviders,
    Field::ByokBaseUrls,
    Field::NoAllowlist,
    Field::ByokDefault,
    Field::Allowed,
    Field::CustomModels,
    Field::McpDefault,
    Field::McpBlocklist,
    Field::McpExecEnv,
    Field::McpAllowlist,
    Field::McpDisabled,
];

impl RuleKey {
    pub const fn new(level: Level, field: Field) -> Self {
        Self { level, field }
    }

    pub fn id(self) -> String {
        self.to_string()
    }

    /// The key of a base rule id; `user#modelPolicy.allowedModelIds` is the user's own allowlist
    pub fn parse(id: &str) -> Option<RuleKey> {
        let (level, name) = id.split_once('#')?;
        let level = Level::ALL.into_iter().find(|l| l.as_str() == level)?;
        let field = FIELDS.into_iter().find(|f| {
            f.name(level) == name
                && match f {
                    Field::UserAllowlist => level == Level::User,
                    Field::Allowed => level != Level::User,
                    _ => true,
                }
        })?;
        Some(RuleKey { level, field })
    }
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.level, self.field.name(self.level))
    }
}

/// The ModelList / McpList entity id, and the trigger string, of a rule: its policy id
pub fn list_id(key: RuleKey) -> String {
    key.id()
}
