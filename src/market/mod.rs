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

    /// Build and validate the code of one unit: product master data, serial, batch,
    /// expiry and extra AIs are checked against the market's rules (the first problem
    /// is returned), then the GS1 engine validates the whole code.
    pub fn build(self, product: &Product, unit: &UnitData) -> Result<Gs1Code, MarketError> {
        if let Some(err) = self.product_problems(product).into_iter().next() {
            return Err(err);
        }
        let batch = BatchData {
            batch: unit.batch.clone(),
            expiry: unit.expiry.clone(),
        };
        if let Some(err) = self.batch_problems(&batch).into_iter().next() {
            return Err(err);
        }
        self.validate_serial(&unit.serial)?;
        self.check_extra(&unit.extra)?;
        let gtin = normalise_gtin(&product.gtin).map_err(|reason| self.rule(reason))?;
        let elements = self.elements(&gtin, product, &batch, &unit.serial, &unit.extra);
        Ok(Gs1Code::from_elements(elements)?)
    }

    /// Every problem with `product` for this market (empty when it is fine).
    pub fn product_problems(self, product: &Product) -> Vec<MarketError> {
        let spec = self.spec();
        let mut out = Vec::new();
        if let Err(reason) = normalise_gtin(&product.gtin) {
            out.push(self.rule(format!("GTIN: {reason}")));
        }
        for (i, (ai, value)) in product.national_ais.iter().enumerate() {
            if product.national_ais[..i].iter().any(|(a, _)| a == ai) {
                out.push(self.rule(format!("AI ({ai}) is given twice")));
                continue;
            }
            if let Err(reason) = check_national_ai(self, ai, value) {
                out.push(self.rule(reason));
            }
        }
        for ai in spec.required_national_ais {
            if !product.national_ais.iter().any(|(a, _)| a == ai) {
                out.push(MarketError::MissingAi {
                    market: self,
                    ai: (*ai).to_string(),
                });
            }
        }
        out
    }

    /// Every problem with the batch data for this market (empty when it is fine).
    pub fn batch_problems(self, batch: &BatchData) -> Vec<MarketError> {
        let spec = self.spec();
        let mut out = Vec::new();
        if spec.required_ais.contains(&"10") {
            if let Err(reason) = check_batch(&batch.batch, spec.batch_max_len) {
                out.push(self.rule(reason));
            }
        }
        if spec.required_ais.contains(&"17") {
            if let Err(reason) = check_expiry(&batch.expiry, spec.expiry_day_zero) {
                out.push(self.rule(reason));
            }
        }
        out
    }

    /// Check the per-unit extra AIs: only those the market takes, each at most once,
    /// all the market requires present, each in its form.
    fn check_extra(self, extra: &[(String, String)]) -> Result<(), MarketError> {
        let spec = self.spec();
        for (i, (ai, value)) in extra.iter().enumerate() {
            if !spec.unit_extra_ais.contains(&ai.as_str()) {
                return Err(self.rule(format!("AI ({ai}) is not a per-unit AI of {self}")));
            }
            if extra[..i].iter().any(|(a, _)| a == ai) {
                return Err(self.rule(format!("AI ({ai}) is given twice")));
            }
            if self == Market::RuCrypto {
                ru_crypto::check_tail(ai, value).map_err(|reason| self.rule(reason))?;
            }
        }
        for ai in spec.unit_extra_ais {
            if spec.required_ais.contains(ai) && !extra.iter().any(|(a, _)| a == ai) {
                return Err(MarketError::MissingAi {
                    market: self,
                    ai: (*ai).to_string(),
                });
            }
        }
        Ok(())
    }

    /// The unit's elements in the order linectl emits them: fixed-length first (01,
    /// 17), then batch, national AIs, and the serial last (so the per-unit part is the
    /// tail of the element string), then per-unit extras (Russia's 91/92).
    fn elements(
        self,
        gtin: &str,
        product: &Product,
        batch: &BatchData,
        serial: &str,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let spec = self.spec();
        let mut el = vec![("01".to_string(), gtin.to_string())];
        if spec.required_ais.contains(&"17") {
            el.push(("17".to_string(), batch.expiry.clone()));
        }
        if spec.required_ais.contains(&"10") {
            el.push(("10".to_string(), batch.batch.clone()));
        }
        for (ai, v) in &product.national_ais {
            el.push((ai.clone(), v.clone()));
        }
        el.push(("21".to_string(), serial.to_string()));
        for ai in spec.unit_extra_ais {
            if let Some((a, v)) = extra.iter().find(|(a, _)| a == ai) {
                el.push((a.clone(), v.clone()));
            }
        }
        el
    }

    fn rule(self, reason: impl Into<String>) -> MarketError {
        MarketError::Rule {
            market: self,
            reason: reason.into(),
        }
    }
}

