//! United States, DSCSA (Drug Supply Chain Security Act): the product identifier is
//! the GTIN (carrying the NDC), serial (≤ 20 alphanumeric), lot and expiry in a GS1
//! DataMatrix. No randomisation rule; linectl may generate serials, sequential allowed.
//! Owns only the US rule table; building lives in `market`.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The US DSCSA rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 1,
        max_len: 20,
        randomised: false,
        local_generation: true,
        sequential_allowed: true,
    },
    required_ais: &["01", "21", "10", "17"],
    // The NDC is inside the GTIN; AI 715 (NHRN NDC) may be carried as well.
    national_ais: &[("715", "NHRN: US NDC")],
    required_national_ais: &[],
    unit_extra_ais: &[],
    // GS1 US guidance: encode the real expiry day, not 00.
    expiry_day_zero: false,
    batch_max_len: 20,
};
