//! The GS1 code engine: the Application Identifier table (generated at build time from
//! the vendored GS1 Barcode Syntax Dictionary), parsing of every input syntax (bracketed,
//! unbracketed element strings, scanner data with symbology identifiers, Digital Link
//! URIs), the component linters and pairing rules, and building element strings, HRI
//! text and Digital Link URIs. It knows nothing about markets, printers or serial pools.
//!
//! Submodules: `table` (the generated AI table and its lookup), `lint` (component
//! linters), `codes` (ISO/GS1 code lists), `validate` (values and pairing rules),
//! `parse` (bracketed, element strings, scan data), `dl` (Digital Link URIs).
//!
//! Every constructor validates; which checks run is set by [`Options`] (the default is
//! every check of the GS1 Barcode Syntax Engine, with no unknown AIs).

use std::fmt;

mod codes;
pub mod container;
mod dl;
mod lint;
mod parse;
pub mod sscc;
pub mod table;
mod validate;

pub use dl::{CANONICAL_DL_STEM, percent_decode};
pub use parse::{ScanContent, ScanData, ScanSymbology};
pub use table::AiEntry;

/// The ASCII group separator that stands for FNC1 inside an element string.
pub const GS: char = '\u{1d}';

/// One element of a GS1 code: an Application Identifier and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Element {
    /// The AI, 2 to 4 digits, e.g. `"01"`, `"21"`, `"7003"`.
    pub ai: String,
    /// The value, without the AI and without separators.
    pub value: String,
}

/// Which data-carrier symbology a scan came from (`]d2` DataMatrix, `]Q3` QR, `]C1`
/// GS1-128, `]e0` DataBar, `]d1` non-GS1 DataMatrix...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbology {
    /// `]d2`: GS1 DataMatrix (`]d8` for DMRE is reported as this too, see the vision stage).
    DataMatrix,
    /// `]Q3`: GS1 QR Code.
    QrCode,
    /// `]C1`: GS1-128.
    Gs1_128,
    /// `]e0`: GS1 DataBar / composite.
    DataBar,
}

impl Symbology {
    /// The three-character symbology identifier, e.g. `"]d2"`.
    pub fn identifier(self) -> &'static str {
        match self {
            Symbology::DataMatrix => "]d2",
            Symbology::QrCode => "]Q3",
            Symbology::Gs1_128 => "]C1",
            Symbology::DataBar => "]e0",
        }
    }
}

/// A validated GS1 code: its elements in the order they were given or parsed. Every
/// constructor validates (AI known, linters, pairing rules), so holding a `Gs1Code`
/// means it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gs1Code {
    elements: Vec<Element>,
}

/// What rule a GS1 input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gs1ErrorKind {
    /// The input is not in any recognised syntax, or is malformed (message says how).
    Syntax(String),
    /// The AI is not in the dictionary.
    UnknownAi,
    /// A component's value is too short / too long.
    Length,
    /// A character outside the component's character set (CSET 82/39/64, numeric).
    Charset,
    /// A GS1 check digit is wrong.
    CheckDigit,
    /// A date (YYMMDD, YYMMD0, ...) is impossible.
    Date,
    /// Another component linter failed (the linter name from the dictionary).
    Lint(String),
    /// A `req` rule: this AI needs another AI that is missing.
    MissingRequired(String),
    /// An `ex` rule: this AI may not appear with another.
    Exclusive(String),
    /// The same AI appears twice with different values.
    Duplicate,
    /// A Digital Link URI problem.
    DigitalLink(String),
}

/// A GS1 error: which AI (if any), which rule, at which byte position of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Gs1Error {
    /// The AI concerned, when the error belongs to one.
    pub ai: Option<String>,
    /// The rule broken.
    pub kind: Gs1ErrorKind,
    /// Byte offset in the input (or in the AI's value for linter errors), when known.
    pub position: Option<usize>,
}

