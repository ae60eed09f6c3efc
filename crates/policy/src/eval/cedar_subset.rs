//! Hand-written Cedar rules compiled for `decide`.
//!
//! Each rule is compiled once (from Cedar's policy structure tree) into:
//!
//! - its **scope test**: the principal and resource constraints (`principal in Group::"leads"`,
//!   `resource in Category::"frontier"`, `resource == Model::"x"`, ...). They cannot error, and
//!   Cedar evaluates them before the conditions, so a rule whose scope does not match the request
//!   is false, exactly as Cedar would find it;
//! - its **condition** (the `when`/`unless` clauses in order), when every construct in it belongs
//!   to the small subset below, which this module evaluates with Cedar's semantics: boolean
//!   operators with short-circuit, `==`/`!=`, `in`, `is`, `like`, `contains`/`containsAll`/
//!   `containsAny`, comparisons of longs, `if`, set literals, and the attributes of the resource
//!   and the context. Anything else (arithmetic, extension functions, `has`, records, the action
//!   variable, ...) leaves the rule to Cedar.
//!
//! Whenever the evaluation meets a value of an unexpected type (where Cedar would report an
//! error), it gives up ([`Verdict::Unsure`]) and the caller evaluates all the hand-written rules
//! of the action with Cedar instead, so errors (and a forbid that errors, which denies) are
//! Cedar's own.

use std::borrow::Cow;
use std::str::FromStr;

use cedar_policy::{
    Effect as CedarEffect, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, pst,
};

use crate::rules::RuleKey;

/// Entity types the request's entities have (the schema's names)
pub(crate) const USER: &str = "User";
pub(crate) const GROUP: &str = "Group";
pub(crate) const PROJECT: &str = "Project";
pub(crate) const MODEL: &str = "Model";
pub(crate) const MCP_SERVER: &str = "McpServer";

/// An entity literal of a rule
#[derive(Clone, Debug)]
struct Lit {
    ty: String,
    id: String,
    uid: EntityUid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CtxAttr {
    Project,
    Folder,
    KeyMode,
    Provider,
    BaseUrl,
    Gateway,
    Triggers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Less,
    LessEq,
    Greater,
    GreaterEq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Contains,
    ContainsAll,
    ContainsAny,
}

/// The subset of Cedar expressions evaluated here
#[derive(Clone, Debug)]
enum Expr {
    Bool(bool),
    Long(i64),
    Str(String),
    Ent(Lit),
    Principal,
    Resource,
    Context(CtxAttr),
    ResourceAttr(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    NotEq(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Set(SetOp, Box<Expr>, Box<Expr>),
    /// pattern: `None` is the wildcard
    Like(Box<Expr>, Vec<Option<char>>),
    Is(Box<Expr>, String, Option<Box<Expr>>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    SetLit(Vec<Expr>),
}

/// A hand-written rule, compiled
#[derive(Debug)]
pub struct HandRule {
    pub id: PolicyId,
    pub effect: CedarEffect,
    /// principal and resource constraints; `None` when they cannot be read (the rule then
    /// always goes to Cedar)
    scope: Option<Expr>,
    /// the `when`/`unless` clauses, if every construct is in the native subset
    cond: Option<Expr>,
}

/// What a rule says about one request
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// its scope or condition is false: it does not apply
    No,
    /// its scope and condition hold
    Fired,
    /// its scope holds (or cannot be read) and its condition needs Cedar
    Cedar,
    /// evaluating it would be an error in Cedar (or something unexpected): let Cedar do it all
    Unsure,
}

/// Everything a hand-written rule can look at, as `decide` puts it to Cedar
pub struct Facts<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// [`MODEL`] or [`MCP_SERVER`]
    pub resource_type: &'static str,
    pub resource_id: &'a str,
    /// the resource's parents (lists and categories)
    pub parents: &'a crate::FastSet<EntityUid>,
    pub resource_attrs: &'a [(&'static str, &'a str)],
    pub project: &'a str,
    pub folder: &'a str,
    pub key_mode: &'a str,
    pub provider: &'a str,
    pub base_url: &'a str,
    pub gateway: &'a str,
    pub triggers: &'a [RuleKey],
}

impl HandRule {
    pub fn compile(policy: &Policy) -> HandRule {
        let (scope, cond) = match policy.to_pst() {
            Ok(p) => {
                let t = p.body();
                let scope = scope_expr(&t.principal, &t.resource);
                let cond = scope.as_ref().and_then(|_| {
                    t.clauses().iter().try_fold(Expr::Bool(true), |acc, c| {
                        let e = match c {
                            pst::Clause::When(e) => expr(e)?,
                            pst::Clause::Unless(e) => Expr::Not(Box::new(expr(e)?)),
                        };
                        Some(match acc {
                            Expr::Bool(true) => e,
                            acc => Expr::And(Box::new(acc), Box::new(e)),
                        })
                    })
                });
                (scope, cond)
            }
            Err(_) => (None, None),
        };
        HandRule {
            id: policy.id().clone(),
            effect: policy.effect(),
            scope,
            cond,
        }
    }

