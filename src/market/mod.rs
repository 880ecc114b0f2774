//! Market rules: for each target market (US DSCSA, EU FMD, China NMPA, Brazil ANVISA,
//! Russia, Turkey ITS, Saudi RSD, India export) which AIs a unit code needs, what a
//! serial may look like, whether serials must be randomised, date rules, and building
//! the code for one unit from product master data and a serial. Uses the GS1 engine;
//! knows nothing about printers, pools or profiles' files.
//!
//! SKELETON: the public API below is the contract other modules code against; the
//! foundation issue fills in the bodies (one submodule per market) and may add to it.

use std::fmt;
use std::str::FromStr;

use crate::gs1::{Gs1Code, Gs1Error};

pub mod br_anvisa;
pub mod cn_nmpa;
pub mod eu_fmd;
pub mod in_export;
pub mod ru_crypto;
pub mod sa_rsd;
pub mod tr_its;
pub mod us_dscsa;

/// A market whose serialization rules linectl knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    /// United States, DSCSA.
    UsDscsa,
    /// European Union, Falsified Medicines Directive.
    EuFmd,
    /// China, NMPA drug traceability code.
    CnNmpa,
    /// Brazil, ANVISA / SNCM.
    BrAnvisa,
    /// Russia, crypto-tail codes issued by the operator.
    RuCrypto,
    /// Turkey, ITS.
    TrIts,
    /// Saudi Arabia, RSD.
    SaRsd,
    /// India, export.
    InExport,
}

impl Market {
    /// Every market, in a stable order.
    pub const ALL: [Market; 8] = [
        Market::UsDscsa,
        Market::EuFmd,
        Market::CnNmpa,
        Market::BrAnvisa,
        Market::RuCrypto,
        Market::TrIts,
        Market::SaRsd,
        Market::InExport,
    ];

    /// The market's id as written in profiles and on the command line, e.g. `eu-fmd`.
    pub fn id(self) -> &'static str {
        match self {
            Market::UsDscsa => "us-dscsa",
            Market::EuFmd => "eu-fmd",
            Market::CnNmpa => "cn-nmpa",
            Market::BrAnvisa => "br-anvisa",
            Market::RuCrypto => "ru-crypto",
            Market::TrIts => "tr-its",
            Market::SaRsd => "sa-rsd",
            Market::InExport => "in-export",
        }
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Market {
    type Err = MarketError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Market::ALL
            .into_iter()
            .find(|m| m.id() == s)
            .ok_or_else(|| MarketError::UnknownMarket(s.to_string()))
    }
}

/// Characters a serial may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialCharset {
    /// Digits only.
    Numeric,
    /// GS1 CSET 82 (the AI 21 character set).
    Cset82,
}

/// The 82 characters of GS1 CSET 82, in ASCII order.
pub const CSET82: &[u8; 82] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// Membership table for CSET 82, indexed by byte.
const CSET82_TABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < CSET82.len() {
        t[CSET82[i] as usize] = true;
        i += 1;
    }
    t
};

impl SerialCharset {
    /// Whether `b` belongs to the charset.
    #[inline]
    pub fn contains(self, b: u8) -> bool {
        match self {
            SerialCharset::Numeric => b.is_ascii_digit(),
            SerialCharset::Cset82 => CSET82_TABLE[b as usize],
        }
    }

    /// Number of characters in the charset (10 or 82): the base of the serial space.
    pub fn size(self) -> u32 {
        match self {
            SerialCharset::Numeric => 10,
            SerialCharset::Cset82 => 82,
        }
    }

    /// The characters of the charset.
    pub fn alphabet(self) -> &'static [u8] {
        match self {
            SerialCharset::Numeric => b"0123456789",
            SerialCharset::Cset82 => CSET82,
        }
    }

    /// A conservative alphabet for generating serials locally: digits and upper-case
    /// letters without the look-alikes `I`, `O` (34 characters). Every character is in
    /// the charset and needs no escaping in HRI, Digital Link or EPC URNs.
    pub fn generation_alphabet(self) -> &'static [u8] {
        match self {
            SerialCharset::Numeric => b"0123456789",
            SerialCharset::Cset82 => b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ",
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            SerialCharset::Numeric => "digits",
            SerialCharset::Cset82 => "GS1 CSET 82",
        }
    }
}

