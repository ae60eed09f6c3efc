//! Droid's schema for the org level, as data, and a validator exact to Droid 0.225.2.
//!
//! Droid parses the org document (from the API, a custom URL, `/etc/factory/settings.json` or
//! `FACTORY_ORG_MANAGED_SETTINGS_LOCAL_PATH`) with one zod schema, and when any field fails it
//! throws the whole org level away and runs unrestricted. Strata must therefore never serve a
//! document that fails it. The schema below was read from the JavaScript compiled into the binary
//! (`docs/droid-observed.md`, "(f) The org document's schema"); the walker reproduces zod 3's
//! rules: unknown keys are stripped (no object in the org schema is strict), `null` is not
//! "absent", an object refinement runs only when no field of the object failed its type.

use serde::Serialize;
use serde_json::{Map, Value};

/// The Droid release the schema was read from, and its catalogue of model ids
pub use crate::droid::catalogue::{DROID_VERSION, known_model_id};

/// One way a document fails Droid's org schema
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    /// JSON pointer to the failing value, e.g. `/modelPolicy/allowedModelIds/0` (`""`: the
    /// document itself)
    pub path: String,
    /// zod's message, as `droid doctor --config` prints it
    pub message: String,
}

/// A model id Droid drops silently from an id list because it is not in its catalogue
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedModelId {
    /// JSON pointer to the entry
    pub path: String,
    pub id: String,
}

/// Every way `doc` fails Droid's org schema (empty: Droid accepts it)
pub fn validate(doc: &Value) -> Vec<SchemaError> {
    walk(doc).errors
}

/// Top-level keys Droid ignores: not in its org schema (dropped silently when parsed), or
/// accepted by it and then discarded (see [`DISCARDED`])
pub fn ignored_keys(doc: &Value) -> Vec<String> {
    let Some(map) = doc.as_object() else {
        return Vec::new();
    };
    map.keys()
        .filter(|k| DISCARDED.contains(&k.as_str()) || !TOP_FIELDS.iter().any(|f| f.name == *k))
        .cloned()
        .collect()
}

/// The entries of the model-id lists (`modelPolicy.allowedModelIds`, `blockedModelIds`,
/// `requireExplicitOptInModelIds`, `userModelPolicies.*.allowedModelIds` / `blockedModelIds`)
/// that Droid drops silently: a list made only of such entries is no list at all
pub fn dropped_model_ids(doc: &Value) -> Vec<DroppedModelId> {
    walk(doc).dropped
}

/// Top-level keys the schema accepts with any value and Droid then discards (its `$i`
/// transform keeps only `advancedAnalyticsEnabled`, recomputed from some of them)
pub const DISCARDED: &[&str] = &[
    "allowBackgroundProcesses",
    "usageCapAlertsEnabled",
    "localSignalsOptIn",
    "localSignalsBackfillOptIn",
    "localSignalsBackfillFromDate",
    "advancedAnalyticsConsentVersion",
];

// ---------------------------------------------------------------------------------------------
// The schema description

/// One node of the schema; each variant is one zod construct
#[derive(Debug)]
enum Type {
    /// `z.unknown()`: anything, `null` included
    Any,
    Bool,
    Str(Str),
    Num(Num),
    /// `z.enum` (`native: false`) or `z.nativeEnum` (which also takes numbers to the value check)
    Enum {
        values: &'static [&'static str],
        native: bool,
    },
    Literal(&'static str),
    Array(Arr),
    /// An array of model ids: strings; ids outside the catalogue are dropped, not errors
    ModelIds,
    /// `z.record`: string keys (or keys from an enum), every value of one type
    Record {
        keys: Option<&'static [&'static str]>,
        value: &'static Type,
    },
    Object(Obj),
    /// `z.discriminatedUnion(tag, options)`
    Tagged {
        tag: &'static str,
        options: &'static [(&'static str, &'static Type)],
    },
    /// `customModels[].baseModelId`: a catalogue id other than the router's (`z.custom`, fatal)
    BuiltinModelId,
}

/// A string: preprocess, then trim, then length bounds (UTF-16 units, as JavaScript counts),
/// then a rule
#[derive(Debug)]
struct Str {
    pre: Option<fn(&str) -> String>,
    trim: bool,
    min: Option<usize>,
    max: Option<usize>,
    rule: Option<Rule>,
}

#[derive(Debug)]
struct Rule {
    test: fn(&str) -> bool,
    message: &'static str,
}

#[derive(Debug)]
struct Num {
    int: bool,
    /// `.positive()`: greater than 0
    positive: bool,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug)]
struct Arr {
    item: &'static Type,
    /// minimum length and zod's message for it when the schema gives one
    min: Option<(usize, Option<&'static str>)>,
    max: Option<usize>,
    /// `.refine(unique)` with its message
    unique: Option<&'static str>,
}

/// An object's refinement: adds its issues under the object's path, returns whether it added any
type Refine = fn(&Map<String, Value>, &str, &mut Walk) -> bool;

#[derive(Debug)]
struct Obj {
    fields: &'static [Field],
    /// `.strict()`: unknown keys are errors; otherwise they are stripped
    strict: bool,
    refine: Option<Refine>,
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    ty: &'static Type,
    required: bool,
}

const fn opt(name: &'static str, ty: &'static Type) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const fn req(name: &'static str, ty: &'static Type) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn obj(fields: &'static [Field]) -> Type {
    Type::Object(Obj {
        fields,
        strict: false,
        refine: None,
    })
}

const fn array(item: &'static Type) -> Type {
    Type::Array(Arr {
        item,
        min: None,
        max: None,
        unique: None,
    })
}

const fn string(trim: bool, min: Option<usize>, max: Option<usize>, rule: Option<Rule>) -> Type {
    Type::Str(Str {
        pre: None,
        trim,
        min,
        max,
        rule,
    })
}

const fn int(positive: bool, min: Option<f64>, max: Option<f64>) -> Type {
    Type::Num(Num {
        int: true,
        positive,
        min,
        max,
    })
}

const fn native(values: &'static [&'static str]) -> Type {
    Type::Enum {
        values,
        native: true,
    }
}

const fn record(value: &'static Type) -> Type {
    Type::Record { keys: None, value }
}

static ANY: Type = Type::Any;
static BOOL: Type = Type::Bool;
static STRING: Type = string(false, None, None, None);
static TRIMMED: Type = string(true, None, None, None);
static NONEMPTY: Type = string(true, Some(1), None, None);
static NUMBER: Type = Type::Num(Num {
    int: false,
    positive: false,
    min: None,
    max: None,
});
static STRINGS: Type = array(&STRING);
static STRING_MAP: Type = record(&STRING);