impl fmt::Display for Gs1ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gs1ErrorKind::Syntax(m) => write!(f, "syntax error: {m}"),
            Gs1ErrorKind::UnknownAi => f.write_str("unknown AI"),
            Gs1ErrorKind::Length => f.write_str("value has the wrong length"),
            Gs1ErrorKind::Charset => f.write_str("character not allowed here"),
            Gs1ErrorKind::CheckDigit => f.write_str("wrong check digit"),
            Gs1ErrorKind::Date => f.write_str("impossible date"),
            Gs1ErrorKind::Lint(m) => write!(f, "linter {m}"),
            Gs1ErrorKind::MissingRequired(r) => write!(f, "requires AI {r}"),
            Gs1ErrorKind::Exclusive(o) => write!(f, "may not appear together with AI ({o})"),
            Gs1ErrorKind::Duplicate => f.write_str("repeated with a different value"),
            Gs1ErrorKind::DigitalLink(m) => write!(f, "Digital Link: {m}"),
        }
    }
}

impl fmt::Display for Gs1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ai) = &self.ai {
            write!(f, "AI ({ai}): ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(p) = self.position {
            write!(f, " at position {p}")?;
        }
        Ok(())
    }
}

impl Gs1Error {
    pub(crate) fn syntax(msg: impl Into<String>, position: Option<usize>) -> Gs1Error {
        Gs1Error {
            ai: None,
            kind: Gs1ErrorKind::Syntax(msg.into()),
            position,
        }
    }
}

/// Which checks parsing and building run. The default is every check of the GS1
/// Barcode Syntax Engine's defaults: unknown AIs rejected, pairing rules enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Accept AIs that are not in the dictionary (2 to 4 digits, CSET 82 value up to 90
    /// characters) in bracketed input and Digital Link URIs. Default `false`.
    pub permit_unknown_ais: bool,
    /// Let unknown AIs be Digital Link query attributes (needs `permit_unknown_ais`).
    /// Default `false`.
    pub unknown_ais_as_dl_attributes: bool,
    /// Accept GTIN-8/12/13 in a Digital Link `01` path or query value and pad it to 14
    /// digits (legacy URIs). Default `false`.
    pub permit_zero_suppressed_gtin_in_dl: bool,
    /// Accept the deprecated Digital Link convenience alphas (`/gtin/`, `/ser/`...).
    /// Default `false`.
    pub permit_convenience_alphas: bool,
    /// Enforce `req` rules. Default `true`.
    pub validate_requisites: bool,
    /// Enforce `ex` rules. Default `true`.
    pub validate_exclusions: bool,
    /// Reject an AI repeated with a different value. Default `true`.
    pub validate_repeats: bool,
    /// A digital signature (8030) needs a serialised GDTI/GCN/GRAI. Default `true`.
    pub validate_digsig_serial_key: bool,
    /// Unbracketed element strings must start with FNC1 (`^` or GS), as the syntax
    /// engine's data strings do. Default `false` (a leading FNC1 is optional).
    pub require_leading_fnc1: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            permit_unknown_ais: false,
            unknown_ais_as_dl_attributes: false,
            permit_zero_suppressed_gtin_in_dl: false,
            permit_convenience_alphas: false,
            validate_requisites: true,
            validate_exclusions: true,
            validate_repeats: true,
            validate_digsig_serial_key: true,
            require_leading_fnc1: false,
        }
    }
}

impl Options {
    /// Syntax and linters only: no pairing rules (what the syntax engine checks while
    /// parsing, before its separate `validateAIs` step).
    pub fn syntax_only() -> Options {
        Options {
            validate_requisites: false,
            validate_exclusions: false,
            validate_repeats: false,
            validate_digsig_serial_key: false,
            ..Options::default()
        }
    }
}

/// The dictionary entry of `ai`, if it is a known AI.
pub fn ai_entry(ai: &str) -> Option<&'static AiEntry> {
    table::lookup(ai.as_bytes())
}

impl Gs1Code {
    /// Parse any supported syntax, detected from its first characters: `(` bracketed,
    /// `]` scanner data with a symbology identifier, `http(s)://` Digital Link, `^` or a
    /// digit an unbracketed element string (FNC1 as GS 0x1D or `^`).
    pub fn parse(input: &str) -> Result<Gs1Code, Gs1Error> {
        Gs1Code::parse_with(input, &Options::default())
    }

