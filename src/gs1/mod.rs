//! The GS1 code engine: the Application Identifier table (generated at build time from
//! the vendored GS1 Barcode Syntax Dictionary), parsing of every input syntax (bracketed,
//! unbracketed element strings, scanner data with symbology identifiers, Digital Link
//! URIs), the component linters and pairing rules, and building element strings, HRI
//! text and Digital Link URIs. It knows nothing about markets, printers or serial pools.
//!
//! SKELETON: the public API below is the contract other modules code against; the GS1
//! issue fills in the bodies (and may add to the API, never remove).

use std::fmt;

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

impl fmt::Display for Gs1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ai) = &self.ai {
            write!(f, "AI ({ai}): ")?;
        }
        write!(f, "{:?}", self.kind)?;
        if let Some(p) = self.position {
            write!(f, " at position {p}")?;
        }
        Ok(())
    }
}

impl Gs1Code {
    /// Parse any supported syntax, detected from its first characters: `(` bracketed,
    /// `]` scanner data with a symbology identifier, `http(s)://` Digital Link, `^` or a
    /// digit an unbracketed element string (FNC1 as GS 0x1D or `^`).
    pub fn parse(input: &str) -> Result<Gs1Code, Gs1Error> {
        let _ = input;
        todo!("gs1 issue")
    }

    /// Parse bracketed input: `(01)09506000134352(21)ABC`.
    pub fn parse_bracketed(input: &str) -> Result<Gs1Code, Gs1Error> {
        let _ = input;
        todo!("gs1 issue")
    }

    /// Parse an unbracketed element string; FNC1 is GS (0x1D) or `^`; a leading FNC1 is
    /// allowed.
    pub fn parse_element_string(input: &str) -> Result<Gs1Code, Gs1Error> {
        let _ = input;
        todo!("gs1 issue")
    }

    /// Parse scanner data that starts with a symbology identifier (`]d2`, `]Q3`, `]C1`,
    /// `]e0`), returning the symbology too.
    pub fn parse_scan_data(input: &str) -> Result<(Symbology, Gs1Code), Gs1Error> {
        let _ = input;
        todo!("gs1 issue")
    }

    /// Parse a GS1 Digital Link URI (path keys and qualifiers, query attributes).
    pub fn parse_digital_link(input: &str) -> Result<Gs1Code, Gs1Error> {
        let _ = input;
        todo!("gs1 issue")
    }

    /// Build and validate a code from (AI, value) pairs.
    pub fn from_elements<I, A, V>(elements: I) -> Result<Gs1Code, Gs1Error>
    where
        I: IntoIterator<Item = (A, V)>,
        A: Into<String>,
        V: Into<String>,
    {
        let _ = elements.into_iter().map(|(a, v)| (a.into(), v.into()));
        todo!("gs1 issue")
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

    /// Append the element string to `out` (no allocation when `out` has capacity).
    pub fn write_element_string(&self, out: &mut String) {
        let _ = out;
        todo!("gs1 issue")
    }

    /// Human-readable interpretation, `(01)09506000134352(17)...`, in symbol order.
    pub fn hri(&self) -> String {
        todo!("gs1 issue")
    }

    /// The GS1 Digital Link URI on `base` (e.g. `https://id.gs1.org`), primary key and
    /// key qualifiers in the dictionary's order as path, the rest as query attributes.
    pub fn digital_link(&self, base: &str) -> Result<String, Gs1Error> {
        let _ = base;
        todo!("gs1 issue")
    }
}