/// `$r`: maxAutonomyLevel, sessionDefaultSettings.autonomyLevel
static AUTONOMY_LEVEL: Type = native(&["off", "low", "medium", "high"]);
/// `jW`: subagentAutonomyLevel
static SUBAGENT_AUTONOMY: Type = native(&["off", "low", "medium", "high", "inherit"]);
/// `Xn`: sessionDefaultSettings.autonomyMode (deprecated in Droid)
static AUTONOMY_MODE: Type = native(&["normal", "spec", "auto-low", "auto-medium", "auto-high"]);
/// `KL`: sessionDefaultSettings.interactionMode
static INTERACTION_MODE: Type = native(&["auto", "spec", "agi", "mission"]);
/// `yH`: every reasoningEffort
static EFFORT: Type = native(&[
    "none", "dynamic", "off", "minimal", "low", "medium", "high", "xhigh", "max",
]);
/// `_`: MCP and built-in tool autonomy overrides (no "off")
static TOOL_LEVEL: Type = Type::Enum {
    values: &["low", "medium", "high"],
    native: false,
};

static SESSION_DEFAULTS: Type = obj(&[
    opt("model", &STRING),
    opt("reasoningEffort", &EFFORT),
    opt("interactionMode", &INTERACTION_MODE),
    opt("autonomyLevel", &AUTONOMY_LEVEL),
    opt("autonomyMode", &AUTONOMY_MODE),
    opt("specModeModel", &STRING),
    opt("specModeReasoningEffort", &EFFORT),
]);

static MISSION_MODELS: Type = obj(&[
    opt("workerModel", &STRING),
    opt("workerReasoningEffort", &EFFORT),
    opt("validationWorkerModel", &STRING),
    opt("validationWorkerReasoningEffort", &EFFORT),
]);

static SUBAGENT_MODELS: Type = obj(&[
    opt("lightModel", &STRING),
    opt("lightReasoningEffort", &EFFORT),
    opt("mediumModel", &STRING),
    opt("mediumReasoningEffort", &EFFORT),
    opt("heavyModel", &STRING),
    opt("heavyReasoningEffort", &EFFORT),
]);

static MCP_AUTONOMY: Type = record(&MCP_AUTONOMY_ENTRY);
static MCP_AUTONOMY_ENTRY: Type =
    obj(&[opt("defaultLevel", &TOOL_LEVEL), opt("tools", &TOOL_LEVELS)]);
static TOOL_LEVELS: Type = record(&TOOL_LEVEL);
static MCP_URL_AUTONOMY: Type = array(&MCP_URL_AUTONOMY_ENTRY);
static MCP_URL_AUTONOMY_ENTRY: Type = obj(&[
    req("urlPattern", &NONEMPTY),
    req("defaultLevel", &TOOL_LEVEL),
]);

static CYCLE_TIME: Type = obj(&[opt("linear", &CYCLE_BOUNDS), opt("jira", &CYCLE_BOUNDS)]);
static CYCLE_BOUNDS: Type = record(&CYCLE_BOUNDARY);
static CYCLE_BOUNDARY: Type = Type::Object(Obj {
    fields: &[
        req("startStatuses", &STATUSES),
        req("endStatuses", &STATUSES),
    ],
    strict: false,
    refine: Some(refine_cycle_statuses),
});
static STATUSES: Type = Type::Array(Arr {
    item: &STATUS,
    min: Some((1, None)),
    max: None,
    unique: None,
});
static STATUS: Type = obj(&[req("id", &NONEMPTY), req("name", &NONEMPTY)]);

/// `L`: outputStyle
static OUTPUT_STYLE: Type = string(
    false,
    Some(1),
    Some(1024),
    Some(Rule {
        test: no_control_chars,
        message: "Output style id must not contain control characters",
    }),
);

/// `qt`: one entry of customModels
static CUSTOM_MODEL: Type = Type::Object(Obj {
    fields: &[
        req("model", &STRING),
        opt("id", &STRING),
        opt("index", &NUMBER),
        opt("baseUrl", &STRING),
        opt("apiKey", &STRING),
        opt("apiKeyHelper", &STRING),
        opt("apiKeyHelperTtlMs", &POSITIVE_INT),
        opt("authMode", &AUTH_MODE),
        req("provider", &PROVIDER),
        opt("displayName", &STRING),
        opt("maxContextLimit", &NUMBER),
        opt("enableThinking", &BOOL),
        opt("thinkingMaxTokens", &NUMBER),
        opt("maxOutputTokens", &NUMBER),
        opt("reasoningEffort", &EFFORT),
        opt("extraHeaders", &STRING_MAP),
        opt("extraArgs", &ANY_MAP),
        opt("noImageSupport", &BOOL),
        opt("bedrock", &BEDROCK),
        opt("baseModelId", &Type::BuiltinModelId),
        opt("useInRouter", &BOOL),
        opt("fileEditToolProfile", &FILE_EDIT_PROFILE),
    ],
    strict: false,
    refine: Some(refine_custom_model),
});
static CUSTOM_MODELS: Type = array(&CUSTOM_MODEL);
static POSITIVE_INT: Type = int(true, None, None);
static ANY_MAP: Type = record(&ANY);
static AUTH_MODE: Type = native(&["provider-default", "bearer"]);
static FILE_EDIT_PROFILE: Type = native(&["apply-patch", "create-edit"]);
static PROVIDER: Type = native(&[
    "anthropic",
    "openai",
    "generic-chat-completion-api",
    "factory",
    "google",
    "xai",
    "voyage",
    "bedrock-converse",
]);
static BEDROCK: Type = obj(&[
    opt("awsProfile", &STRING),
    opt("awsRegion", &NONEMPTY_RAW),
    opt("bedrockBaseUrl", &BEDROCK_URL),
    opt("awsAuthRefresh", &STRING),
    opt("awsCredentialExport", &STRING),
    opt("requestMetadata", &STRING_MAP),
]);
static NONEMPTY_RAW: Type = string(false, Some(1), None, None);
/// `bedrockBaseUrl`: `z.union([z.string().url(), z.string().regex(${VAR})])`; zod reports a
/// string matching neither by the first option's message (a non-string: `Invalid input`, here
/// `Expected string`)
static BEDROCK_URL: Type = string(
    false,
    None,
    None,
    Some(Rule {
        test: url_or_var,
        message: "Invalid url",
    }),
);

static MODEL_POLICY: Type = obj(&[
    opt("allowedModelIds", &Type::ModelIds),
    opt("blockedModelIds", &Type::ModelIds),
    opt("allowCustomModels", &BOOL),
    opt("allowedBaseUrls", &STRINGS),
    opt("allowAllFactoryModels", &BOOL),
    opt("isFastModelsAllowed", &BOOL),
    opt("requireExplicitOptInModelIds", &Type::ModelIds),
    opt("allowFactoryRouterByok", &BOOL),
    opt("factoryRouterByokOnly", &BOOL),
]);
/// `Z`: userModelPolicies values, both lists required
static USER_MODEL_POLICY: Type = obj(&[
    req("allowedModelIds", &Type::ModelIds),
    req("blockedModelIds", &Type::ModelIds),
]);
static MCP_POLICY: Type = obj(&[opt("enabled", &BOOL), opt("allowlist", &STRINGS)]);
static MISSION_POLICY: Type = obj(&[
    opt("restrictedAccess", &BOOL),
    opt("allowedUserIds", &STRINGS),
]);