    /// [`Gs1Code::parse`] with explicit options.
    pub fn parse_with(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
        let b = input.as_bytes();
        match b.first() {
            None => Err(Gs1Error::syntax("empty input", Some(0))),
            Some(b'(') => Gs1Code::parse_bracketed_with(input, opts),
            Some(b']') => Gs1Code::parse_scan_data_with(input, opts).map(|(_, c)| c),
            Some(b'^' | 0x1d | b'0'..=b'9') => Gs1Code::parse_element_string_with(input, opts),
            Some(_) if b.len() >= 7 && b[..4].eq_ignore_ascii_case(b"http") => {
                Gs1Code::parse_digital_link_with(input, opts)
            }
            Some(_) => Err(Gs1Error::syntax(
                "not a GS1 syntax (expected '(', ']', '^', a digit or http(s)://)",
                Some(0),
            )),
        }
    }

    /// Parse raw bytes (e.g. from a scanner or a file): non-UTF-8 input is an error
    /// naming the first bad byte, then as [`Gs1Code::parse`].
    pub fn parse_bytes(input: &[u8]) -> Result<Gs1Code, Gs1Error> {
        match std::str::from_utf8(input) {
            Ok(s) => Gs1Code::parse(s),
            Err(e) => Err(Gs1Error {
                ai: None,
                kind: Gs1ErrorKind::Charset,
                position: Some(e.valid_up_to()),
            }),
        }
    }

    /// Parse bracketed input: `(01)09506000134352(21)ABC`. A literal `(` inside a value
    /// is written `\(`.
    pub fn parse_bracketed(input: &str) -> Result<Gs1Code, Gs1Error> {
        Gs1Code::parse_bracketed_with(input, &Options::default())
    }

    /// [`Gs1Code::parse_bracketed`] with explicit options.
    pub fn parse_bracketed_with(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
        parse::bracketed(input, opts)
    }

    /// Parse an unbracketed element string; FNC1 is GS (0x1D) or `^`; a leading FNC1 is
    /// allowed.
    pub fn parse_element_string(input: &str) -> Result<Gs1Code, Gs1Error> {
        Gs1Code::parse_element_string_with(input, &Options::default())
    }

    /// [`Gs1Code::parse_element_string`] with explicit options.
    pub fn parse_element_string_with(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
        parse::element_string(input, opts)
    }

    /// [`Gs1Code::parse_element_string`] into `slot`, reusing the code already there (its
    /// elements and their strings): no allocation per parse once `slot` has held a code
    /// as large. On an error `slot` is `None`, its allocation kept for the next parse.
    pub fn parse_element_string_into(
        input: &str,
        slot: &mut Option<Gs1Code>,
        spare: &mut Vec<Element>,
    ) -> Result<(), Gs1Error> {
        let mut elements = match slot.take() {
            Some(code) => code.elements,
            None => std::mem::take(spare),
        };
        match parse::element_string_into(input, &Options::default(), &mut elements) {
            Ok(()) => {
                *slot = Some(Gs1Code { elements });
                Ok(())
            }
            Err(e) => {
                *spare = elements;
                Err(e)
            }
        }
    }

    /// The code's elements back, for [`Gs1Code::parse_element_string_into`] to reuse.
    pub fn into_elements(self) -> Vec<Element> {
        self.elements
    }

    /// Parse scanner data that starts with a symbology identifier (`]d2`, `]Q3`, `]C1`,
    /// `]e0`), returning the symbology too. A Digital Link URI in plain DataMatrix
    /// (`]d1`) or QR (`]Q1`) data is accepted. For every other kind of scan (EAN, DotCode,
    /// non-GS1 text) use [`ScanData::parse`].
    pub fn parse_scan_data(input: &str) -> Result<(Symbology, Gs1Code), Gs1Error> {
        Gs1Code::parse_scan_data_with(input, &Options::default())
    }

    /// [`Gs1Code::parse_scan_data`] with explicit options.
    pub fn parse_scan_data_with(
        input: &str,
        opts: &Options,
    ) -> Result<(Symbology, Gs1Code), Gs1Error> {
        let scan = ScanData::parse_with(input, opts)?;
        let sym = match scan.symbology {
            ScanSymbology::DataMatrix => Symbology::DataMatrix,
            ScanSymbology::QrCode => Symbology::QrCode,
            ScanSymbology::Gs1_128 => Symbology::Gs1_128,
            ScanSymbology::DataBar => Symbology::DataBar,
            other => {
                return Err(Gs1Error::syntax(
                    format!("symbology {other:?} is not a GS1 2D/128/DataBar carrier"),
                    Some(0),
                ));
            }
        };
        match scan.content {
            ScanContent::Gs1(code) | ScanContent::DigitalLink { code, .. } => Ok((sym, code)),
            _ => Err(Gs1Error::syntax(
                "scan data holds no GS1 element string or Digital Link URI",
                Some(3),
            )),
        }
    }

