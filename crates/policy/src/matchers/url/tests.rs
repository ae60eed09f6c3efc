use super::*;

fn m(pattern: &str, url: &str) -> bool {
    let p = UrlPattern::parse(pattern).unwrap();
    match BaseUrl::parse(url) {
        Ok(u) => p.matches(&u),
        Err(_) => false,
    }
}

fn code(url: &str) -> &'static str {
    BaseUrl::parse(url).unwrap_err().code()
}

fn pcode(pattern: &str) -> &'static str {
    UrlPattern::parse(pattern).unwrap_err().code()
}

#[test]
fn base_url_components() {
    let u = BaseUrl::parse("HTTPS://X.ACME.Internal.:443/v1/a/").unwrap();
    assert_eq!(u.scheme, "https");
    assert_eq!(u.host, "x.acme.internal");
    assert_eq!(u.port, 443);
    assert_eq!(u.path, ["v1", "a"]);
    let u = BaseUrl::parse("http://127.0.0.1:8787").unwrap();
    assert_eq!((u.port, u.path.len()), (8787, 0));
    let u = BaseUrl::parse("http://127.0.0.1:8787/").unwrap();
    assert!(u.path.is_empty());
    let u = BaseUrl::parse("https://h/a/./b/../c").unwrap();
    assert_eq!(u.path, ["a", "c"]);
    let u = BaseUrl::parse("https://h/a/%2e%2E/c").unwrap();
    assert_eq!(u.path, ["c"]);
    let u = BaseUrl::parse(" \thttps://h\\v1\n ").unwrap();
    assert_eq!(u.path, ["v1"]);
    let u = BaseUrl::parse("http://[::1]:80/").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("[::1]", 80));
    let u = BaseUrl::parse("http://0x7f.1/").unwrap();
    assert_eq!(u.host, "127.0.0.1");
}

#[test]
fn base_url_refusals() {
    assert_eq!(code("not a url"), "url.invalid");
    assert_eq!(code("/relative"), "url.invalid");
    assert_eq!(code("ftp://h/"), "url.scheme");
    assert_eq!(code("mailto:a@b"), "url.scheme");
    assert_eq!(code("https://u@h/"), "url.userinfo");
    assert_eq!(code("https://u:p@h/"), "url.userinfo");
    assert_eq!(code("https://:p@h/"), "url.userinfo");
    assert_eq!(code("https://@h/"), "url.userinfo");
    assert_eq!(code("https://h/?"), "url.query");
    assert_eq!(code("https://h/?a=1"), "url.query");
    assert_eq!(code("https://h/#"), "url.fragment");
    assert_eq!(code("https://h/#x?y"), "url.fragment");
    assert_eq!(code("https://h/\t?"), "url.query");
    assert_eq!(code("https://./"), "url.no_host");
}

#[test]
fn error_messages_name_the_input() {
    let e = BaseUrl::parse("https://u@h/").unwrap_err();
    assert_eq!(
        e.to_string(),
        "URL `https://u@h/` carries credentials (`user@` or `user:password@`): not allowed here"
    );
    let e = UrlPattern::parse("https://foo*bar.com").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid URL pattern `https://foo*bar.com`: a host wildcard is `*` or a leading `*.` before a literal suffix"
    );
    let e = BaseUrl::parse("ftp://h").unwrap_err();
    assert_eq!(
        e.to_string(),
        "URL `ftp://h` has the scheme `ftp`: expected `http` or `https`"
    );
}

#[test]
fn old_syntax_keeps_its_meaning() {
    // docs/formats.md, "Patterns: globs per list kind"
    assert!(m("http://127.0.0.1:8787/**", "http://127.0.0.1:8787/v1"));
    assert!(m(
        "http://127.0.0.1:8787/**",
        "http://127.0.0.1:8787/v1/a/b"
    ));
    assert!(!m("http://127.0.0.1:8787/*", "http://127.0.0.1:8787/a/b"));
    assert!(m("http://127.0.0.1:8787/*", "http://127.0.0.1:8787/a"));
    assert!(m(
        "https://*.acme.internal/**",
        "https://llm.acme.internal/v1"
    ));
    assert!(m("http://127.0.0.1:8787", "http://127.0.0.1:8787"));
    assert!(!m("http://127.0.0.1:8787", "http://127.0.0.1:8787/v1"));
    assert!(m("http://127.0.0.1:8787/v1", "http://127.0.0.1:8787/v1"));
    assert!(!m("http://127.0.0.1:8787/v1", "http://127.0.0.1:8787/v1/x"));
    assert!(!m("http://127.0.0.1:8787/v1", "http://localhost:8787/v1"));
    assert!(!m("http://127.0.0.1:8787/v1", "https://127.0.0.1:8787/v1"));
    assert!(!m("http://127.0.0.1:8787/v1", "http://127.0.0.1:8788/v1"));
}