/// `EA`: a plugin marketplace source
static MARKETPLACE: Type = Type::Tagged {
    tag: "source",
    options: &[
        ("github", &GITHUB_SOURCE),
        ("url", &URL_SOURCE),
        ("local", &LOCAL_SOURCE),
        ("git-subdir", &SUBDIR_SOURCE),
    ],
};
static GITHUB_SOURCE: Type = obj(&[
    req("source", &Type::Literal("github")),
    req("repo", &GITHUB_REPO),
    opt("ref", &NONEMPTY),
    opt("sha", &SHA),
]);
static URL_SOURCE: Type = obj(&[
    req("source", &Type::Literal("url")),
    req("url", &STRING),
    opt("ref", &NONEMPTY),
    opt("sha", &SHA),
]);
static LOCAL_SOURCE: Type = obj(&[req("source", &Type::Literal("local")), req("path", &STRING)]);
static SUBDIR_SOURCE: Type = obj(&[
    req("source", &Type::Literal("git-subdir")),
    req("url", &STRING),
    req("path", &SUBDIR),
    opt("ref", &NONEMPTY),
    opt("sha", &SHA),
]);
static GITHUB_REPO: Type = Type::Str(Str {
    pre: Some(github_repo),
    trim: false,
    min: None,
    max: None,
    rule: Some(Rule {
        test: owner_slash_repo,
        message: "Expected a GitHub repository in owner/repo format",
    }),
});
static SUBDIR: Type = Type::Str(Str {
    pre: Some(trim_trailing_separators),
    trim: false,
    min: None,
    max: None,
    rule: Some(Rule {
        test: relative_subdir,
        message: "Expected a relative subdirectory path without parent traversal",
    }),
});
static SHA: Type = string(
    false,
    None,
    None,
    Some(Rule {
        test: full_sha,
        message: "Expected a full 40-character commit SHA",
    }),
);
static KNOWN_MARKETPLACES: Type = record(&KNOWN_MARKETPLACE);
static KNOWN_MARKETPLACE: Type = obj(&[req("source", &MARKETPLACE)]);
static STRICT_MARKETPLACES: Type = array(&MARKETPLACE);

static NETWORK_POLICY: Type = obj(&[req("allowedIps", &IP_LIST)]);
static IP_LIST: Type = Type::Array(Arr {
    item: &TRIMMED,
    min: Some((
        1,
        Some("IP allowlist must contain at least one entry when enabled"),
    )),
    max: None,
    unique: None,
});

static SANDBOX: Type = obj(&[
    opt("enabled", &BOOL),
    opt("mode", &SANDBOX_MODE),
    opt("filesystem", &SANDBOX_FS),
    opt("network", &SANDBOX_NET),
]);
static SANDBOX_MODE: Type = native(&["per-command", "whole-process"]);
static SANDBOX_FS: Type = obj(&[
    opt("allowWrite", &STRINGS),
    opt("allowRead", &STRINGS),
    opt("denyWrite", &STRINGS),
    opt("denyRead", &STRINGS),
]);
static SANDBOX_NET: Type = obj(&[
    opt("allowedDomains", &STRINGS),
    opt("allowUnixSockets", &STRINGS),
    opt("allowAllUnixSockets", &BOOL),
    opt("allowLocalBinding", &BOOL),
    opt("httpProxyPort", &NUMBER),
    opt("socksProxyPort", &NUMBER),
]);

/// `xl`: hooks, one list per event (the events of `VL`)
static HOOKS: Type = obj(&[
    opt("PreToolUse", &HOOK_LIST),
    opt("PostToolUse", &HOOK_LIST),
    opt("Notification", &HOOK_LIST),
    opt("UserPromptSubmit", &HOOK_LIST),
    opt("Stop", &HOOK_LIST),
    opt("SubagentStop", &HOOK_LIST),
    opt("PreCompact", &HOOK_LIST),
    opt("SessionStart", &HOOK_LIST),
    opt("SessionEnd", &HOOK_LIST),
    opt("hooksDisabled", &BOOL),
    opt("showHookOutput", &BOOL),
]);
static HOOK_LIST: Type = array(&HOOK_MATCHER);
static HOOK_MATCHER: Type = obj(&[
    opt("matcher", &STRING),
    opt("commandRegex", &STRING),
    req("hooks", &HOOK_COMMANDS),
]);
static HOOK_COMMANDS: Type = array(&HOOK_COMMAND);
static HOOK_COMMAND: Type = obj(&[
    req("type", &Type::Literal("command")),
    req("command", &STRING),
    opt("timeout", &NUMBER),
    opt("preserveRiskLevel", &BOOL),
]);

/// `vl`: persona roles
const PERSONAS: &[&str] = &[
    "engineering",
    "product",
    "finance",
    "marketing",
    "sales",
    "operations",
    "design",
    "founder",
    "something-else",
];
/// `dB`: connectors a persona may be given
#[rustfmt::skip]
const CONNECTORS: &[&str] = &[
    "airtable", "amazon_s3", "amplitude", "apollo", "asana", "ashby", "axiom", "axiom_co",
    "axiom_mcp_server", "bitly", "calendly", "clay", "clickup", "cloudflare", "coda", "confluence",
    "contentful", "databricks", "datadog", "doordash", "dropbox", "dynamics365", "exa", "figma",
    "firecrawl", "fireflies", "github", "gitlab", "gmail", "gong", "google_calendar",
    "google_docs", "google_drive", "google_maps", "google_sheets", "google_slides", "grafana",
    "granola", "greenhouse", "hex", "hubspot", "jira", "jira_service_management", "linear",
    "looker", "metabase", "microsoft_teams", "microsoft_teams_gcc", "monday", "notion", "onedrive",
    "onedrive_gcc", "onenote", "oracle_hcm", "oracle_sales_cloud", "oracle_scm", "okta", "oura",
    "outlook", "pagerduty", "paypal", "posthog", "pubmed", "pylon", "render", "rootly",
    "salesforce", "sendgrid", "sentry", "servicenow", "sharepoint", "sharepoint_gcc", "shopify",
    "slack", "snowflake", "spotify", "statsig", "statsig_mcp", "stripe", "supabase", "teamwork",
    "trello", "vercel", "whoop", "wordpress", "workday", "x", "zendesk", "zendesk_sell", "zoom",
];
static PERSONA_SETTINGS: Type = Type::Object(Obj {
    fields: &[
        opt("enabledRoles", &ENABLED_ROLES),
        opt("personaConnectors", &PERSONA_CONNECTORS),
        opt("personaPlugins", &PERSONA_PLUGINS),
    ],
    strict: false,
    refine: Some(refine_personas),
});
static PERSONA: Type = native(PERSONAS);
static ENABLED_ROLES: Type = Type::Array(Arr {
    item: &PERSONA,
    min: Some((1, Some("At least one persona must be enabled"))),
    max: Some(PERSONAS.len()),
    unique: Some("Persona roles must be unique"),
});
static PERSONA_CONNECTORS: Type = Type::Record {
    keys: Some(PERSONAS),
    value: &CONNECTOR_LIST,
};
static CONNECTOR_LIST: Type = Type::Array(Arr {
    item: &Type::Enum {
        values: CONNECTORS,
        native: false,
    },
    min: Some((1, None)),
    max: Some(20),
    unique: Some("Persona connectors must be unique"),
});
static PERSONA_PLUGINS: Type = Type::Record {
    keys: Some(PERSONAS),
    value: &PLUGIN_LIST,
};
static PLUGIN_LIST: Type = Type::Array(Arr {
    item: &PLUGIN_ID,
    min: Some((1, None)),
    max: Some(20),
    unique: Some("Persona plugins must be unique"),
});
static PLUGIN_ID: Type = string(
    true,
    None,
    None,
    Some(Rule {
        test: plugin_at_marketplace,
        message: "Expected a plugin id in \"plugin-name@marketplace\" format",
    }),
);

