//! Parsing of the non-URI GS1 syntaxes: bracketed text `(01)...(21)...`, unbracketed
//! element strings (FNC1 as GS or `^`) and scanner data with a symbology identifier
//! (`]d2`, `]Q3`, `]C1`, `]e0`, plain `]d1`/`]Q1`/`]J0`, EAN `]E0`/`]E4` with an
//! optional composite). Values are checked as they are cut out; the pairing rules run
//! at the end. Digital Link URIs are in `dl.rs`.

use super::lint::check_digit;
use super::table;
use super::validate;
use super::{Element, Gs1Code, Gs1Error, Gs1ErrorKind, Options};

#[inline]
fn is_fnc1(b: u8) -> bool {
    b == b'^' || b == 0x1d
}

/// Bracketed input.
pub fn bracketed(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
    let b = input.as_bytes();
    if b.is_empty() {
        return Err(Gs1Error::syntax("empty input", Some(0)));
    }
    let mut elements = Vec::with_capacity(4);
    let mut positions = Vec::with_capacity(4);
    let mut pos = 0;
    while pos < b.len() {
        if b[pos] != b'(' {
            return Err(Gs1Error::syntax("expected '(' to open an AI", Some(pos)));
        }
        let close = b[pos + 1..]
            .iter()
            .position(|&c| c == b')')
            .map(|i| pos + 1 + i)
            .ok_or_else(|| Gs1Error::syntax("AI without closing ')'", Some(pos)))?;
        let ai = &input[pos + 1..close];
        let entry = validate::check_ai(ai, opts, Some(pos + 1))?;
        let start = close + 1;
        // the value runs to the next unescaped '('; "\(" is a literal '('
        let mut value = String::new();
        let mut seg = start;
        let mut i = start;
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'(') {
                value.push_str(&input[seg..i]);
                value.push('(');
                i += 2;
                seg = i;
            } else if b[i] == b'(' {
                break;
            } else {
                i += 1;
            }
        }
        value.push_str(&input[seg..i]);
        validate::check_value(ai, entry, &value, start)?;
        positions.push(pos);
        elements.push(Element {
            ai: ai.to_owned(),
            value,
        });
        pos = i;
    }
    Gs1Code::from_checked(elements, opts, Some(&positions))
}

/// Unbracketed element string, FNC1 as `^` or GS.
pub fn element_string(input: &str, opts: &Options) -> Result<Gs1Code, Gs1Error> {
    let mut elements = Vec::with_capacity(4);
    element_string_into(input, opts, &mut elements)?;
    Ok(Gs1Code { elements })
}