#[test]
fn new_meanings() {
    // `/**` now matches zero segments: the bare URL too
    assert!(m("http://127.0.0.1:8787/**", "http://127.0.0.1:8787"));
    assert!(m("http://127.0.0.1:8787/**", "http://127.0.0.1:8787/"));
    // a trailing slash is insignificant on both sides
    assert!(m("http://127.0.0.1:8787", "http://127.0.0.1:8787/"));
    assert!(m("http://127.0.0.1:8787/v1/", "http://127.0.0.1:8787/v1"));
    assert!(m("http://127.0.0.1:8787/v1", "http://127.0.0.1:8787/v1/"));
    // default ports
    assert!(m("https://h", "https://h:443"));
    assert!(m("https://h:443", "https://h"));
    assert!(!m("https://h", "https://h:8443"));
    assert!(m("https://h:*", "https://h:8443"));
    assert!(m("https://h:*/v1", "https://h/v1"));
    // `*` host, `*` segment
    assert!(m("https://*/v1/*", "https://anything.example/v1/x"));
    assert!(!m("https://*/v1/*", "https://anything.example/v1"));
    assert!(!m("https://*/v1/*", "https://anything.example/v1//"));
    assert!(m("https://*/*/v1/**", "https://a/b/v1"));
    // paths are case-sensitive, hosts are not
    assert!(!m("https://h/V1", "https://h/v1"));
    assert!(m("https://H.Example/v1", "https://h.example/v1"));
    // the literal parts of patterns are normalised like inputs
    assert!(m("https://h/a/../v1", "https://h/v1"));
    assert!(m("HTTPS://h\\v1", "https://h/v1"));
    assert!(m(
        "https://bücher.acme.internal",
        "https://xn--bcher-kva.acme.internal/"
    ));
    assert!(m("http://[::1]:8080/**", "http://[0:0::1]:8080/x"));
}

#[test]
fn wildcard_subdomains_and_attacks() {
    let p = "https://*.acme.internal/**";
    // must not match
    for url in [
        "https://evil.example.com#.acme.internal/v1",
        "https://evil.example.com?.acme.internal/v1",
        "https://evil.example.com\\.acme.internal/v1",
        "https://evil.example.com%2F.acme.internal/v1",
        "https://acme.internal.evil.com/v1",
        "https://user@evil.com@x.acme.internal/",
        "https://evil.com:443@x.acme.internal",
        "https://acme.internal/v1",
        "https://.acme.internal/v1",
        "https://x.acme.internal:8443/v1",
        "http://x.acme.internal/v1",
        "https://xacme.internal/v1",
        "https://x.acme.internal../v1",
    ] {
        assert!(!m(p, url), "{url}");
    }
    // refused outright
    assert_eq!(
        code("https://user@evil.com@x.acme.internal/"),
        "url.userinfo"
    );
    assert_eq!(code("https://evil.com:443@x.acme.internal"), "url.userinfo");
    assert_eq!(
        code("https://evil.example.com#.acme.internal/v1"),
        "url.fragment"
    );
    assert_eq!(
        code("https://evil.example.com?.acme.internal/v1"),
        "url.query"
    );
    // WHATWG reads `\` as `/`: the host is evil.example.com
    assert_eq!(
        BaseUrl::parse("https://evil.example.com\\.acme.internal/v1")
            .unwrap()
            .host,
        "evil.example.com"
    );
    // must match
    for url in [
        "https://x.acme.internal.",
        "https://x.acme.internal./v1",
        "HTTPS://X.ACME.INTERNAL/v1",
        "https://x.acme.internal:443/v1",
        "https://a.b.acme.internal/v1/x",
        "https://bücher.acme.internal/",
        "https://xn--bcher-kva.acme.internal/",
        "https://x%2Eacme.internal/",
    ] {
        assert!(m(p, url), "{url}");
    }
    assert_eq!(
        BaseUrl::parse("https://bücher.acme.internal/")
            .unwrap()
            .host,
        "xn--bcher-kva.acme.internal"
    );
}

