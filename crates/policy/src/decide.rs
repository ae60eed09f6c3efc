//! `decide(snapshot, request) -> Decision`: pure, no I/O, no locks. [`crate::facts`] computes
//! which lists the model (or MCP server) belongs to and which request conditions hold;
//! [`crate::eval`] combines them with the hand-written rules; [`crate::provenance`] maps the
//! determining policies back to their files.

use std::collections::HashMap;
use std::sync::LazyLock;

use cedar_policy::{Entity, EntityUid, RestrictedExpression};

use crate::FastSet;
use crate::compile::Snapshot;
use crate::eval::Mode;
use crate::eval::cedar::CedarInputs;
use crate::eval::cedar_subset as hand;
use crate::eval::native::evaluate;
use crate::facts::{ModelFacts, context, euid, mcp_facts, model_facts, principal};
use crate::files::settings::{ApiKey, Provider};
use crate::matchers::model_id::canonical_str;
use crate::provenance::{
    finish, mcp_admissions, mcp_provenance, model_admissions, model_provenance,
};

pub use crate::decision::{
    Decision, Determining, Effect, Enforcement, KeyMode, McpRef, Obligations, Request, RuleEffect,
    Target,
};
pub use crate::provenance::Provenance;
pub use crate::scope::ScopeRef;
/// Decide one request against a snapshot
pub fn decide(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::Native)
}

/// [`decide`] with every hand-written rule evaluated by Cedar: the reference the native
/// evaluation of hand-written rules is tested against
#[doc(hidden)]
pub fn decide_cedar(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::CedarHand)
}

/// [`decide`] with every rule of the scope, base rules included, evaluated by Cedar's
/// `Authorizer`: the reference the native evaluation of the base rules is tested against
#[doc(hidden)]
pub fn decide_reference(snap: &Snapshot, req: &Request) -> Decision {
    decide_with(snap, req, Mode::Cedar)
}

fn decide_with(snap: &Snapshot, req: &Request, native: Mode) -> Decision {
    if let Some(d) = token_binding(snap, req) {
        return d;
    }
    let scope = snap.scope(req);
    match &req.target {
        Target::Model {
            model,
            provider,
            key_mode,
            base_url,
            mcp_servers,
        } => {
            // every rule sees the id in one canonical form; the decision keeps the one sent
            let sent = model.as_str();
            let canon = canonical_str(sent);
            let model: &str = &canon;
            let facts = model_facts(
                snap,
                &scope,
                req,
                model,
                *provider,
                *key_mode,
                base_url.as_deref(),
            );
            let (idx, action) = model_action(snap, *key_mode);
            let attrs = [("id", model)];
            let hf = hand::Facts {
                resource_type: hand::MODEL,
                resource_id: model,
                parents: &facts.parents,
                resource_attrs: &attrs,
                key_mode: key_mode.as_str(),
                provider: facts.provider.map(Provider::as_str).unwrap_or(""),
                base_url: facts.base_url.as_deref().unwrap_or(""),
                triggers: &facts.triggers,
                ..request_facts(req)
            };
            let out = evaluate(
                snap,
                scope.sets,
                idx,
                &facts.parents,
                &facts.triggers,
                action,
                &hf,
                native,
                || model_inputs(snap, req, *key_mode, &facts, model),
            );
            let what = model_subject(sent, model);
            let mut d = finish(snap, &scope, req, out, &what, |key| {
                model_provenance(snap, &scope, req, key, model, &facts)
            });
            if sent != model {
                d.canonical_model = Some(model.to_string());
            }
            if d.allowed() {
                admit(&mut d, model_admissions(snap, &scope, *key_mode, &facts));
            }
            if d.allowed() {
                oblige(&mut d, snap, &facts, *key_mode);
                // the request's MCP servers: the first one refused refuses it
                if let Some(md) = mcp_servers
                    .iter()
                    .map(|server| decide_mcp(snap, &scope, req, server, native))
                    .find(|md| !md.allowed())
                {
                    return Decision {
                        obligations: Obligations::default(),
                        ..md
                    };
                }
            }
            d
        }
        Target::Mcp { server } => decide_mcp(snap, &scope, req, server, native),
    }
}

