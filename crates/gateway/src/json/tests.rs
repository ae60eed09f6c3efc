use proptest::prelude::*;
use serde::de::IgnoredAny;

use super::*;

/// Whether the reader takes `doc` as one JSON value, skipped
fn skips(doc: &[u8]) -> Result<()> {
    let mut r = Reader::new(doc);
    r.skip()?;
    r.end()
}

#[test]
fn skips_what_serde_skips_and_refuses_what_it_refuses() {
    let ok: &[&str] = &[
        r#"{"a":[1,-2.5e+3,0,true,false,null,"x\"y\\u00e9\n"],"b":{}}"#,
        "  [ ]  ",
        r#""\ud800""#, // a lone surrogate in a skipped string is not checked, as with serde
        "-0.0E-0",
    ];
    for doc in ok {
        assert_eq!(skips(doc.as_bytes()), Ok(()), "{doc}");
    }
    let bad: &[(&str, Code)] = &[
        ("", Code::EofWhileParsingValue),
        ("[1,]", Code::TrailingComma),
        (r#"{"a":1,}"#, Code::TrailingComma),
        ("01", Code::InvalidNumber),
        ("1.", Code::InvalidNumber),
        ("\"a\u{1}b\"", Code::ControlCharacter),
        (r#""\x""#, Code::InvalidEscape),
        (r#""\u12g4""#, Code::InvalidEscape),
        ("[1 2]", Code::ExpectedListCommaOrEnd),
        ("{1:2}", Code::KeyMustBeAString),
        (r#"{"a" 1}"#, Code::ExpectedColon),
        ("tru", Code::EofWhileParsingValue),
        ("nul1", Code::ExpectedIdent),
        ("{} x", Code::TrailingCharacters),
        ("\"abc", Code::EofWhileParsingString),
    ];
    for (doc, code) in bad {
        assert_eq!(
            skips(doc.as_bytes()).map_err(|e| e.code),
            Err(*code),
            "{doc}"
        );
        assert!(
            serde_json::from_slice::<IgnoredAny>(doc.as_bytes()).is_err(),
            "{doc}"
        );
    }
}

#[test]
fn errors_say_where_like_serde() {
    let doc = b"{\n  \"a\": [1,\n 2 3]}";
    let e = skips(doc).unwrap_err();
    let serde = serde_json::from_slice::<IgnoredAny>(doc).unwrap_err();
    assert_eq!(e.message(doc), serde.to_string());
}

#[test]
fn deep_nesting_is_skipped_without_recursion() {
    let doc = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    assert_eq!(skips(doc.as_bytes()), Ok(()));
    let open = "[{\"a\":".repeat(100_000);
    assert_eq!(
        skips(open.as_bytes()).map_err(|e| e.code),
        Err(Code::EofWhileParsingValue)
    );
}

#[test]
fn strings_are_unescaped_and_checked() {
    fn read(doc: &str) -> Result<Cow<'_, str>> {
        Reader::new(doc.as_bytes()).string()
    }
    assert_eq!(read(r#""gpt\u002d5""#).as_deref(), Ok("gpt-5"));
    assert_eq!(read(r#""\ud83d\ude00\t\/""#).as_deref(), Ok("😀\t/"));
    assert!(matches!(read(r#""plain""#), Ok(Cow::Borrowed("plain"))));
    for bad in [r#""\ud800""#, r#""\ude00""#, r#""\ud800\u0041""#] {
        assert_eq!(
            read(bad).map_err(|e| e.code),
            Err(Code::LoneSurrogate),
            "{bad}"
        );
    }
    let bad_utf8 = Reader::new(b"\"\xff\"").string();
    assert_eq!(bad_utf8.map_err(|e| e.code), Err(Code::InvalidUtf8));
    assert_eq!(
        Reader::new(b"5").string().map_err(|e| e.code),
        Err(Code::InvalidType {
            found: Kind::Integer,
            expected: "a string"
        })
    );
}

/// Arbitrary JSON-ish text: valid values, and bytes that often make them invalid
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("fals".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:e}")),
        prop::sample::select(vec![
            "0", "-0", "01", "1.", ".5", "1e", "1E+2", "-", "2.5e-3", "1e400"
        ])
        .prop_map(str::to_string),
        "\"([a-z ]|\\\\[nt\"\\\\/bfr]|\\\\u[0-9a-fA-F]{4}|\\\\x|é|\u{1}|\\\\ud83d\\\\ude00){0,6}\"",
    ];
    atom.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("\"[a-z]{0,3}\"", inner), 0..5).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{ {} }}", members.join(" ,"))
            }),
        ]
    })
}

/// `doc` with one byte replaced, inserted or removed at `at`
fn mutate(doc: &str, at: usize, op: u8, byte: u8) -> Vec<u8> {
    let mut d = doc.as_bytes().to_vec();
    let at = if d.is_empty() { 0 } else { at % d.len() };
    let table = b"{}[]\",:\\ 0e-.ntx\x01";
    let byte = table[usize::from(byte) % table.len()];
    match op % 4 {
        0 if !d.is_empty() => d[at] = byte,
        1 => d.insert(at, byte),
        2 if !d.is_empty() => {
            d.remove(at);
        }
        _ => {}
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The reader accepts exactly what `serde_json::from_slice::<IgnoredAny>` accepts
    #[test]
    fn same_verdict_as_serde(doc in jsonish(), at in any::<usize>(), op in any::<u8>(), byte in any::<u8>()) {
        for d in [doc.as_bytes().to_vec(), mutate(&doc, at, op, byte)] {
            let ours = skips(&d);
            let serde = serde_json::from_slice::<IgnoredAny>(&d);
            prop_assert_eq!(ours.is_ok(), serde.is_ok(), "{}: {:?} / {:?}", String::from_utf8_lossy(&d), ours, serde.err());
        }
    }
}

#[test]
fn strings_of_every_length_around_the_block_size_get_the_same_checks() {
    for n in [0, 1, 15, 16, 17, 30, 31, 32, 33, 63, 64, 65, 200, 5_000] {
        let long = "a".repeat(n);
        for (doc, ok) in [
            (format!("\"{long}\""), true),
            (format!("\"{long}\\n{long}\\u00e9\""), true),
            (format!("\"{long}\u{1}\""), false),
            (format!("\"{long}\\q\""), false),
            (format!("\"{long}"), false),
        ] {
            let serde = serde_json::from_slice::<IgnoredAny>(doc.as_bytes());
            assert_eq!(skips(doc.as_bytes()).is_ok(), ok, "{n}: {doc}");
            assert_eq!(serde.is_ok(), ok, "{n}: {doc}");
        }
        let read = format!("\"{long}\\t{long}\"");
        assert_eq!(
            Reader::new(read.as_bytes()).string().as_deref(),
            Ok(format!("{long}\t{long}").as_str())
        );
    }
}

/// Every kind of special byte at every offset of the first blocks of a string, after an escape
/// or not: the same verdict as serde, and a refusal for the same reason at the same column
#[test]
fn special_bytes_at_every_offset_of_a_block() {
    let specials: [&[u8]; 7] = [
        b"\"", b"\\n", b"\\u00e9", b"\x01", b"\x1f", b"\\q", b"\\u12",
    ];
    for lead in [&b""[..], b"\\t", b"xx\\\"y"] {
        for offset in 0..70 {
            for special in specials {
                let mut doc = b"[\"".to_vec();
                doc.extend_from_slice(lead);
                doc.extend(std::iter::repeat_n(b'a', offset));
                doc.extend_from_slice(special);
                doc.extend_from_slice(b"b\"]");
                let ours = skips(&doc);
                let serde = serde_json::from_slice::<IgnoredAny>(&doc);
                assert_eq!(
                    ours.is_ok(),
                    serde.is_ok(),
                    "{}",
                    String::from_utf8_lossy(&doc)
                );
                if let (Err(e), Err(s)) = (&ours, &serde) {
                    // serde's `IgnoredAny` names a control character's column counted from 0
                    // (its parsing path, and this reader, count from 1)
                    let serde_column = if e.code == Code::ControlCharacter {
                        s.column() + 1
                    } else {
                        s.column()
                    };
                    assert_eq!(
                        (e.code, e.at),
                        (e.code, serde_column),
                        "{}",
                        String::from_utf8_lossy(&doc)
                    );
                    assert_eq!(
                        e.message(&doc).split(" at ").next(),
                        s.to_string().split(" at ").next()
                    );
                }
            }
        }
    }
}