#[test]
fn pattern_refusals() {
    assert_eq!(pcode("https://foo*bar.com"), "url.pattern");
    assert_eq!(pcode("https://*acme.internal"), "url.pattern");
    assert_eq!(pcode("https://*.*.acme.internal"), "url.pattern");
    assert_eq!(pcode("https://*.acme.*"), "url.pattern");
    assert_eq!(pcode("http://127.0.0.1:8787*"), "url.pattern");
    assert_eq!(pcode("http://127.0.0.1:87*"), "url.pattern");
    assert_eq!(pcode("https://h/v1*"), "url.pattern");
    assert_eq!(pcode("https://h/**/v1"), "url.pattern");
    assert_eq!(pcode("https://h/***"), "url.pattern");
    assert_eq!(pcode("*://h/"), "url.pattern");
    assert_eq!(pcode("h/v1"), "url.pattern");
    assert_eq!(
        pcode("https://h/strata-wildcard-one-segment"),
        "url.pattern"
    );
    assert_eq!(pcode("https://%2A.acme.internal"), "url.pattern");
    assert_eq!(pcode("https://*."), "url.pattern");
    assert_eq!(pcode("https://*.1.2.3"), "url.invalid");
    assert_eq!(pcode("ftp://h"), "url.scheme");
    assert_eq!(pcode("https://u@*.acme.internal"), "url.userinfo");
    assert_eq!(pcode("https://u:p@h"), "url.userinfo");
    assert_eq!(pcode("https://h/?"), "url.query");
    assert_eq!(pcode("https://h/**#"), "url.fragment");
    assert_eq!(pcode("https:///v1"), "url.no_host");
    assert_eq!(pcode("https://h:99999"), "url.invalid");
}

#[test]
fn pattern_keeps_its_text() {
    let p = UrlPattern::parse("HTTPS://*.Acme.Internal/**").unwrap();
    assert_eq!(p.as_str(), "HTTPS://*.Acme.Internal/**");
    assert_eq!(p.host(), &HostMatch::Subdomains("acme.internal".into()));
    let p = UrlPattern::parse("https://*.bücher.example/").unwrap();
    assert_eq!(
        p.host(),
        &HostMatch::Subdomains("xn--bcher-kva.example".into())
    );
}

