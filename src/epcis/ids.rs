//! GS1 identifiers as EPCIS sees them: the typed keys linectl emits (GTIN + serial, GLN +
//! extension, SSCC), their two URI forms (GS1 Digital Link `https://id.gs1.org/...` and
//! EPC URN `urn:epc:id:...`), and the canonicaliser the CBV 2.0 event hash needs, which
//! turns any EPC URN, EPC class/pattern URN or Digital Link URI into one constrained
//! canonical Digital Link URI. It does not parse barcodes or element strings (that is
//! `gs1`) and knows nothing of markets.

use super::EpcisError;

/// Which URI form the identifiers of emitted events take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// GS1 Digital Link URIs on the canonical domain, e.g.
    /// `https://id.gs1.org/01/09506000134352/21/ABC`.
    DigitalLink,
    /// EPC pure-identity URNs, e.g. `urn:epc:id:sgtin:9506000.013435.ABC`; needs the
    /// length of the GS1 company prefix to split the key.
    EpcUrn {
        /// Length of the GS1 company prefix inside the keys.
        company_prefix_len: CompanyPrefixLen,
    },
}

/// A GS1 company prefix length, 6 to 12 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompanyPrefixLen(u8);

impl CompanyPrefixLen {
    /// Checks that `len` is a valid company prefix length (6..=12).
    pub fn new(len: u8) -> Result<Self, EpcisError> {
        if (6..=12).contains(&len) {
            Ok(CompanyPrefixLen(len))
        } else {
            Err(EpcisError::Identifier(format!(
                "GS1 company prefix length {len} is outside 6..=12"
            )))
        }
    }

    /// The length in digits.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// The GS1 mod-10 check digit of `digits` (the digits before the check digit).
/// Returns `None` if `digits` holds anything but ASCII digits.
pub fn gs1_check_digit(digits: &str) -> Option<char> {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = u32::from(c - b'0');
        sum += if i % 2 == 0 { d * 3 } else { d };
    }
    char::from_digit((10 - sum % 10) % 10, 10)
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn check_key(what: &str, value: &str, len: usize) -> Result<(), EpcisError> {
    if value.len() != len || !all_digits(value) {
        return Err(EpcisError::Identifier(format!(
            "{what} {value:?} must be {len} digits"
        )));
    }
    let (body, check) = value.split_at(len - 1);
    if gs1_check_digit(body).map(String::from).as_deref() != Some(check) {
        return Err(EpcisError::Identifier(format!(
            "{what} {value:?} has a wrong check digit"
        )));
    }
    Ok(())
}

/// The GS1 AI 82 character set (serials, lots, GLN extensions).
fn is_cset82(c: char) -> bool {
    matches!(c,
        '!' | '"' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/'
        | '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?' | 'A'..='Z' | '_' | 'a'..='z')
}

fn check_cset82(what: &str, value: &str, max: usize) -> Result<(), EpcisError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(EpcisError::Identifier(format!(
            "{what} {value:?} must be 1 to {max} characters"
        )));
    }
    if let Some(bad) = value.chars().find(|c| !is_cset82(*c)) {
        return Err(EpcisError::Identifier(format!(
            "{what} {value:?} holds {bad:?}, outside the GS1 AI character set 82"
        )));
    }
    Ok(())
}