static RETENTION_DAYS: Type = int(false, Some(14.0), Some(365.0));
static ROUTER_GUIDANCE: Type = string(false, None, Some(2000), None);
static ROUTER_RULES: Type = Type::Array(Arr {
    item: &ROUTER_RULE,
    min: None,
    max: Some(20),
    unique: None,
});
static ROUTER_RULE: Type = obj(&[
    opt("when", &string(false, None, Some(300), None)),
    req("guidance", &string(false, None, Some(600), None)),
]);

static TELEMETRY: Type = obj(&[
    opt("enabled", &BOOL),
    opt("logMessageContent", &BOOL),
    opt(
        "granularity",
        &Type::Enum {
            values: &["user", "aggregate"],
            native: false,
        },
    ),
    opt(
        "format",
        &Type::Enum {
            values: &["legacy", "genai"],
            native: false,
        },
    ),
    opt("endpoint", &TELEMETRY_ENDPOINT),
    opt("headers", &STRING_MAP),
    opt(
        "metricExportIntervalMs",
        &int(true, None, Some(2_147_483_647.0)),
    ),
]);
static TELEMETRY_ENDPOINT: Type = string(
    false,
    None,
    None,
    Some(Rule {
        test: telemetry_endpoint,
        message: "Must be an http(s) URL with no query or fragment, or a ${VAR} reference, with no unresolvable references",
    }),
);

/// `$i`: the org document (`ae`, extended with `permissionRules` and the keys of `dt`)
static TOP: Type = obj(TOP_FIELDS);
static TOP_FIELDS: &[Field] = &[
    opt("sessionDefaultSettings", &SESSION_DEFAULTS),
    opt("missionOrchestratorModel", &STRING),
    opt("missionOrchestratorReasoningEffort", &EFFORT),
    opt("missionModelSettings", &MISSION_MODELS),
    opt("maxAutonomyLevel", &AUTONOMY_LEVEL),
    opt("subagentAutonomyLevel", &SUBAGENT_AUTONOMY),
    opt("subagentModelSettings", &SUBAGENT_MODELS),
    opt("mcpAutonomyOverrides", &MCP_AUTONOMY),
    opt("mcpAutonomyUrlOverrides", &MCP_URL_AUTONOMY),
    opt("builtInToolAutonomyOverrides", &TOOL_LEVELS),
    opt("cloudSessionSync", &BOOL),
    opt("voiceDictationEnabled", &BOOL),
    opt("routedModelVisibilityEnabled", &BOOL),
    opt("imageGenerationEnabled", &BOOL),
    opt("webSearchDisabled", &BOOL),
    opt("wikiCloudSync", &BOOL),
    opt("advancedAnalyticsEnabled", &BOOL),
    opt("cycleTimeBoundaries", &CYCLE_TIME),
    opt("includeCoAuthoredByDroid", &BOOL),
    opt("enableDroidShield", &BOOL),
    opt("enableOneHourAnthropicCaching", &BOOL),
    opt("droidShield20OptIn", &BOOL),
    opt("ideAutoConnect", &BOOL),
    opt("outputStyle", &OUTPUT_STYLE),
    opt("commandAllowlist", &STRINGS),
    opt("commandDenylist", &STRINGS),
    opt("commandBlocklist", &STRINGS),
    opt("customModels", &CUSTOM_MODELS),
    opt("modelPolicy", &MODEL_POLICY),
    opt("mcpPolicy", &MCP_POLICY),
    opt("missionPolicy", &MISSION_POLICY),
    opt("userModelPolicies", &record(&USER_MODEL_POLICY)),
    opt("enabledPlugins", &record(&BOOL)),
    opt("strictEnabledPlugins", &BOOL),
    opt("disabledSkills", &STRINGS),
    opt("extraKnownMarketplaces", &KNOWN_MARKETPLACES),
    opt("strictKnownMarketplaces", &STRICT_MARKETPLACES),
    opt("networkPolicy", &NETWORK_POLICY),
    opt("sandbox", &SANDBOX),
    opt("allowManagedHooksOnly", &BOOL),
    opt("hooks", &HOOKS),
    opt("restrictMemberVisibility", &BOOL),
    opt("restrictApiKeyCreationToManagers", &BOOL),
    opt("localComputersEnabled", &BOOL),
    opt("managedComputersEnabled", &BOOL),
    opt("managedComputersAllowedEmails", &array(&TRIMMED)),
    opt("byomComputersEnabled", &BOOL),
    opt("byomComputersAllowedEmails", &array(&TRIMMED)),
    opt("disableAutoUpdate", &BOOL),
    opt("personaSettings", &PERSONA_SETTINGS),
    opt("sessionRetentionDays", &RETENTION_DAYS),
    opt("factoryRouterGuidance", &ROUTER_GUIDANCE),
    opt("factoryRouterRules", &ROUTER_RULES),
    opt("disableWeeklyUsageSummary", &BOOL),
    opt("env", &STRING_MAP),
    opt("telemetry", &TELEMETRY),
    // D = ae.extend: Droid accepts any value here (its rule schema is not applied to the org)
    opt("permissionRules", &ANY),
    // dt = D.extend
    opt("chatWarningDescription", &STRING),
    opt("allowBackgroundProcesses", &ANY),
    opt("usageCapAlertsEnabled", &ANY),
    opt("localSignalsOptIn", &ANY),
    opt("localSignalsBackfillOptIn", &ANY),
    opt("localSignalsBackfillFromDate", &ANY),
    opt("advancedAnalyticsConsentVersion", &ANY),
];

// ---------------------------------------------------------------------------------------------
// The walker: zod 3's parse, reduced to the issues it reports

/// How a node parsed, as zod tracks it: a type error aborts the enclosing object (its
/// refinement does not run), a failed check only dirties it
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Valid,
    Dirty,
    Aborted,
}

