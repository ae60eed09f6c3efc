//! The base rules, evaluated natively from the list memberships and triggers `decide` computed,
//! with the hand-written rules of the action delegated to [`super::cedar_subset`] and
//! [`super::cedar`].

use cedar_policy::{Effect as CedarEffect, EntityUid, PolicyId};

use super::Mode;
use super::cedar::{CedarInputs, cedar_eval};
use super::cedar_subset::{Facts, HandRule, Verdict};
use crate::FastSet;
use crate::compile::{ScopeSets, Snapshot};
use crate::decision::Effect;
use crate::origin::Level;
use crate::rules::{Field, RuleKey};

/// The raw Cedar outcome of one evaluation
pub(crate) struct Outcome {
    pub(crate) effect: Effect,
    pub(crate) reasons: Vec<PolicyId>,
    pub(crate) errors: Vec<String>,
}

/// Decide with the base rules natively — each is "the resource is in list X" or "trigger X
/// holds", both computed already — and with Cedar for the hand-written rules that can apply to
/// the action. Same semantics as one Cedar evaluation of the scope's whole set: any forbid
/// denies, else any permit allows, else deny; the determining rules are the forbids that fired
/// (deny) or the permits that fired (allow).
#[allow(clippy::too_many_arguments)]
// Longer than a screen: the native evaluation and the hand-written rules' fallback to Cedar share
// the forbids and permits collected so far; kept as one sequence so that it can be read against
// Cedar's semantics (any forbid denies, else any permit allows) in one place.
pub(crate) fn evaluate(
    snap: &Snapshot,
    sets: &ScopeSets,
    idx: usize,
    parents: &FastSet<EntityUid>,
    triggers: &[RuleKey],
    action: &EntityUid,
    hf: &Facts<'_>,
    mode: Mode,
    inputs: impl FnOnce() -> CedarInputs,
) -> Outcome {
    if mode == Mode::Cedar {
        return match inputs() {
            Ok((principal, resource, ctx)) => {
                cedar_eval(snap, sets.all(idx), principal, action, resource, Ok(ctx))
            }
            Err(e) => Outcome {
                effect: Effect::Deny,
                reasons: Vec::new(),
                errors: vec![e],
            },
        };
    }
    let native = mode == Mode::Native;
    let mut forbids = Vec::new();
    let mut permits = Vec::new();
    // a rule without a condition (the default MCP permit) fires whenever it is in the set
    let unconditional = RuleKey::new(Level::Org, Field::McpDefault);
    let fired = parents
        .iter()
        .filter_map(|u| snap.uids.list_keys.get(u).copied())
        .chain(triggers.iter().copied())
        .chain(std::iter::once(unconditional));
    for key in fired {
        if !sets.base[idx].contains(&key) {
            continue;
        }
        match snap.uids.base_ids.get(&key) {
            Some((id, CedarEffect::Forbid)) => forbids.push(id.clone()),
            Some((id, CedarEffect::Permit)) => permits.push(id.clone()),
            None => {}
        }
    }
    let mut errors = Vec::new();
    let rules = &sets.hand_rules[idx];
    if !rules.is_empty() {
        // hand-written rules: a rule whose scope does not match is false; one whose condition
        // is in the native subset is evaluated here; Cedar evaluates the others, or all of them
        // as soon as one would be an error (so errors and fail-closed forbids are Cedar's)
        let mut hits: Vec<&HandRule> = Vec::new();
        let mut cedar = false;
        let mut unsure = !native;
        if native {
            for r in rules.iter() {
                match r.verdict(hf) {
                    Verdict::No => {}
                    Verdict::Fired => hits.push(r),
                    Verdict::Cedar => cedar = true,
                    Verdict::Unsure => {
                        unsure = true;
                        break;
                    }
                }
            }
        }
        let set = if unsure {
            Some(&sets.hand[idx])
        } else {
            for r in hits {
                match r.effect {
                    CedarEffect::Forbid => forbids.push(r.id.clone()),
                    CedarEffect::Permit => permits.push(r.id.clone()),
                }
            }
            cedar.then_some(&sets.cedar_only[idx])
        };
        if let Some(set) = set {
            let out = match inputs() {
                Ok((principal, resource, ctx)) => {
                    cedar_eval(snap, set, principal, action, resource, Ok(ctx))
                }
                // the request cannot be put to Cedar: fail closed
                Err(e) => {
                    return Outcome {
                        effect: Effect::Deny,
                        reasons: Vec::new(),
                        errors: vec![e],
                    };
                }
            };
            errors = out.errors;
            match out.effect {
                Effect::Deny => forbids.extend(out.reasons),
                Effect::Allow => permits.extend(out.reasons),
            }
        }
    }
    let (effect, mut reasons) = if !forbids.is_empty() {
        (Effect::Deny, forbids)
    } else if !permits.is_empty() {
        (Effect::Allow, permits)
    } else {
        (Effect::Deny, Vec::new())
    };
    reasons.sort();
    reasons.dedup();
    Outcome {
        effect,
        reasons,
        errors,
    }
}