    /// Parse a GS1 Digital Link URI (path keys and qualifiers, query attributes).
    pub fn parse_digital_link(input: &str) -> Result<Gs1Code, Gs1Error> {
        Gs1Code::parse_digital_link_with(input, &Options::default())
    }

    /// [`Gs1Code::parse_digital_link`] with explicit options.
    pub fn parse_digital_link_with(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
        dl::parse(input, opts)
    }

    /// Build and validate a code from (AI, value) pairs.
    pub fn from_elements<I, A, V>(elements: I) -> Result<Gs1Code, Gs1Error>
    where
        I: IntoIterator<Item = (A, V)>,
        A: Into<String>,
        V: Into<String>,
    {
        Gs1Code::from_elements_with(elements, &Options::default())
    }

    /// [`Gs1Code::from_elements`] with explicit options. Error positions are offsets
    /// within the offending value.
    pub fn from_elements_with<I, A, V>(elements: I, opts: &Options) -> Result<Gs1Code, Gs1Error>
    where
        I: IntoIterator<Item = (A, V)>,
        A: Into<String>,
        V: Into<String>,
    {
        let iter = elements.into_iter();
        let mut out = Vec::with_capacity(iter.size_hint().0);
        for (a, v) in iter {
            let (ai, value) = (a.into(), v.into());
            let entry = validate::check_ai(&ai, opts, None)?;
            validate::check_value(&ai, entry, &value, 0)?;
            out.push(Element { ai, value });
        }
        Gs1Code::from_checked(out, opts, None)
    }

    /// Final step of every constructor: the code-level checks.
    pub(crate) fn from_checked(
        elements: Vec<Element>,
        opts: &Options,
        positions: Option<&[usize]>,
    ) -> Result<Gs1Code, Gs1Error> {
        if elements.is_empty() {
            return Err(Gs1Error::syntax("no elements", Some(0)));
        }
        validate::check_pairs(&elements, opts, positions)?;
        Ok(Gs1Code { elements })
    }

    /// The elements in input order.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// The value of `ai`, if present.
    pub fn get(&self, ai: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.ai == ai)
            .map(|e| e.value.as_str())
    }

    /// The element string in symbol order (predefined fixed-length AIs first, GS only
    /// after a variable-length field that is not last, no leading FNC1, no trailing GS).
    pub fn element_string(&self) -> String {
        let mut s = String::new();
        self.write_element_string(&mut s);
        s
    }

    /// Whether element `e` needs an FNC1 after it when another element follows.
    #[inline]
    fn needs_fnc1(e: &Element) -> bool {
        table::lookup(e.ai.as_bytes()).is_none_or(|t| t.fnc1)
    }

    /// The elements in symbol order: predefined-length AIs first, each group in input
    /// order.
    fn symbol_order(&self) -> impl Iterator<Item = &Element> {
        let fixed = self.elements.iter().filter(|e| !Self::needs_fnc1(e));
        let var = self.elements.iter().filter(|e| Self::needs_fnc1(e));
        fixed.chain(var)
    }

    /// Append the element string to `out` (no allocation when `out` has capacity).
    pub fn write_element_string(&self, out: &mut String) {
        let n = self.elements.len();
        for (i, e) in self.symbol_order().enumerate() {
            out.push_str(&e.ai);
            out.push_str(&e.value);
            if i + 1 < n && Self::needs_fnc1(e) {
                out.push(GS);
            }
        }
    }

    /// Human-readable interpretation, `(01)09506000134352(17)...`, in symbol order.
    pub fn hri(&self) -> String {
        let mut s = String::with_capacity(64);
        for e in self.symbol_order() {
            s.push('(');
            s.push_str(&e.ai);
            s.push(')');
            s.push_str(&e.value);
        }
        s
    }

    /// The syntax engine's `^` notation of the elements in their given order: a leading
    /// `^` (FNC1), then each AI and value, `^` after every variable-length field that is
    /// not last. This is the form the GS1 Barcode Syntax Engine's tests compare.
    pub fn caret_string(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push('^');
        let n = self.elements.len();
        for (i, e) in self.elements.iter().enumerate() {
            s.push_str(&e.ai);
            s.push_str(&e.value);
            if i + 1 < n && Self::needs_fnc1(e) {
                s.push('^');
            }
        }
        s
    }

    /// The GS1 Digital Link URI on `base` (e.g. `https://id.gs1.org`), primary key and
    /// key qualifiers in the dictionary's order as path, the rest as query attributes.
    pub fn digital_link(&self, base: &str) -> Result<String, Gs1Error> {
        self.digital_link_with(base, &Options::default())
    }

    /// [`Gs1Code::digital_link`] with explicit options (unknown AIs as attributes).
    pub fn digital_link_with(&self, base: &str, opts: &Options) -> Result<String, Gs1Error> {
        dl::generate(&self.elements, base, opts)
    }
}