#[derive(Default)]
struct Walk {
    errors: Vec<SchemaError>,
    dropped: Vec<DroppedModelId>,
}

impl Walk {
    fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(SchemaError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// An issue that aborts (a wrong type, an enum miss)
    fn abort(&mut self, path: &str, message: impl Into<String>) -> Status {
        self.issue(path, message);
        Status::Aborted
    }
}

fn walk(doc: &Value) -> Walk {
    let mut w = Walk::default();
    check(&TOP, doc, "", &mut w);
    w
}

/// `path` + `/key`, escaped as a JSON pointer
fn child(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn check(ty: &Type, v: &Value, path: &str, w: &mut Walk) -> Status {
    match ty {
        Type::Any => Status::Valid,
        Type::Bool if v.is_boolean() => Status::Valid,
        Type::Bool => w.abort(path, expected("boolean", v)),
        Type::Str(s) => check_str(s, v, path, w),
        Type::Num(n) => check_num(n, v, path, w),
        Type::Enum { values, native } => check_enum(values, *native, v, path, w),
        Type::Literal(lit) if v.as_str() == Some(lit) => Status::Valid,
        Type::Literal(lit) => w.abort(path, format!("Invalid literal value, expected \"{lit}\"")),
        Type::Array(a) => check_array(a, v, path, w),
        Type::ModelIds => check_model_ids(v, path, w),
        Type::Record { keys, value } => check_record(*keys, value, v, path, w),
        Type::Object(o) => check_object(o, v, path, w),
        Type::Tagged { tag, options } => check_tagged(tag, options, v, path, w),
        Type::BuiltinModelId => check_builtin_model(v, path, w),
    }
}

/// zod's name for the JSON type of `v`
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("Expected {what}, received {}", type_name(v))
}

fn check_str(s: &Str, v: &Value, path: &str, w: &mut Walk) -> Status {
    let Some(raw) = v.as_str() else {
        return w.abort(path, expected("string", v));
    };
    let text = match (s.pre, s.trim) {
        (Some(pre), _) => pre(raw),
        (None, true) => js_trim(raw).to_string(),
        (None, false) => raw.to_string(),
    };
    let len = text.encode_utf16().count();
    let mut st = Status::Valid;
    if let Some(min) = s.min.filter(|m| len < *m) {
        w.issue(
            path,
            format!("String must contain at least {min} character(s)"),
        );
        st = Status::Dirty;
    }
    if let Some(max) = s.max.filter(|m| len > *m) {
        w.issue(
            path,
            format!("String must contain at most {max} character(s)"),
        );
        st = Status::Dirty;
    }
    if let Some(rule) = s.rule.as_ref().filter(|r| !(r.test)(&text)) {
        w.issue(path, rule.message);
        st = Status::Dirty;
    }
    st
}

fn check_num(n: &Num, v: &Value, path: &str, w: &mut Walk) -> Status {
    let Some(x) = v.as_f64() else {
        return w.abort(path, expected("number", v));
    };
    let failures = [
        (n.int && x.fract() != 0.0).then(|| "Expected integer, received float".to_string()),
        (n.positive && x <= 0.0).then(|| "Number must be greater than 0".to_string()),
        n.min
            .filter(|m| x < *m)
            .map(|m| format!("Number must be greater than or equal to {m}")),
        n.max
            .filter(|m| x > *m)
            .map(|m| format!("Number must be less than or equal to {m}")),
    ];
    let mut st = Status::Valid;
    for message in failures.into_iter().flatten() {
        w.issue(path, message);
        st = Status::Dirty;
    }
    st
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn check_enum(values: &[&str], native: bool, v: &Value, path: &str, w: &mut Walk) -> Status {
    let received = match v {
        Value::String(s) if values.contains(&s.as_str()) => return Status::Valid,
        Value::String(s) => s.clone(),
        Value::Number(n) if native => n.to_string(),
        _ => return w.abort(path, expected(&quoted(values), v)),
    };
    let list = quoted(values);
    w.abort(
        path,
        format!("Invalid enum value. Expected {list}, received '{received}'"),
    )
}

fn check_array(a: &Arr, v: &Value, path: &str, w: &mut Walk) -> Status {
    let Some(items) = v.as_array() else {
        return w.abort(path, expected("array", v));
    };
    let mut st = Status::Valid;
    if let Some((min, message)) = a.min.filter(|(m, _)| items.len() < *m) {
        let default = format!("Array must contain at least {min} element(s)");
        w.issue(path, message.map_or(default, str::to_string));
        st = Status::Dirty;
    }
    if let Some(max) = a.max.filter(|m| items.len() > *m) {
        w.issue(path, format!("Array must contain at most {max} element(s)"));
        st = Status::Dirty;
    }
    for (i, item) in items.iter().enumerate() {
        st = st.max(check(a.item, item, &child(path, &i.to_string()), w));
    }
    if let Some(message) = a.unique.filter(|_| st != Status::Aborted) {
        let seen: Vec<&str> = items
            .iter()
            .filter_map(Value::as_str)
            .map(js_trim)
            .collect();
        let distinct: std::collections::BTreeSet<&str> = seen.iter().copied().collect();
        if distinct.len() != seen.len() {
            w.issue(path, message);
            st = Status::Dirty;
        }
    }
    st
}

/// An id list: strings, each kept only when Droid knows the id (the rest noted as dropped)
fn check_model_ids(v: &Value, path: &str, w: &mut Walk) -> Status {
    let st = check(&STRINGS, v, path, w);
    let ids = v.as_array().into_iter().flatten().enumerate();
    for (i, id) in ids.filter_map(|(i, id)| Some((i, id.as_str()?))) {
        if !known_model_id(id) {
            w.dropped.push(DroppedModelId {
                path: child(path, &i.to_string()),
                id: id.to_string(),
            });
        }
    }
    st
}

fn check_record(
    keys: Option<&[&str]>,
    value: &Type,
    v: &Value,
    path: &str,
    w: &mut Walk,
) -> Status {
    let Some(map) = v.as_object() else {
        return w.abort(path, expected("object", v));
    };
    let mut st = Status::Valid;
    for (k, x) in map {
        let at = child(path, k);
        if let Some(keys) = keys {
            st = st.max(check_enum(keys, true, &Value::String(k.clone()), &at, w));
        }
        st = st.max(check(value, x, &at, w));
    }
    st
}

fn check_object(o: &Obj, v: &Value, path: &str, w: &mut Walk) -> Status {
    let Some(map) = v.as_object() else {
        return w.abort(path, expected("object", v));
    };
    let mut st = Status::Valid;
    for f in o.fields {
        let at = child(path, f.name);
        st = st.max(match map.get(f.name) {
            Some(x) => check(f.ty, x, &at, w),
            None if f.required => w.abort(&at, "Required"),
            None => Status::Valid,
        });
    }
    if o.strict {
        st = st.max(check_unknown_keys(o.fields, map, path, w));
    }
    if let Some(refine) = o.refine.filter(|_| st != Status::Aborted)
        && refine(map, path, w)
    {
        st = st.max(Status::Dirty);
    }
    st
}

/// `.strict()`: one issue naming every key the object does not declare
fn check_unknown_keys(
    fields: &[Field],
    map: &Map<String, Value>,
    path: &str,
    w: &mut Walk,
) -> Status {
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == *k))
        .map(|k| format!("'{k}'"))
        .collect();
    if unknown.is_empty() {
        return Status::Valid;
    }
    w.issue(
        path,
        format!("Unrecognized key(s) in object: {}", unknown.join(", ")),
    );
    Status::Dirty
}

