//! URLs are parsed, never globbed as text.
//!
//! Inputs and patterns both go through the WHATWG URL parser (`url::Url::parse`, what Node's
//! `new URL` and Droid use), so whatever WHATWG strips or normalises — tabs and newlines, case,
//! default ports, `\` read as `/`, percent-encoding and IDNA in hosts, `.` and `..` segments — is
//! normalised the same way on both sides before anything is compared. Matching then compares
//! components (scheme, host, port, path segments), never the text.
//!
//! A base URL carries no credentials, query or fragment: those are refused, not ignored, because
//! a text-level reader and the WHATWG parser disagree about where the host ends when they appear
//! (`https://evil.example.com#.acme.internal/v1` has the host `evil.example.com`).

use std::borrow::Cow;

use ::url::Url;

/// Why a URL or a URL pattern was refused
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// WHATWG cannot parse it
    #[error("invalid URL `{input}`: {reason}")]
    Invalid { input: String, reason: String },
    /// it parses but has no host
    #[error("URL `{input}` has no host")]
    NoHost { input: String },
    /// the scheme is neither `http` nor `https`
    #[error("URL `{input}` has the scheme `{scheme}`: expected `http` or `https`")]
    Scheme { input: String, scheme: String },
    /// a username or password (or an empty `@` before the host)
    #[error("URL `{input}` carries credentials (`user@` or `user:password@`): not allowed here")]
    Userinfo { input: String },
    /// a `?`, even with nothing after it
    #[error("URL `{input}` has a query (`?`): not allowed here")]
    Query { input: String },
    /// a `#`, even with nothing after it
    #[error("URL `{input}` has a fragment (`#`): not allowed here")]
    Fragment { input: String },
    /// a pattern whose wildcards are not where the syntax allows them
    #[error("invalid URL pattern `{input}`: {reason}")]
    Pattern { input: String, reason: &'static str },
}

impl UrlError {
    /// A stable code for clients, metrics and tests
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::Invalid { .. } => "url.invalid",
            UrlError::NoHost { .. } => "url.no_host",
            UrlError::Scheme { .. } => "url.scheme",
            UrlError::Userinfo { .. } => "url.userinfo",
            UrlError::Query { .. } => "url.query",
            UrlError::Fragment { .. } => "url.fragment",
            UrlError::Pattern { .. } => "url.pattern",
        }
    }
}

/// A parsed `http`/`https` base URL: its components after WHATWG normalisation
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    /// `http` or `https`
    pub scheme: String,
    /// lowercased, IDNA as punycode, one trailing dot removed; IPv6 in brackets (`[::1]`)
    pub host: String,
    /// the explicit port, or the scheme's default
    pub port: u16,
    /// path segments, percent-encoded as WHATWG leaves them; the empty segment a trailing `/`
    /// produces is dropped (`/v1/` and `/v1` are both `["v1"]`, `/` is `[]`)
    pub path: Vec<String>,
}

impl BaseUrl {
    /// [`BaseUrl::parse`], remembering the last input parsed on this thread: the decision path
    /// sees the same base URL (the gateway's own, an org model's) on nearly every request, and a
    /// WHATWG parse with IDNA costs more than the rest of a URL check
    pub fn parse_memo(input: &str) -> std::rc::Rc<Result<BaseUrl, UrlError>> {
        type Memo = Option<(String, std::rc::Rc<Result<BaseUrl, UrlError>>)>;
        thread_local! {
            static LAST: std::cell::RefCell<Memo> = const { std::cell::RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((seen, parsed)) = last.as_ref()
                && seen == input
            {
                return std::rc::Rc::clone(parsed);
            }
            let parsed = std::rc::Rc::new(BaseUrl::parse(input));
            *last = Some((input.to_string(), std::rc::Rc::clone(&parsed)));
            parsed
        })
    }