impl fmt::Display for Gs1Code {
    /// The HRI text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTIN: &str = "09506000134352";

    #[test]
    fn builds_in_symbol_order() {
        let code = Gs1Code::from_elements([
            ("01", GTIN),
            ("21", "ABC123"),
            ("10", "LOT7"),
            ("17", "281231"),
        ])
        .unwrap();
        assert_eq!(
            code.element_string(),
            format!("01{GTIN}17281231") + "21ABC123\u{1d}10LOT7"
        );
        assert_eq!(
            code.hri(),
            format!("(01){GTIN}(17)281231(21)ABC123(10)LOT7")
        );
        assert_eq!(
            code.caret_string(),
            format!("^01{GTIN}21ABC123^10LOT7^17281231")
        );
        assert_eq!(code.get("10"), Some("LOT7"));
        let mut buf = String::with_capacity(64);
        code.write_element_string(&mut buf);
        assert!(!buf.ends_with(GS) && !buf.starts_with(GS));
        // round trip
        let back = Gs1Code::parse_element_string(&buf).unwrap();
        assert_eq!(back.hri(), code.hri());
        assert_eq!(Gs1Code::parse(&code.hri()).unwrap().element_string(), buf);
    }

    #[test]
    fn non_predefined_fixed_length_needs_separator() {
        // (8111) is N4 but not in the predefined-length list: FNC1 after it.
        let code =
            Gs1Code::from_elements_with([("8111", "1234"), ("10", "A")], &Options::syntax_only())
                .unwrap();
        assert_eq!(code.element_string(), "81111234\u{1d}10A");
    }

    #[test]
    fn digital_link_round_trip() {
        let code = Gs1Code::from_elements([
            ("01", GTIN),
            ("17", "281231"),
            ("21", "A/B 1"),
            ("10", "L1"),
        ]);
        // a space is not CSET 82
        assert_eq!(code.unwrap_err().kind, Gs1ErrorKind::Charset);
        let code =
            Gs1Code::from_elements([("01", GTIN), ("17", "281231"), ("21", "A/B1"), ("10", "L1")])
                .unwrap();
        let uri = code.digital_link(CANONICAL_DL_STEM).unwrap();
        assert_eq!(
            uri,
            format!("https://id.gs1.org/01/{GTIN}/10/L1/21/A%2FB1?17=281231")
        );
        let back = Gs1Code::parse(&uri).unwrap();
        assert_eq!(back.get("21"), Some("A/B1"));
        assert_eq!(
            back.element_string(),
            code.element_string()
                .replace("21A/B1\u{1d}10L1", "10L1\u{1d}21A/B1")
        );
    }

