//! Stage 1: who is asking. The gateway token comes as the API key (central mode: the gateway adds
//! the org's provider key) or, when the client brings its own provider key (BYOK), in a
//! governance header.

use axum::http::{HeaderMap, HeaderName, header};

use super::header_text;
use crate::audit::{self, Pending};
use crate::error::GatewayError;

/// Headers that carry the gateway token when the client brings its own provider key (BYOK).
/// They never go upstream.
pub const GOVERNANCE_HEADERS: [&str; 2] =
    ["x-strata-governance-token", "x-coder-ai-governance-token"];

// the same names, parsed once (a lookup by `&str` parses the name on every call)
static GOVERNANCE: [HeaderName; 2] = [
    HeaderName::from_static(GOVERNANCE_HEADERS[0]),
    HeaderName::from_static(GOVERNANCE_HEADERS[1]),
];
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// How the caller authenticated
pub struct Caller {
    /// the gateway token
    pub token: String,
    /// the client brings its own provider key, which goes upstream as sent
    pub byok: bool,
}

/// The caller of a request, noted in its audit record (key mode and a masked hint of the key);
/// the resolver checks the token when it decides
pub fn authenticate(h: &HeaderMap, pending: &mut Pending) -> Result<Caller, GatewayError> {
    let caller = caller(h).ok_or(GatewayError::MissingApiKey)?;
    if let Some(var) = unexpanded(&caller.token) {
        return Err(GatewayError::UnexpandedApiKey {
            var: var.to_string(),
        });
    }
    let key_hint = audit::key_hint(if caller.byok {
        api_key(h).unwrap_or_default()
    } else {
        &caller.token
    });
    pending.set(|r| {
        r.key_mode = if caller.byok { "byok" } else { "central" }.to_string();
        r.key_hint = key_hint;
    });
    Ok(caller)
}

/// The longest variable name quoted back in a refusal
const MAX_VAR_CHARS: usize = 64;

/// The variable's name when a key is a `${NAME}` the client sent as written (Droid does so with
/// an unset variable in a settings file); a name is letters, digits and `_`
pub fn unexpanded(key: &str) -> Option<&str> {
    let name = key.strip_prefix("${")?.strip_suffix('}')?;
    // `${NAME:-default}` is sent as written too
    let name = name.split_once(":-").map_or(name, |(n, _)| n);
    let ok = !name.is_empty()
        && name.len() <= MAX_VAR_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(name)
}

/// The API key the client sent: `x-api-key`, or `Authorization: Bearer`
fn api_key(h: &HeaderMap) -> Option<&str> {
    header_text(h, &X_API_KEY).or_else(|| {
        header_text(h, &header::AUTHORIZATION)
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
    })
}

/// The caller from a request's headers: a governance header means BYOK
pub fn caller(h: &HeaderMap) -> Option<Caller> {
    if let Some(t) = GOVERNANCE.iter().find_map(|n| header_text(h, n)) {
        return Some(Caller {
            token: t.to_string(),
            byok: true,
        });
    }
    api_key(h).map(|t| Caller {
        token: t.to_string(),
        byok: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpanded_variables_are_named() {
        assert_eq!(unexpanded("${STRATA_TOKEN}"), Some("STRATA_TOKEN"));
        assert_eq!(unexpanded("${MY_KEY:-x}"), Some("MY_KEY"));
        for key in ["strata_gw_123", "${}", "${A B}", "$STRATA_TOKEN", "x${A}"] {
            assert_eq!(unexpanded(key), None, "{key}");
        }
    }
}
