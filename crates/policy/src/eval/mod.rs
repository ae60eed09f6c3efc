//! The evaluators behind [`crate::decide`], each named for what it is.
//!
//! A decision has the semantics of one Cedar evaluation of the scope's policy set (base rules
//! from `policies/base.cedar` plus the hand-written rules in scope): any forbid that fires denies,
//! else any permit that fires allows, else deny. Three evaluators produce it:
//!
//! - [`native`]: the base rules. Each is "the resource is in list X" or "trigger X holds", and
//!   `decide` has computed both already (list memberships, request conditions), so a base rule
//!   fires or not without Cedar. Always runs.
//! - [`cedar_subset`]: hand-written rules whose scope and condition fit a small subset of Cedar
//!   are evaluated natively, with Cedar's semantics. Runs when the scope has hand-written rules.
//! - [`cedar`]: Cedar's own `Authorizer`, for the hand-written rules outside the subset (or all
//!   of them as soon as one would be an error), and as the reference the other two are tested
//!   against.
//!
//! Which test keeps each honest: `tests/native_rules.rs` compares [`Mode::Native`] with
//! [`Mode::CedarHand`] (the subset against Cedar) and with [`Mode::Cedar`] (the native base
//! rules against Cedar evaluating `policies/base.cedar`, `when` bodies included) on the corpus,
//! on varied hand-written rules and on random bundles (proptest).

pub mod cedar;
pub mod cedar_subset;
pub mod native;

/// Which evaluator decides what
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// what `decide` does: base rules natively, hand-written rules natively where the subset
    /// covers them, Cedar for the rest
    Native,
    /// base rules natively, every hand-written rule by Cedar: the reference for [`cedar_subset`]
    CedarHand,
    /// every rule of the scope, base and hand-written, by Cedar: the reference for [`native`]
    Cedar,
}