/// What a market asks of a unit's serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialRules {
    /// Allowed characters.
    pub charset: SerialCharset,
    /// Minimum length.
    pub min_len: usize,
    /// Maximum length.
    pub max_len: usize,
    /// Serials must be randomised (EU: chance of guessing a valid serial < 1/10,000).
    pub randomised: bool,
    /// linectl may generate serials locally (otherwise they come from the site server
    /// or the national operator).
    pub local_generation: bool,
    /// Sequential numeric generation is allowed.
    pub sequential_allowed: bool,
}

/// Errors from market rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarketError {
    /// Not a market id linectl knows.
    #[error(
        "unknown market `{0}` (known: us-dscsa, eu-fmd, cn-nmpa, br-anvisa, ru-crypto, tr-its, sa-rsd, in-export)"
    )]
    UnknownMarket(String),
    /// The serial breaks the market's serial rules.
    #[error("{market}: serial `{serial}` rejected: {reason}")]
    Serial {
        /// The market.
        market: Market,
        /// The offending serial.
        serial: String,
        /// The rule broken.
        reason: String,
    },
    /// A required AI is missing from the unit data.
    #[error("{market}: AI ({ai}) is required")]
    MissingAi {
        /// The market.
        market: Market,
        /// The missing AI.
        ai: String,
    },
    /// Another market rule is broken.
    #[error("{market}: {reason}")]
    Rule {
        /// The market.
        market: Market,
        /// The rule broken.
        reason: String,
    },
    /// The code is not valid GS1.
    #[error(transparent)]
    Gs1(#[from] Gs1Error),
}

impl Market {
    /// The market's serial rules.
    pub fn serial_rules(self) -> SerialRules {
        self.spec().serial.clone()
    }

    /// Check one serial against the market's charset and length.
    pub fn validate_serial(self, serial: &str) -> Result<(), MarketError> {
        check_serial(self, &self.spec().serial, serial.as_bytes()).map_err(|reason| {
            MarketError::Serial {
                market: self,
                serial: serial.to_string(),
                reason,
            }
        })
    }
}

/// Check a serial's length and characters; the reason names the first problem.
#[inline]
fn check_serial(market: Market, rules: &SerialRules, serial: &[u8]) -> Result<(), String> {
    let len = serial.len();
    if len < rules.min_len || len > rules.max_len {
        let want = if rules.min_len == rules.max_len {
            format!("exactly {}", rules.min_len)
        } else {
            format!("{} to {}", rules.min_len, rules.max_len)
        };
        return Err(format!("length {len}, {market} needs {want} characters"));
    }
    if let Some(pos) = serial.iter().position(|&b| !rules.charset.contains(b)) {
        let shown = serial
            .get(pos..)
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| rest.chars().next())
            .map(|c| format!("`{}`", c.escape_default()))
            .unwrap_or_else(|| "a non-ASCII character".to_string());
        return Err(format!(
            "character {shown} at position {pos} is not in {}",
            rules.charset.name()
        ));
    }
    Ok(())
}

/// The EU FMD limit: the chance of guessing a valid serial must stay below 1 in 10,000.
pub const MAX_GUESS_ODDS: u128 = 10_000;

/// How guessable a pool of serials is: `pool_size` valid serials in a space of
/// `charset_size ^ serial_len`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuessingProbability {
    /// Number of valid serials (the pool, per product).
    pub pool_size: u128,
    /// `charset_size ^ serial_len`, or `None` when larger than `u128::MAX`.
    pub space: Option<u128>,
    /// `pool_size / space` as a float (0 when the space overflows `u128`).
    pub probability: f64,
}

