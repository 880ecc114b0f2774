//! China, NMPA drug traceability code. Two forms exist side by side:
//!
//! - the 20-digit code (the former electronic drug supervision code, issued today by
//!   AliHealth and other code-issuing agencies): 7-digit product identification code,
//!   9-digit serial, 4 check digits, printed as Code 128 subset C;
//! - the GS1 form: (01) GTIN, (21) serial, (17) expiry, (10) batch in a GS1 DataMatrix.
//!
//! The algorithm behind the 4 check digits is not public (the issuer computes them and
//! hands out complete codes; vendors' documentation says "calculated, algorithm
//! unknown"). linectl therefore never makes Chinese codes up: the serial it takes from
//! the pool is the issued 13-digit tail (9-digit serial + 4 check digits), which it
//! checks for form only (13 digits). The 20-digit code is the product's 7-digit code
//! followed by that tail; the GS1 form carries the same 13-digit tail in AI 21, so both
//! symbols on a pack name the same issued number. Owns the Chinese rule table and the
//! 20-digit composition only.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The China NMPA rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Numeric,
        min_len: SERIAL_LEN + CHECK_LEN,
        max_len: SERIAL_LEN + CHECK_LEN,
        // The issuer's responsibility.
        randomised: false,
        local_generation: false,
        sequential_allowed: false,
    },
    required_ais: &["01", "21", "17", "10"],
    national_ais: &[],
    required_national_ais: &[],
    unit_extra_ais: &[],
    expiry_day_zero: true,
    batch_max_len: 20,
};

/// Digits of the product identification code.
pub const PRODUCT_CODE_LEN: usize = 7;
/// Digits of the unit serial.
pub const SERIAL_LEN: usize = 9;
/// Check digits (issuer-computed, algorithm not public).
pub const CHECK_LEN: usize = 4;
/// Digits of the whole code.
pub const CODE_LEN: usize = PRODUCT_CODE_LEN + SERIAL_LEN + CHECK_LEN;

/// Check a 7-digit product identification code.
pub fn check_product_code(code: &str) -> Result<(), String> {
    if code.len() == PRODUCT_CODE_LEN && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "product identification code `{code}` must be exactly {PRODUCT_CODE_LEN} digits"
        ))
    }
}

/// A 20-digit code split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceCode<'a> {
    /// The 7-digit product identification code.
    pub product_code: &'a str,
    /// The 9-digit serial.
    pub serial: &'a str,
    /// The 4 issuer check digits (not verifiable: algorithm not public).
    pub check: &'a str,
}

impl<'a> TraceCode<'a> {
    /// Split a 20-digit code; form only (digits, length), the check digits cannot be
    /// verified.
    pub fn parse(code: &'a str) -> Result<TraceCode<'a>, String> {
        if code.len() != CODE_LEN || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "drug trace code `{code}` must be exactly {CODE_LEN} digits"
            ));
        }
        // All ASCII digits, so these byte splits are on char boundaries.
        let (product_code, rest) = code.split_at(PRODUCT_CODE_LEN);
        let (serial, check) = rest.split_at(SERIAL_LEN);
        Ok(TraceCode {
            product_code,
            serial,
            check,
        })
    }

    /// The issued 13-digit tail (serial + check digits): what the pool holds.
    pub fn tail(&self) -> String {
        format!("{}{}", self.serial, self.check)
    }
}

/// Append the 20-digit code (product code + issued tail) to `out`. Both parts must have
/// been checked (see [`check_product_code`] and `Market::CnNmpa.validate_serial`).
pub fn write_trace_code(product_code: &str, tail: &str, out: &mut String) {
    out.push_str(product_code);
    out.push_str(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_twenty_digit_code() {
        let c = TraceCode::parse("81234561234567890123").unwrap();
        assert_eq!(c.product_code, "8123456");
        assert_eq!(c.serial, "123456789");
        assert_eq!(c.check, "0123");
        assert_eq!(c.tail(), "1234567890123");
        let mut s = String::new();
        write_trace_code(c.product_code, &c.tail(), &mut s);
        assert_eq!(s, "81234561234567890123");
    }

    #[test]
    fn bad_twenty_digit_codes() {
        assert!(TraceCode::parse("8123456123456789012").is_err());
        assert!(TraceCode::parse("812345612345678901234").is_err());
        assert!(TraceCode::parse("8123456123456789012A").is_err());
        assert!(check_product_code("812345").is_err());
        assert!(check_product_code("8123456").is_ok());
    }
}