/// [`element_string`] into `elements`, reusing the `Element`s (and their strings)
/// already there: no allocation when they have room. On an error `elements` holds
/// whatever was parsed.
pub(crate) fn element_string_into(
    input: &str,
    opts: &Options,
    elements: &mut Vec<Element>,
) -> Result<(), Gs1Error> {
    /// Element starts kept on the stack for error positions (more are not recorded).
    const POSITIONS: usize = 32;
    let mut positions = [0usize; POSITIONS];
    let mut count = 0usize;
    let b = input.as_bytes();
    let mut pos = 0;
    if b.first().is_some_and(|&c| is_fnc1(c)) {
        pos = 1;
    } else if opts.require_leading_fnc1 {
        return Err(Gs1Error::syntax("must start with FNC1 ('^')", Some(0)));
    }
    if pos >= b.len() {
        return Err(Gs1Error::syntax("no AI in the element string", Some(pos)));
    }
    while pos < b.len() {
        if is_fnc1(b[pos]) {
            return Err(Gs1Error::syntax("FNC1 where an AI should start", Some(pos)));
        }
        let Some(entry) = table::lookup_prefix(&b[pos..]) else {
            let end = (pos..b.len().min(pos + 4))
                .take_while(|&i| b[i].is_ascii_digit())
                .last()
                .map_or(pos, |i| i + 1);
            return Err(Gs1Error {
                ai: input
                    .get(pos..end)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                kind: Gs1ErrorKind::UnknownAi,
                position: Some(pos),
            });
        };
        let vstart = pos + entry.ai.len();
        let vend = match (entry.fnc1, entry.fixed_len()) {
            (false, Some(n)) => {
                if vstart + n > b.len() {
                    return Err(Gs1Error {
                        ai: Some(entry.ai.to_owned()),
                        kind: Gs1ErrorKind::Length,
                        position: Some(b.len()),
                    });
                }
                vstart + n
            }
            _ => b[vstart..]
                .iter()
                .position(|&c| is_fnc1(c))
                .map_or(b.len(), |i| vstart + i),
        };
        let value = input.get(vstart..vend).ok_or_else(|| Gs1Error {
            ai: Some(entry.ai.to_owned()),
            kind: Gs1ErrorKind::Charset,
            position: Some(vstart),
        })?;
        validate::check_value(entry.ai, Some(entry), value, vstart)?;
        if let Some(p) = positions.get_mut(count) {
            *p = pos;
        }
        match elements.get_mut(count) {
            Some(e) => {
                e.ai.clear();
                e.ai.push_str(entry.ai);
                e.value.clear();
                e.value.push_str(value);
            }
            None => elements.push(Element {
                ai: entry.ai.to_owned(),
                value: value.to_owned(),
            }),
        }
        count += 1;
        pos = vend;
        if pos < b.len() && is_fnc1(b[pos]) {
            pos += 1;
        }
    }
    elements.truncate(count);
    if elements.is_empty() {
        return Err(Gs1Error::syntax("no elements", Some(0)));
    }
    let known = positions.get(..count).filter(|_| count <= POSITIONS);
    validate::check_pairs(elements, opts, known)
}

/// The symbology a scan came from, by its identifier (ISO/IEC 15424).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanSymbology {
    /// `]d1` (plain) / `]d2` (GS1) DataMatrix.
    DataMatrix,
    /// `]Q1` (plain) / `]Q3` (GS1) QR Code.
    QrCode,
    /// `]J0` (plain) / `]J1` (GS1) DotCode.
    DotCode,
    /// `]C1` GS1-128.
    Gs1_128,
    /// `]e0` GS1 DataBar (and composites).
    DataBar,
    /// `]E0` EAN-13 (also UPC-A/UPC-E as 13 digits).
    Ean13,
    /// `]E4` EAN-8.
    Ean8,
}

/// What a scan carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanContent {
    /// A GS1 element string (`]d2`, `]Q3`, `]J1`, `]C1`, `]e0`).
    Gs1(Gs1Code),
    /// A GS1 Digital Link URI in plain data (`]d1`, `]Q1`, `]J0`).
    DigitalLink {
        /// The URI as scanned.
        uri: String,
        /// Its GS1 data.
        code: Gs1Code,
    },
    /// Plain, non-GS1 data.
    Text(String),
    /// An EAN/UPC primary number, with the GS1 data of a composite component if any.
    Primary {
        /// The 8 or 13 digits, check digit included.
        digits: String,
        /// The composite component (`|]e0...`).
        composite: Option<Gs1Code>,
    },
}

/// Parsed scanner data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanData {
    /// The symbology, from the identifier.
    pub symbology: ScanSymbology,
    /// The content.
    pub content: ScanContent,
}

impl ScanData {
    /// Parse scanner data with any supported symbology identifier.
    pub fn parse(input: &str) -> Result<ScanData, Gs1Error> {
        ScanData::parse_with(input, &Options::default())
    }