fn check_tagged(
    tag: &str,
    options: &[(&str, &'static Type)],
    v: &Value,
    path: &str,
    w: &mut Walk,
) -> Status {
    let Some(map) = v.as_object() else {
        return w.abort(path, expected("object", v));
    };
    let chosen = map
        .get(tag)
        .and_then(Value::as_str)
        .and_then(|t| options.iter().find(|(name, _)| *name == t));
    match chosen {
        Some((_, ty)) => check(ty, v, path, w),
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            let message = format!("Invalid discriminator value. Expected {}", quoted(&names));
            w.abort(&child(path, tag), message)
        }
    }
}

fn check_builtin_model(v: &Value, path: &str, w: &mut Walk) -> Status {
    match v.as_str() {
        Some(id) if known_model_id(id) && id != "auto" && id != "auto-fast" => Status::Valid,
        _ => w.abort(path, "Must be a supported built-in model ID."),
    }
}

// ---------------------------------------------------------------------------------------------
// Refinements of whole objects

/// customModels[] (`qt.superRefine`): bearer auth needs an HTTP anthropic model;
/// bedrock-converse needs `bedrock`; `bedrock` needs a provider that can use it; otherwise a
/// non-empty `baseUrl`
fn refine_custom_model(m: &Map<String, Value>, path: &str, w: &mut Walk) -> bool {
    let provider = m
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bedrock = m.contains_key("bedrock");
    let before = w.errors.len();
    if m.get("authMode").and_then(Value::as_str) == Some("bearer")
        && (provider != "anthropic" || bedrock)
    {
        let message = "bearer authentication requires an HTTP provider \"anthropic\" model";
        w.issue(&child(path, "authMode"), message);
    }
    if provider == "bedrock-converse" && !bedrock {
        let message = "bedrock-converse custom models require a bedrock configuration block";
        w.issue(&child(path, "bedrock"), message);
    } else if bedrock {
        if !["anthropic", "bedrock-converse", "openai"].contains(&provider) {
            let message = "bedrock custom models require provider \"anthropic\", \"bedrock-converse\", or \"openai\"";
            w.issue(&child(path, "provider"), message);
        }
    } else if m
        .get("baseUrl")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        let message = "baseUrl is required unless bedrock is configured";
        w.issue(&child(path, "baseUrl"), message);
    }
    w.errors.len() > before
}

/// cycleTimeBoundaries.*.* (`ee.superRefine`): status ids unique within the start list and
/// within the end list, and no id in both
fn refine_cycle_statuses(m: &Map<String, Value>, path: &str, w: &mut Walk) -> bool {
    let ids = |key: &str| -> Vec<String> {
        let list = m.get(key).and_then(Value::as_array);
        let id = |s: &Value| {
            s.get("id")
                .and_then(Value::as_str)
                .map(|i| js_trim(i).to_string())
        };
        list.into_iter()
            .flatten()
            .map(|s| id(s).unwrap_or_default())
            .collect()
    };
    let (start, end) = (ids("startStatuses"), ids("endStatuses"));
    let before = w.errors.len();
    let at = |list: &str, i: usize| child(&child(&child(path, list), &i.to_string()), "id");
    for (i, id) in start.iter().enumerate() {
        if start[..i].contains(id) {
            w.issue(
                &at("startStatuses", i),
                "Cycle-time start status ids must be unique",
            );
        }
    }
    for (i, id) in end.iter().enumerate() {
        if end[..i].contains(id) {
            w.issue(
                &at("endStatuses", i),
                "Cycle-time end status ids must be unique",
            );
        }
        if start.contains(id) {
            let message = "A status cannot be both a cycle-time start and end";
            w.issue(&at("endStatuses", i), message);
        }
    }
    w.errors.len() > before
}

/// personaSettings (`Je.refine`): at least one of its three keys
fn refine_personas(m: &Map<String, Value>, path: &str, w: &mut Walk) -> bool {
    let keys = ["enabledRoles", "personaConnectors", "personaPlugins"];
    if keys.iter().any(|k| m.contains_key(*k)) {
        return false;
    }
    let message = "personaSettings must set enabledRoles, personaConnectors, or personaPlugins";
    w.issue(path, message);
    true
}

// ---------------------------------------------------------------------------------------------
// String rules, each the JavaScript one it replaces

/// `String.prototype.trim`: Unicode white space plus the byte-order mark
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// Output style ids: no C0 or C1 control character, no DEL
fn no_control_chars(s: &str) -> bool {
    s.chars().all(|c| {
        let cp = u32::from(c);
        cp > 31 && !(127..=159).contains(&cp)
    })
}

/// `name@marketplace`: an `@` after the first character, with something after it
fn plugin_at_marketplace(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next();
    chars
        .as_str()
        .find('@')
        .is_some_and(|i| !chars.as_str()[i + 1..].is_empty())
}

fn full_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn owner_slash_repo(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    s.split_once('/').is_some_and(|(o, r)| part(o) && part(r))
}

/// Droid's preprocessing of a GitHub `repo`: trimmed, trailing slashes dropped, a GitHub URL
/// (`https://github.com/o/r`, `git@github.com:o/r`, …) reduced to `o/r`, a final `.git` dropped
fn github_repo(s: &str) -> String {
    let t = js_trim(s).trim_end_matches('/');
    let short = github_url_parts(t).unwrap_or_else(|| t.to_string());
    match short.len().checked_sub(4) {
        Some(cut) if short.is_char_boundary(cut) && short[cut..].eq_ignore_ascii_case(".git") => {
            short[..cut].to_string()
        }
        _ => short,
    }
}

/// `/^(?:(?:git\+)?(?:https?|git|ssh):\/\/)?(?:[^@/]+@)?github\.com[:/]([^/]+)\/([^/]+)/i`
fn github_url_parts(t: &str) -> Option<String> {
    let lower = t.to_ascii_lowercase();
    let schemes = ["git+https://", "git+http://", "git+git://", "git+ssh://"];
    let schemes = schemes
        .iter()
        .chain(&["https://", "http://", "git://", "ssh://"]);
    let after_scheme = schemes
        .filter(|p| lower.starts_with(*p))
        .map(|p| p.len())
        .chain([0]);
    after_scheme
        .flat_map(|start| {
            let rest = &t[start..];
            let user = rest
                .find('@')
                .filter(|&i| i > 0 && !rest[..i].contains('/'));
            user.map(|i| i + 1)
                .into_iter()
                .chain([0])
                .map(move |u| start + u)
        })
        .find_map(|at| github_host_path(&t[at..]))
}