    /// Whether the rule is evaluated here without Cedar (when its scope matches)
    pub fn native(&self) -> bool {
        self.cond.is_some()
    }

    pub fn verdict(&self, f: &Facts<'_>) -> Verdict {
        match &self.scope {
            Some(s) => match eval(s, f).and_then(boolean) {
                Ok(true) => {}
                Ok(false) => return Verdict::No,
                Err(Unsure) => return Verdict::Unsure,
            },
            None => return Verdict::Cedar,
        }
        match &self.cond {
            Some(c) => match eval(c, f).and_then(boolean) {
                Ok(true) => Verdict::Fired,
                Ok(false) => Verdict::No,
                Err(Unsure) => Verdict::Unsure,
            },
            None => Verdict::Cedar,
        }
    }
}

fn lit(u: &pst::EntityUID) -> Option<Lit> {
    let ty = u.ty.to_string();
    if ty == "Action" || ty.ends_with("::Action") {
        // action entities are in Cedar's entity store with their parents: leave them to Cedar
        return None;
    }
    let id = u.eid.as_str().to_string();
    let uid =
        EntityUid::from_type_name_and_id(EntityTypeName::from_str(&ty).ok()?, EntityId::new(&id));
    Some(Lit { ty, id, uid })
}

fn entity_or_slot(e: &pst::EntityOrSlot) -> Option<Expr> {
    match e {
        pst::EntityOrSlot::Entity(u) => lit(u).map(Expr::Ent),
        pst::EntityOrSlot::Slot(_) => None,
    }
}

/// `var == e`, `var in e`, `var is T`, `var is T in e`, or true
fn constraint(
    var: Expr,
    eq: Option<&pst::EntityOrSlot>,
    is_in: Option<&pst::EntityOrSlot>,
    is: Option<&pst::EntityType>,
) -> Option<Expr> {
    let b = |e: Expr| Box::new(e);
    Some(match (eq, is_in, is) {
        (Some(e), None, None) => Expr::Eq(b(var), b(entity_or_slot(e)?)),
        (None, Some(e), None) => Expr::In(b(var), b(entity_or_slot(e)?)),
        (None, None, Some(t)) => Expr::Is(b(var), t.to_string(), None),
        (None, Some(e), Some(t)) => Expr::Is(b(var), t.to_string(), Some(b(entity_or_slot(e)?))),
        (None, None, None) => Expr::Bool(true),
        _ => return None,
    })
}

fn scope_expr(p: &pst::PrincipalConstraint, r: &pst::ResourceConstraint) -> Option<Expr> {
    use pst::PrincipalConstraint as P;
    use pst::ResourceConstraint as R;
    let p = match p {
        P::Any => constraint(Expr::Principal, None, None, None),
        P::Eq(e) => constraint(Expr::Principal, Some(e), None, None),
        P::In(e) => constraint(Expr::Principal, None, Some(e), None),
        P::Is(t) => constraint(Expr::Principal, None, None, Some(t)),
        P::IsIn(t, e) => constraint(Expr::Principal, None, Some(e), Some(t)),
    }?;
    let r = match r {
        R::Any => constraint(Expr::Resource, None, None, None),
        R::Eq(e) => constraint(Expr::Resource, Some(e), None, None),
        R::In(e) => constraint(Expr::Resource, None, Some(e), None),
        R::Is(t) => constraint(Expr::Resource, None, None, Some(t)),
        R::IsIn(t, e) => constraint(Expr::Resource, None, Some(e), Some(t)),
    }?;
    Some(match (p, r) {
        (Expr::Bool(true), r) => r,
        (p, Expr::Bool(true)) => p,
        (p, r) => Expr::And(Box::new(p), Box::new(r)),
    })
}

/// The native form of a condition, if every construct in it is supported
fn expr(e: &pst::Expr) -> Option<Expr> {
    use pst::{BinaryOp as B, Expr as E, Literal as L};
    let b = |e: &pst::Expr| expr(e).map(Box::new);
    Some(match e {
        E::Literal(L::Bool(v)) => Expr::Bool(*v),
        E::Literal(L::Long(v)) => Expr::Long(*v),
        E::Literal(L::String(s)) => Expr::Str(s.as_str().to_string()),
        E::Literal(L::EntityUID(u)) => Expr::Ent(lit(u)?),
        E::Var(pst::Var::Principal) => Expr::Principal,
        E::Var(pst::Var::Resource) => Expr::Resource,
        E::GetAttr { expr: inner, attr } => match inner.as_ref() {
            E::Var(pst::Var::Context) => Expr::Context(match attr.as_str() {
                "project" => CtxAttr::Project,
                "folder" => CtxAttr::Folder,
                "keyMode" => CtxAttr::KeyMode,
                "provider" => CtxAttr::Provider,
                "baseUrl" => CtxAttr::BaseUrl,
                "gateway" => CtxAttr::Gateway,
                "triggers" => CtxAttr::Triggers,
                _ => return None,
            }),
            E::Var(pst::Var::Resource) => Expr::ResourceAttr(attr.as_str().to_string()),
            _ => return None,
        },
        E::UnaryOp {
            op: pst::UnaryOp::Not,
            expr: inner,
        } => Expr::Not(b(inner)?),
        E::BinaryOp { op, left, right } => {
            let (l, r) = (b(left)?, b(right)?);
            match op {
                B::Eq => Expr::Eq(l, r),
                B::NotEq => Expr::NotEq(l, r),
                B::Less => Expr::Cmp(Cmp::Less, l, r),
                B::LessEq => Expr::Cmp(Cmp::LessEq, l, r),
                B::Greater => Expr::Cmp(Cmp::Greater, l, r),
                B::GreaterEq => Expr::Cmp(Cmp::GreaterEq, l, r),
                B::And => Expr::And(l, r),
                B::Or => Expr::Or(l, r),
                B::In => Expr::In(l, r),
                B::Contains => Expr::Set(SetOp::Contains, l, r),
                B::ContainsAll => Expr::Set(SetOp::ContainsAll, l, r),
                B::ContainsAny => Expr::Set(SetOp::ContainsAny, l, r),
                _ => return None,
            }
        }
        E::Like {
            expr: inner,
            pattern,
        } => Expr::Like(
            b(inner)?,
            pattern
                .iter()
                .map(|p| match p {
                    pst::PatternElem::Char(c) => Some(*c),
                    pst::PatternElem::Wildcard => None,
                })
                .collect(),
        ),
        E::Is {
            expr: inner,
            entity_type,
            in_expr,
        } => Expr::Is(
            b(inner)?,
            entity_type.to_string(),
            match in_expr {
                Some(x) => Some(b(x)?),
                None => None,
            },
        ),
        E::IfThenElse {
            cond,
            then_expr,
            else_expr,
        } => Expr::If(b(cond)?, b(then_expr)?, b(else_expr)?),
        E::Set(items) => Expr::SetLit(items.iter().map(|x| expr(x)).collect::<Option<_>>()?),
        _ => return None,
    })
}

/// Where Cedar would report an error (or this module is not sure): Cedar decides instead
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unsure;

#[derive(Clone, Copy, Debug)]
enum Ent<'a> {
    Principal,
    Resource,
    Project(&'a str),
    Lit(&'a Lit),
}

#[derive(Clone, Debug)]
enum Val<'a> {
    Bool(bool),
    Long(i64),
    Str(Cow<'a, str>),
    Ent(Ent<'a>),
    Set(Vec<Val<'a>>),
}

impl<'a> Ent<'a> {
    /// (type, id)
    fn key(self, f: &Facts<'a>) -> (&'a str, &'a str) {
        match self {
            Ent::Principal => (USER, f.user),
            Ent::Resource => (f.resource_type, f.resource_id),
            Ent::Project(p) => (PROJECT, p),
            Ent::Lit(l) => (l.ty.as_str(), l.id.as_str()),
        }
    }
}

fn boolean(v: Val<'_>) -> Result<bool, Unsure> {
    match v {
        Val::Bool(b) => Ok(b),
        _ => Err(Unsure),
    }
}

fn equal<'a>(a: &Val<'a>, b: &Val<'a>, f: &Facts<'a>) -> bool {
    match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Long(x), Val::Long(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Ent(x), Val::Ent(y)) => x.key(f) == y.key(f),
        // sets compare as sets
        (Val::Set(x), Val::Set(y)) => {
            x.iter().all(|v| y.iter().any(|w| equal(v, w, f)))
                && y.iter().all(|w| x.iter().any(|v| equal(v, w, f)))
        }
        // values of different types are never equal (and comparing them is no error)
        _ => false,
    }
}

/// `a in b` for entities. Cedar's entity store for a request holds the principal (whose parents
/// are its groups), the resource (whose parents are its lists and categories) and the action
/// (never reached here: action literals are left to Cedar); any other entity has no ancestors.
fn entity_in<'a>(a: Ent<'a>, b: Ent<'a>, f: &Facts<'a>) -> bool {
    let (ka, kb) = (a.key(f), b.key(f));
    if ka == kb {
        return true;
    }
    if ka == (USER, f.user) {
        kb.0 == GROUP && f.groups.iter().any(|g| g == kb.1)
    } else if ka == (f.resource_type, f.resource_id) {
        match b {
            // a handful of parents: comparing beats hashing
            Ent::Lit(l) if f.parents.len() <= 8 => f.parents.iter().any(|u| *u == l.uid),
            Ent::Lit(l) => f.parents.contains(&l.uid),
            _ => f
                .parents
                .iter()
                .any(|u| u.type_name().to_string() == kb.0 && u.id().unescaped() == kb.1),
        }
    } else {
        false
    }
}

/// `a in v`: `v` is an entity or a set of entities
fn in_value<'a>(a: Ent<'a>, v: Val<'a>, f: &Facts<'a>) -> Result<bool, Unsure> {
    match v {
        Val::Ent(b) => Ok(entity_in(a, b, f)),
        Val::Set(items) => {
            let mut found = false;
            for v in items {
                let Val::Ent(b) = v else {
                    return Err(Unsure);
                };
                found = found || entity_in(a, b, f);
            }
            Ok(found)
        }
        _ => Err(Unsure),
    }
}

fn long(v: Val<'_>) -> Result<i64, Unsure> {
    match v {
        Val::Long(n) => Ok(n),
        _ => Err(Unsure),
    }
}

fn set(v: Val<'_>) -> Result<Vec<Val<'_>>, Unsure> {
    match v {
        Val::Set(s) => Ok(s),
        _ => Err(Unsure),
    }
}

// Longer than a screen: one `match` arm per expression of the Cedar subset; the evaluator reads as
// the table of its cases.
fn eval<'a>(e: &'a Expr, f: &Facts<'a>) -> Result<Val<'a>, Unsure> {
    let s = |v: &'a str| Val::Str(Cow::Borrowed(v));
    Ok(match e {
        Expr::Bool(b) => Val::Bool(*b),
        Expr::Long(n) => Val::Long(*n),
        Expr::Str(v) => s(v),
        Expr::Ent(l) => Val::Ent(Ent::Lit(l)),
        Expr::Principal => Val::Ent(Ent::Principal),
        Expr::Resource => Val::Ent(Ent::Resource),
        Expr::Context(a) => match a {
            CtxAttr::Project => Val::Ent(Ent::Project(f.project)),
            CtxAttr::Folder => s(f.folder),
            CtxAttr::KeyMode => s(f.key_mode),
            CtxAttr::Provider => s(f.provider),
            CtxAttr::BaseUrl => s(f.base_url),
            CtxAttr::Gateway => s(f.gateway),
            CtxAttr::Triggers => Val::Set(
                f.triggers
                    .iter()
                    .map(|t| Val::Str(Cow::Owned(t.id())))
                    .collect(),
            ),
        },
        Expr::ResourceAttr(name) => {
            match f.resource_attrs.iter().find(|(n, _)| *n == name.as_str()) {
                Some((_, v)) => s(v),
                // no such attribute: an error in Cedar
                None => return Err(Unsure),
            }
        }
        Expr::Not(x) => Val::Bool(!boolean(eval(x, f)?)?),
        Expr::And(l, r) => Val::Bool(boolean(eval(l, f)?)? && boolean(eval(r, f)?)?),
        Expr::Or(l, r) => Val::Bool(boolean(eval(l, f)?)? || boolean(eval(r, f)?)?),
        Expr::Eq(l, r) => Val::Bool(equal(&eval(l, f)?, &eval(r, f)?, f)),
        Expr::NotEq(l, r) => Val::Bool(!equal(&eval(l, f)?, &eval(r, f)?, f)),
        Expr::Cmp(op, l, r) => {
            let (a, b) = (long(eval(l, f)?)?, long(eval(r, f)?)?);
            Val::Bool(match op {
                Cmp::Less => a < b,
                Cmp::LessEq => a <= b,
                Cmp::Greater => a > b,
                Cmp::GreaterEq => a >= b,
            })
        }
        Expr::In(l, r) => {
            let Val::Ent(a) = eval(l, f)? else {
                return Err(Unsure);
            };
            Val::Bool(in_value(a, eval(r, f)?, f)?)
        }
        Expr::Set(op, l, r) => {
            let a = set(eval(l, f)?)?;
            let b = eval(r, f)?;
            Val::Bool(match op {
                SetOp::Contains => a.iter().any(|v| equal(v, &b, f)),
                SetOp::ContainsAll => set(b)?.iter().all(|w| a.iter().any(|v| equal(v, w, f))),
                SetOp::ContainsAny => set(b)?.iter().any(|w| a.iter().any(|v| equal(v, w, f))),
            })
        }
        Expr::Like(x, pattern) => match eval(x, f)? {
            Val::Str(text) => Val::Bool(wildcard_match(pattern, &text)),
            _ => return Err(Unsure),
        },
        Expr::Is(x, ty, in_expr) => {
            let Val::Ent(a) = eval(x, f)? else {
                return Err(Unsure);
            };
            // `x is T in r` is `x is T && x in r`
            match in_expr {
                _ if a.key(f).0 != ty.as_str() => Val::Bool(false),
                None => Val::Bool(true),
                Some(r) => Val::Bool(in_value(a, eval(r, f)?, f)?),
            }
        }
        Expr::If(c, t, e) => {
            if boolean(eval(c, f)?)? {
                eval(t, f)?
            } else {
                eval(e, f)?
            }
        }
        Expr::SetLit(items) => {
            Val::Set(items.iter().map(|x| eval(x, f)).collect::<Result<_, _>>()?)
        }
    })
}

/// Cedar's `like` (a port of `Pattern::wildcard_match` of cedar-policy-core 4.14: same algorithm,
/// over `char`s)
fn wildcard_match(pattern: &[Option<char>], text: &str) -> bool {
    if pattern.is_empty() {
        return text.is_empty();
    }
    let text: Vec<char> = text.chars().collect();
    let (mut i, mut j, mut star_idx, mut tmp_idx) = (0usize, 0usize, 0usize, 0usize);
    let mut contains_star = false;
    let (text_len, pattern_len) = (text.len(), pattern.len());
    while i < text_len && (!contains_star || star_idx != pattern_len - 1) {
        let p = pattern.get(j).copied();
        let c = text.get(i).copied();
        if j < pattern_len && p == Some(None) {
            contains_star = true;
            star_idx = j;
            tmp_idx = i;
            j += 1;
        } else if j < pattern_len && matches!(p, Some(Some(pc)) if Some(pc) == c) {
            i += 1;
            j += 1;
        } else if contains_star {
            j = star_idx + 1;
            i = tmp_idx + 1;
            tmp_idx = i;
        } else {
            return false;
        }
    }
    while j < pattern_len && pattern.get(j) == Some(&None) {
        j += 1;
    }
    j == pattern_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Vec<Option<char>> {
        s.chars()
            .map(|c| if c == '*' { None } else { Some(c) })
            .collect()
    }

    #[test]
    fn like_matches_as_cedar_does() {
        for (p, t, want) in [
            ("*-experimental*", "gpt-experimental-1", true),
            ("*-experimental*", "gpt-experimental", true),
            ("*-experimental*", "experimental", false),
            ("db-*.prod.acme.dev", "db-1.prod.acme.dev", true),
            ("db-*.prod.acme.dev", "db-1.prod.acme.dev.x", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("ü*", "üx", true),
        ] {
            assert_eq!(wildcard_match(&pat(p), t), want, "{p} like {t}");
        }
    }
}
