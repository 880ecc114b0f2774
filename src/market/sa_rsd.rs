//! Saudi Arabia, SFDA RSD (Drug Track and Trace System): GTIN, serial (≤ 20
//! alphanumeric, randomised), expiry and batch in a GS1 DataMatrix; SSCC on shippers.
//! Owns the Saudi rule table only.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The Saudi RSD rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 1,
        max_len: 20,
        randomised: true,
        local_generation: true,
        sequential_allowed: false,
    },
    required_ais: &["01", "21", "17", "10"],
    national_ais: &[],
    required_national_ais: &[],
    unit_extra_ais: &[],
    // SFDA asks for a full expiry date; linectl refuses DD = 00.
    expiry_day_zero: false,
    batch_max_len: 20,
};
