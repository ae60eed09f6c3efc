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

impl Field {
    /// Where this field's rule is enforced at `level` (the table in `docs/merge.md`, "Strata
    /// and Droid"). The gateway decides with the published org, projects and folders; Droid with
    /// the org document Strata serves (model ids only as exact ids of its catalogue) and the
    /// repository's `.factory/` files, by its own merge: a list or switch below the org counts
    /// in Droid only where no level above it sets its own (the first level that sets one wins),
    /// so those rules are the gateway's alone. A person's own files never reach the gateway.
    pub fn enforced_by(self, level: Level) -> Enforcement {
        if level == Level::User {
            return Enforcement::Client;
        }
        let org = level == Level::Org;
        match self {
            // Strata's own keys (policy.json): Droid's schema has nothing like them
            Field::GatewayRequired
            | Field::ByokProviders
            | Field::ByokBaseUrls
            | Field::McpBlocklist
            | Field::McpExecEnv => Enforcement::Gateway,
            // Droid unions bans, offers every level's custom models, and admits anything when
            // no level sets a list
            Field::Blocked
            | Field::CustomModels
            | Field::NoAllowlist
            | Field::ByokDefault
            | Field::McpDefault => Enforcement::Both,
            // resolved into the person's own `modelPolicy` by the org document Strata serves
            Field::UserPolicyBlocked | Field::UserPolicyAllowed => Enforcement::Both,
            // the first level that sets it wins in Droid: the org's; a project's or folder's
            // only where the org sets none
            Field::Allowed
            | Field::AllowCustomModels
            | Field::AllowedBaseUrls
            | Field::McpAllowlist => {
                if org {
                    Enforcement::Both
                } else {
                    Enforcement::Gateway
                }
            }
            // the org document cannot define MCP servers; a project's or folder's mcp.json is
            // read by Droid too
            Field::McpDisabled => {
                if org {
                    Enforcement::Gateway
                } else {
                    Enforcement::Both
                }
            }
            Field::UserAllowlist => Enforcement::Client,
        }
    }
}

impl RuleKey {
    pub fn enforced_by(self) -> Enforcement {
        self.field.enforced_by(self.level)
    }
}

/// Where the rule with policy id `id` is enforced: a base rule by its field and level; the
/// token's project binding (`token#projects`) and hand-written Cedar rules only by the gateway
/// (Droid knows neither gateway tokens nor Cedar)
pub fn enforced_by(id: &str) -> Enforcement {
    RuleKey::parse(id)
        .map(RuleKey::enforced_by)
        .unwrap_or(Enforcement::Gateway)
}

/// The top-level settings keys Strata's decisions govern: the gateway enforces them as well as
/// Droid
pub const GOVERNED_KEYS: &[&str] = &[
    "modelPolicy",
    "customModels",
    "userModelPolicies",
    "mcpPolicy",
    "mcpServers",
];

/// Where a top-level settings key (or file kind: `droids`, `commands`) is enforced when no
/// decision rule is involved: the governed keys by both, everything else (`hooks`,
/// `allowManagedHooksOnly`, command lists, `maxAutonomyLevel`, `sessionDefaultSettings`, `env`,
/// `telemetry`, droids, commands, ...) by Droid alone: no model request carries it
pub fn setting_enforced_by(key: &str) -> Enforcement {
    if GOVERNED_KEYS.contains(&key) {
        Enforcement::Both
    } else {
        Enforcement::Droid
    }
}

/// The ModelList / McpList entity id, and the trigger string, of a rule: its policy id
pub fn list_id(key: RuleKey) -> String {
    key.id()
}

/// Where a rule is enforced: Strata's gateway (on the model and MCP traffic it carries), Droid
/// (from the org document Strata serves and the repository's `.factory/` files), both, or only
/// the client, from a person's own files that never leave their machine
/// (`docs/merge.md`, "Strata and Droid")
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Gateway,
    Droid,
    Both,
    Client,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Gateway => "gateway",
            Enforcement::Droid => "droid",
            Enforcement::Both => "both",
            Enforcement::Client => "client",
        }
    }

    /// In words, for `policy explain`: `gateway and Droid`
    pub fn label(self) -> &'static str {
        match self {
            Enforcement::Gateway => "gateway",
            Enforcement::Droid => "Droid",
            Enforcement::Both => "gateway and Droid",
            Enforcement::Client => "client only (Droid, from the person's own files)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_mcp_rules_of_the_org_are_enforced_by_both() {
        for id in [
            "org#modelPolicy.blockedModelIds",
            "org#modelPolicy.allowedModelIds",
            "org#customModels",
            "org#default.noAllowlist",
            "org#userModelPolicies.allowedModelIds",
            "org#mcpPolicy.allowlist",
            "org#modelPolicy.allowCustomModels",
            "project#modelPolicy.blockedModelIds",
            "folder#mcpServers.disabled",
        ] {
            assert_eq!(enforced_by(id), Enforcement::Both, "{id}");
        }
    }

    #[test]
    fn strata_only_keys_tokens_and_cedar_are_the_gateways() {
        for id in [
            "org#policy.gateway.requiredBaseUrls",
            "org#policy.byok.allowedProviders",
            "org#policy.byok.allowedBaseUrls",
            "org#policy.mcpBlocklist",
            "org#policy.mcpExecEnv",
            "token#projects",
            "org#policies/frontier.cedar/frontier-leads-only",
            "project:web#policies/web.cedar/1",
            // a project's list counts in Droid only where the org sets none
            "project#modelPolicy.allowedModelIds",
            "folder#modelPolicy.allowedBaseUrls",
            "folder#mcpPolicy.allowlist",
            // the org document cannot define MCP servers
            "org#mcpServers.disabled",
        ] {
            assert_eq!(enforced_by(id), Enforcement::Gateway, "{id}");
        }
    }

    #[test]
    fn a_persons_own_rules_are_the_clients() {
        for id in [
            "user#modelPolicy.blockedModelIds",
            "user#modelPolicy.allowedModelIds",
            "user#modelPolicy.allowCustomModels",
            "user#mcpPolicy.allowlist",
            "user#mcpServers.disabled",
        ] {
            assert_eq!(enforced_by(id), Enforcement::Client, "{id}");
        }
    }

    #[test]
    fn settings_no_request_carries_are_droids() {
        for key in [
            "hooks",
            "allowManagedHooksOnly",
            "commandDenylist",
            "maxAutonomyLevel",
            "sessionDefaultSettings",
            "env",
            "telemetry",
            "droids",
            "commands",
        ] {
            assert_eq!(setting_enforced_by(key), Enforcement::Droid, "{key}");
        }
        assert_eq!(setting_enforced_by("modelPolicy"), Enforcement::Both);
    }

    #[test]
    fn every_base_rule_has_an_enforcement_point() {
        for level in Level::ALL {
            for field in FIELDS {
                let key = RuleKey::new(level, field);
                if RuleKey::parse(&key.id()) == Some(key) {
                    assert_eq!(enforced_by(&key.id()), key.enforced_by(), "{key}");
                }
            }
        }
    }
}
