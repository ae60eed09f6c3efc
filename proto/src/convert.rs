//! The one set of conversions between protobuf messages and `strata-policy`'s domain types
//! (feature `policy`).

use strata_policy::{
    Decision, Determining, Effect as PEffect, FileTree, KeyMode as PKeyMode, Level as PLevel,
    McpRef, Problems, Provider, Request, Target,
};

use crate::v1;

/// A protobuf message that does not make a valid domain value
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("the request names no target: set `model` or `mcp`")]
    MissingTarget,
    #[error("the request names no model")]
    MissingModel,
    #[error("the request names no user")]
    MissingUser,
    #[error("{0}")]
    InvalidProvider(String),
    #[error("unknown key mode `{0}`")]
    InvalidKeyMode(i32),
}

impl ConvertError {
    /// A stable code for clients and metrics
    pub fn code(&self) -> &'static str {
        match self {
            ConvertError::MissingTarget => "request.missing_target",
            ConvertError::MissingModel => "request.missing_model",
            ConvertError::MissingUser => "request.missing_user",
            ConvertError::InvalidProvider(_) => "request.invalid_provider",
            ConvertError::InvalidKeyMode(_) => "request.invalid_key_mode",
        }
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&v1::McpServerRef> for McpRef {
    fn from(r: &v1::McpServerRef) -> McpRef {
        McpRef {
            name: opt(&r.name),
            url: opt(&r.url),
            command: opt(&r.command),
            args: r.args.clone(),
        }
    }
}

impl From<&McpRef> for v1::McpServerRef {
    fn from(r: &McpRef) -> Self {
        v1::McpServerRef {
            name: r.name.clone().unwrap_or_default(),
            url: r.url.clone().unwrap_or_default(),
            command: r.command.clone().unwrap_or_default(),
            args: r.args.clone(),
        }
    }
}

/// Build a domain request from a `DecideRequest` and the principal its identity resolved to
pub fn request(
    req: &v1::DecideRequest,
    principal: &v1::Principal,
) -> Result<Request, ConvertError> {
    if principal.user.is_empty() {
        return Err(ConvertError::MissingUser);
    }
    let target = match &req.target {
        Some(v1::decide_request::Target::Model(m)) => {
            if m.model.is_empty() {
                return Err(ConvertError::MissingModel);
            }
            let provider =
                match m.provider.as_str() {
                    "" => None,
                    p => Some(Provider::parse(p).ok_or_else(|| {
                        ConvertError::InvalidProvider(Provider::invalid_message(p))
                    })?),
                };
            let key_mode = match v1::KeyMode::try_from(m.key_mode) {
                Ok(v1::KeyMode::Byok) => PKeyMode::Byok,
                Ok(_) => PKeyMode::Central,
                Err(_) => return Err(ConvertError::InvalidKeyMode(m.key_mode)),
            };
            Target::Model {
                model: m.model.clone(),
                provider,
                key_mode,
                base_url: opt(&m.base_url),
                mcp_servers: m.mcp_servers.iter().map(McpRef::from).collect(),
            }
        }
        Some(v1::decide_request::Target::Mcp(s)) => Target::Mcp { server: s.into() },
        None => return Err(ConvertError::MissingTarget),
    };
    Ok(Request {
        user: principal.user.clone(),
        groups: principal.groups.clone(),
        project: opt(&req.project),
        folder: opt(&req.folder),
        gateway: opt(&req.gateway),
        // the resolver fills it from the token the request names
        token_projects: None,
        target,
    })
}

/// The protobuf form of a domain request (what a client sends)
pub fn decide_request(req: &Request) -> v1::DecideRequest {
    let target = match &req.target {
        Target::Model {
            model,
            provider,
            key_mode,
            base_url,
            mcp_servers,
        } => v1::decide_request::Target::Model(v1::ModelTarget {
            model: model.clone(),
            provider: provider.map(|p| p.as_str().to_string()).unwrap_or_default(),
            key_mode: match key_mode {
                PKeyMode::Central => v1::KeyMode::Central as i32,
                PKeyMode::Byok => v1::KeyMode::Byok as i32,
            },
            base_url: base_url.clone().unwrap_or_default(),
            mcp_servers: mcp_servers.iter().map(v1::McpServerRef::from).collect(),
        }),
        Target::Mcp { server } => v1::decide_request::Target::Mcp(server.into()),
    };
    v1::DecideRequest {
        identity: Some(v1::decide_request::Identity::Principal(v1::Principal {
            user: req.user.clone(),
            groups: req.groups.clone(),
        })),
        project: req.project.clone().unwrap_or_default(),
        folder: req.folder.clone().unwrap_or_default(),
        gateway: req.gateway.clone().unwrap_or_default(),
        target: Some(target),
    }
}

pub fn level(l: PLevel) -> v1::Level {
    match l {
        PLevel::Org => v1::Level::Org,
        PLevel::Project => v1::Level::Project,
        PLevel::Folder => v1::Level::Folder,
        PLevel::User => v1::Level::User,
    }
}

impl From<&Determining> for v1::Rule {
    fn from(d: &Determining) -> Self {
        v1::Rule {
            rule: d.rule.clone(),
            level: level(d.level) as i32,
            file: d.file.clone().unwrap_or_default(),
            pointer: d.pointer.clone().unwrap_or_default(),
            line: d.line.unwrap_or(0),
            effect: d.effect.as_str().to_string(),
            matched: d.matched.clone().unwrap_or_default(),
            reason: d.reason.clone(),
            enforced_by: d.enforced_by.as_str().to_string(),
        }
    }
}

impl From<Determining> for v1::Rule {
    fn from(d: Determining) -> Self {
        v1::Rule {
            rule: d.rule,
            level: level(d.level) as i32,
            file: d.file.unwrap_or_default(),
            pointer: d.pointer.unwrap_or_default(),
            line: d.line.unwrap_or(0),
            effect: d.effect.as_str().to_string(),
            matched: d.matched.unwrap_or_default(),
            reason: d.reason,
            enforced_by: d.enforced_by.as_str().to_string(),
        }
    }
}

/// [`decide_response`] taking the decision: its strings move into the response, uncopied
pub fn into_decide_response(d: Decision) -> v1::DecideResponse {
    let o = d.obligations;
    v1::DecideResponse {
        effect: match d.effect {
            PEffect::Allow => v1::Effect::Allow as i32,
            PEffect::Deny => v1::Effect::Deny as i32,
        },
        determined_by: d.determined_by.into_iter().map(v1::Rule::from).collect(),
        admitted_by: d.admitted_by.into_iter().map(v1::Rule::from).collect(),
        canonical_model: d.canonical_model.unwrap_or_default(),
        reason: d.reason,
        obligations: Some(v1::Obligations {
            upstream_base_url: o.upstream_base_url.unwrap_or_default(),
            provider: o
                .provider
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            credential_env: o.credential_env.unwrap_or_default(),
            max_output_tokens: o.max_output_tokens.unwrap_or(0),
            require_org_settings: o.require_org_settings,
        }),
        revision: d.revision.to_string(),
        decision_id: String::new(),
        principal: None,
        errors: d.errors,
    }
}

/// The response for a decision; the caller adds the decision id and principal
pub fn decide_response(d: &Decision) -> v1::DecideResponse {
    let o = &d.obligations;
    v1::DecideResponse {
        effect: match d.effect {
            PEffect::Allow => v1::Effect::Allow as i32,
            PEffect::Deny => v1::Effect::Deny as i32,
        },
        determined_by: d.determined_by.iter().map(v1::Rule::from).collect(),
        admitted_by: d.admitted_by.iter().map(v1::Rule::from).collect(),
        canonical_model: d.canonical_model.clone().unwrap_or_default(),
        reason: d.reason.clone(),
        obligations: Some(v1::Obligations {
            upstream_base_url: o.upstream_base_url.clone().unwrap_or_default(),
            provider: o
                .provider
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            credential_env: o.credential_env.clone().unwrap_or_default(),
            max_output_tokens: o.max_output_tokens.unwrap_or(0),
            require_org_settings: o.require_org_settings,
        }),
        revision: d.revision.to_string(),
        decision_id: String::new(),
        principal: None,
        errors: d.errors.clone(),
    }
}

impl From<&strata_policy::Problem> for v1::Problem {
    fn from(p: &strata_policy::Problem) -> Self {
        v1::Problem {
            severity: match p.severity {
                strata_policy::Severity::Error => "error".to_string(),
                strata_policy::Severity::Warning => "warning".to_string(),
            },
            code: p.code.to_string(),
            file: p.file.clone(),
            line: p.line,
            col: p.col,
            pointer: p.pointer.clone(),
            message: p.message.clone(),
        }
    }
}

impl From<&Problems> for v1::Problems {
    fn from(p: &Problems) -> Self {
        v1::Problems {
            problems: p.problems.iter().map(v1::Problem::from).collect(),
        }
    }
}

/// A file tree from the files of a publish request
pub fn file_tree(root: &str, files: &[v1::File]) -> Result<FileTree, Problems> {
    FileTree::from_files(
        root,
        files.iter().map(|f| (f.path.clone(), f.content.clone())),
    )
}

/// The files of a tree, for a publish request
pub fn files(tree: &FileTree) -> Vec<v1::File> {
    tree.files
        .iter()
        .map(|(path, content)| v1::File {
            path: path.clone(),
            content: content.clone(),
        })
        .collect()
}

fn effect(e: PEffect) -> v1::Effect {
    match e {
        PEffect::Allow => v1::Effect::Allow,
        PEffect::Deny => v1::Effect::Deny,
    }
}

impl From<&strata_policy::explain::ModelView> for v1::ModelView {
    fn from(m: &strata_policy::explain::ModelView) -> Self {
        v1::ModelView {
            model: m.model.clone(),
            display_name: m.display_name.clone().unwrap_or_default(),
            provider: m
                .provider
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            base_url: m.base_url.clone().unwrap_or_default(),
            max_output_tokens: m.max_output_tokens.unwrap_or(0),
            credential_env: m.credential_env.clone().unwrap_or_default(),
            key_mode: m.key_mode.as_str().to_string(),
            level: level(m.level) as i32,
            decision: effect(m.decision) as i32,
            reason: m.reason.clone(),
        }
    }
}

impl From<&strata_policy::explain::NamedView> for v1::NamedView {
    fn from(n: &strata_policy::explain::NamedView) -> Self {
        v1::NamedView {
            name: n.name.clone(),
            level: level(n.level) as i32,
            file: n.file.clone(),
            line: n.line,
            decision: effect(n.decision) as i32,
            reason: n.reason.clone(),
        }
    }
}

impl From<&strata_policy::explain::Considered> for v1::Considered {
    fn from(c: &strata_policy::explain::Considered) -> Self {
        v1::Considered {
            rule: c.rule.clone(),
            level: level(c.level) as i32,
            effect: c.effect.as_str().to_string(),
            file: c.file.clone().unwrap_or_default(),
            pointer: c.pointer.clone().unwrap_or_default(),
            line: c.line.unwrap_or(0),
        }
    }
}

/// `ResolveSettings`' answer: typed, and as JSON for tools
pub fn resolve_settings_response(
    revision: String,
    s: &strata_policy::explain::EffectiveSettings,
) -> Result<v1::ResolveSettingsResponse, serde_json::Error> {
    let named =
        |v: &[strata_policy::explain::NamedView]| v.iter().map(v1::NamedView::from).collect();
    Ok(v1::ResolveSettingsResponse {
        revision,
        settings_json: serde_json::to_string(s)?,
        models: s.models.iter().map(v1::ModelView::from).collect(),
        hidden_models: s.hidden_models.iter().map(v1::ModelView::from).collect(),
        mcp_servers: named(&s.mcp_servers),
        droids: named(&s.droids),
        commands: named(&s.commands),
        diagnostics: s.diagnostics.iter().map(v1::Problem::from).collect(),
    })
}

/// `Explain`'s answer around its decision: typed, and as JSON for tools
pub fn explain_response(
    decision: v1::DecideResponse,
    x: &strata_policy::explain::Explanation,
) -> Result<v1::ExplainResponse, serde_json::Error> {
    Ok(v1::ExplainResponse {
        decision: Some(decision),
        explanation_json: serde_json::to_string(x)?,
        considered: x.considered.iter().map(v1::Considered::from).collect(),
        diagnostics: x.diagnostics.iter().map(v1::Problem::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let mut req = Request::model("alice", "claude-sonnet-4-5");
        req.groups = vec!["leads".to_string()];
        req.project = Some("web".to_string());
        if let Target::Model {
            provider,
            key_mode,
            base_url,
            ..
        } = &mut req.target
        {
            *provider = Some(Provider::Anthropic);
            *key_mode = PKeyMode::Byok;
            *base_url = Some("http://gw/v1".to_string());
        }
        let wire = decide_request(&req);
        let principal = match &wire.identity {
            Some(v1::decide_request::Identity::Principal(p)) => p.clone(),
            _ => v1::Principal::default(),
        };
        assert_eq!(request(&wire, &principal), Ok(req));
    }

    #[test]
    fn invalid_provider_names_the_valid_ones() {
        let wire = v1::DecideRequest {
            target: Some(v1::decide_request::Target::Model(v1::ModelTarget {
                model: "m".into(),
                provider: "azure".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let err = request(
            &wire,
            &v1::Principal {
                user: "u".into(),
                groups: vec![],
            },
        );
        assert!(
            matches!(&err, Err(ConvertError::InvalidProvider(m)) if m.contains("generic-chat-completion-api")),
            "{err:?}"
        );
        let none = request(
            &v1::DecideRequest::default(),
            &v1::Principal {
                user: "u".into(),
                groups: vec![],
            },
        );
        assert_eq!(none, Err(ConvertError::MissingTarget));
    }
}
