//! European Union, Falsified Medicines Directive (Delegated Regulation (EU) 2016/161):
//! product code (GTIN or NTIN), serial (≤ 20 alphanumeric, randomised so that the chance
//! of guessing a valid one is below 1/10,000), batch, expiry, and the national
//! reimbursement number (NHRN) where a country asks for it in the code. Owns the EU
//! rule table and the country → NHRN AI map; building lives in `market`.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The EU FMD rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 1,
        max_len: 20,
        randomised: true,
        local_generation: true,
        sequential_allowed: false,
    },
    required_ais: &["01", "21", "10", "17"],
    // GS1 AIs 710–715 are NHRNs; 713 (Brazil DRN) and 715 (US NDC) belong to other
    // markets and are refused here.
    national_ais: &[
        ("710", "NHRN: Germany PZN"),
        ("711", "NHRN: France CIP"),
        ("712", "NHRN: Spain Código Nacional"),
        ("714", "NHRN: Portugal AIM"),
    ],
    required_national_ais: &[],
    unit_extra_ais: &[],
    // EMVO: DD = 00 when the pack shows month and year only.
    expiry_day_zero: true,
    batch_max_len: 20,
};

/// The NHRN AI a country uses in the EU FMD code, by ISO 3166 alpha-2 code: `DE` 710
/// (PZN), `FR` 711 (CIP), `ES` 712 (CN), `PT` 714 (AIM). Other countries carry their
/// national number in the GTIN/NTIN and use no NHRN AI.
pub fn nhrn_ai_for_country(country: &str) -> Option<&'static str> {
    match country {
        "DE" => Some("710"),
        "FR" => Some("711"),
        "ES" => Some("712"),
        "PT" => Some("714"),
        _ => None,
    }
}

/// Validate an NHRN value for its AI where the national format is fixed: the German
/// PZN (AI 710) is 8 digits whose last is a modulo-11 check digit (weights 1..7).
pub fn check_nhrn(ai: &str, value: &str) -> Result<(), String> {
    if ai == "710" {
        let b = value.as_bytes();
        if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
            return Err(format!("PZN `{value}` must be 8 digits"));
        }
        let sum: u32 = b
            .iter()
            .take(7)
            .zip(1u32..)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let check = sum % 11;
        let last = u32::from(b[7] - b'0');
        if check == 10 {
            return Err(format!("PZN `{value}` is not a valid PZN (check sum 10)"));
        }
        if check != last {
            return Err(format!(
                "PZN `{value}`: check digit wrong (expected {check})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pzn_check_digit() {
        // Weighted sum of 0,1,2,3,4,5,6 with weights 1..7 = 112, 112 % 11 = 2.
        assert_eq!(check_nhrn("710", "01234562"), Ok(()));
        assert!(
            check_nhrn("710", "01234563")
                .unwrap_err()
                .contains("expected 2")
        );
        assert!(check_nhrn("710", "1234562").is_err());
        assert!(check_nhrn("710", "0123456A").is_err());
        assert_eq!(check_nhrn("711", "anything"), Ok(()));
    }

    #[test]
    fn country_map() {
        assert_eq!(nhrn_ai_for_country("DE"), Some("710"));
        assert_eq!(nhrn_ai_for_country("IT"), None);
    }
}
