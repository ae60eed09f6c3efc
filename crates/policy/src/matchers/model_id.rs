//! Canonical model ids: the form Strata matches `allowedModelIds`, `blockedModelIds` and
//! categories on, so that `OpenAI/GPT‑4o` (a non-breaking hyphen, a router prefix, capitals) is
//! the `gpt-4o` a list names.
//!
//! The steps, repeated until nothing changes (one round for all but contrived inputs):
//!
//! 1. remove invisible characters: soft hyphen U+00AD, U+180E, zero-width U+200B–U+200D, word
//!    joiner U+2060, BOM U+FEFF;
//! 2. Unicode NFKC (fullwidth `ｇｐｔ－４ｏ` becomes `gpt-4o`, U+2011 becomes U+2010);
//! 3. fold look-alike hyphens and dashes (U+2010–U+2015, U+2212, U+FE58, U+FE63, U+FF0D) to `-`;
//!    fold every run of Unicode whitespace (NBSP U+00A0, U+2007, U+202F included) to one ASCII
//!    space, and trim it from both ends; lowercase ASCII letters (Strata matches model ids
//!    case-insensitively; other scripts are left as they are, and look-alike letters such as a
//!    Cyrillic `о` are not folded);
//!
//! then strip the provider and router prefixes of [`PROVIDER_PREFIXES`] from the front, again
//! and again (`openrouter/openai/gpt-4o` is `gpt-4o`), trimming spaces after each.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Provider and router prefixes stripped from the front of a model id, repeatedly, after folding.
/// `openrouter/` is stripped together with the vendor segment after it (`openrouter/openai/`),
/// and only when that segment is followed by a `/` (`openrouter/auto` stays as it is).
pub const PROVIDER_PREFIXES: &[&str] = &[
    "openai/",
    "anthropic/",
    "azure/",
    "bedrock/",
    "vertex_ai/",
    "vertex/",
    "gemini/",
    "google/",
    OPENROUTER,
    "litellm/",
    "custom:",
];

const OPENROUTER: &str = "openrouter/";

/// A model id as sent and in canonical form
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Canonical {
    /// the canonical id, what lists are matched against
    pub id: String,
    /// the id exactly as the request sent it
    pub sent: String,
    /// the provider or router prefixes stripped (folded, e.g. `openrouter/openai/`), if any
    pub prefix: Option<String>,
}

/// The canonical form of `id`, with what was stripped
pub fn canonical(id: &str) -> Canonical {
    let folded = fold(id);
    let rest = strip_prefixes(&folded);
    let stripped = folded.len() - rest.len();
    let prefix = (stripped > 0).then(|| folded[..stripped].trim_end_matches(' ').to_string());
    Canonical {
        id: rest.to_string(),
        sent: id.to_string(),
        prefix,
    }
}

/// The canonical id of `id`; borrows (no allocation) when `id` is ASCII without capitals or
/// whitespace, the usual case on the request path
pub fn canonical_str(id: &str) -> Cow<'_, str> {
    match fold(id) {
        Cow::Borrowed(s) => Cow::Borrowed(strip_prefixes(s)),
        Cow::Owned(s) => {
            let rest = strip_prefixes(&s);
            if rest.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(rest.to_string())
            }
        }
    }
}

/// A list entry folded like ids: the same steps, and the glob metacharacters `*?[]{}` (ASCII,
/// untouched by the fold) keep their meaning. A fullwidth `＊` becomes `*` through NFKC.
pub fn canonical_pattern(p: &str) -> String {
    canonical_str(p).into_owned()
}

/// Steps 1–3, to a fixed point; borrowed when they change nothing
fn fold(id: &str) -> Cow<'_, str> {
    let plain = id.bytes().all(|b| {
        b.is_ascii()
            && !b.is_ascii_uppercase()
            && !matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
    });
    if plain {
        return Cow::Borrowed(id);
    }
    let mut s = fold_round(id);
    // NFKC after lowercasing or removing a character can compose what it could not before
    // (`J` + U+030C has no precomposed form, `j` + U+030C does): repeat until stable
    for _ in 0..8 {
        let next = fold_round(&s);
        if next == s {
            break;
        }
        s = next;
    }
    Cow::Owned(s)
}

fn fold_round(s: &str) -> String {
    let visible: String = s.chars().filter(|c| !is_invisible(*c)).collect();
    let mut out = String::with_capacity(visible.len());
    let mut space = false;
    for c in visible.nfkc() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(if is_dash(c) {
            '-'
        } else {
            c.to_ascii_lowercase()
        });
    }
    out
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}'
    )
}

