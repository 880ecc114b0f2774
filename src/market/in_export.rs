//! India, export (DGFT): GTIN, serial, batch and expiry in a GS1 DataMatrix on the
//! unit (SSCC on shippers, parent–child data uploaded to the DAVA portal). No
//! randomisation rule. Owns the Indian export rule table only.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The India export rules.
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
    expiry_day_zero: true,
    batch_max_len: 20,
};