    /// Parse a base URL; refuse what is not a plain `http(s)://host[:port][/path]`
    pub fn parse(input: &str) -> Result<BaseUrl, UrlError> {
        let clean = whatwg_clean(input);
        let url = Url::parse(&clean).map_err(|e| UrlError::Invalid {
            input: input.to_string(),
            reason: e.to_string(),
        })?;
        check_scheme(input, url.scheme())?;
        if !url.username().is_empty()
            || url.password().is_some()
            || raw_authority(&clean).contains('@')
        {
            return Err(UrlError::Userinfo {
                input: input.to_string(),
            });
        }
        check_query_fragment(input, &clean)?;
        // belt and braces: the raw check above should already have caught these
        if url.query().is_some() {
            return Err(UrlError::Query {
                input: input.to_string(),
            });
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment {
                input: input.to_string(),
            });
        }
        let host = url
            .host_str()
            .map(normalise_host)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| UrlError::NoHost {
                input: input.to_string(),
            })?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| UrlError::Invalid {
                input: input.to_string(),
                reason: "no port and no default port for its scheme".to_string(),
            })?;
        Ok(BaseUrl {
            scheme: url.scheme().to_string(),
            host,
            port,
            path: path_segments(&url),
        })
    }
}

/// What a pattern's host accepts
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// `*`: any host
    Any,
    /// `*.acme.internal`: one or more labels before the suffix, never the suffix itself
    Subdomains(String),
    /// `acme.internal`: that host only
    Exact(String),
}

/// One path segment of a pattern
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// matches that segment only (case-sensitive, percent-encoding as WHATWG leaves it)
    Literal(String),
    /// `*`: exactly one non-empty segment
    One,
    /// `**`, last only: zero or more segments
    Rest,
}

/// A compiled base URL pattern: `scheme://HOST[:PORT][/PATH]`
///
/// - HOST: an exact host, `*.suffix` (one or more labels before the suffix, never the suffix
///   itself), or `*` (any host); compared case-insensitively, IDNA as punycode, a trailing dot
///   ignored.
/// - PORT: a number, `*` (any port), or absent: the scheme's default (`https://h` and
///   `https://h:443` are the same pattern).
/// - PATH: segments, each literal, `*` (exactly one non-empty segment) or, last only, `**` (zero
///   or more segments). Without a trailing `**` the URL's path must have exactly the pattern's
///   segments; a trailing slash is insignificant on both sides (`https://h/v1` matches
///   `https://h/v1` and `https://h/v1/`, not `https://h/v1/x`). `https://h/**` matches
///   `https://h` too.
///
/// `*` anywhere else (`foo*bar.com`, `https://*acme.internal`, `/v1*`) is refused (`url.pattern`);
/// so are credentials, queries and fragments, as in [`BaseUrl::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlPattern {
    text: String,
    scheme: String,
    host: HostMatch,
    /// `None`: any port
    port: Option<u16>,
    path: Vec<Segment>,
}

/// Placeholders standing for wildcards while WHATWG normalises a pattern's literal parts
const ONE_PLACEHOLDER: &str = "strata-wildcard-one-segment";
const REST_PLACEHOLDER: &str = "strata-wildcard-any-segments";
const HOST_PLACEHOLDER: &str = "strata-wildcard-host";