/// The index of a key mode's policy sets in a scope, and its Cedar action
fn model_action(snap: &Snapshot, key_mode: KeyMode) -> (usize, &EntityUid) {
    match key_mode {
        KeyMode::Central => (0, &snap.uids.invoke_model),
        KeyMode::Byok => (1, &snap.uids.use_byok),
    }
}

/// How a decision names the model: as sent, and as read when that differs
fn model_subject(sent: &str, model: &str) -> String {
    if sent == model {
        format!("model `{model}`")
    } else {
        format!("model `{sent}` (read as `{model}`)")
    }
}

/// The Cedar request for a model: the principal, the model entity with its lists as parents,
/// and the context
fn model_inputs(
    snap: &Snapshot,
    req: &Request,
    key_mode: KeyMode,
    facts: &ModelFacts<'_>,
    model: &str,
) -> CedarInputs {
    let ctx = context(
        snap,
        req,
        key_mode,
        facts.provider,
        facts.base_url.as_deref(),
        &facts.triggers,
    )?;
    let attrs = HashMap::from([(
        "id".to_string(),
        RestrictedExpression::new_string(model.to_string()),
    )]);
    let resource = Entity::new(
        euid(&snap.uids.model_type, model),
        attrs,
        facts.parents.iter().cloned().collect(),
    )
    .map_err(|e| format!("cannot build the model entity: {e}"))?;
    Ok((principal(snap, req), resource, ctx))
}

/// What an allowed model request obliges the gateway to do: the entry's upstream, credential
/// and output cap, and whether Droid must load the org's settings
fn oblige(d: &mut Decision, snap: &Snapshot, facts: &ModelFacts<'_>, key_mode: KeyMode) {
    if let Some((layer, c)) = facts.entry {
        // only the org's entries choose an upstream and the gateway secret for it: a
        // project naming a URL (and a variable of the gateway's environment) could
        // otherwise send the org's key where it likes. Every entry's output cap holds.
        let org = layer.level == crate::origin::Level::Org;
        d.obligations = Obligations {
            upstream_base_url: c.base_url.clone().filter(|_| org),
            provider: c.provider,
            credential_env: credential_env(layer, c, key_mode),
            max_output_tokens: c.max_output_tokens,
            require_org_settings: false,
        };
    }
    d.obligations.require_org_settings = snap.org_policy.require_org_settings.is_some();
}

/// The environment variable a gateway reads the key for `c` from: an org entry's `${VAR}`
/// `apiKey`, in central mode. Only the org's entries choose the gateway's secrets: a project
/// naming a variable of the gateway's environment could otherwise send it where it likes.
pub fn credential_env(
    layer: &crate::compile::CompiledLayer,
    c: &crate::files::settings::CustomModel,
    key_mode: KeyMode,
) -> Option<String> {
    match &c.api_key {
        Some(ApiKey::Env { var })
            if layer.level == crate::origin::Level::Org && key_mode == KeyMode::Central =>
        {
            Some(var.clone())
        }
        _ => None,
    }
}

/// The rule id of a token's project binding
pub const TOKEN_PROJECTS: &str = "token#projects";

/// A token bound to projects is valid for those projects only: a request for another project,
/// or for none, is denied before any layer is consulted
fn token_binding(snap: &Snapshot, req: &Request) -> Option<Decision> {
    let bound = req.token_projects.as_deref()?;
    let project = req.project.as_deref().unwrap_or("");
    if bound.iter().any(|p| p == project) {
        return None;
    }
    let list = bound
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let asked = match req.project.as_deref() {
        Some(p) => format!("project `{p}`"),
        None => "a request that names no project (send the `X-Strata-Project` header)".to_string(),
    };
    let why = format!("this gateway token is valid only for project(s) {list}, not for {asked}");
    Some(Decision {
        effect: Effect::Deny,
        determined_by: vec![Determining {
            rule: TOKEN_PROJECTS.to_string(),
            level: crate::origin::Level::Org,
            file: None,
            pointer: None,
            line: None,
            effect: crate::decision::RuleEffect::Forbid,
            matched: req.project.clone(),
            reason: why.clone(),
            enforced_by: crate::rules::enforced_by(TOKEN_PROJECTS),
        }],
        reason: format!("denied: {why} (rule `{TOKEN_PROJECTS}`)"),
        canonical_model: None,
        admitted_by: Vec::new(),
        obligations: Obligations::default(),
        revision: snap.revision.clone(),
        errors: Vec::new(),
    })
}