/// What a GS1 national (NHRN) AI stands for.
pub fn national_ai_meaning(ai: &str) -> Option<&'static str> {
    Some(match ai {
        "710" => "NHRN: Germany PZN",
        "711" => "NHRN: France CIP",
        "712" => "NHRN: Spain Código Nacional",
        "713" => "NHRN: Brazil ANVISA registration",
        "714" => "NHRN: Portugal AIM",
        "715" => "NHRN: US NDC",
        _ => return None,
    })
}

/// Check that `ai` is a national AI `market` accepts and that its value has the right
/// form; the error says which rule broke.
pub fn check_national_ai(market: Market, ai: &str, value: &str) -> Result<(), String> {
    let spec = market.spec();
    if !spec.national_ais.iter().any(|(a, _)| *a == ai) {
        let known = national_ai_meaning(ai)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let accepted: Vec<_> = spec.national_ais.iter().map(|(a, _)| *a).collect();
        let accepted = if accepted.is_empty() {
            "none".to_string()
        } else {
            accepted.join(", ")
        };
        return Err(format!(
            "AI ({ai}){known} is not a national AI of {market} (accepted: {accepted})"
        ));
    }
    check_national_value(ai, value)
}

/// Check a national AI's value: the per-country format where linectl knows it, else
/// 1–20 CSET 82 characters (the GS1 format of AIs 710–715).
fn check_national_value(ai: &str, value: &str) -> Result<(), String> {
    match ai {
        "710" => eu_fmd::check_nhrn(ai, value),
        "713" => br_anvisa::check_registration(value),
        _ => {
            if value.is_empty() || value.len() > 20 {
                return Err(format!("AI ({ai}) must be 1 to 20 characters"));
            }
            match value
                .bytes()
                .position(|b| !SerialCharset::Cset82.contains(b))
            {
                Some(pos) => Err(format!(
                    "AI ({ai}): character at position {pos} is not in GS1 CSET 82"
                )),
                None => Ok(()),
            }
        }
    }
}

/// The GS1 check digit (mod 10, weights 3,1 from the right) over `digits`, which must
/// be ASCII digits.
pub fn gs1_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d.wrapping_sub(b'0')) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    // (10 - sum % 10) % 10 is below 10.
    ((10 - sum % 10) % 10) as u8
}

/// Check a GTIN-8, -12, -13 or -14 (digits and check digit) and return it as a GTIN-14
/// (left-padded with zeros). The error names the expected check digit.
pub fn normalise_gtin(gtin: &str) -> Result<String, String> {
    let b = gtin.as_bytes();
    if !matches!(b.len(), 8 | 12 | 13 | 14) {
        return Err(format!(
            "`{gtin}` has {} characters, a GTIN has 8, 12, 13 or 14 digits",
            b.len()
        ));
    }
    if let Some(pos) = b.iter().position(|c| !c.is_ascii_digit()) {
        return Err(format!("`{gtin}` has a non-digit at position {pos}"));
    }
    let (body, last) = b.split_at(b.len() - 1);
    let expected = gs1_check_digit(body);
    if last.first().map(|d| d - b'0') != Some(expected) {
        return Err(format!("check digit wrong (expected {expected})"));
    }
    Ok(format!("{gtin:0>14}"))
}