impl UrlPattern {
    /// Compile a pattern (see the type's documentation for the syntax)
    // Longer than a screen: one pass over the pattern in the order WHATWG reads a URL (scheme,
    // authority, host, port, path), putting placeholders in for the wildcards and taking them
    // back out of the normalised URL; the order of the checks decides which error a bad pattern
    // reports, and the tests pin those messages.
    pub fn parse(pattern: &str) -> Result<UrlPattern, UrlError> {
        let bad = |reason: &'static str| UrlError::Pattern {
            input: pattern.to_string(),
            reason,
        };
        let clean = whatwg_clean(pattern);
        let lower = clean.to_ascii_lowercase();
        if [ONE_PLACEHOLDER, REST_PLACEHOLDER, HOST_PLACEHOLDER]
            .iter()
            .any(|p| lower.contains(p))
        {
            return Err(bad("it contains a name Strata reserves for wildcards"));
        }
        check_query_fragment(pattern, &clean)?;
        let (scheme, rest) = clean
            .split_once("://")
            .ok_or_else(|| bad("expected `scheme://host`"))?;
        if scheme.contains('*') {
            return Err(bad("the scheme cannot be a wildcard"));
        }
        check_scheme(pattern, &scheme.to_ascii_lowercase())?;
        let auth_end = rest.find(['/', '\\']).unwrap_or(rest.len());
        let (authority, raw_path) = rest.split_at(auth_end);
        if authority.contains('@') {
            return Err(UrlError::Userinfo {
                input: pattern.to_string(),
            });
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost {
                input: pattern.to_string(),
            });
        }
        let (raw_host, raw_port) = split_host_port(authority);

        // the host: `*`, `*.suffix`, or literal; a placeholder label stands for the wildcard
        let (host_kind, host_text) = if raw_host == "*" {
            (HostKind::Any, format!("{HOST_PLACEHOLDER}.invalid"))
        } else if let Some(suffix) = raw_host.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(bad(
                    "a host wildcard is `*` or a leading `*.` before a literal suffix",
                ));
            }
            (HostKind::Subdomains, format!("{HOST_PLACEHOLDER}.{suffix}"))
        } else if raw_host.contains('*') {
            return Err(bad(
                "a host wildcard is `*` or a leading `*.` before a literal suffix",
            ));
        } else {
            (HostKind::Exact, raw_host.to_string())
        };

        let port_text = match raw_port {
            None => String::new(),
            Some("*") => String::new(),
            Some(p) if p.contains('*') => {
                return Err(bad("a port wildcard is `*` alone"));
            }
            Some(p) => format!(":{p}"),
        };
        let any_port = raw_port == Some("*");

        let mut path_text = String::new();
        if !raw_path.is_empty() {
            for seg in raw_path[1..].split(['/', '\\']) {
                path_text.push('/');
                match seg {
                    "*" => path_text.push_str(ONE_PLACEHOLDER),
                    "**" => path_text.push_str(REST_PLACEHOLDER),
                    s if s.contains('*') => {
                        return Err(bad(
                            "a path wildcard is a whole segment: `*`, or `**` at the end",
                        ));
                    }
                    s => path_text.push_str(s),
                }
            }
        }

        let rebuilt = format!("{scheme}://{host_text}{port_text}{path_text}");
        let url = Url::parse(&rebuilt).map_err(|e| UrlError::Invalid {
            input: pattern.to_string(),
            reason: e.to_string(),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Userinfo {
                input: pattern.to_string(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("wildcards cannot hide a query or a fragment"));
        }
        let host_str = url
            .host_str()
            .map(normalise_host)
            .ok_or_else(|| UrlError::NoHost {
                input: pattern.to_string(),
            })?;
        let host = match host_kind {
            HostKind::Any => HostMatch::Any,
            HostKind::Subdomains => {
                let suffix = host_str
                    .strip_prefix(HOST_PLACEHOLDER)
                    .and_then(|s| s.strip_prefix('.'))
                    .ok_or_else(|| bad("the suffix after `*.` is not a domain"))?;
                if suffix.is_empty() || suffix.split('.').any(str::is_empty) {
                    return Err(bad("the suffix after `*.` is not a domain"));
                }
                if suffix.contains('*') {
                    return Err(bad(
                        "a host wildcard is `*` or a leading `*.` before a literal suffix",
                    ));
                }
                HostMatch::Subdomains(suffix.to_string())
            }
            HostKind::Exact => {
                if host_str.is_empty() {
                    return Err(UrlError::NoHost {
                        input: pattern.to_string(),
                    });
                }
                if host_str.contains('*') {
                    return Err(bad(
                        "a host wildcard is `*` or a leading `*.` before a literal suffix",
                    ));
                }
                HostMatch::Exact(host_str)
            }
        };
        let port = if any_port {
            None
        } else {
            Some(
                url.port_or_known_default()
                    .ok_or_else(|| UrlError::Invalid {
                        input: pattern.to_string(),
                        reason: "no port and no default port for its scheme".to_string(),
                    })?,
            )
        };
        let segments = path_segments(&url);
        let mut path = Vec::with_capacity(segments.len());
        for (i, seg) in segments.iter().enumerate() {
            path.push(match seg.as_str() {
                ONE_PLACEHOLDER => Segment::One,
                REST_PLACEHOLDER if i + 1 == segments.len() => Segment::Rest,
                REST_PLACEHOLDER => return Err(bad("`**` is allowed only as the last segment")),
                s => Segment::Literal(s.to_string()),
            });
        }
        Ok(UrlPattern {
            text: pattern.to_string(),
            scheme: url.scheme().to_string(),
            host,
            port,
            path,
        })
    }

    /// Whether `url` matches: same scheme, host, port and path (see the type's documentation)
    pub fn matches(&self, url: &BaseUrl) -> bool {
        url.scheme == self.scheme
            && self.port.is_none_or(|p| p == url.port)
            && host_matches(&self.host, &url.host)
            && path_matches(&self.path, &url.path)
    }

    /// The pattern as written
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the pattern's host accepts
    pub fn host(&self) -> &HostMatch {
        &self.host
    }
}

