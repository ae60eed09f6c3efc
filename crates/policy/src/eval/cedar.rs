//! Cedar's own `Authorizer`: the fallback for hand-written rules outside the native subset, and
//! the reference both native evaluators are tested against. A forbid that errors denies.

use std::sync::LazyLock;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect as CedarEffect, Entities, Entity,
    EntityUid, PolicyId, PolicySet, Request as CedarRequest,
};

use super::native::Outcome;
use crate::compile::Snapshot;
use crate::decision::Effect;

static AUTHORIZER: LazyLock<Authorizer> = LazyLock::new(Authorizer::new);

/// What Cedar needs for one evaluation, built only when Cedar runs
pub(crate) type CedarInputs = Result<((EntityUid, Entity), Entity, Context), String>;

pub(crate) fn cedar_eval(
    snap: &Snapshot,
    set: &PolicySet,
    principal: (EntityUid, Entity),
    action: &EntityUid,
    resource: Entity,
    ctx: Result<Context, String>,
) -> Outcome {
    let fail = |e: String| Outcome {
        effect: Effect::Deny,
        reasons: Vec::new(),
        errors: vec![e],
    };
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot build the request context: {e}")),
    };
    let resource_uid = resource.uid();
    let entities = match Entities::from_entities(
        // the request's own action entity carries its parents (`use_model`): the others are not needed
        snap.uids
            .actions
            .iter()
            .filter(|a| a.uid() == *action)
            .cloned()
            .chain([principal.1, resource]),
        None,
    ) {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot build the request entities: {e}")),
    };
    let request = match CedarRequest::new(principal.0, action.clone(), resource_uid, ctx, None) {
        Ok(r) => r,
        Err(e) => return fail(format!("invalid request: {e}")),
    };
    let response = AUTHORIZER.is_authorized(&request, set, &entities);
    let mut reasons: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
    let mut errors = Vec::new();
    let mut effect = match response.decision() {
        CedarDecision::Allow => Effect::Allow,
        CedarDecision::Deny => Effect::Deny,
    };
    for e in response.diagnostics().errors() {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
        let id = pe.policy_id();
        errors.push(e.to_string());
        // Cedar skips a policy that errors; a skipped forbid must not become an allow
        if set
            .policy(id)
            .is_some_and(|p| p.effect() == CedarEffect::Forbid)
        {
            if effect == Effect::Allow {
                reasons.clear();
            }
            effect = Effect::Deny;
            reasons.push(id.clone());
        }
    }
    if effect == Effect::Deny {
        reasons.retain(|id| {
            set.policy(id)
                .is_some_and(|p| p.effect() == CedarEffect::Forbid)
        });
    }
    reasons.sort();
    Outcome {
        effect,
        reasons,
        errors,
    }
}