/// Check a batch / lot: 1 to `max_len` CSET 82 characters.
pub fn check_batch(batch: &str, max_len: usize) -> Result<(), String> {
    if batch.is_empty() {
        return Err("batch (AI 10) is required".to_string());
    }
    if batch.len() > max_len {
        return Err(format!(
            "batch `{batch}` has {} characters, at most {max_len} allowed",
            batch.len()
        ));
    }
    if let Some(pos) = batch
        .bytes()
        .position(|b| !SerialCharset::Cset82.contains(b))
    {
        return Err(format!(
            "batch `{batch}`: character at position {pos} is not in GS1 CSET 82"
        ));
    }
    Ok(())
}

/// Check an expiry date YYMMDD: a real calendar date (GS1 century rule not needed for
/// the day count: years are read as 20YY for leap years, 2000 being a leap year too);
/// `DD` = `00` (end of month) only where `day_zero` allows it.
pub fn check_expiry(expiry: &str, day_zero: bool) -> Result<(), String> {
    let b = expiry.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("expiry `{expiry}` must be 6 digits YYMMDD"));
    }
    let num = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (yy, mm, dd) = (num(0), num(2), num(4));
    if !(1..=12).contains(&mm) {
        return Err(format!("expiry `{expiry}`: month {mm:02} does not exist"));
    }
    if dd == 0 {
        return if day_zero {
            Ok(())
        } else {
            Err(format!(
                "expiry `{expiry}`: day 00 (end of month) is not accepted, give the real day"
            ))
        };
    }
    let leap = yy % 4 == 0;
    let days = match mm {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if dd > days {
        return Err(format!(
            "expiry `{expiry}`: day {dd:02} does not exist in month {mm:02}"
        ));
    }
    Ok(())
}

/// Batch-level data shared by every unit of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchData {
    /// Batch / lot (AI 10).
    pub batch: String,
    /// Expiry YYMMDD (AI 17).
    pub expiry: String,
}

/// A per-batch prepared code: product and batch validated once, the fixed part of the
/// element string and HRI precomputed, so that writing a unit's code only checks the
/// serial and copies bytes. This is the line's hot path.
///
/// The output is byte-for-byte the element string the GS1 engine gives for the code
/// `Market::build` makes from the same data (tested).
#[derive(Debug, Clone)]
pub struct CodeTemplate {
    market: Market,
    rules: SerialRules,
    /// Element string up to and including the serial's AI `21`.
    prefix: String,
    /// HRI up to and including `(21)`.
    hri_prefix: String,
    /// Per-unit extras follow the serial (Russia's 91/92).
    needs_tail: bool,
}

impl CodeTemplate {
    /// Validate product and batch for `market` and prepare the fixed part of the code.
    /// The GS1 engine checks a sample code once, so a template that builds can only
    /// produce valid codes given valid serials.
    pub fn new(
        market: Market,
        product: &Product,
        batch: &BatchData,
    ) -> Result<CodeTemplate, MarketError> {
        if let Some(err) = market.product_problems(product).into_iter().next() {
            return Err(err);
        }
        if let Some(err) = market.batch_problems(batch).into_iter().next() {
            return Err(err);
        }
        let gtin = normalise_gtin(&product.gtin).map_err(|reason| market.rule(reason))?;
        let rules = market.serial_rules();
        let needs_tail = !market.spec().unit_extra_ais.is_empty();
        // Validate the fixed part once through the GS1 engine with a sample serial
        // (and sample tail).
        let sample_serial = "1".repeat(rules.min_len);
        let sample_extra: Vec<(String, String)> = if market == Market::RuCrypto {
            vec![
                ("91".to_string(), "A".repeat(ru_crypto::KEY_LEN)),
                ("92".to_string(), "A".repeat(ru_crypto::CRYPTO_LEN)),
            ]
        } else {
            Vec::new()
        };
        let elements = market.elements(&gtin, product, batch, &sample_serial, &sample_extra);
        let sample = Gs1Code::from_elements(elements)?;
        // The fixed part is what the GS1 engine writes before the serial: the serial
        // is last in symbol order (or followed only by the tail), so cutting it off
        // gives a prefix that makes the template byte-identical to the engine.
        let mut tail = String::new();
        for (ai, value) in &sample_extra {
            tail.push(crate::gs1::GS);
            tail.push_str(ai);
            tail.push_str(value);
        }
        let cut = |text: String, tail: &str, ai: &str| -> Result<String, MarketError> {
            text.strip_suffix(tail)
                .and_then(|t| t.strip_suffix(sample_serial.as_str()))
                .filter(|t| t.ends_with(ai))
                .map(str::to_string)
                .ok_or_else(|| market.rule(format!("internal: serial is not last in `{text}`")))
        };
        let prefix = cut(sample.element_string(), &tail, "21")?;
        let hri_tail: String = sample_extra
            .iter()
            .map(|(ai, v)| format!("({ai}){v}"))
            .collect();
        let hri_prefix = cut(sample.hri(), &hri_tail, "(21)")?;
        Ok(CodeTemplate {
            market,
            rules,
            prefix,
            hri_prefix,
            needs_tail,
        })
    }

