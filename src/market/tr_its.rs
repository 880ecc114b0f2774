//! Turkey, ITS (İlaç Takip Sistemi): GTIN, serial (≤ 20), expiry and batch in a GS1
//! DataMatrix; serials are the manufacturer's, reported to ITS. Owns the Turkish rule
//! table only.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The Turkey ITS rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 1,
        max_len: 20,
        randomised: false,
        local_generation: true,
        sequential_allowed: true,
    },
    required_ais: &["01", "21", "17", "10"],
    national_ais: &[],
    required_national_ais: &[],
    unit_extra_ais: &[],
    // ITS expects a full date; linectl refuses DD = 00 (stricter side when unsure).
    expiry_day_zero: false,
    batch_max_len: 20,
};
