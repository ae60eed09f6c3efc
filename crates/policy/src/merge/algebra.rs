//! The rules table: which merge rule each governed pointer follows.

use crate::origin::Spanned;

/// How a value merges with the same value of the levels above
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// the first level that sets it wins
    Scalar,
    /// a boolean whose restrictive value (the one given) wins wherever it is set
    Restrictive(bool),
    /// an array: union of every level
    Union,
    /// an array of objects keyed by this field: keys set above are locked
    Keyed(&'static str),
}

/// The pointers whose rule is not the default one for their JSON type
pub const RULES: &[(&str, Kind)] = &[
    ("/modelPolicy/allowCustomModels", Kind::Restrictive(false)),
    (
        "/modelPolicy/allowAllFactoryModels",
        Kind::Restrictive(false),
    ),
    ("/mcpPolicy/enabled", Kind::Restrictive(true)),
    ("/enableDroidShield", Kind::Restrictive(true)),
    ("/allowManagedHooksOnly", Kind::Restrictive(true)),
    ("/customModels", Kind::Keyed("model")),
];

/// The rule of `pointer` from [`RULES`], else `Scalar` (callers treat arrays as `Union`)
pub fn kind_at(pointer: &str) -> Kind {
    RULES
        .iter()
        .find(|(p, _)| *p == pointer)
        .map(|(_, k)| *k)
        .unwrap_or(Kind::Scalar)
}

/// The restrictive value of a boolean at `pointer`, if it is one
pub fn restrictive_value(pointer: &str) -> Option<bool> {
    match kind_at(pointer) {
        Kind::Restrictive(b) => Some(b),
        _ => None,
    }
}

/// Combine a restrictive boolean at `pointer` from two sources, `high` first: the restrictive
/// value wins wherever it is set; any other boolean: the first that sets it
pub fn sticky(
    pointer: &str,
    high: Option<Spanned<bool>>,
    low: Option<Spanned<bool>>,
) -> Option<Spanned<bool>> {
    match (restrictive_value(pointer), high, low) {
        (Some(r), Some(h), Some(l)) if h.value != r && l.value == r => Some(l),
        (_, h, l) => h.or(l),
    }
}