/// Check that serials drawn at random from a space of `charset_size ^ serial_len` with
/// `pool_size` valid ones meet the market's randomisation rule (EU FMD: probability of
/// guessing a valid serial below 1/10,000, i.e. `pool_size * 10_000 < space`). Markets
/// without a randomisation rule accept any pool, but still reject an empty space
/// (`charset_size` 0) or a serial length outside the market's rules.
pub fn guessing_probability_ok(
    market: Market,
    serial_len: usize,
    charset_size: u32,
    pool_size: u128,
) -> Result<GuessingProbability, MarketError> {
    let rules = market.serial_rules();
    if serial_len < rules.min_len || serial_len > rules.max_len {
        return Err(MarketError::Rule {
            market,
            reason: format!(
                "serial length {serial_len} is outside {}..={}",
                rules.min_len, rules.max_len
            ),
        });
    }
    if charset_size < 2 || charset_size > rules.charset.size() {
        return Err(MarketError::Rule {
            market,
            reason: format!(
                "charset of {charset_size} characters: needs 2 to {} ({})",
                rules.charset.size(),
                rules.charset.name()
            ),
        });
    }
    let space = u32::try_from(serial_len)
        .ok()
        .and_then(|len| u128::from(charset_size).checked_pow(len));
    let probability = match space {
        Some(space) => pool_size as f64 / space as f64,
        None => 0.0,
    };
    let result = GuessingProbability {
        pool_size,
        space,
        probability,
    };
    if rules.randomised {
        let ok = match space {
            None => true,
            Some(space) => pool_size
                .checked_mul(MAX_GUESS_ODDS)
                .is_some_and(|scaled| scaled < space),
        };
        if !ok {
            return Err(MarketError::Rule {
                market,
                reason: format!(
                    "{pool_size} serials of {serial_len} characters from {charset_size} \
                     give a guessing probability of {probability:.3e}, \
                     must be below 1/10,000: use longer serials or a larger charset"
                ),
            });
        }
    }
    Ok(result)
}

/// The static rules of one market, defined in its submodule.
#[derive(Debug)]
pub struct MarketSpec {
    /// Serial rules.
    pub serial: SerialRules,
    /// AIs every unit code of this market carries, in the order linectl emits them.
    pub required_ais: &'static [&'static str],
    /// Per-product national AIs the market accepts, with what each means.
    pub national_ais: &'static [(&'static str, &'static str)],
    /// National AIs that must be present on every product of the market.
    pub required_national_ais: &'static [&'static str],
    /// Per-unit extra AIs the market accepts beyond 01/21/10/17 (Russia's 91/92).
    pub unit_extra_ais: &'static [&'static str],
    /// The expiry's day may be `00` (end of month).
    pub expiry_day_zero: bool,
    /// Longest batch / lot.
    pub batch_max_len: usize,
}

impl Market {
    /// The market's static rules.
    pub fn spec(self) -> &'static MarketSpec {
        match self {
            Market::UsDscsa => &us_dscsa::SPEC,
            Market::EuFmd => &eu_fmd::SPEC,
            Market::CnNmpa => &cn_nmpa::SPEC,
            Market::BrAnvisa => &br_anvisa::SPEC,
            Market::RuCrypto => &ru_crypto::SPEC,
            Market::TrIts => &tr_its::SPEC,
            Market::SaRsd => &sa_rsd::SPEC,
            Market::InExport => &in_export::SPEC,
        }
    }

    /// Build and validate the code of one unit.
    pub fn build(self, product: &Product, unit: &UnitData) -> Result<Gs1Code, MarketError> {
        let _ = (product, unit);
        todo!("foundation issue")
    }
}

/// Product master data, as held in a line profile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Product {
    /// GTIN-14 (with check digit).
    pub gtin: String,
    /// National healthcare reimbursement numbers and other per-product AIs, e.g.
    /// `("710", "12345678")` for a German PZN.
    pub national_ais: Vec<(String, String)>,
}

