//! Droid's catalogue of model ids: the only ids its org schema keeps in `allowedModelIds`,
//! `blockedModelIds` and `requireExplicitOptInModelIds` (anything else is dropped silently).
//! Read from the pinned binary by `tests/droid/extract-model-ids.sh`; a test there fails when a
//! Droid release changes it.

/// The Droid release the catalogue was read from
pub const DROID_VERSION: &str = "0.225.2";

const IDS: &str = include_str!("../../../../tests/droid/model-ids-0.225.2.txt");

/// Every id, in the file's order (sorted)
pub fn model_ids() -> impl Iterator<Item = &'static str> {
    IDS.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// Does Droid keep `id` in its org model lists
pub fn known_model_id(id: &str) -> bool {
    model_ids().any(|m| m == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_dated_ids_not_their_aliases() {
        assert!(known_model_id("claude-sonnet-4-5-20250929"));
        assert!(!known_model_id("claude-sonnet-4-5"), "not in 0.225.2");
        assert!(!known_model_id("claude-*"));
        assert!(model_ids().count() > 80);
    }
}
