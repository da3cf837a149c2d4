use super::{Bail, Cursor};

/// What serde_json says about `text` as one skipped value.
fn serde_accepts(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[test]
fn skipping_accepts_what_serde_accepts_and_no_more() {
    let cases = [
        r#"{"a": [1, -2.5e+3, 0, true, false, null, "x\"\\\/\b\f\n\r\tA\u00e9"], "b": {}}"#,
        "[]",
        "[[[[{}]]]]",
        r#""caf\u00E9""#,
        "-0.0e-0",
        "01",
        "1.",
        "-",
        "1e",
        ".5",
        "[1,]",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{1: 2}"#,
        "[1 2]",
        "{]",
        "[}",
        r#""\x""#,
        r#""\u12g4""#,
        "\"a\u{1}b\"",
        "tru",
        "nul",
        "truth",
        "[\"\u{e9}\"]",
    ];
    for text in cases {
        let mut c = Cursor::new(text.as_bytes());
        let fast = c.skip();
        let whole = fast.is_ok() && c.peek() == Err(Bail::More);
        if whole {
            assert!(serde_accepts(text), "accepted what serde refuses: {text}");
        }
        if serde_accepts(text) && !text.ends_with(|c: char| c.is_ascii_digit()) {
            assert!(whole, "refused valid JSON: {text} ({fast:?})");
        }
    }
}

#[test]
fn running_out_of_bytes_asks_for_more() {
    for text in [r#"{"a": [1, 2"#, r#""abc"#, "[tr", r#"{"a"#, "[1.5"] {
        assert_eq!(Cursor::new(text.as_bytes()).skip(), Err(Bail::More), "{text}");
    }
}

#[test]
fn kept_strings_fall_back_on_escapes_and_bad_text() {
    let mut c = Cursor::new(br#""plain" "esc\"aped" "#);
    assert_eq!(c.str(), Ok("plain"));
    assert_eq!(c.str(), Err(Bail::Fallback));
    assert_eq!(Cursor::new(b"\"\xff\"").str(), Err(Bail::Fallback));
    assert_eq!(Cursor::new(b"\"a\tb\"").str(), Err(Bail::Fallback));
    assert_eq!(Cursor::new("\"k\u{e9}\":1".as_bytes()).key(), Err(Bail::Fallback));
    assert_eq!(Cursor::new(b"null").opt_str(), Ok(None));
    assert_eq!(Cursor::new(b"12").opt_str(), Err(Bail::Fallback));
}
