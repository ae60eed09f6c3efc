//! `policy.json`: Strata's own strict file for what Factory's schema has no field for.

use serde::Serialize;

use crate::files::settings::{List, Provider};
use crate::json::{Doc, Reader, child};
use crate::origin::Spanned;
use crate::problem::Problems;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFile {
    /// category name → model globs
    pub model_categories: Vec<(String, List)>,
    /// absent = true
    pub projects_may_add_models: Option<Spanned<bool>>,
    /// absent = false: projects and folders may add exact ids only
    pub projects_may_add_model_patterns: Option<Spanned<bool>>,
    pub byok_allowed_providers: Option<Spanned<Vec<Spanned<Provider>>>>,
    pub byok_allowed_base_urls: Option<List>,
    pub mcp_blocklist: Option<List>,
    /// `mcpExecEnv: "deny"`: deny stdio servers defined below the org whose `env` changes what
    /// runs (`"warn"`, the default: a warning at compile time only)
    pub mcp_exec_env_deny: Option<Spanned<bool>>,
    pub gateway_required_base_urls: Option<List>,
    /// `droid.requireOrgSettings`: model requests only from clients that loaded Droid's org
    /// level from this gateway
    pub require_org_settings: Option<Spanned<bool>>,
}

const TOP: &[&str] = &[
    "$schema",
    "version",
    "modelCategories",
    "projectsMayAddModels",
    "projectsMayAddModelPatterns",
    "byok",
    "mcpBlocklist",
    "mcpExecEnv",
    "gateway",
    "droid",
];

impl PolicyFile {
    // Longer than a screen: one key of `policy.json` after another, each with its own checks and
    // messages, so that every problem in the file is reported; the keys share one reader.
    pub fn read(doc: &Doc, problems: &mut Problems) -> PolicyFile {
        let mut r = Reader::new(doc, problems);
        let mut out = PolicyFile::default();
        let Some(root) = r.root() else { return out };
        r.deny_unknown(root, "", TOP);
        if let Some(v) = r.field_u64(root, "version", "")
            && v != 1
        {
            r.error(
                "policy.version",
                "/version",
                format!("unsupported version `{v}`: this Strata reads version 1"),
            );
        }
        if let Some(cats) = r.field_object(root, "modelCategories", "") {
            for name in cats.keys() {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    r.error(
                        "policy.category_name",
                        &child("/modelCategories", name),
                        format!(
                            "category name `{name}` may hold only letters, digits, `-` and `_`"
                        ),
                    );
                    continue;
                }
                if let Some((items, p)) = r.field_strings(cats, name, "/modelCategories") {
                    let entries = items
                        .into_iter()
                        .map(|(s, p)| Spanned::new(s, doc.origin(&p)))
                        .collect();
                    out.model_categories.push((
                        name.clone(),
                        List {
                            origin: doc.origin(&p),
                            entries,
                        },
                    ));
                }
            }
        }
        out.projects_may_add_models = r
            .field_bool(root, "projectsMayAddModels", "")
            .map(|(b, p)| Spanned::new(b, doc.origin(&p)));
        out.projects_may_add_model_patterns = r
            .field_bool(root, "projectsMayAddModelPatterns", "")
            .map(|(b, p)| Spanned::new(b, doc.origin(&p)));
        if let Some(byok) = r.field_object(root, "byok", "") {
            r.deny_unknown(byok, "/byok", &["allowedProviders", "allowedBaseUrls"]);
            if let Some((items, p)) = r.field_strings(byok, "allowedProviders", "/byok") {
                let mut providers = Vec::new();
                for (s, ip) in items {
                    match Provider::parse(&s) {
                        Some(pv) => providers.push(Spanned::new(pv, doc.origin(&ip))),
                        None => r.error(
                            "policy.invalid_provider",
                            &ip,
                            Provider::invalid_message(&s),
                        ),
                    }
                }
                out.byok_allowed_providers = Some(Spanned::new(providers, doc.origin(&p)));
            }
            out.byok_allowed_base_urls = List::read(&mut r, byok, "allowedBaseUrls", "/byok");
        }
        if let Some(droid) = r.field_object(root, "droid", "") {
            r.deny_unknown(droid, "/droid", &["requireOrgSettings"]);
            out.require_org_settings = r
                .field_bool(droid, "requireOrgSettings", "/droid")
                .map(|(b, p)| Spanned::new(b, doc.origin(&p)));
        }
        out.mcp_blocklist = List::read(&mut r, root, "mcpBlocklist", "");
        out.mcp_exec_env_deny = match r.field_str(root, "mcpExecEnv", "") {
            Some(("deny", p)) => Some(Spanned::new(true, doc.origin(&p))),
            Some(("warn", p)) => Some(Spanned::new(false, doc.origin(&p))),
            Some((other, p)) => {
                r.error(
                    "policy.invalid_value",
                    &p,
                    format!("invalid value `{other}`: expected `warn` or `deny`"),
                );
                None
            }
            None => None,
        };
        if let Some(gw) = r.field_object(root, "gateway", "") {
            r.deny_unknown(gw, "/gateway", &["requiredBaseUrls"]);
            out.gateway_required_base_urls = List::read(&mut r, gw, "requiredBaseUrls", "/gateway");
        }
        out
    }
}