#[derive(Clone, Copy)]
enum HostKind {
    Any,
    Subdomains,
    Exact,
}

fn host_matches(pattern: &HostMatch, host: &str) -> bool {
    match pattern {
        HostMatch::Any => true,
        HostMatch::Exact(h) => h == host,
        HostMatch::Subdomains(suffix) => is_strict_subdomain(host, suffix),
    }
}

/// `host` is `<one or more non-empty labels>.suffix`
pub(crate) fn is_strict_subdomain(host: &str, suffix: &str) -> bool {
    let Some(prefix) = host.strip_suffix(suffix).and_then(|p| p.strip_suffix('.')) else {
        return false;
    };
    !prefix.is_empty() && !prefix.split('.').any(str::is_empty)
}

fn path_matches(pattern: &[Segment], path: &[String]) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        match p {
            Segment::Rest => return true,
            Segment::One => {
                if path.get(i).is_none_or(|s| s.is_empty()) {
                    return false;
                }
            }
            Segment::Literal(l) => {
                if path.get(i) != Some(l) {
                    return false;
                }
            }
        }
    }
    pattern.len() == path.len()
}

/// The hostname Droid matches MCP allowlists on: Node's `new URL(url).hostname`, lowercased, one
/// trailing dot removed, IPv6 without its brackets (`::1`). `None` when WHATWG cannot parse `url`
/// as an absolute URL (`docs.acme.internal/mcp` has no scheme, so it is not a URL) or it has no
/// host.
pub fn mcp_host(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let host = normalise_host(parsed.host_str()?);
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.to_string(),
        None => host,
    };
    (!host.is_empty()).then_some(host)
}

/// Lowercase, one trailing dot removed
fn normalise_host(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

fn path_segments(url: &Url) -> Vec<String> {
    let mut segs: Vec<String> = url
        .path_segments()
        .map(|s| s.map(str::to_string).collect())
        .unwrap_or_default();
    if segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    segs
}

fn check_scheme(input: &str, scheme: &str) -> Result<(), UrlError> {
    if scheme == "http" || scheme == "https" {
        Ok(())
    } else {
        Err(UrlError::Scheme {
            input: input.to_string(),
            scheme: scheme.to_string(),
        })
    }
}

/// Refuse a `?` or `#` anywhere, whichever comes first, even with nothing after it
fn check_query_fragment(input: &str, clean: &str) -> Result<(), UrlError> {
    match clean.find(['?', '#']).map(|i| clean.as_bytes()[i]) {
        Some(b'?') => Err(UrlError::Query {
            input: input.to_string(),
        }),
        Some(_) => Err(UrlError::Fragment {
            input: input.to_string(),
        }),
        None => Ok(()),
    }
}

/// The input as the WHATWG parser reads it: leading and trailing C0 controls and spaces trimmed,
/// every tab and newline removed
fn whatwg_clean(input: &str) -> Cow<'_, str> {
    let trimmed = input.trim_matches(|c: char| c <= ' ');
    if trimmed.contains(['\t', '\n', '\r']) {
        Cow::Owned(
            trimmed
                .chars()
                .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                .collect(),
        )
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// The authority of a cleaned special-scheme URL as WHATWG delimits it: after `scheme:` and any
/// run of `/` or `\`, up to the first `/`, `\`, `?` or `#`. Empty when there is no scheme.
fn raw_authority(clean: &str) -> &str {
    let Some((scheme, rest)) = clean.split_once(':') else {
        return "";
    };
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return "";
    }
    let rest = rest.trim_start_matches(['/', '\\']);
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// `host[:port]` or `[v6][:port]`
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let (host, after) = authority.split_at(end + 1);
            return match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                // anything else after `]` is left for WHATWG to refuse
                None if after.is_empty() => (host, None),
                None => (authority, None),
            };
        }
        return (authority, None);
    }
    match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests;