    /// The market.
    pub fn market(&self) -> Market {
        self.market
    }

    /// Check a serial against the market's rules (charset, length) without building.
    #[inline]
    pub fn check_serial(&self, serial: &str) -> Result<(), MarketError> {
        check_serial(self.market, &self.rules, serial.as_bytes()).map_err(|reason| {
            MarketError::Serial {
                market: self.market,
                serial: serial.to_string(),
                reason,
            }
        })
    }

    /// Append the unit's element string (no leading FNC1, GS as 0x1D) to `out`. Only
    /// the serial is checked. Markets with a per-unit tail (Russia) need
    /// [`CodeTemplate::write_with_tail`].
    #[inline]
    pub fn write(&self, serial: &str, out: &mut String) -> Result<(), MarketError> {
        if self.needs_tail {
            return Err(MarketError::MissingAi {
                market: self.market,
                ai: "91".to_string(),
            });
        }
        self.check_serial(serial)?;
        out.push_str(&self.prefix);
        out.push_str(serial);
        Ok(())
    }

    /// Append the unit's HRI text, `(01)…(21)serial`, to `out`.
    #[inline]
    pub fn write_hri(&self, serial: &str, out: &mut String) -> Result<(), MarketError> {
        if self.needs_tail {
            return Err(MarketError::MissingAi {
                market: self.market,
                ai: "91".to_string(),
            });
        }
        self.check_serial(serial)?;
        out.push_str(&self.hri_prefix);
        out.push_str(serial);
        Ok(())
    }