/// The parts of [`hand::Facts`] that come from the request alone
fn request_facts(req: &Request) -> hand::Facts<'_> {
    static NO_PARENTS: LazyLock<FastSet<EntityUid>> = LazyLock::new(FastSet::default);
    hand::Facts {
        user: &req.user,
        groups: &req.groups,
        resource_type: hand::MODEL,
        resource_id: "",
        parents: &NO_PARENTS,
        resource_attrs: &[],
        project: req.project.as_deref().unwrap_or(""),
        folder: req.folder.as_deref().unwrap_or(""),
        key_mode: KeyMode::Central.as_str(),
        provider: "",
        base_url: "",
        gateway: req.gateway.as_deref().unwrap_or(""),
        triggers: &[],
    }
}

// Longer than a screen: the facts of an MCP server, their Cedar form for the reference evaluation,
// and the decision with its admissions, over the same locals in one sequence, mirroring the model
// path in `decide_with`.
fn decide_mcp(
    snap: &Snapshot,
    scope: &ScopeRef<'_>,
    req: &Request,
    server: &McpRef,
    native: Mode,
) -> Decision {
    let facts = mcp_facts(snap, scope, server);
    let label = server.label();
    let transport = facts
        .definition
        .and_then(|d| d.transport)
        .map(|t| t.as_str())
        .unwrap_or(if server.url.is_some() { "http" } else { "" });
    let name = server.name.as_deref().unwrap_or("");
    let host = facts.host.as_deref().unwrap_or("");
    let command_line = facts.command_line();
    let command = command_line.as_deref().unwrap_or("");
    let attrs = [
        ("name", name),
        ("transport", transport),
        ("host", host),
        ("command", command),
    ];
    let hf = hand::Facts {
        resource_type: hand::MCP_SERVER,
        resource_id: &label,
        parents: &facts.parents,
        resource_attrs: &attrs,
        triggers: &facts.triggers,
        ..request_facts(req)
    };
    let out = evaluate(
        snap,
        scope.sets,
        2,
        &facts.parents,
        &facts.triggers,
        &snap.uids.connect_mcp,
        &hf,
        native,
        || {
            let attrs = HashMap::from([
                (
                    "name".to_string(),
                    RestrictedExpression::new_string(server.name.clone().unwrap_or_default()),
                ),
                (
                    "transport".to_string(),
                    RestrictedExpression::new_string(transport.to_string()),
                ),
                (
                    "host".to_string(),
                    RestrictedExpression::new_string(facts.host.clone().unwrap_or_default()),
                ),
                (
                    "command".to_string(),
                    RestrictedExpression::new_string(command.to_string()),
                ),
            ]);
            let resource = Entity::new(
                euid(&snap.uids.mcp_type, &label),
                attrs,
                facts.parents.iter().cloned().collect(),
            )
            .map_err(|e| format!("cannot build the MCP server entity: {e}"))?;
            let ctx = context(snap, req, KeyMode::Central, None, None, &facts.triggers)?;
            Ok((principal(snap, req), resource, ctx))
        },
    );
    let mut d = finish(
        snap,
        scope,
        req,
        out,
        &format!("MCP server `{label}`"),
        |key| mcp_provenance(scope, snap, key, server, &facts),
    );
    if d.allowed() {
        admit(&mut d, mcp_admissions(scope, &facts));
    }
    d
}

/// Record on an allowed decision the restrictions it passed, and say so in its reason
fn admit(d: &mut Decision, admitted: Vec<Determining>) {
    for a in &admitted {
        let at = match (&a.file, a.line) {
            (Some(f), Some(l)) => format!(" ({} {f}:{l})", a.level),
            _ => String::new(),
        };
        d.reason.push_str(&format!("; {}{at}", a.reason));
    }
    d.admitted_by = admitted;
}