/// [`PROVIDER_PREFIXES`] off the front of a folded id, repeatedly, spaces trimmed after each
fn strip_prefixes(mut s: &str) -> &str {
    loop {
        let before = s.len();
        for p in PROVIDER_PREFIXES {
            let Some(rest) = s.strip_prefix(p) else {
                continue;
            };
            if *p == OPENROUTER {
                match rest.split_once('/') {
                    Some((_vendor, r)) => s = r,
                    None => continue,
                }
            } else {
                s = rest;
            }
            break;
        }
        s = s.trim_matches(' ');
        if s.len() == before {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn examples() {
        for (input, id) in [
            ("openai/gpt-4o", "gpt-4o"),
            ("openrouter/openai/gpt-4o", "gpt-4o"),
            ("openrouter/auto", "openrouter/auto"),
            ("gpt\u{2011}4o", "gpt-4o"),
            ("gpt\u{2212}4o", "gpt-4o"),
            ("gpt\u{00AD}-4o", "gpt-4o"),
            ("gpt-\u{200B}4o", "gpt-4o"),
            ("\u{FEFF}gpt-4o", "gpt-4o"),
            ("  GPT-4o ", "gpt-4o"),
            ("\u{00A0}GPT-4o\u{202F}", "gpt-4o"),
            ("ｇｐｔ－４ｏ", "gpt-4o"),
            ("custom:acme-qwen3-coder", "acme-qwen3-coder"),
            ("Custom:Acme  Qwen\u{2007}3", "acme qwen 3"),
            (
                "litellm/bedrock/anthropic/claude-sonnet-4-5",
                "claude-sonnet-4-5",
            ),
            ("vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"),
            ("openai/ gpt-4o", "gpt-4o"),
            ("models/gemini-2.5-pro", "models/gemini-2.5-pro"),
            ("claude-opus-4-6", "claude-opus-4-6"),
            ("", ""),
        ] {
            assert_eq!(canonical_str(input), id, "{input:?}");
            assert_eq!(canonical(input).id, id, "{input:?}");
        }
    }

    #[test]
    fn canonical_keeps_what_was_sent_and_stripped() {
        let c = canonical(" OpenRouter/OpenAI/GPT-4o");
        assert_eq!(c.id, "gpt-4o");
        assert_eq!(c.sent, " OpenRouter/OpenAI/GPT-4o");
        assert_eq!(c.prefix.as_deref(), Some("openrouter/openai/"));
        assert_eq!(canonical("gpt-4o").prefix, None);
    }

    #[test]
    fn plain_ids_borrow() {
        assert!(matches!(canonical_str("gpt-4o"), Cow::Borrowed("gpt-4o")));
        assert!(matches!(
            canonical_str("openai/gpt-4o"),
            Cow::Borrowed("gpt-4o")
        ));
        assert!(matches!(canonical_str("GPT-4o"), Cow::Owned(_)));
    }

    #[test]
    fn patterns_keep_globs() {
        assert_eq!(canonical_pattern("OpenAI/GPT-4o*"), "gpt-4o*");
        assert_eq!(canonical_pattern("claude-[so]*-4?"), "claude-[so]*-4?");
        assert_eq!(canonical_pattern("ｇｐｔ－＊"), "gpt-*");
        assert_eq!(canonical_pattern("openrouter/*/gpt-4o"), "gpt-4o");
    }

    #[test]
    fn composition_after_lowercasing_is_stable() {
        // `J` + caron has no precomposed form, `j` + caron does (U+01F0)
        assert_eq!(canonical_str("J\u{30C}"), "\u{1F0}");
        assert_eq!(canonical_str("\u{1F0}"), "\u{1F0}");
    }

    fn id_text() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(
            &[
                "gpt",
                "GPT",
                "4o",
                "-",
                " ",
                "  ",
                ".",
                "/",
                ":",
                "claude",
                "é",
                "e\u{301}",
                "\u{301}",
                "J\u{30C}",
                "ｇ",
                "－",
                "\u{2011}",
                "\u{00A0}",
                "\u{200B}",
                "\u{00AD}",
                "openai/",
                "OpenRouter/",
                "custom:",
                "x",
                "İ",
                "Ⅻ",
                "ﬁ",
                "\t",
                "\u{3000}",
                "<",
                "\u{338}",
            ][..],
        );
        proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    fn dash() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(
            &[
                "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2015}", "\u{2212}",
                "\u{FE58}", "\u{FE63}", "\u{FF0D}", "-",
            ][..],
        )
    }

    fn space() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(
            &[
                " ",
                "  ",
                "\u{00A0}",
                "\u{2007}",
                "\u{202F}",
                "\t",
                "\u{3000}",
                " \u{200B} ",
            ][..],
        )
    }

    fn invisible() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(
            &[
                "", "", "\u{00AD}", "\u{200B}", "\u{200C}", "\u{200D}", "\u{FEFF}", "\u{2060}",
            ][..],
        )
    }

    proptest! {
        #[test]
        fn idempotent(x in id_text()) {
            let once = canonical_str(&x).into_owned();
            prop_assert_eq!(canonical_str(&once), once.as_str());
        }

        #[test]
        fn prefixes_are_transparent(x in id_text(), i in 0..PROVIDER_PREFIXES.len(), upper in any::<bool>()) {
            let mut p = PROVIDER_PREFIXES[i].to_string();
            if p == OPENROUTER {
                p.push_str("openai/");
            }
            if upper {
                p = p.to_uppercase();
            }
            let prefixed = format!("{p}{x}");
            prop_assert_eq!(canonical_str(&prefixed), canonical_str(&x));
        }

        #[test]
        fn look_alikes_fold(
            words in proptest::collection::vec("[a-z0-9.]{1,5}", 1..5),
            seps in proptest::collection::vec((any::<bool>(), dash(), space()), 4),
            inv in proptest::collection::vec(invisible(), 5),
        ) {
            // the same id spelled with ASCII separators and with look-alikes and invisibles
            let mut plain = String::new();
            let mut fancy = String::new();
            for (i, w) in words.iter().enumerate() {
                fancy.push_str(inv[i]);
                if i > 0 {
                    let (is_dash, d, s) = seps[i - 1];
                    plain.push(if is_dash { '-' } else { ' ' });
                    fancy.push_str(if is_dash { d } else { s });
                }
                plain.push_str(w);
                fancy.push_str(&w.to_uppercase());
            }
            fancy.push_str(inv[4]);
            prop_assert_eq!(canonical_str(&fancy), canonical_str(&plain));
        }
    }
}