/// `github\.com[:/]([^/]+)\/([^/]+)` at the start of `s`
fn github_host_path(s: &str) -> Option<String> {
    let host = s
        .get(..10)
        .filter(|h| h.eq_ignore_ascii_case("github.com"))?;
    let rest = s[host.len()..].strip_prefix([':', '/'])?;
    let (owner, tail) = rest.split_once('/')?;
    let repo = tail.split('/').next().unwrap_or_default();
    (!owner.is_empty() && !repo.is_empty()).then(|| format!("{owner}/{repo}"))
}

/// Droid's preprocessing of a git-subdir `path`: trimmed, trailing separators dropped (unless
/// nothing would be left)
fn trim_trailing_separators(s: &str) -> String {
    let t = js_trim(s);
    let o = t.trim_end_matches(['/', '\\']);
    if o.is_empty() { t } else { o }.to_string()
}

/// `""`, `.`, or a relative path with no empty, `.` or `..` segment
fn relative_subdir(s: &str) -> bool {
    if s.is_empty() || s == "." {
        return true;
    }
    let b = s.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    let absolute = matches!(b.get(usize::from(drive) * 2), Some(b'/' | b'\\'));
    !absolute
        && !s
            .split(['/', '\\'])
            .any(|p| p.is_empty() || p == "." || p == "..")
}

/// `^\$\{[A-Za-z_][A-Za-z0-9_]*\}`: the length of a `${VAR}` at the start of `s`
fn var_ref_len(s: &str) -> Option<usize> {
    let name = s.strip_prefix("${")?;
    let end = name.find('}')?;
    let n = &name.as_bytes()[..end];
    let ok = !n.is_empty()
        && (n[0].is_ascii_alphabetic() || n[0] == b'_')
        && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    ok.then_some(end + 3)
}

/// `s` with each `${VAR}` replaced by `1`, as the telemetry endpoint check does
fn replace_var_refs(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match var_ref_len(&rest[i..]) {
            Some(n) => {
                out.push('1');
                rest = &rest[i + n..];
            }
            None => {
                out.push_str("${");
                rest = &rest[i + 2..];
            }
        }
    }
    out + rest
}

/// A reference left unresolved: `${` or `$` followed by a letter or `_`
fn has_unresolved_ref(s: &str) -> bool {
    s.contains("${")
        || s.as_bytes()
            .windows(2)
            .any(|p| p[0] == b'$' && (p[1].is_ascii_alphabetic() || p[1] == b'_'))
}

/// telemetry.endpoint: a bare `${VAR}`, or an http(s) URL (after `${VAR}` → `1`) without query,
/// fragment or any other `$` reference, to which `/v1/metrics` can be appended
fn telemetry_endpoint(s: &str) -> bool {
    if var_ref_len(s) == Some(s.len()) {
        return true;
    }
    let t = replace_var_refs(s);
    if has_unresolved_ref(&t) || t.contains(['?', '#']) {
        return false;
    }
    let Ok(url) = url::Url::parse(&t) else {
        return false;
    };
    let metrics = format!("{}/v1/metrics", t.trim_end_matches('/'));
    ["http", "https"].contains(&url.scheme()) && url::Url::parse(&metrics).is_ok()
}

