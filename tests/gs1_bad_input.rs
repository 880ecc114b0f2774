//! Bad input through the public GS1 API: every case must be a clear error naming the
//! rule (and the AI and position where there is one), never a panic or a success.

use linectl::gs1::{Gs1Code, Gs1ErrorKind as K};

const GTIN: &str = "09506000134352";

fn fails(input: &str, ai: Option<&str>, kind: fn(&K) -> bool, position: Option<usize>) {
    let e = Gs1Code::parse(input).expect_err(input);
    assert!(kind(&e.kind), "{input:?}: unexpected rule {e}");
    assert_eq!(e.ai.as_deref(), ai, "{input:?}: {e}");
    if position.is_some() {
        assert_eq!(e.position, position, "{input:?}: {e}");
    }
    assert!(!e.to_string().is_empty());
}

#[test]
fn malformed_syntax() {
    let syntax = |k: &K| matches!(k, K::Syntax(_));
    fails("", None, syntax, Some(0));
    fails("hello", None, syntax, Some(0));
    fails("(01", None, syntax, Some(0));
    fails("(1A)123", Some("1A"), syntax, Some(1));
    fails("(12345)1", Some("12345"), syntax, Some(1));
    fails("^", None, syntax, Some(1));
    fails(&format!("^01{GTIN}^^10A"), None, syntax, Some(18));
    fails("]X9ABC", None, syntax, Some(1));
    fails("]", None, syntax, Some(0));
}

#[test]
fn wrong_check_digits() {
    let cd = |k: &K| *k == K::CheckDigit;
    fails("(01)09506000134353", Some("01"), cd, Some(17));
    fails("^0109506000134353", Some("01"), cd, Some(16));
    fails("(00)123456789012345670", Some("00"), cd, Some(21));
    fails("]E02112345678901", None, cd, Some(15));
}

#[test]
fn impossible_dates() {
    let date = |k: &K| *k == K::Date;
    // 30 February, 31 April, month 13; (17) allows day 00 but (7006) does not
    fails(&format!("(01){GTIN}(17)250230"), Some("17"), date, Some(26));
    fails(&format!("(01){GTIN}(17)250431"), Some("17"), date, None);
    fails(&format!("(01){GTIN}(17)251301"), Some("17"), date, Some(24));
    fails(&format!("(01){GTIN}(7006)250200"), Some("7006"), date, None);
    assert!(Gs1Code::parse(&format!("(01){GTIN}(17)250200")).is_ok());
    assert!(Gs1Code::parse(&format!("(01){GTIN}(17)240229")).is_ok());
    fails(&format!("(01){GTIN}(17)230229"), Some("17"), date, None);
}

#[test]
fn unknown_ais_and_oversize_fields() {
    let unknown = |k: &K| *k == K::UnknownAi;
    let length = |k: &K| *k == K::Length;
    let charset = |k: &K| *k == K::Charset;
    fails(&format!("(01){GTIN}(89)X"), Some("89"), unknown, Some(19));
    fails(&format!("^01{GTIN}891234"), Some("8912"), unknown, Some(17));
    fails(
        &format!("(01){GTIN}(21){}", "1".repeat(21)),
        Some("21"),
        length,
        None,
    );
    fails(&format!("(01){GTIN}(10)"), Some("10"), length, None);
    fails("(01)0950600013435", Some("01"), length, None);
    fails(
        &format!("(01){GTIN}(21)AB~C"),
        Some("21"),
        charset,
        Some(24),
    );
    fails(&format!("(01){GTIN}(21)ÄBC"), Some("21"), charset, Some(22));
}

#[test]
fn pairing_rules() {
    fails(
        "(21)ABC",
        Some("21"),
        |k| matches!(k, K::MissingRequired(_)),
        Some(0),
    );
    fails(
        &format!("(01){GTIN}(255)5412345000150"),
        Some("01"),
        |k| matches!(k, K::Exclusive(x) if x == "255"),
        Some(0),
    );
    fails(
        &format!("(01){GTIN}(10)A(10)B"),
        Some("10"),
        |k| *k == K::Duplicate,
        Some(23),
    );
    // a repeat with the same value is allowed
    assert!(Gs1Code::parse(&format!("(01){GTIN}(10)A(10)A")).is_ok());
}

#[test]
fn malformed_digital_links() {
    let dl = |k: &K| matches!(k, K::DigitalLink(_));
    fails("https://", None, dl, None);
    fails("https://example.com", None, dl, None);
    fails(
        "ftp://example.com/01/09506000134352",
        None,
        |k| matches!(k, K::Syntax(_)),
        None,
    );
    fails("https://exa mple.com/01/09506000134352", None, dl, Some(11));
    fails(
        "https://example.com/01/09506000134352/10/",
        Some("10"),
        dl,
        None,
    );
    fails(
        "https://example.com/01/09506000134352/21/A/10/B",
        Some("01"),
        dl,
        None,
    );
    fails(
        "https://example.com/01/09506000134352?999=x",
        Some("999"),
        dl,
        None,
    );
    fails(
        "https://example.com/01/09506000134352?10=A",
        Some("10"),
        dl,
        None,
    );
    fails(
        "https://example.com/01/0950600013435%002",
        Some("01"),
        dl,
        None,
    );
    fails(
        "https://example.com/01/09506000134353",
        Some("01"),
        |k| *k == K::CheckDigit,
        None,
    );
    // unknown non-numeric parameters and fragments are ignored
    let ok = Gs1Code::parse("https://example.com/01/09506000134352?utm=x&17=281231#top").unwrap();
    assert_eq!(ok.get("17"), Some("281231"));
}

#[test]
fn non_utf8_bytes() {
    let e = Gs1Code::parse_bytes(b"(01)09506000134352(21)AB\xc3(").unwrap_err();
    assert_eq!((e.kind, e.position), (K::Charset, Some(24)));
    let e = Gs1Code::parse_bytes(b"\xff").unwrap_err();
    assert_eq!(e.position, Some(0));
}
