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
    #[error("unknown market `{0}` (known: us-dscsa, eu-fmd, cn-nmpa, br-anvisa, ru-crypto, tr-its, sa-rsd, in-export)")]
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
        todo!("foundation issue")
    }

    /// Check one serial against the market's charset and length.
    pub fn validate_serial(self, serial: &str) -> Result<(), MarketError> {
        let _ = serial;
        todo!("foundation issue")
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
