//! The checks the pool applies to what it imports and generates: a GTIN's form and
//! check digit, a serial against its market's rules, and the AI 91/92 tail of Russian
//! codes. Market rules come from `crate::market` (`Market::serial_rules()` and
//! `Market::validate_serial()`); the GTIN check digit is a small local function so the
//! pool does not depend on the GS1 engine.

use crate::market::{Market, SerialCharset, SerialRules};

/// Is `c` in GS1 character set 82 (the set of AI 21)?
pub fn is_cset82(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| SerialCharset::Cset82.contains(b))
}

/// A checked GTIN-14 (14 ASCII digits, right check digit), held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gtin14([u8; 14]);

impl Gtin14 {
    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for Gtin14 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Check a GTIN (8, 12, 13 or 14 digits, GS1 check digit) and return it as GTIN-14,
/// without allocating (the error text aside).
pub fn gtin14(gtin: &str) -> Result<Gtin14, String> {
    let g = gtin.trim();
    if !matches!(g.len(), 8 | 12 | 13 | 14) || !g.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("GTIN `{gtin}` must be 8, 12, 13 or 14 digits"));
    }
    let mut g14 = [b'0'; 14];
    if let Some(tail) = g14.get_mut(14 - g.len()..) {
        tail.copy_from_slice(g.as_bytes());
    }
    let (body, check) = g14.split_at(13);
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 { d * 3 } else { d }
        })
        .sum();
    let want = (10 - sum % 10) % 10;
    if check.first().map(|c| u32::from(c - b'0')) != Some(want) {
        return Err(format!(
            "GTIN `{gtin}` has a wrong check digit (expected {want})"
        ));
    }
    Ok(Gtin14(g14))
}

/// Check a GTIN (8, 12, 13 or 14 digits, GS1 check digit) and return it as GTIN-14.
pub fn normalise_gtin(gtin: &str) -> Result<String, String> {
    gtin14(gtin).map(|g| g.as_str().to_string())
}

/// The market's serial rules.
pub fn serial_rules(market: Market) -> SerialRules {
    market.serial_rules()
}

/// Check one serial (and its AI 91/92 tail, for Russia) against the market's rules.
pub fn check_serial(
    market: Market,
    serial: &str,
    ai91: Option<&str>,
    ai92: Option<&str>,
) -> Result<(), String> {
    market.validate_serial(serial).map_err(|e| e.to_string())?;
    let needs_tail = market == Market::RuCrypto;
    match (needs_tail, ai91, ai92) {
        (true, Some(k), Some(c)) => {
            for (ai, v) in [("91", k), ("92", c)] {
                if v.is_empty() || v.len() > 90 || !v.chars().all(is_cset82) {
                    return Err(format!(
                        "{market}: AI ({ai}) `{v}` must be 1 to 90 characters of GS1 CSET 82"
                    ));
                }
            }
            Ok(())
        }
        (true, _, _) => Err(format!(
            "{market}: serial `{serial}` needs its AI (91) key and AI (92) crypto code from the operator"
        )),
        (false, None, None) => Ok(()),
        (false, _, _) => Err(format!(
            "{market}: codes carry no AI (91)/(92); got them for `{serial}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_check_digit() {
        assert_eq!(normalise_gtin("09506000134352").unwrap(), "09506000134352");
        assert_eq!(normalise_gtin("9506000134352").unwrap(), "09506000134352");
        assert!(
            normalise_gtin("09506000134353")
                .unwrap_err()
                .contains("check digit")
        );
        assert!(normalise_gtin("0950600013435X").is_err());
        assert!(normalise_gtin("123").is_err());
        assert_eq!(gtin14("9506000134352").unwrap().as_str(), "09506000134352");
        assert!(gtin14("09506000134353").is_err());
    }

    #[test]
    fn cset82() {
        assert!("AZaz09!\"%&'()*+,-./:;<=>?_".chars().all(is_cset82));
        assert!(!" #$@[]{}é\u{1d}".chars().any(is_cset82));
    }
}
