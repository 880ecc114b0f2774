//! Brazil, ANVISA / SNCM (Lei 11.903/2009, RDC 157/2017): the IUM carries the GTIN,
//! the 13-digit ANVISA registration number in AI 713 (NHRN DRN), a serial of up to 13
//! characters, expiry and batch. Owns the Brazilian rule table and the registration
//! number check.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The Brazil ANVISA rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 1,
        max_len: 13,
        randomised: false,
        local_generation: true,
        sequential_allowed: true,
    },
    required_ais: &["01", "713", "21", "17", "10"],
    national_ais: &[("713", "NHRN: Brazil ANVISA registration (13 digits)")],
    required_national_ais: &["713"],
    unit_extra_ais: &[],
    expiry_day_zero: true,
    batch_max_len: 20,
};

/// Check an ANVISA registration number (AI 713): exactly 13 digits.
pub fn check_registration(value: &str) -> Result<(), String> {
    if value.len() == 13 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "ANVISA registration `{value}` must be exactly 13 digits"
        ))
    }
}
