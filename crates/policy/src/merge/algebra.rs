//! The rules table: which merge rule each governed pointer follows.

use crate::origin::{Level, Spanned};

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
    /// a session default (Droid's exception to "the first level wins"): the nearest level that
    /// sets it wins, the folders nearest first, then the project, the user, and last the org,
    /// whose value is only a default ([`default_rank`])
    Default,
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

/// The settings under which every value is a session default ([`Kind::Default`]), as Droid
/// merges them
pub const SESSION_DEFAULTS: &[&str] = &[
    "/sessionDefaultSettings",
    "/subagentModelSettings",
    "/missionModelSettings",
    "/missionOrchestratorModel",
];

/// The rule of `pointer` from [`RULES`] and [`SESSION_DEFAULTS`], else `Scalar` (callers treat
/// arrays as `Union`)
pub fn kind_at(pointer: &str) -> Kind {
    if SESSION_DEFAULTS.iter().any(|p| {
        pointer
            .strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) {
        return Kind::Default;
    }
    RULES
        .iter()
        .find(|(p, _)| *p == pointer)
        .map(|(_, k)| *k)
        .unwrap_or(Kind::Scalar)
}

/// Top-level keys Droid reads from the org level alone (`permissionRules` also from runtime
/// settings and trusted folders, which Strata does not model: the org's alone here too)
pub const ORG_ONLY_KEYS: &[&str] = &[
    "env",
    "telemetry",
    "builtInToolAutonomyOverrides",
    "webSearchDisabled",
    "permissionRules",
];

/// The precedence of a level for a session default, lowest wins: folder, project, user, org
pub fn default_rank(level: Level) -> u8 {
    match level {
        Level::Folder => 0,
        Level::Project => 1,
        Level::User => 2,
        Level::Org => 3,
    }
}

/// Whether a top-level key of a level's `settings.local.json` replaces the same key of its
/// `settings.json` whole, as Droid reads one directory (a local `modelPolicy` replaces the whole
/// `modelPolicy`), rather than merging with it. Everywhere, except the keys Strata's decisions
/// govern ([`crate::rules::GOVERNED_KEYS`]) in the org, a project or a folder: there the local
/// file, git-ignored and never reviewed, may add restrictions to the reviewed `settings.json`
/// but never lift them, and adds no models ([`crate::files::settings::Settings::without_widening`]).
/// A person's own files (the user level) restrict only that person: Droid's rule holds whole.
pub fn local_replaces(level: Level, key: &str) -> bool {
    level == Level::User || !crate::rules::GOVERNED_KEYS.contains(&key)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_defaults_are_defaults_and_other_scalars_are_not() {
        assert_eq!(kind_at("/sessionDefaultSettings/model"), Kind::Default);
        assert_eq!(kind_at("/missionModelSettings/workerModel"), Kind::Default);
        assert_eq!(kind_at("/missionOrchestratorModel"), Kind::Default);
        assert_eq!(kind_at("/sessionDefaultSettingsX"), Kind::Scalar);
        assert_eq!(kind_at("/maxAutonomyLevel"), Kind::Scalar);
        assert!(default_rank(Level::Folder) < default_rank(Level::Project));
        assert!(default_rank(Level::Project) < default_rank(Level::User));
        assert!(default_rank(Level::User) < default_rank(Level::Org));
    }

    #[test]
    fn a_local_file_replaces_keys_except_governed_ones_above_the_user() {
        assert!(local_replaces(Level::User, "modelPolicy"));
        assert!(local_replaces(Level::Project, "sessionDefaultSettings"));
        assert!(!local_replaces(Level::Project, "modelPolicy"));
        assert!(!local_replaces(Level::Folder, "customModels"));
        assert!(!local_replaces(Level::Org, "mcpPolicy"));
    }
}