    #[test]
    fn errors_name_ai_rule_and_position() {
        let e = Gs1Code::parse("(01)09506000134353(21)X").unwrap_err();
        assert_eq!(e.ai.as_deref(), Some("01"));
        assert_eq!(e.kind, Gs1ErrorKind::CheckDigit);
        assert_eq!(e.position, Some(17));
        assert!(e.to_string().contains("check digit"), "{e}");

        let e = Gs1Code::parse(&format!("(01){GTIN}(17)250230")).unwrap_err();
        assert_eq!(
            (e.ai.as_deref(), &e.kind),
            (Some("17"), &Gs1ErrorKind::Date)
        );
        // YYMMD0: day 00 is allowed
        assert!(Gs1Code::parse(&format!("(01){GTIN}(17)250200")).is_ok());

        let e = Gs1Code::parse("(21)ABC").unwrap_err();
        assert!(matches!(e.kind, Gs1ErrorKind::MissingRequired(_)), "{e}");

        let e = Gs1Code::parse(&format!("^01{GTIN}8899ABC")).unwrap_err();
        assert_eq!(e.kind, Gs1ErrorKind::UnknownAi);
        assert_eq!(e.position, Some(17));

        let e = Gs1Code::parse(&format!("(01){GTIN}(21)123456789012345678901")).unwrap_err();
        assert_eq!(
            (e.ai.as_deref(), &e.kind),
            (Some("21"), &Gs1ErrorKind::Length)
        );

        let e = Gs1Code::parse(&format!("(01){GTIN}(21)A(21)B")).unwrap_err();
        assert_eq!(e.kind, Gs1ErrorKind::Duplicate);
        assert_eq!(e.position, Some(23));

        let e = Gs1Code::parse_bytes(b"(01)0950600013\xff4352").unwrap_err();
        assert_eq!((e.kind, e.position), (Gs1ErrorKind::Charset, Some(14)));
        assert!(Gs1Code::parse_bytes(format!("(01){GTIN}").as_bytes()).is_ok());

        let e = Gs1Code::parse("https://id.gs1.org/01/09506000134352/10/").unwrap_err();
        assert!(matches!(e.kind, Gs1ErrorKind::DigitalLink(_)), "{e}");
    }

    #[test]
    fn scan_data_to_symbology() {
        let (sym, code) = Gs1Code::parse_scan_data(&format!("]d201{GTIN}21ABC\u{1d}10L")).unwrap();
        assert_eq!(sym, Symbology::DataMatrix);
        assert_eq!(code.get("10"), Some("L"));
        let (sym, _) =
            Gs1Code::parse_scan_data(&format!("]Q1https://a.example/01/{GTIN}")).unwrap();
        assert_eq!(sym, Symbology::QrCode);
        assert!(Gs1Code::parse_scan_data("]d1HELLO").is_err());
        assert!(Gs1Code::parse_scan_data("]E02112345678900").is_err());
    }

    /// xorshift64*: a small deterministic generator for garbage inputs.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn never_panics_on_garbage() {
        let seeds = [
            format!("(01){GTIN}(21)ABC(10)L(17)281231"),
            format!("^01{GTIN}21ABC\u{1d}10L\u{1d}17281231"),
            format!("]d201{GTIN}21ABC"),
            format!("https://id.gs1.org/01/{GTIN}/10/L%2F1/21/S?17=281231&99=x"),
            "]E02112345678900|]e099COMPOSITE".to_owned(),
            "(8110)012345612345611110123(8030)AbC-_=(4309)01234567890123456789".to_owned(),
        ];
        let alphabet: &[u8] = b"()^\x1d]%/?&=#0123456789ABCdQeCEJ+\\\xff\xc3";
        let mut st = 0x9E37_79B9_7F4A_7C15u64;
        let mut ok = 0usize;
        for round in 0..40_000 {
            let mut bytes: Vec<u8> = seeds[round % seeds.len()].as_bytes().to_vec();
            let edits = 1 + next(&mut st) % 6;
            for _ in 0..edits {
                let r = next(&mut st);
                let at = (r as usize >> 8) % (bytes.len() + 1);
                match r % 4 {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[(r as usize >> 32) % alphabet.len()]),
                    2 if at < bytes.len() => bytes[at] = (r >> 40) as u8,
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(code) = Gs1Code::parse_bytes(&bytes) {
                ok += 1;
                // whatever parsed must rebuild and re-parse
                let es = code.element_string();
                assert!(Gs1Code::parse_element_string(&es).is_ok(), "{es:?}");
                let _ = code.hri();
                let _ = code.digital_link(CANONICAL_DL_STEM);
            }
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = ScanData::parse_with(s, &Options::syntax_only());
                let _ = Gs1Code::parse_with(s, &Options::syntax_only());
            }
        }
        assert!(ok > 0, "some mutations should stay valid");
    }
}