    /// Russia: append the element string with the operator-issued verification key
    /// (AI 91) and crypto code (AI 92).
    pub fn write_with_tail(
        &self,
        serial: &str,
        key91: &str,
        crypto92: &str,
        out: &mut String,
    ) -> Result<(), MarketError> {
        if !self.needs_tail {
            return Err(MarketError::Rule {
                market: self.market,
                reason: "this market takes no AI (91)/(92) tail".to_string(),
            });
        }
        self.check_serial(serial)?;
        ru_crypto::check_tail("91", key91).map_err(|r| self.market.rule(r))?;
        ru_crypto::check_tail("92", crypto92).map_err(|r| self.market.rule(r))?;
        out.push_str(&self.prefix);
        out.push_str(serial);
        out.push(crate::gs1::GS);
        out.push_str("91");
        out.push_str(key91);
        out.push(crate::gs1::GS);
        out.push_str("92");
        out.push_str(crypto92);
        Ok(())
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

    const GTIN: &str = "09506000134352";
    const CRYPTO: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr";

    fn product(national: &[(&str, &str)]) -> Product {
        Product {
            gtin: GTIN.to_string(),
            national_ais: national
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn unit(serial: &str) -> UnitData {
        UnitData {
            serial: serial.to_string(),
            batch: "LOT42".to_string(),
            expiry: "281231".to_string(),
            extra: Vec::new(),
        }
    }

    fn ru_unit() -> UnitData {
        UnitData {
            extra: vec![
                ("91".to_string(), "EE07".to_string()),
                ("92".to_string(), CRYPTO.to_string()),
            ],
            ..unit("ABCDEFGHIJKLM")
        }
    }

    /// A valid product and unit for every market.
    fn valid(m: Market) -> (Product, UnitData) {
        match m {
            Market::EuFmd => (product(&[("710", "01234562")]), unit("X7K2P9Q4M8")),
            Market::CnNmpa => (product(&[]), unit("1234567890123")),
            Market::BrAnvisa => (product(&[("713", "1234567890123")]), unit("1234567890123")),
            Market::RuCrypto => (product(&[]), ru_unit()),
            _ => (product(&[]), unit("SN0001")),
        }
    }

    #[test]
    fn build_each_market() {
        let expected = [
            (
                Market::UsDscsa,
                "(01)09506000134352(17)281231(10)LOT42(21)SN0001",
            ),
            (
                Market::EuFmd,
                "(01)09506000134352(17)281231(10)LOT42(710)01234562(21)X7K2P9Q4M8",
            ),
            (
                Market::CnNmpa,
                "(01)09506000134352(17)281231(10)LOT42(21)1234567890123",
            ),
            (
                Market::BrAnvisa,
                "(01)09506000134352(17)281231(10)LOT42(713)1234567890123(21)1234567890123",
            ),
            (
                Market::RuCrypto,
                "(01)09506000134352(21)ABCDEFGHIJKLM(91)EE07(92)ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr",
            ),
            (
                Market::TrIts,
                "(01)09506000134352(17)281231(10)LOT42(21)SN0001",
            ),
            (
                Market::SaRsd,
                "(01)09506000134352(17)281231(10)LOT42(21)SN0001",
            ),
            (
                Market::InExport,
                "(01)09506000134352(17)281231(10)LOT42(21)SN0001",
            ),
        ];
        for (m, hri) in expected {
            let (p, u) = valid(m);
            let code = m.build(&p, &u).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(code.hri(), hri, "{m}");
        }
    }

    #[test]
    fn template_matches_engine_byte_for_byte() {
        for m in Market::ALL {
            let (p, u) = valid(m);
            let batch = BatchData {
                batch: u.batch.clone(),
                expiry: u.expiry.clone(),
            };
            let t = CodeTemplate::new(m, &p, &batch).unwrap_or_else(|e| panic!("{m}: {e}"));
            let code = m.build(&p, &u).unwrap();
            let mut es = String::new();
            if m == Market::RuCrypto {
                t.write_with_tail(&u.serial, "EE07", CRYPTO, &mut es)
                    .unwrap();
                assert!(t.write(&u.serial, &mut String::new()).is_err());
            } else {
                t.write(&u.serial, &mut es).unwrap();
                let mut hri = String::new();
                t.write_hri(&u.serial, &mut hri).unwrap();
                assert_eq!(hri, code.hri(), "{m}");
                assert!(
                    t.write_with_tail(&u.serial, "EE07", CRYPTO, &mut String::new())
                        .is_err()
                );
            }
            assert_eq!(es, code.element_string(), "{m}");
            // And the engine reads it back as the same code.
            let back = Gs1Code::parse_element_string(&es).unwrap();
            assert_eq!(back.hri(), code.hri(), "{m}");
        }
    }

    #[test]
    fn template_rejects_bad_serials_and_writes_nothing() {
        let (p, u) = valid(Market::EuFmd);
        let t = CodeTemplate::new(
            Market::EuFmd,
            &p,
            &BatchData {
                batch: u.batch,
                expiry: u.expiry,
            },
        )
        .unwrap();
        let mut out = String::new();
        for bad in ["", "ABC DEF", "123456789012345678901", "AB#C", "\u{1d}X"] {
            assert!(
                matches!(t.write(bad, &mut out), Err(MarketError::Serial { .. })),
                "{bad:?}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn build_errors_name_the_rule() {
        let m = Market::EuFmd;
        let (p, u) = valid(m);
        let cases: Vec<(Product, UnitData, &str)> = vec![
            (
                Product {
                    gtin: "09506000134353".into(),
                    ..p.clone()
                },
                u.clone(),
                "check digit wrong (expected 2)",
            ),
            (
                p.clone(),
                UnitData {
                    serial: "A B".into(),
                    ..u.clone()
                },
                "serial `A B` rejected",
            ),
            (
                p.clone(),
                UnitData {
                    batch: String::new(),
                    ..u.clone()
                },
                "batch (AI 10) is required",
            ),
            (
                p.clone(),
                UnitData {
                    batch: "L".repeat(21),
                    ..u.clone()
                },
                "at most 20",
            ),
            (
                p.clone(),
                UnitData {
                    expiry: "281301".into(),
                    ..u.clone()
                },
                "month 13 does not exist",
            ),
            (
                p.clone(),
                UnitData {
                    expiry: "280230".into(),
                    ..u.clone()
                },
                "day 30 does not exist",
            ),
            (
                p.clone(),
                UnitData {
                    expiry: "2812".into(),
                    ..u.clone()
                },
                "6 digits",
            ),
            (
                product(&[("713", "1234567890123")]),
                u.clone(),
                "AI (713) (NHRN: Brazil ANVISA registration) is not a national AI of eu-fmd",
            ),
            (product(&[("710", "01234563")]), u.clone(), "expected 2"),
            (
                p.clone(),
                UnitData {
                    extra: vec![("91".into(), "EE07".into())],
                    ..u.clone()
                },
                "AI (91) is not a per-unit AI of eu-fmd",
            ),
        ];
        for (p, u, want) in cases {
            let err = m.build(&p, &u).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn market_specific_rules() {
        // EU accepts DD = 00, the US does not.
        let (p, u) = valid(Market::EuFmd);
        assert!(
            Market::EuFmd
                .build(
                    &p,
                    &UnitData {
                        expiry: "281200".into(),
                        ..u.clone()
                    }
                )
                .is_ok()
        );
        let (p, u) = valid(Market::UsDscsa);
        let err = Market::UsDscsa
            .build(
                &p,
                &UnitData {
                    expiry: "281200".into(),
                    ..u
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("day 00"), "{err}");
        // Brazil needs 713, 13 digits.
        let (_, u) = valid(Market::BrAnvisa);
        let err = Market::BrAnvisa.build(&product(&[]), &u).unwrap_err();
        assert_eq!(
            err,
            MarketError::MissingAi {
                market: Market::BrAnvisa,
                ai: "713".into()
            }
        );
        let err = Market::BrAnvisa
            .build(&product(&[("713", "123")]), &u)
            .unwrap_err();
        assert!(err.to_string().contains("exactly 13 digits"), "{err}");
        // Russia needs the operator's 91 and 92, in their lengths.
        let (p, u) = valid(Market::RuCrypto);
        let err = Market::RuCrypto
            .build(
                &p,
                &UnitData {
                    extra: vec![],
                    ..u.clone()
                },
            )
            .unwrap_err();
        assert_eq!(
            err,
            MarketError::MissingAi {
                market: Market::RuCrypto,
                ai: "91".into()
            }
        );
        let short = vec![
            ("91".to_string(), "EE07".to_string()),
            ("92".to_string(), "short".to_string()),
        ];
        let err = Market::RuCrypto
            .build(
                &p,
                &UnitData {
                    extra: short,
                    ..u.clone()
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("must be 44 characters"), "{err}");
        // China: the 13-digit issued tail, digits only.
        let (p, u) = valid(Market::CnNmpa);
        assert!(
            Market::CnNmpa
                .build(
                    &p,
                    &UnitData {
                        serial: "123456789".into(),
                        ..u
                    }
                )
                .is_err()
        );
        // GTIN-13 is padded to GTIN-14.
        let (_, u) = valid(Market::UsDscsa);
        let code = Market::UsDscsa
            .build(
                &Product {
                    gtin: "9506000134352".into(),
                    national_ais: vec![],
                },
                &u,
            )
            .unwrap();
        assert_eq!(code.get("01"), Some(GTIN));
    }

    #[test]
    fn gtin_forms() {
        assert_eq!(normalise_gtin("09506000134352").unwrap(), GTIN);
        assert_eq!(
            normalise_gtin("95060001343").unwrap_err(),
            "`95060001343` has 11 characters, a GTIN has 8, 12, 13 or 14 digits"
        );
        assert_eq!(
            normalise_gtin("0950600013435X").unwrap_err(),
            "`0950600013435X` has a non-digit at position 13"
        );
        assert_eq!(
            normalise_gtin("09506000134350").unwrap_err(),
            "check digit wrong (expected 2)"
        );
        assert_eq!(normalise_gtin("96385074").unwrap(), "00000096385074");
    }
}