/// Per-unit data: serial, batch, expiry, and extra AIs (e.g. Russia's 91/92).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitData {
    /// The serial number (AI 21).
    pub serial: String,
    /// Batch / lot (AI 10).
    pub batch: String,
    /// Expiry YYMMDD (AI 17); `DD` may be `00` where the market allows.
    pub expiry: String,
    /// Further AIs for this unit.
    pub extra: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_ids_round_trip() {
        for m in Market::ALL {
            assert_eq!(m.id().parse::<Market>(), Ok(m));
        }
        assert!(matches!(
            "xx".parse::<Market>(),
            Err(MarketError::UnknownMarket(_))
        ));
    }

    #[test]
    fn cset82_has_82_distinct_characters() {
        let mut seen = std::collections::BTreeSet::new();
        for &b in CSET82 {
            assert!(seen.insert(b));
            assert!(SerialCharset::Cset82.contains(b));
        }
        assert_eq!(seen.len(), 82);
        for b in [
            b' ', b'#', b'$', b'@', b'[', b'\\', b'^', b'`', b'{', b'~', 0x1d, 0xc3,
        ] {
            assert!(!SerialCharset::Cset82.contains(b), "{b}");
        }
        for &b in SerialCharset::Cset82.generation_alphabet() {
            assert!(SerialCharset::Cset82.contains(b));
        }
    }

    #[test]
    fn serial_rules_table() {
        // (market, shortest ok, longest ok, randomised, local generation, sequential)
        let cases = [
            (Market::UsDscsa, 1, 20, false, true, true),
            (Market::EuFmd, 1, 20, true, true, false),
            (Market::CnNmpa, 13, 13, false, false, false),
            (Market::BrAnvisa, 1, 13, false, true, true),
            (Market::RuCrypto, 13, 13, false, false, false),
            (Market::TrIts, 1, 20, false, true, true),
            (Market::SaRsd, 1, 20, true, true, false),
            (Market::InExport, 1, 20, false, true, true),
        ];
        for (m, min, max, rnd, local, seq) in cases {
            let r = m.serial_rules();
            assert_eq!((r.min_len, r.max_len), (min, max), "{m}");
            assert_eq!(
                (r.randomised, r.local_generation, r.sequential_allowed),
                (rnd, local, seq),
                "{m}"
            );
            let digit_ok = "1".repeat(min);
            assert_eq!(m.validate_serial(&digit_ok), Ok(()), "{m}");
            assert_eq!(m.validate_serial(&"1".repeat(max)), Ok(()), "{m}");
            assert!(m.validate_serial(&"1".repeat(max + 1)).is_err(), "{m}");
            if min > 1 {
                assert!(m.validate_serial(&"1".repeat(min - 1)).is_err(), "{m}");
            }
            assert!(m.validate_serial("").is_err(), "{m}");
        }
    }

    #[test]
    fn serial_charset_errors_name_the_character() {
        let err = Market::EuFmd.validate_serial("AB CD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "eu-fmd: serial `AB CD` rejected: character `\\u{20}` at position 2 is not in GS1 CSET 82"
                .replace("\\u{20}", " ")
        );
        let err = Market::CnNmpa.validate_serial("12345678901A3").unwrap_err();
        assert!(
            err.to_string().contains("position 11 is not in digits"),
            "{err}"
        );
        let err = Market::UsDscsa.validate_serial("Aé").unwrap_err();
        assert!(err.to_string().contains("é"), "{err}");
        let err = Market::RuCrypto.validate_serial("ABC").unwrap_err();
        assert!(
            err.to_string()
                .contains("length 3, ru-crypto needs exactly 13"),
            "{err}"
        );
    }

    #[test]
    fn guessing_probability() {
        // 12 characters from 34 for a million serials: 34^12 ≈ 2.4e18, fine.
        let p = guessing_probability_ok(Market::EuFmd, 12, 34, 1_000_000).unwrap();
        assert!(p.probability < 1e-4);
        // 6 digits with 1,000 valid serials: 1e3 / 1e6 = 1e-3, too guessable.
        let err = guessing_probability_ok(Market::EuFmd, 6, 10, 1_000).unwrap_err();
        assert!(err.to_string().contains("below 1/10,000"), "{err}");
        // Boundary: exactly 1/10,000 is not below it; one fewer serial is.
        assert!(guessing_probability_ok(Market::EuFmd, 8, 10, 10_000).is_err());
        assert!(guessing_probability_ok(Market::EuFmd, 8, 10, 9_999).is_ok());
        // The US has no randomisation rule.
        assert!(guessing_probability_ok(Market::UsDscsa, 6, 10, 1_000).is_ok());
        // The largest space, 82^20, still fits u128; a pool the size of the space fails.
        let p = guessing_probability_ok(Market::SaRsd, 20, 82, 1_000_000_000_000).unwrap();
        assert_eq!(p.space, Some(82u128.pow(20)));
        assert!(guessing_probability_ok(Market::SaRsd, 20, 82, u128::MAX).is_err());
        // Nonsense inputs.
        assert!(guessing_probability_ok(Market::EuFmd, 21, 10, 1).is_err());
        assert!(guessing_probability_ok(Market::EuFmd, 10, 83, 1).is_err());
        assert!(guessing_probability_ok(Market::EuFmd, 10, 1, 1).is_err());
    }
}