/// Escapes a CSET-82 value for an EPC URN (TDS: `"` `%` `&` `/` `<` `>` `?`).
fn urn_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            '/' => out.push_str("%2F"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '?' => out.push_str("%3F"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes what an EPC URN leaves bare but a Digital Link path segment must not carry:
/// `!` `(` `)` `*` `+` `,` `:`. Applied on top of [`urn_escape`] this is the Digital Link
/// form of a CSET-82 value, and the canonical form the event hash uses.
fn dl_escape_from_urn(urn_value: &str) -> String {
    let mut out = String::with_capacity(urn_value.len());
    for c in urn_value.chars() {
        match c {
            '!' => out.push_str("%21"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '*' => out.push_str("%2A"),
            '+' => out.push_str("%2B"),
            ',' => out.push_str("%2C"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// [`urn_escape`] appended to `out` (`dl` also applies [`dl_escape_from_urn`]: the
/// Digital Link form, [`dl_escape`]). No allocation beyond `out`'s growth.
pub(crate) fn write_escaped(out: &mut String, value: &str, dl: bool) {
    for c in value.chars() {
        let esc = match c {
            '"' => "%22",
            '%' => "%25",
            '&' => "%26",
            '/' => "%2F",
            '<' => "%3C",
            '>' => "%3E",
            '?' => "%3F",
            '!' if dl => "%21",
            '(' if dl => "%28",
            ')' if dl => "%29",
            '*' if dl => "%2A",
            '+' if dl => "%2B",
            ',' if dl => "%2C",
            ':' if dl => "%3A",
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(esc);
    }
}

/// Whether `serial` is a valid AI 21 serial ([`Serial::new`] accepts it), without
/// allocating.
pub(crate) fn serial_ok(serial: &str) -> bool {
    !serial.is_empty() && serial.chars().count() <= 20 && serial.chars().all(is_cset82)
}

/// Percent-encodes a CSET-82 value for a GS1 Digital Link path segment.
pub fn dl_escape(value: &str) -> String {
    dl_escape_from_urn(&urn_escape(value))
}

/// A GTIN-14 (GTIN-8/12/13 are zero-padded), check digit verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gtin(String);

impl Gtin {
    /// Parses 8, 12, 13 or 14 digits with a valid check digit.
    pub fn new(gtin: &str) -> Result<Self, EpcisError> {
        let padded = match gtin.len() {
            8 | 12 | 13 | 14 => format!("{gtin:0>14}"),
            _ => {
                return Err(EpcisError::Identifier(format!(
                    "GTIN {gtin:?} must be 8, 12, 13 or 14 digits"
                )));
            }
        };
        check_key("GTIN", &padded, 14)?;
        Ok(Gtin(padded))
    }

    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A serial number (AI 21): 1 to 20 characters of GS1 character set 82.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(String);

impl Serial {
    /// Checks length and character set.
    pub fn new(serial: &str) -> Result<Self, EpcisError> {
        check_cset82("serial", serial, 20)?;
        Ok(Serial(serial.to_owned()))
    }

    /// The serial as printed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A location: GLN (13 digits) plus optional extension (AI 254); extension `0` or none
/// means the GLN itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sgln {
    gln: String,
    extension: Option<String>,
}

impl Sgln {
    /// Checks the GLN's check digit and the extension's character set (1..=20).
    pub fn new(gln: &str, extension: Option<&str>) -> Result<Self, EpcisError> {
        check_key("GLN", gln, 13)?;
        let extension = match extension {
            None | Some("0") => None,
            Some(ext) => {
                check_cset82("GLN extension", ext, 20)?;
                Some(ext.to_owned())
            }
        };
        Ok(Sgln {
            gln: gln.to_owned(),
            extension,
        })
    }

    /// The location's URI in `form`.
    pub fn uri(&self, form: IdForm) -> Result<String, EpcisError> {
        match form {
            IdForm::DigitalLink => Ok(match &self.extension {
                None => format!("https://id.gs1.org/414/{}", self.gln),
                Some(ext) => format!("https://id.gs1.org/414/{}/254/{}", self.gln, dl_escape(ext)),
            }),
            IdForm::EpcUrn { company_prefix_len } => {
                let cp = company_prefix_len.get();
                let (cp_part, rest) = self.gln.split_at(cp);
                let loc_ref = rest.get(..rest.len() - 1).unwrap_or("");
                let ext = self.extension.as_deref().map(urn_escape);
                Ok(format!(
                    "urn:epc:id:sgln:{cp_part}.{loc_ref}.{}",
                    ext.as_deref().unwrap_or("0")
                ))
            }
        }
    }
}

/// An SSCC (18 digits, check digit verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sscc(String);

impl Sscc {
    /// Checks 18 digits and the check digit.
    pub fn new(sscc: &str) -> Result<Self, EpcisError> {
        check_key("SSCC", sscc, 18)?;
        Ok(Sscc(sscc.to_owned()))
    }

    /// The SSCC's URI in `form`.
    pub fn uri(&self, form: IdForm) -> Result<String, EpcisError> {
        match form {
            IdForm::DigitalLink => Ok(format!("https://id.gs1.org/00/{}", self.0)),
            IdForm::EpcUrn { company_prefix_len } => {
                let cp = company_prefix_len.get();
                // extension digit, company prefix, serial reference, check digit
                let ext = &self.0[..1];
                let cp_part = &self.0[1..1 + cp];
                let serial_ref = &self.0[1 + cp..17];
                Ok(format!("urn:epc:id:sscc:{cp_part}.{ext}{serial_ref}"))
            }
        }
    }
}

/// What comes before the escaped serial in [`sgtin_uri`] for `form`, and whether the
/// serial is escaped for Digital Link (else for an EPC URN): `sgtin_uri` is the prefix
/// followed by [`write_escaped`] of the serial.
pub(crate) fn sgtin_prefix(form: IdForm, gtin: &Gtin) -> (String, bool) {
    match form {
        IdForm::DigitalLink => (format!("https://id.gs1.org/01/{}/21/", gtin.0), true),
        IdForm::EpcUrn { company_prefix_len } => {
            let cp = company_prefix_len.get();
            let g = gtin.0.as_str();
            let (indicator, cp_part, item_ref) = (
                g.get(..1).unwrap_or_default(),
                g.get(1..1 + cp).unwrap_or_default(),
                g.get(1 + cp..13).unwrap_or_default(),
            );
            (
                format!("urn:epc:id:sgtin:{cp_part}.{indicator}{item_ref}."),
                false,
            )
        }
    }
}

/// The URI of one serialised unit (SGTIN) in `form`.
pub fn sgtin_uri(form: IdForm, gtin: &Gtin, serial: &Serial) -> String {
    match form {
        IdForm::DigitalLink => format!(
            "https://id.gs1.org/01/{}/21/{}",
            gtin.0,
            dl_escape(&serial.0)
        ),
        IdForm::EpcUrn { company_prefix_len } => {
            let cp = company_prefix_len.get();
            let indicator = &gtin.0[..1];
            let cp_part = &gtin.0[1..1 + cp];
            let item_ref = &gtin.0[1 + cp..13];
            format!(
                "urn:epc:id:sgtin:{cp_part}.{indicator}{item_ref}.{}",
                urn_escape(&serial.0)
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Canonicalisation for the event hash.

/// Splits `cp.ref` where the two must be `total` digits together and the company prefix
/// 6..=12 digits.
fn split_digits(cp: &str, rest: &str, total: usize) -> Option<()> {
    ((6..=12).contains(&cp.len())
        && all_digits(cp)
        && all_digits(rest)
        && cp.len() + rest.len() == total)
        .then_some(())
}

fn with_check(body: &str) -> Option<String> {
    Some(format!("{body}{}", gs1_check_digit(body)?))
}

/// A GTIN-14 from an EPC `cp.indicator+itemref` pair.
fn gtin_from_epc(cp: &str, item: &str) -> Option<String> {
    split_digits(cp, item, 13)?;
    let (indicator, item_ref) = item.split_at(1);
    with_check(&format!("{indicator}{cp}{item_ref}"))
}

/// A 13-digit key (GLN, GDTI, SGCN, PGLN) from `cp.ref`.
fn key13_from_epc(cp: &str, reference: &str) -> Option<String> {
    split_digits(cp, reference, 12)?;
    with_check(&format!("{cp}{reference}"))
}

fn urn_value_ok(value: &str, max: usize) -> bool {
    // URN escapes are kept as they are; the rest must be URN-safe CSET 82.
    !value.is_empty()
        && value.len() <= max * 3
        && value
            .chars()
            .all(|c| is_cset82(c) && !matches!(c, '"' | '&' | '/' | '<' | '>' | '?'))
}

/// Converts an EPC pure-identity, class or pattern URN to its constrained canonical
/// Digital Link URI; `None` if `uri` is not such a URN or is malformed.
fn canonical_from_urn(uri: &str) -> Option<String> {
    const DL: &str = "https://id.gs1.org";
    if let Some(body) = uri.strip_prefix("urn:epc:id:") {
        let (scheme, rest) = body.split_once(':')?;
        return match scheme {
            "sgtin" | "upui" => {
                let mut p = rest.splitn(3, '.');
                let (cp, item, serial) = (p.next()?, p.next()?, p.next()?);
                let gtin = gtin_from_epc(cp, item)?;
                let (ai, max) = if scheme == "sgtin" {
                    ("21", 20)
                } else {
                    ("235", 28)
                };
                urn_value_ok(serial, max)
                    .then(|| format!("{DL}/01/{gtin}/{ai}/{}", dl_escape_from_urn(serial)))
            }
            "sscc" => {
                let (cp, serial_ref) = rest.split_once('.')?;
                split_digits(cp, serial_ref, 17)?;
                let (ext, sr) = serial_ref.split_at(1);
                Some(format!(
                    "{DL}/00/{}",
                    with_check(&format!("{ext}{cp}{sr}"))?
                ))
            }
            "sgln" => {
                let mut p = rest.splitn(3, '.');
                let (cp, loc, ext) = (p.next()?, p.next()?, p.next()?);
                let gln = key13_from_epc(cp, loc)?;
                if ext == "0" {
                    Some(format!("{DL}/414/{gln}"))
                } else {
                    urn_value_ok(ext, 20)
                        .then(|| format!("{DL}/414/{gln}/254/{}", dl_escape_from_urn(ext)))
                }
            }
            "grai" => {
                let mut p = rest.splitn(3, '.');
                let (cp, asset, serial) = (p.next()?, p.next()?, p.next()?);
                split_digits(cp, asset, 12)?;
                let key = with_check(&format!("0{cp}{asset}"))?;
                urn_value_ok(serial, 16)
                    .then(|| format!("{DL}/8003/{key}{}", dl_escape_from_urn(serial)))
            }
            "giai" | "ginc" => {
                let (cp, reference) = rest.split_once('.')?;
                ((6..=12).contains(&cp.len()) && all_digits(cp) && urn_value_ok(reference, 30))
                    .then_some(())?;
                let ai = if scheme == "giai" { "8004" } else { "401" };
                Some(format!("{DL}/{ai}/{cp}{}", dl_escape_from_urn(reference)))
            }
            "gsrn" | "gsrnp" => {
                let (cp, service) = rest.split_once('.')?;
                split_digits(cp, service, 17)?;
                let ai = if scheme == "gsrn" { "8018" } else { "8017" };
                Some(format!(
                    "{DL}/{ai}/{}",
                    with_check(&format!("{cp}{service}"))?
                ))
            }
            "gdti" | "sgcn" => {
                let mut p = rest.splitn(3, '.');
                let (cp, doc, serial) = (p.next()?, p.next()?, p.next()?);
                let key = key13_from_epc(cp, doc)?;
                let ai = if scheme == "gdti" { "253" } else { "255" };
                let ok = if scheme == "gdti" {
                    urn_value_ok(serial, 17)
                } else {
                    !serial.is_empty() && serial.len() <= 12 && all_digits(serial)
                };
                ok.then(|| format!("{DL}/{ai}/{key}{}", dl_escape_from_urn(serial)))
            }
            "cpi" => {
                let (cp, tail) = rest.split_once('.')?;
                let (cp_ref, serial) = tail.rsplit_once('.')?;
                ((6..=12).contains(&cp.len())
                    && all_digits(cp)
                    && !cp_ref.is_empty()
                    && !serial.is_empty()
                    && serial.len() <= 12
                    && all_digits(serial))
                .then_some(())?;
                Some(format!(
                    "{DL}/8010/{}/8011/{serial}",
                    dl_escape_from_urn(&format!("{cp}{cp_ref}"))
                ))
            }
            "gsin" => {
                let (cp, shipper) = rest.split_once('.')?;
                split_digits(cp, shipper, 16)?;
                Some(format!(
                    "{DL}/402/{}",
                    with_check(&format!("{cp}{shipper}"))?
                ))
            }
            "itip" => {
                let mut p = rest.splitn(5, '.');
                let (cp, item, piece, total, serial) =
                    (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
                let gtin = gtin_from_epc(cp, item)?;
                (piece.len() == 2 && total.len() == 2 && all_digits(piece) && all_digits(total))
                    .then_some(())?;
                urn_value_ok(serial, 20).then(|| {
                    format!(
                        "{DL}/8006/{gtin}{piece}{total}/21/{}",
                        dl_escape_from_urn(serial)
                    )
                })
            }
            "pgln" => {
                let (cp, party) = rest.split_once('.')?;
                Some(format!("{DL}/417/{}", key13_from_epc(cp, party)?))
            }
            _ => None,
        };
    }
    if let Some(rest) = uri.strip_prefix("urn:epc:class:lgtin:") {
        let mut p = rest.splitn(3, '.');
        let (cp, item, lot) = (p.next()?, p.next()?, p.next()?);
        let gtin = gtin_from_epc(cp, item)?;
        return urn_value_ok(lot, 20)
            .then(|| format!("{DL}/01/{gtin}/10/{}", dl_escape_from_urn(lot)));
    }
    if let Some(body) = uri.strip_prefix("urn:epc:idpat:") {
        let (scheme, rest) = body.split_once(':')?;
        let rest = rest.strip_suffix(".*")?;
        return match scheme {
            "sgtin" | "upui" => {
                let (cp, item) = rest.split_once('.')?;
                Some(format!("{DL}/01/{}", gtin_from_epc(cp, item)?))
            }
            "grai" => {
                let (cp, asset) = rest.split_once('.')?;
                split_digits(cp, asset, 12)?;
                Some(format!(
                    "{DL}/8003/{}",
                    with_check(&format!("0{cp}{asset}"))?
                ))
            }
            "gdti" | "sgcn" => {
                let (cp, doc) = rest.split_once('.')?;
                let ai = if scheme == "gdti" { "253" } else { "255" };
                Some(format!("{DL}/{ai}/{}", key13_from_epc(cp, doc)?))
            }
            "cpi" => {
                let (cp, cp_ref) = rest.split_once('.')?;
                ((6..=12).contains(&cp.len()) && all_digits(cp) && !cp_ref.is_empty())
                    .then_some(())?;
                Some(format!(
                    "{DL}/8010/{}",
                    dl_escape_from_urn(&format!("{cp}{cp_ref}"))
                ))
            }
            "itip" => {
                let mut p = rest.splitn(4, '.');
                let (cp, item, piece, total) = (p.next()?, p.next()?, p.next()?, p.next()?);
                let gtin = gtin_from_epc(cp, item)?;
                (piece.len() == 2 && total.len() == 2 && all_digits(piece) && all_digits(total))
                    .then(|| format!("{DL}/8006/{gtin}{piece}{total}"))
            }
            _ => None,
        };
    }
    None
}

/// Primary-key AIs (and their Digital Link short names) that start a GS1 key path.
fn primary_ai(segment: &str) -> Option<&'static str> {
    Some(match segment {
        "01" | "gtin" => "01",
        "8006" | "itip" => "8006",
        "8010" | "cpid" => "8010",
        "414" | "gln" => "414",
        "417" | "party" => "417",
        "8017" | "gsrnp" => "8017",
        "8018" | "gsrn" => "8018",
        "255" | "gcn" => "255",
        "00" | "sscc" => "00",
        "253" | "gdti" => "253",
        "401" | "ginc" => "401",
        "402" | "gsin" => "402",
        "8003" | "grai" => "8003",
        "8004" | "giai" => "8004",
        _ => return None,
    })
}

fn qualifier_ai(segment: &str) -> &str {
    match segment {
        "cpv" => "22",
        "lot" => "10",
        "ser" => "21",
        "glnx" => "254",
        "tpx" => "235",
        other => other,
    }
}

fn value_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max * 3 && !value.contains(['?', '#'])
}

/// Checks the primary key's value shape and constrains qualifiers to the finest
/// identification level; returns the canonical path or `None`.
fn canonical_dl_path(ai: &str, value: &str, qualifiers: &[(&str, &str)]) -> Option<String> {
    let digits_then = |n: usize, max_tail: usize| {
        value.len() >= n
            && value.is_char_boundary(n)
            && all_digits(&value[..n])
            && value_ok_or_empty(&value[n..], max_tail)
    };
    let mut value = value.to_owned();
    let find = |ai: &str| qualifiers.iter().find(|(q, _)| *q == ai).map(|(_, v)| *v);
    let allowed: &[&str] = match ai {
        "01" => {
            value = match value.len() {
                14 => value,
                13 => format!("0{value}"),
                12 => format!("00{value}"),
                8 => format!("000000{value}"),
                _ => return None,
            };
            if !all_digits(&value) {
                return None;
            }
            &["21", "235", "10"]
        }
        "8006" => {
            if !(value.len() == 18 && all_digits(&value)) {
                return None;
            }
            &["21", "10"]
        }
        "00" | "8017" | "8018" => {
            (value.len() == 18 && all_digits(&value)).then_some(())?;
            &[]
        }
        "414" => {
            (value.len() == 13 && all_digits(&value)).then_some(())?;
            &["254"]
        }
        "417" => {
            (value.len() == 13 && all_digits(&value)).then_some(())?;
            &[]
        }
        "402" => {
            (value.len() == 17 && all_digits(&value)).then_some(())?;
            &[]
        }
        "253" => {
            digits_then(13, 17).then_some(())?;
            &[]
        }
        "255" => {
            (value.len() >= 13 && value.len() <= 25 && all_digits(&value)).then_some(())?;
            &[]
        }
        "8003" => {
            digits_then(14, 16).then_some(())?;
            &[]
        }
        "401" | "8004" => {
            value_ok(&value, 30).then_some(())?;
            &[]
        }
        "8010" => {
            value_ok(&value, 30).then_some(())?;
            &["8011"]
        }
        _ => return None,
    };
    // The finest level only: a serial (or TPX) wins over a lot; CPV is dropped.
    let mut path = format!("https://id.gs1.org/{ai}/{value}");
    for q in allowed {
        if let Some(v) = find(q) {
            if !value_ok(v, 30) {
                return None;
            }
            path.push('/');
            path.push_str(q);
            path.push('/');
            path.push_str(v);
            break;
        }
    }
    Some(path)
}

fn value_ok_or_empty(value: &str, max: usize) -> bool {
    value.is_empty() || value_ok(value, max)
}

/// Converts a GS1 Digital Link URI on any domain (short names allowed, query and
/// fragment ignored) to the constrained canonical form; `None` if `uri` holds no GS1 key.
fn canonical_from_dl(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let rest = rest.split(['?', '#']).next()?;
    let (_authority, path) = rest.split_once('/')?;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().enumerate().position(|(i, s)| {
        primary_ai(s).is_some()
            && segments
                .get(i + 1)
                .is_some_and(|v| v.len() > 4 && v.bytes().take(4).all(|b| b.is_ascii_digit()))
    })?;
    let ai = primary_ai(segments.get(start)?)?;
    let value = segments.get(start + 1)?;
    let tail = segments.get(start + 2..)?;
    if tail.len() % 2 != 0 {
        return None;
    }
    let qualifiers: Vec<(&str, &str)> = tail
        .chunks(2)
        .filter_map(|c| Some((qualifier_ai(c.first()?), *c.get(1)?)))
        .collect();
    canonical_dl_path(ai, value, &qualifiers)
}

/// The canonical form of an identifier for the event hash: EPC URNs and Digital Link
/// URIs become constrained canonical Digital Link URIs; anything else comes back as is.
pub fn canonical_id(uri: &str) -> String {
    if uri.starts_with("urn:epc:") {
        canonical_from_urn(uri)
    } else if uri.starts_with("http://") || uri.starts_with("https://") {
        canonical_from_dl(uri)
    } else {
        None
    }
    .unwrap_or_else(|| uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert_eq!(gs1_check_digit("0401234511111"), Some('8'));
        assert_eq!(gs1_check_digit("401234500011"), Some('5'));
        assert_eq!(gs1_check_digit("34012345111111111"), Some('1'));
        assert_eq!(gs1_check_digit("40a"), None);
    }

    #[test]
    fn gtin_and_serial_validation() {
        assert!(Gtin::new("04012345111118").is_ok());
        assert!(Gtin::new("4012345111118").is_ok());
        assert!(Gtin::new("04012345111119").is_err());
        assert!(Gtin::new("0401234511111").is_err());
        assert!(Serial::new("").is_err());
        assert!(Serial::new("123456789012345678901").is_err());
        assert!(Serial::new("ab c").is_err());
        assert!(Serial::new("A/b\"%&<>?!(),:+*'").is_ok());
    }

    #[test]
    fn both_forms_of_an_sgtin_canonicalise_to_the_same_uri() {
        let cp = CompanyPrefixLen::new(7).unwrap_or(CompanyPrefixLen(7));
        let gtin = Gtin::new("04012345111118").unwrap_or_else(|_| Gtin(String::new()));
        for s in ["9876", "98\"", "6/&%\"!?()", "a'b;c=d*e+f,g:h<i>"] {
            let serial = Serial::new(s).unwrap_or_else(|_| Serial(String::new()));
            let dl = sgtin_uri(IdForm::DigitalLink, &gtin, &serial);
            let urn = sgtin_uri(
                IdForm::EpcUrn {
                    company_prefix_len: cp,
                },
                &gtin,
                &serial,
            );
            assert_eq!(canonical_id(&urn), dl, "serial {s:?}");
            assert_eq!(canonical_id(&dl), dl, "serial {s:?}");
        }
        assert_eq!(
            sgtin_uri(
                IdForm::EpcUrn {
                    company_prefix_len: cp
                },
                &gtin,
                &Serial("9876".into())
            ),
            "urn:epc:id:sgtin:4012345.011111.9876"
        );
    }

    #[test]
    fn sgln_and_sscc_forms() {
        let cp = IdForm::EpcUrn {
            company_prefix_len: CompanyPrefixLen(7),
        };
        let loc = Sgln::new("4012345000054", Some("122")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loc.uri(cp).ok().as_deref(),
            Some("urn:epc:id:sgln:4012345.00005.122")
        );
        assert_eq!(
            loc.uri(IdForm::DigitalLink).ok().as_deref(),
            Some("https://id.gs1.org/414/4012345000054/254/122")
        );
        let plain = Sgln::new("4012345000054", Some("0")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plain.uri(cp).ok().as_deref(),
            Some("urn:epc:id:sgln:4012345.00005.0")
        );
        assert!(Sgln::new("4012345000055", None).is_err());
        let sscc = Sscc::new("340123451111111111").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sscc.uri(cp).ok().as_deref(),
            Some("urn:epc:id:sscc:4012345.3111111111")
        );
        assert_eq!(
            canonical_id("urn:epc:id:sscc:4012345.3111111111"),
            "https://id.gs1.org/00/340123451111111111"
        );
    }

    #[test]
    fn non_gs1_uris_stay_as_they_are() {
        for u in [
            "http://transaction.acme.com/po/12345678",
            "http://www.opengis.net/def/crs/EPSG/0/27700",
            "geo:47.506694,11.104301",
            "urn:epcglobal:cbv:bt:4012345000009:ASN1099",
            "urn:epc:id:sgtin:bad",
            "https://example.com/01/123",
        ] {
            assert_eq!(canonical_id(u), u);
        }
    }

    #[test]
    fn dl_granularity_and_domains() {
        assert_eq!(
            canonical_id("https://example.com/gtin/09780345418913/21/765tz?abc=211121"),
            "https://id.gs1.org/01/09780345418913/21/765tz"
        );
        assert_eq!(
            canonical_id("https://id.gs1.de/01/4012345111118/10/L1/21/S1"),
            "https://id.gs1.org/01/04012345111118/21/S1"
        );
        assert_eq!(
            canonical_id("https://id.gs1.org/01/04012345111118/22/2A/10/L1"),
            "https://id.gs1.org/01/04012345111118/10/L1"
        );
    }
}