#[test]
fn mcp_hosts() {
    let h = |u: &str| mcp_host(u);
    assert_eq!(
        h("https://User:pw@Docs.ACME.internal:8443/mcp?x=1").as_deref(),
        Some("docs.acme.internal")
    );
    assert_eq!(
        h("https://evil.example.com\\@docs.acme.internal/").as_deref(),
        Some("evil.example.com")
    );
    assert_eq!(
        h("https://docs.acme.internal#@evil.example.com").as_deref(),
        Some("docs.acme.internal")
    );
    assert_eq!(
        h("https://docs.acme.internal?@evil.example.com").as_deref(),
        Some("docs.acme.internal")
    );
    assert_eq!(h("http://evil.example.com%2F@x").as_deref(), Some("x"));
    assert_eq!(h("http://evil.example.com%40x/").as_deref(), None);
    assert_eq!(h("http://a@b@c/").as_deref(), Some("c"));
    assert_eq!(
        h("https://Docs.Acme.Internal./mcp").as_deref(),
        Some("docs.acme.internal")
    );
    assert_eq!(h("http://[::1]:80/").as_deref(), Some("::1"));
    assert_eq!(
        h("https://bücher.example/").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(h("mcp.example.com/sse"), None);
    assert_eq!(h("docs.acme.internal"), None);
    assert_eq!(h("https:///nohost").as_deref(), Some("nohost"));
    assert_eq!(h("file:///etc/passwd"), None);
    assert_eq!(h(""), None);
}

mod differential {
    //! `UrlPattern` against a reference decision computed straight from `url::Url` components

    use proptest::prelude::*;

    use super::super::*;

    #[derive(Debug, Clone)]
    enum RefHost {
        Any,
        Sub(&'static str),
        Exact(&'static str),
    }

    #[derive(Debug, Clone)]
    enum RefSeg {
        Lit(&'static str),
        One,
        Rest,
    }

    /// A pattern's text and the same pattern spelled out as data
    struct RefPattern {
        text: &'static str,
        scheme: &'static str,
        host: RefHost,
        port: Option<u16>,
        path: &'static [RefSeg],
    }

    const PATTERNS: &[RefPattern] = &[
        RefPattern {
            text: "https://*.acme.internal/**",
            scheme: "https",
            host: RefHost::Sub("acme.internal"),
            port: Some(443),
            path: &[RefSeg::Rest],
        },
        RefPattern {
            text: "https://*.acme.internal:*/v1/*",
            scheme: "https",
            host: RefHost::Sub("acme.internal"),
            port: None,
            path: &[RefSeg::Lit("v1"), RefSeg::One],
        },
        RefPattern {
            text: "http://*.acme.internal",
            scheme: "http",
            host: RefHost::Sub("acme.internal"),
            port: Some(80),
            path: &[],
        },
        RefPattern {
            text: "https://acme.internal/v1",
            scheme: "https",
            host: RefHost::Exact("acme.internal"),
            port: Some(443),
            path: &[RefSeg::Lit("v1")],
        },
        RefPattern {
            text: "http://127.0.0.1:8787/**",
            scheme: "http",
            host: RefHost::Exact("127.0.0.1"),
            port: Some(8787),
            path: &[RefSeg::Rest],
        },
        RefPattern {
            text: "https://*/**",
            scheme: "https",
            host: RefHost::Any,
            port: Some(443),
            path: &[RefSeg::Rest],
        },
        RefPattern {
            text: "https://evil.example.com:8443/*/v1/**",
            scheme: "https",
            host: RefHost::Exact("evil.example.com"),
            port: Some(8443),
            path: &[RefSeg::One, RefSeg::Lit("v1"), RefSeg::Rest],
        },
        RefPattern {
            text: "https://*.xn--bcher-kva.example/**",
            scheme: "https",
            host: RefHost::Sub("xn--bcher-kva.example"),
            port: Some(443),
            path: &[RefSeg::Rest],
        },
    ];

    /// The reference: `Url::parse`, then its components compared one by one. `None` when the
    /// URL must be refused on its components (userinfo, query, fragment, scheme, no host).
    fn reference(p: &RefPattern, raw: &str) -> Option<bool> {
        let u = ::url::Url::parse(raw).ok()?;
        if !matches!(u.scheme(), "http" | "https")
            || !u.username().is_empty()
            || u.password().is_some()
            || u.query().is_some()
            || u.fragment().is_some()
        {
            return None;
        }
        let host = u.host_str()?.to_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_string();
        if host.is_empty() {
            return None;
        }
        let port = u.port_or_known_default()?;
        let mut segs: Vec<&str> = u.path_segments()?.collect();
        if segs.last() == Some(&"") {
            segs.pop();
        }
        let host_ok = match p.host {
            RefHost::Any => true,
            RefHost::Exact(h) => host == h,
            RefHost::Sub(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(&format!(".{s}"))
                    && !host[..host.len() - s.len() - 1]
                        .split('.')
                        .any(str::is_empty)
            }
        };
        let mut path_ok = true;
        let mut rest = false;
        for (i, s) in p.path.iter().enumerate() {
            match s {
                RefSeg::Rest => {
                    rest = true;
                    break;
                }
                RefSeg::One => path_ok &= segs.get(i).is_some_and(|s| !s.is_empty()),
                RefSeg::Lit(l) => path_ok &= segs.get(i) == Some(l),
            }
        }
        if !rest {
            path_ok &= segs.len() == p.path.len();
        }
        Some(u.scheme() == p.scheme && p.port.is_none_or(|q| q == port) && host_ok && path_ok)
    }

    fn piece(options: &'static [&'static str]) -> BoxedStrategy<&'static str> {
        proptest::sample::select(options).boxed()
    }

    /// Mostly well-formed pieces, sometimes an adversarial one
    fn mostly(
        good: &'static [&'static str],
        bad: &'static [&'static str],
    ) -> impl Strategy<Value = &'static str> {
        prop_oneof![4 => piece(good), 1 => piece(bad)]
    }

    fn adversarial_url() -> impl Strategy<Value = String> {
        let scheme = mostly(
            &["https", "http", "HTTPS", "HtTp"],
            &["ftp", "ws", "", "h ttps", "\thttps"],
        );
        let sep = mostly(&["://"], &[":/", ":", ":\\", ":///", "://	", "\n://", "//"]);
        let userinfo = prop_oneof![
            6 => Just(""),
            1 => piece(&[
                "user@", "user:pw@", "evil.com@", ":@", "@", "evil.com:443@", "a%40b@",
                "x.acme.internal@", "evil.com\\@", "evil.com#@", "evil.com?@",
            ]),
        ];
        let host_part = mostly(
            &[
                "x",
                "X",
                "acme",
                "internal",
                "acme.internal",
                "ACME.Internal",
                "evil.example.com",
                "bücher",
                "xn--bcher-kva",
                "127.0.0.1",
                "llm",
            ],
            &[
                "%2e",
                "%2E",
                ".",
                "..",
                "[::1]",
                "0x7f.1",
                "",
                "*",
                "ｘ",
                "acme。internal",
                ".example",
            ],
        );
        let host_sep = mostly(
            &[".", ".", "", ".acme.internal"],
            &[
                "/", "\\", "?", "#", "@", ":", "%2F", "%40", "\t", "\n", "%2e", ":443", ":8443",
                ":80",
            ],
        );
        let host = proptest::collection::vec((host_part, host_sep), 1..4)
            .prop_map(|v| v.into_iter().flat_map(|(h, s)| [h, s]).collect::<String>());
        let port = mostly(
            &["", "", ":443", ":80", ":8443", ":8787"],
            &[":", ":0443", ":99999", ":*"],
        );
        let seg = mostly(
            &["/", "/v1", "/V1", "/x", "/v1/", "//"],
            &[
                "/..", "/.", "/%2e%2E", "\\v1", "/a?b", "#x", "?", "/%2F", "\t/v1",
            ],
        );
        let path = proptest::collection::vec(seg, 0..4).prop_map(|v| v.concat());
        (scheme, sep, userinfo, host, port, path)
            .prop_map(|(a, b, c, d, e, f)| format!("{a}{b}{c}{d}{e}{f}"))
    }

    fn suffix_ok(raw: &str) -> bool {
        ::url::Url::parse(raw)
            .ok()
            .and_then(|u| u.host_str().map(str::to_lowercase))
            .is_some_and(|h| {
                h.strip_suffix('.')
                    .unwrap_or(&h)
                    .ends_with(".acme.internal")
            })
    }

    proptest! {
        #[test]
        fn pattern_agrees_with_reference(raw in adversarial_url(), i in 0..PATTERNS.len()) {
            let rp = &PATTERNS[i];
            let p = UrlPattern::parse(rp.text).unwrap();
            let parsed = BaseUrl::parse(&raw);
            let ours = parsed.as_ref().is_ok_and(|u| p.matches(u));
            match reference(rp, &raw) {
                // refused on its components: we refuse too
                None => prop_assert!(parsed.is_err(), "{raw:?} accepted: {parsed:?}"),
                Some(theirs) => {
                    // the one refusal the components cannot show: an empty `@` before the host
                    let empty_userinfo =
                        matches!(parsed, Err(UrlError::Userinfo { .. }));
                    if empty_userinfo {
                        prop_assert!(!ours);
                    } else {
                        prop_assert!(parsed.is_ok(), "{raw:?} refused: {parsed:?}");
                        prop_assert_eq!(ours, theirs, "{:?} against {}", raw, rp.text);
                    }
                }
            }
        }

        #[test]
        fn subdomain_wildcard_never_escapes(raw in adversarial_url(), i in 0..PATTERNS.len()) {
            let rp = &PATTERNS[i];
            let p = UrlPattern::parse(rp.text).unwrap();
            if matches!(p.host(), HostMatch::Subdomains(s) if s == "acme.internal")
                && BaseUrl::parse(&raw).is_ok_and(|u| p.matches(&u))
            {
                prop_assert!(suffix_ok(&raw), "{raw:?} admitted by {}", rp.text);
            }
        }

        #[test]
        fn parse_memo_is_parse(seq in proptest::collection::vec(
            prop_oneof![adversarial_url(), Just("http://127.0.0.1:8787".to_string())], 1..8))
        {
            // whatever came before on this thread, the memo answers what parse answers
            for raw in &seq {
                prop_assert_eq!(&*BaseUrl::parse_memo(raw), &BaseUrl::parse(raw), "{:?}", raw);
            }
        }

        #[test]
        fn mcp_host_is_whatwg_host(raw in adversarial_url()) {
            let expected = ::url::Url::parse(&raw).ok().and_then(|u| {
                let h = u.host_str()?.to_lowercase();
                let h = h.strip_suffix('.').unwrap_or(&h);
                let h = h.trim_start_matches('[').trim_end_matches(']');
                (!h.is_empty()).then(|| h.to_string())
            });
            prop_assert_eq!(mcp_host(&raw), expected);
        }
    }
}