/// bedrock.bedrockBaseUrl: `z.string().url()` or a string containing a `${VAR}`
fn url_or_var(s: &str) -> bool {
    url::Url::parse(s).is_ok()
        || s.match_indices("${")
            .any(|(i, _)| var_ref_len(&s[i..]).is_some())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The pointers of every error, in order
    fn paths(doc: Value) -> Vec<String> {
        validate(&doc).into_iter().map(|e| e.path).collect()
    }

    /// A document using every key of the org schema, each with a valid value (the differential
    /// test in `crates/cli/tests/droid_schema.rs` has Droid accept it too)
    const FULL: &str = include_str!("../../../../tests/droid/org-schema-full.json");

    fn full() -> Value {
        serde_json::from_str(FULL).unwrap()
    }

    #[test]
    fn the_full_document_is_valid() {
        assert_eq!(validate(&full()), vec![]);
        assert_eq!(validate(&json!({})), vec![]);
    }

    #[test]
    fn a_bad_enum_value_is_an_error_with_its_pointer() {
        let errors = validate(&json!({"maxAutonomyLevel": "auto-medium"}));
        assert_eq!(
            errors,
            vec![SchemaError {
                path: "/maxAutonomyLevel".into(),
                message: "Invalid enum value. Expected 'off' | 'low' | 'medium' | 'high', received 'auto-medium'".into(),
            }]
        );
        let doc = json!({"sessionDefaultSettings": {"autonomyLevel": "auto-high", "autonomyMode": "high"}});
        assert_eq!(
            paths(doc),
            [
                "/sessionDefaultSettings/autonomyLevel",
                "/sessionDefaultSettings/autonomyMode"
            ]
        );
        assert_eq!(
            paths(json!({"builtInToolAutonomyOverrides": {"Execute": "off"}})),
            ["/builtInToolAutonomyOverrides/Execute"]
        );
        assert_eq!(
            paths(
                json!({"hooks": {"PreToolUse": [{"hooks": [{"type": "shell", "command": "x"}]}]}})
            ),
            ["/hooks/PreToolUse/0/hooks/0/type"]
        );
    }

    #[test]
    fn a_wrong_type_is_an_error_and_null_is_not_absent() {
        let e = validate(&json!({"modelPolicy": {"allowedModelIds": ["glm-5", 3]}}));
        assert_eq!(e[0].path, "/modelPolicy/allowedModelIds/1");
        assert_eq!(e[0].message, "Expected string, received number");
        assert_eq!(
            paths(json!({"cloudSessionSync": null})),
            ["/cloudSessionSync"]
        );
        assert_eq!(
            paths(json!({"mcpPolicy": {"enabled": "yes"}})),
            ["/mcpPolicy/enabled"]
        );
        assert_eq!(paths(json!({"env": {"a/b~": 1}})), ["/env/a~1b~0"]);
        assert_eq!(paths(json!([])), [""]);
    }

    #[test]
    fn numbers_out_of_range_or_not_integers_are_errors() {
        assert_eq!(
            paths(json!({"sessionRetentionDays": 13})),
            ["/sessionRetentionDays"]
        );
        assert_eq!(
            paths(json!({"sessionRetentionDays": 366})),
            ["/sessionRetentionDays"]
        );
        assert_eq!(
            paths(json!({"sessionRetentionDays": 365.0})),
            Vec::<String>::new()
        );
        let e = validate(&json!({"sessionRetentionDays": 3.5}));
        let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Expected integer, received float",
                "Number must be greater than or equal to 14"
            ]
        );
        assert_eq!(
            paths(json!({"telemetry": {"metricExportIntervalMs": 0}})),
            ["/telemetry/metricExportIntervalMs"]
        );
        assert_eq!(
            paths(json!({"factoryRouterGuidance": "x".repeat(2001)})),
            ["/factoryRouterGuidance"]
        );
    }

    #[test]
    fn required_fields_are_errors_when_missing() {
        assert_eq!(
            paths(json!({"hooks": {"Stop": [{"matcher": "x"}]}})),
            ["/hooks/Stop/0/hooks"]
        );
        assert_eq!(
            paths(json!({"mcpAutonomyUrlOverrides": [{"urlPattern": " "}]})),
            [
                "/mcpAutonomyUrlOverrides/0/urlPattern",
                "/mcpAutonomyUrlOverrides/0/defaultLevel"
            ]
        );
        assert_eq!(
            paths(json!({"userModelPolicies": {"u": {"allowedModelIds": []}}})),
            ["/userModelPolicies/u/blockedModelIds"]
        );
        assert_eq!(
            paths(json!({"networkPolicy": {"allowedIps": []}})),
            ["/networkPolicy/allowedIps"]
        );
    }

    #[test]
    fn unknown_keys_are_stripped_at_every_level_of_the_org_schema() {
        let doc = json!({"mcpServers": {}, "modelPolicy": {"allowModels": true},
            "hooks": {"PreTool": []}, "telemetry": {"protocol": "grpc"}});
        assert_eq!(validate(&doc), vec![]);
        assert_eq!(ignored_keys(&doc), ["mcpServers"]);
        let discarded = json!({"allowBackgroundProcesses": 1, "chatWarningDescription": "x"});
        assert_eq!(ignored_keys(&discarded), ["allowBackgroundProcesses"]);
    }

    #[test]
    fn a_strict_object_rejects_unknown_keys() {
        static STRICT: Type = Type::Object(Obj {
            fields: &[opt("a", &BOOL)],
            strict: true,
            refine: None,
        });
        let mut w = Walk::default();
        assert_eq!(
            check(&STRICT, &json!({"a": true, "b": 1, "c": 2}), "/x", &mut w),
            Status::Dirty
        );
        assert_eq!(
            w.errors,
            vec![SchemaError {
                path: "/x".into(),
                message: "Unrecognized key(s) in object: 'b', 'c'".into()
            }]
        );
    }

    #[test]
    fn custom_models_need_a_base_url_unless_bedrock_and_a_valid_type_first() {
        assert_eq!(
            paths(json!({"customModels": [{"model": "m", "provider": "openai"}]})),
            ["/customModels/0/baseUrl"]
        );
        // a type error aborts the entry: its refinement does not run
        assert_eq!(
            paths(json!({"customModels": [{"model": "m", "provider": "azure"}]})),
            ["/customModels/0/provider"]
        );
        let bearer = json!({"customModels": [{"model": "m", "provider": "openai", "baseUrl": "u", "authMode": "bearer"}]});
        assert_eq!(paths(bearer), ["/customModels/0/authMode"]);
        let bedrock =
            json!({"customModels": [{"model": "m", "provider": "google", "bedrock": {}}]});
        assert_eq!(paths(bedrock), ["/customModels/0/provider"]);
        assert_eq!(
            paths(
                json!({"customModels": [{"model": "m", "provider": "bedrock-converse", "baseUrl": "u"}]})
            ),
            ["/customModels/0/bedrock"]
        );
        assert_eq!(
            paths(
                json!({"customModels": [{"model": "m", "provider": "openai", "baseUrl": "u", "baseModelId": "auto"}]})
            ),
            ["/customModels/0/baseModelId"]
        );
    }

    #[test]
    fn strings_checked_by_rules() {
        let endpoint = |e: &str| paths(json!({"telemetry": {"endpoint": e}})).is_empty();
        assert!(endpoint("${OTEL_ENDPOINT}"));
        assert!(endpoint("https://otel.acme.dev/${X}/"));
        assert!(!endpoint("https://otel.acme.dev/?a=1"));
        assert!(!endpoint("ftp://otel.acme.dev"));
        assert!(!endpoint("https://otel.acme.dev/$HOME"));
        assert!(!endpoint("otel.acme.dev"));
        let repo = |r: &str| {
            paths(json!({"strictKnownMarketplaces": [{"source": "github", "repo": r}]})).is_empty()
        };
        assert!(repo("acme/plugins"));
        assert!(repo("git@github.com:acme/plugins.git"));
        assert!(repo(" https://github.com/acme/plugins/tree/main "));
        assert!(!repo("https://gitlab.com/acme/plugins"));
        assert!(!repo("acme"));
        let subdir = |p: &str| {
            paths(json!({"strictKnownMarketplaces": [{"source": "git-subdir", "url": "u", "path": p}]})).is_empty()
        };
        assert!(subdir("plugins/acme/") && subdir(".") && subdir(""));
        assert!(!subdir("../x") && !subdir("/abs") && !subdir("C:\\x") && !subdir("a//b"));
        assert_eq!(paths(json!({"outputStyle": "a\u{7}b"})), ["/outputStyle"]);
        assert_eq!(
            paths(json!({"strictKnownMarketplaces": [{"source": "npm"}]})),
            ["/strictKnownMarketplaces/0/source"]
        );
    }

    #[test]
    fn object_refinements_report_under_their_paths() {
        assert_eq!(paths(json!({"personaSettings": {}})), ["/personaSettings"]);
        let dup = json!({"personaSettings": {"enabledRoles": ["sales", "sales"], "personaPlugins": {"sales": ["nope"], "ceo": ["a@b"]}}});
        assert_eq!(
            paths(dup),
            [
                "/personaSettings/enabledRoles",
                "/personaSettings/personaPlugins/sales/0",
                "/personaSettings/personaPlugins/ceo"
            ]
        );
        let statuses = json!({"cycleTimeBoundaries": {"jira": {"b": {
            "startStatuses": [{"id": "a", "name": "A"}, {"id": " a ", "name": "A2"}],
            "endStatuses": [{"id": "a", "name": "Done"}]}}}});
        assert_eq!(
            paths(statuses),
            [
                "/cycleTimeBoundaries/jira/b/startStatuses/1/id",
                "/cycleTimeBoundaries/jira/b/endStatuses/0/id"
            ]
        );
    }

    #[test]
    fn model_ids_outside_the_catalogue_are_dropped_not_errors() {
        assert!(known_model_id("claude-sonnet-4-5-20250929"));
        assert!(!known_model_id("claude-sonnet-4-5"));
        assert!(!known_model_id(""));
        let doc = json!({"modelPolicy": {"blockedModelIds": ["claude-*", "glm-5", "custom:X-0"]}});
        assert_eq!(validate(&doc), vec![]);
        let dropped: Vec<String> = dropped_model_ids(&doc)
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(
            dropped,
            [
                "/modelPolicy/blockedModelIds/0",
                "/modelPolicy/blockedModelIds/2"
            ]
        );
    }
}
