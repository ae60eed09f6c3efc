//! "Did you mean": the closest known name to a misspelt one, for error messages about unknown
//! keys and values.

/// The name of `known` closest to `got`, compared case-insensitively by Damerau–Levenshtein
/// distance (adjacent swaps count once), when it is close enough: at most 1 edit for names of up
/// to 5 characters, 2 up to 8, 3 beyond, and fewer edits than `got` has characters. Ties go to
/// the earlier name in `known`; `None` when nothing is close.
pub fn did_you_mean<'a>(got: &str, known: &[&'a str]) -> Option<&'a str> {
    let got_lower = got.to_lowercase();
    let got_len = got_lower.chars().count();
    let mut best: Option<(usize, &'a str)> = None;
    for &k in known {
        let k_lower = k.to_lowercase();
        let d = strsim::damerau_levenshtein(&got_lower, &k_lower);
        let len = got_len.max(k_lower.chars().count());
        let limit = match len {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        if d <= limit && d < got_len && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "allowedModelIds",
        "blockedModelIds",
        "allowedBaseUrls",
        "enabled",
        "allowlist",
        "mcpPolicy",
        "modelPolicy",
    ];

    #[test]
    fn close_names() {
        assert_eq!(
            did_you_mean("blockedModelIDs", KEYS),
            Some("blockedModelIds")
        );
        assert_eq!(did_you_mean("enable", KEYS), Some("enabled"));
        assert_eq!(did_you_mean("allowlists", KEYS), Some("allowlist"));
        assert_eq!(did_you_mean("allowedModels", KEYS), Some("allowedModelIds"));
        assert_eq!(
            did_you_mean("alowedBaseUrls", KEYS),
            Some("allowedBaseUrls")
        );
        assert_eq!(did_you_mean("mcpPolciy", KEYS), Some("mcpPolicy"));
        assert_eq!(did_you_mean("ModelPolicy", KEYS), Some("modelPolicy"));
    }

    #[test]
    fn nothing_close() {
        assert_eq!(did_you_mean("foo", KEYS), None);
        assert_eq!(did_you_mean("sandbox", KEYS), None);
        assert_eq!(did_you_mean("", KEYS), None);
        assert_eq!(did_you_mean("x", &["y"]), None);
        assert_eq!(did_you_mean("enabled", &[]), None);
    }
}
