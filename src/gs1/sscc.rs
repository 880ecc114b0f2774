//! Serial Shipping Container Codes (AI 00): building an SSCC from its parts (extension
//! digit, GS1 company prefix, serial reference) with the GS1 check digit, and checking
//! one that was read back. It owns no counter: which serial reference comes next is the
//! caller's (the aggregation store allocates them durably).

use std::fmt;

use super::lint::check_digit;

/// What is wrong with an SSCC or its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsccError {
    /// The extension digit is not 0-9.
    #[error("SSCC extension digit {0} is not a single digit 0-9")]
    Extension(u8),
    /// The company prefix is not 4-12 digits.
    #[error("SSCC company prefix {0:?} must be 4-12 digits")]
    CompanyPrefix(String),
    /// The serial reference does not fit the digits the company prefix leaves.
    #[error("SSCC serial reference {serial} does not fit in {digits} digits")]
    SerialReference {
        /// The serial reference asked for.
        serial: u64,
        /// Digits left by the company prefix.
        digits: usize,
    },
    /// The text is not 18 digits.
    #[error("SSCC {0:?} must be 18 digits")]
    Format(String),
    /// The check digit is wrong.
    #[error("SSCC {sscc}: check digit wrong (expected {expected})")]
    CheckDigit {
        /// The SSCC as given.
        sscc: String,
        /// The check digit it should have.
        expected: char,
    },
}

/// A checked 18-digit SSCC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sscc(String);

/// The parts an SSCC is built from: the profile's extension digit and company prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsccScheme {
    extension: u8,
    company_prefix: String,
}

impl SsccScheme {
    /// The scheme of extension digit `extension` and GS1 company prefix `company_prefix`.
    pub fn new(extension: u8, company_prefix: &str) -> Result<SsccScheme, SsccError> {
        if extension > 9 {
            return Err(SsccError::Extension(extension));
        }
        if !(4..=12).contains(&company_prefix.len())
            || !company_prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SsccError::CompanyPrefix(company_prefix.to_string()));
        }
        Ok(SsccScheme {
            extension,
            company_prefix: company_prefix.to_string(),
        })
    }

    /// Digits left for the serial reference (16 minus the company prefix).
    pub fn serial_digits(&self) -> usize {
        16 - self.company_prefix.len()
    }

    /// The largest serial reference this scheme can take.
    pub fn max_serial(&self) -> u64 {
        10u64.pow(self.serial_digits() as u32) - 1
    }

    /// The SSCC with serial reference `serial` (zero-padded on the left).
    pub fn sscc(&self, serial: u64) -> Result<Sscc, SsccError> {
        let digits = self.serial_digits();
        if serial > self.max_serial() {
            return Err(SsccError::SerialReference { serial, digits });
        }
        let body = format!(
            "{}{}{:0digits$}",
            self.extension, self.company_prefix, serial
        );
        let cd = check_digit(body.as_bytes());
        Ok(Sscc(format!("{body}{}", char::from(cd))))
    }
}

impl Sscc {
    /// Check an SSCC read back (18 digits, check digit right).
    pub fn parse(text: &str) -> Result<Sscc, SsccError> {
        if text.len() != 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SsccError::Format(text.chars().take(40).collect()));
        }
        let (body, last) = text.split_at(17);
        let expected = char::from(check_digit(body.as_bytes()));
        if !last.starts_with(expected) {
            return Err(SsccError::CheckDigit {
                sscc: text.to_string(),
                expected,
            });
        }
        Ok(Sscc(text.to_string()))
    }

    /// The 18 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The GS1 element string of a label carrying only this SSCC: `00` + 18 digits.
    pub fn element_string(&self) -> String {
        format!("00{}", self.0)
    }
}

impl fmt::Display for Sscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_gs1_example_and_checks_it() {
        // Extension 1, company prefix 0614141, serial reference 123456789: check digit 7.
        let s = SsccScheme::new(1, "0614141").and_then(|s| s.sscc(123_456_789));
        assert_eq!(s.as_ref().map(Sscc::as_str), Ok("106141411234567897"));
        assert!(Sscc::parse("106141411234567897").is_ok());
        assert!(matches!(
            Sscc::parse("106141411234567890"),
            Err(SsccError::CheckDigit { expected: '7', .. })
        ));
        assert!(matches!(Sscc::parse("12345"), Err(SsccError::Format(_))));
    }

    #[test]
    fn parts_are_checked() {
        assert!(matches!(
            SsccScheme::new(10, "0614141"),
            Err(SsccError::Extension(10))
        ));
        assert!(SsccScheme::new(0, "06a4141").is_err());
        assert!(SsccScheme::new(0, "123").is_err());
        let s = SsccScheme::new(0, "4012345").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.max_serial(), 999_999_999);
        assert!(matches!(
            s.sscc(1_000_000_000),
            Err(SsccError::SerialReference { digits: 9, .. })
        ));
        assert_eq!(s.sscc(1).map(|s| s.element_string().len()), Ok(20));
    }
}
