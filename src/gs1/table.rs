//! The Application Identifier table, generated at build time (see `build.rs`) from the
//! vendored GS1 Barcode Syntax Dictionary, and its lookup. Owns the shape of a dictionary
//! entry (components, linters, pairing rules, Digital Link key qualifiers); it does not
//! validate anything itself (see `validate.rs`).

/// Character set of a component (`N`, `X` = CSET 82, `Y` = CSET 39, `Z` = CSET 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cset {
    /// Digits only.
    N,
    /// GS1 AI encodable character set 82.
    X,
    /// GS1 AI encodable character set 39.
    Y,
    /// GS1 AI encodable character set 64 (base64url, `=` padding at the end).
    Z,
}

/// A component linter named in the dictionary. Every name the dictionary uses must be
/// a variant here, or the generated table does not compile.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linter {
    Couponcode,
    Couponposoffer,
    Csum,
    Csumalpha,
    Gcppos1,
    Gcppos2,
    Hasnondigit,
    Hh,
    Hhmi,
    Hyphen,
    Iban,
    Importeridx,
    Iso3166,
    Iso3166999,
    Iso3166alpha2,
    Iso4217,
    Iso5218,
    Latitude,
    Longitude,
    Mediatype,
    Mi,
    Nonzero,
    Nozeroprefix,
    Packagetype,
    Pcenc,
    Pieceoftotal,
    Posinseqslash,
    Ss,
    Winding,
    Yesno,
    Yymmd0,
    Yymmdd,
    Yyyymmdd,
    Zero,
}

impl Linter {
    /// The linter's name as written in the dictionary.
    pub fn name(self) -> &'static str {
        match self {
            Linter::Couponcode => "couponcode",
            Linter::Couponposoffer => "couponposoffer",
            Linter::Csum => "csum",
            Linter::Csumalpha => "csumalpha",
            Linter::Gcppos1 => "gcppos1",
            Linter::Gcppos2 => "gcppos2",
            Linter::Hasnondigit => "hasnondigit",
            Linter::Hh => "hh",
            Linter::Hhmi => "hhmi",
            Linter::Hyphen => "hyphen",
            Linter::Iban => "iban",
            Linter::Importeridx => "importeridx",
            Linter::Iso3166 => "iso3166",
            Linter::Iso3166999 => "iso3166999",
            Linter::Iso3166alpha2 => "iso3166alpha2",
            Linter::Iso4217 => "iso4217",
            Linter::Iso5218 => "iso5218",
            Linter::Latitude => "latitude",
            Linter::Longitude => "longitude",
            Linter::Mediatype => "mediatype",
            Linter::Mi => "mi",
            Linter::Nonzero => "nonzero",
            Linter::Nozeroprefix => "nozeroprefix",
            Linter::Packagetype => "packagetype",
            Linter::Pcenc => "pcenc",
            Linter::Pieceoftotal => "pieceoftotal",
            Linter::Posinseqslash => "posinseqslash",
            Linter::Ss => "ss",
            Linter::Winding => "winding",
            Linter::Yesno => "yesno",
            Linter::Yymmd0 => "yymmd0",
            Linter::Yymmdd => "yymmdd",
            Linter::Yyyymmdd => "yyyymmdd",
            Linter::Zero => "zero",
        }
    }
}

/// One component of an AI's data field.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// Character set.
    pub cset: Cset,
    /// Minimum length (when present).
    pub min: usize,
    /// Maximum length.
    pub max: usize,
    /// Whether the component may be absent (only at the end of the field).
    pub optional: bool,
    /// Linters applied to the component, in order.
    pub linters: &'static [Linter],
}

/// One AI of the dictionary (ranges are expanded, one entry per AI).
#[derive(Debug, Clone, Copy)]
pub struct AiEntry {
    /// The AI digits.
    pub ai: &'static str,
    /// `true` when an FNC1 separator must follow the field unless it is last (no `*`
    /// flag: not a predefined-length AI).
    pub fnc1: bool,
    /// `?` flag: permitted as a GS1 Digital Link data attribute.
    pub dl_attr: bool,
    /// The data field's components.
    pub components: &'static [Component],
    /// `req` rules: every rule must be satisfied; a rule is satisfied by any one of its
    /// alternatives; an alternative needs all of its (pattern) AIs.
    pub req: &'static [&'static [&'static [&'static str]]],
    /// `ex` patterns: AIs that may not appear together with this one.
    pub ex: &'static [&'static str],
    /// `dlpkey`: Digital Link primary key, with alternative ordered qualifier sequences.
    pub dlpkey: Option<&'static [&'static [&'static str]]>,
    /// The dictionary's title (data title).
    pub title: &'static str,
}

impl AiEntry {
    /// Maximum length of the whole data field.
    pub fn max_len(&self) -> usize {
        self.components.iter().map(|c| c.max).sum()
    }

    /// Length of the field when every component is mandatory and fixed, else `None`.
    pub fn fixed_len(&self) -> Option<usize> {
        let mut n = 0;
        for c in self.components {
            if c.optional || c.min != c.max {
                return None;
            }
            n += c.min;
        }
        Some(n)
    }
}

include!(concat!(env!("OUT_DIR"), "/gs1_ai_table.rs"));

/// Every entry of the table, sorted by AI.
pub fn entries() -> &'static [AiEntry] {
    &AI_TABLE
}

/// Look up an AI given as ASCII digits (2 to 4). No hashing: the digits index a flat
/// array.
#[inline]
pub fn lookup(ai: &[u8]) -> Option<&'static AiEntry> {
    let base = match ai.len() {
        2 => 0,
        3 => 100,
        4 => 1100,
        _ => return None,
    };
    let mut n = 0usize;
    for &b in ai {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    let i = *AI_INDEX.get(base + n)?;
    AI_TABLE.get(usize::from(i))
}

/// Find the AI that prefixes `data` (AIs are prefix-free), for unbracketed input.
#[inline]
pub fn lookup_prefix(data: &[u8]) -> Option<&'static AiEntry> {
    (2..=4).find_map(|n| data.get(..n).and_then(lookup))
}

/// Whether `ai` matches a dictionary pattern (`n` stands for any digit).
#[inline]
pub fn pattern_matches(pattern: &str, ai: &str) -> bool {
    pattern.len() == ai.len()
        && pattern
            .bytes()
            .zip(ai.bytes())
            .all(|(p, a)| p == a || (p == b'n' && a.is_ascii_digit()))
}