    /// [`ScanData::parse`] with explicit options.
    pub fn parse_with(input: &str, opts: &Options) -> Result<ScanData, Gs1Error> {
        let b = input.as_bytes();
        if b.len() < 3 || b[0] != b']' {
            return Err(Gs1Error::syntax("missing symbology identifier", Some(0)));
        }
        use ScanSymbology as S;
        let (symbology, gs1_mode) = match &b[1..3] {
            b"C1" => (S::Gs1_128, true),
            b"E0" => (S::Ean13, false),
            b"E4" => (S::Ean8, false),
            b"e0" => (S::DataBar, true),
            b"d1" => (S::DataMatrix, false),
            b"d2" => (S::DataMatrix, true),
            b"Q1" => (S::QrCode, false),
            b"Q3" => (S::QrCode, true),
            b"J0" => (S::DotCode, false),
            b"J1" => (S::DotCode, true),
            _ => {
                return Err(Gs1Error::syntax(
                    "unsupported symbology identifier",
                    Some(1),
                ));
            }
        };
        let data = &input[3..];
        let content = if matches!(symbology, S::Ean13 | S::Ean8) {
            let n = if symbology == S::Ean13 { 13 } else { 8 };
            let digits = data
                .get(..n)
                .ok_or_else(|| Gs1Error::syntax("primary scan data too short", Some(3)))?;
            let rest = &data[n..];
            let composite = if rest.is_empty() {
                None
            } else if let Some(cc) = rest.strip_prefix("|]e0") {
                Some(gs1_scan(cc, opts, 3 + n + 4)?)
            } else {
                return Err(Gs1Error::syntax("primary scan data too long", Some(3 + n)));
            };
            let d = digits.as_bytes();
            if let Some(p) = d.iter().position(|c| !c.is_ascii_digit()) {
                return Err(Gs1Error {
                    ai: None,
                    kind: Gs1ErrorKind::Charset,
                    position: Some(3 + p),
                });
            }
            if check_digit(&d[..n - 1]) != d[n - 1] {
                return Err(Gs1Error {
                    ai: None,
                    kind: Gs1ErrorKind::CheckDigit,
                    position: Some(3 + n - 1),
                });
            }
            ScanContent::Primary {
                digits: digits.to_owned(),
                composite,
            }
        } else if gs1_mode {
            ScanContent::Gs1(gs1_scan(data, opts, 3)?)
        } else if ["https://", "HTTPS://", "http://", "HTTP://"]
            .iter()
            .any(|s| data.starts_with(s))
        {
            let code = super::dl::parse(data, opts).map_err(|mut e| {
                e.position = e.position.map(|p| p + 3);
                e
            })?;
            ScanContent::DigitalLink {
                uri: data.to_owned(),
                code,
            }
        } else {
            ScanContent::Text(data.to_owned())
        };
        Ok(ScanData { symbology, content })
    }

    /// The syntax engine's data-string form of the content: `^`-notation for GS1 data,
    /// the URI for Digital Link, the text (a leading `\...^` escaped with one more
    /// backslash) for plain data, the digits (then `|` and the composite) for EAN.
    pub fn data_string(&self) -> String {
        match &self.content {
            ScanContent::Gs1(c) => c.caret_string(),
            ScanContent::DigitalLink { uri, .. } => uri.clone(),
            ScanContent::Text(t) => {
                let slashes = t.bytes().take_while(|&c| c == b'\\').count();
                if t.as_bytes().get(slashes) == Some(&b'^') {
                    format!("\\{t}")
                } else {
                    t.clone()
                }
            }
            ScanContent::Primary { digits, composite } => match composite {
                Some(c) => format!("{digits}|{}", c.caret_string()),
                None => digits.clone(),
            },
        }
    }
}

/// GS1 data after a symbology identifier: GS is FNC1, a literal `^` is not allowed.
fn gs1_scan(data: &str, opts: &Options, base: usize) -> Result<Gs1Code, Gs1Error> {
    let shift = |mut e: Gs1Error| {
        e.position = e.position.map(|p| p + base);
        e
    };
    if let Some(p) = data.bytes().position(|c| c == b'^') {
        return Err(shift(Gs1Error {
            ai: None,
            kind: Gs1ErrorKind::Charset,
            position: Some(p),
        }));
    }
    if data.is_empty() {
        return Err(shift(Gs1Error::syntax(
            "no GS1 data after the identifier",
            Some(0),
        )));
    }
    let opts = Options {
        require_leading_fnc1: false,
        ..opts.clone()
    };
    element_string(data, &opts).map_err(shift)
}
