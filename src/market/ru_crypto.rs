//! Russia, Chestny ZNAK (MDLP for medicines): the unit code is (01) GTIN, (21) a
//! 13-character serial, (91) a 4-character verification key and (92) a 44-character
//! crypto code. The complete code is issued by the operator (CRPT): linectl never
//! generates Russian serials, it checks and prints what was issued. Batch and expiry are
//! reported to MDLP, not encoded. Owns the Russian rule table and the tail checks.

use super::{MarketSpec, SerialCharset, SerialRules};

/// The Russia rules.
pub const SPEC: MarketSpec = MarketSpec {
    serial: SerialRules {
        charset: SerialCharset::Cset82,
        min_len: 13,
        max_len: 13,
        // Randomised by the issuer (the operator), not by linectl.
        randomised: false,
        local_generation: false,
        sequential_allowed: false,
    },
    required_ais: &["01", "21", "91", "92"],
    national_ais: &[],
    required_national_ais: &[],
    unit_extra_ais: &["91", "92"],
    expiry_day_zero: true,
    batch_max_len: 20,
};

/// Length of the AI 91 verification key.
pub const KEY_LEN: usize = 4;
/// Length of the AI 92 crypto code for medicines.
pub const CRYPTO_LEN: usize = 44;

/// Check the operator-issued tail: AI 91 is 4 and AI 92 is 44 CSET 82 characters.
pub fn check_tail(ai: &str, value: &str) -> Result<(), String> {
    let want = match ai {
        "91" => KEY_LEN,
        "92" => CRYPTO_LEN,
        _ => return Ok(()),
    };
    if value.len() != want {
        return Err(format!(
            "AI ({ai}) must be {want} characters as issued by the operator, got {}",
            value.len()
        ));
    }
    if let Some(pos) = value
        .bytes()
        .position(|b| !SerialCharset::Cset82.contains(b))
    {
        return Err(format!(
            "AI ({ai}): character at position {pos} is not in GS1 CSET 82"
        ));
    }
    Ok(())
}
