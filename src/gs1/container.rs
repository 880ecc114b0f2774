//! The identifier of a case or pallet: an SSCC (AI 00), or — for a case that is a trade
//! item of its own — a case GTIN with a serial (AI 01 + AI 21). It owns the one textual
//! form the aggregation store keys containers by (the 18 SSCC digits, or
//! `(01)GTIN(21)SERIAL`), the index key (`(00)…` or `(01)…(21)…`) and the element
//! string printed on the label. It owns no counter and no pool: where the SSCC serial
//! reference or the case serial comes from is the caller's.

use std::fmt;

use super::lint::check_digit;
use super::sscc::{Sscc, SsccError};
use super::{Gs1Code, Gs1Error};

/// What is wrong with a container identifier or a case GTIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerIdError {
    /// A bad SSCC.
    #[error(transparent)]
    Sscc(#[from] SsccError),
    /// A case GTIN that is not 14 digits with the right check digit.
    #[error("case GTIN {gtin:?}: {why}")]
    Gtin {
        /// The GTIN as given.
        gtin: String,
        /// Why it is refused.
        why: String,
    },
    /// A case serial that AI 21 cannot carry.
    #[error("case serial {0:?} must be 1-20 characters of GS1 set 82 (no spaces)")]
    Serial(String),
    /// Neither 18 SSCC digits nor `(01)GTIN(21)SERIAL`.
    #[error("{0:?} is neither an 18-digit SSCC nor (01)GTIN(21)SERIAL")]
    Format(String),
}

/// Check a case GTIN: 14 digits, GS1 check digit right.
pub fn check_gtin14(gtin: &str) -> Result<(), ContainerIdError> {
    let bad = |why: String| ContainerIdError::Gtin {
        gtin: gtin.chars().take(40).collect(),
        why,
    };
    if gtin.len() != 14 || !gtin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be a GTIN-14 (14 digits)".into()));
    }
    let (body, last) = gtin.split_at(13);
    let expected = char::from(check_digit(body.as_bytes()));
    if !last.starts_with(expected) {
        return Err(bad(format!("check digit wrong (expected {expected})")));
    }
    Ok(())
}

fn check_serial(serial: &str) -> Result<(), ContainerIdError> {
    const SET82: &str = "!\"%&'()*+,-./:;<=>?_";
    let ok = !serial.is_empty()
        && serial.len() <= 20
        && serial
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SET82.contains(c));
    if ok {
        Ok(())
    } else {
        Err(ContainerIdError::Serial(serial.chars().take(40).collect()))
    }
}

/// A checked container identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerId {
    /// A case or pallet labelled with an SSCC.
    Sscc(Sscc),
    /// A case labelled with its own GTIN and a serial.
    Sgtin {
        /// The case GTIN-14.
        gtin: String,
        /// The serial (AI 21).
        serial: String,
    },
}

impl ContainerId {
    /// A case GTIN + serial, both checked.
    pub fn sgtin(gtin: &str, serial: &str) -> Result<ContainerId, ContainerIdError> {
        check_gtin14(gtin)?;
        check_serial(serial)?;
        Ok(ContainerId::Sgtin {
            gtin: gtin.to_string(),
            serial: serial.to_string(),
        })
    }

    /// Parse the store's form: 18 SSCC digits, `(00)` + 18 digits, or
    /// `(01)GTIN(21)SERIAL`.
    pub fn parse(id: &str) -> Result<ContainerId, ContainerIdError> {
        let id = id.trim();
        let digits = id.strip_prefix("(00)").unwrap_or(id);
        if digits.len() == 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(ContainerId::Sscc(Sscc::parse(digits)?));
        }
        let Some(rest) = id.strip_prefix("(01)") else {
            return Err(ContainerIdError::Format(id.chars().take(60).collect()));
        };
        match (rest.get(..14), rest.get(14..)) {
            (Some(gtin), Some(tail)) => match tail.strip_prefix("(21)") {
                Some(serial) => ContainerId::sgtin(gtin, serial),
                None => Err(ContainerIdError::Format(id.chars().take(60).collect())),
            },
            _ => Err(ContainerIdError::Format(id.chars().take(60).collect())),
        }
    }

    /// The form the aggregation store keys containers by: the 18 digits of an SSCC,
    /// `(01)GTIN(21)SERIAL` for a case GTIN + serial.
    pub fn id(&self) -> String {
        match self {
            ContainerId::Sscc(s) => s.as_str().to_string(),
            ContainerId::Sgtin { gtin, serial } => format!("(01){gtin}(21){serial}"),
        }
    }

    /// The bracketed form: `(00)SSCC` or `(01)GTIN(21)SERIAL`.
    pub fn key(&self) -> String {
        match self {
            ContainerId::Sscc(s) => format!("(00){s}"),
            ContainerId::Sgtin { .. } => self.id(),
        }
    }

    /// The element string of a label carrying only this identifier: `00` + SSCC, or
    /// `01` + GTIN + `21` + serial (AI 21 last, so no separator is needed).
    pub fn element_string(&self) -> String {
        match self {
            ContainerId::Sscc(s) => s.element_string(),
            ContainerId::Sgtin { gtin, serial } => format!("01{gtin}21{serial}"),
        }
    }
}

impl ContainerId {
    /// The element string of a label carrying this identifier and the `extra`
    /// elements (AI, value), e.g. a case's expiry (17) and batch (10): validated by the
    /// GS1 engine, AI 21 of a case GTIN + serial last.
    pub fn label_element_string(&self, extra: &[(String, String)]) -> Result<String, Gs1Error> {
        if extra.is_empty() {
            return Ok(self.element_string());
        }
        let mut elements: Vec<(String, String)> = Vec::with_capacity(extra.len() + 2);
        match self {
            ContainerId::Sscc(s) => elements.push(("00".into(), s.as_str().to_string())),
            ContainerId::Sgtin { gtin, .. } => elements.push(("01".into(), gtin.clone())),
        }
        elements.extend(extra.iter().cloned());
        if let ContainerId::Sgtin { serial, .. } = self {
            elements.push(("21".into(), serial.clone()));
        }
        Ok(Gs1Code::from_elements(elements)?.element_string())
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The bracketed key of a container stored as `id`: `(00)` + an SSCC, or the
/// `(01)…(21)…` form as it is (an id that parses as neither is given `(00)` in front,
/// as the store always did).
pub fn container_key(id: &str) -> String {
    if id.starts_with("(01)") {
        id.to_string()
    } else {
        format!("(00){id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_print() {
        let s = ContainerId::parse("106141411234567897");
        assert_eq!(
            s.as_ref().map(ContainerId::element_string),
            Ok("00106141411234567897".to_string())
        );
        assert_eq!(
            s.as_ref().map(ContainerId::key),
            Ok("(00)106141411234567897".into())
        );
        let g = ContainerId::parse("(01)19506000134359(21)C0001");
        assert_eq!(
            g.as_ref().map(ContainerId::element_string),
            Ok("011950600013435921C0001".to_string())
        );
        assert_eq!(
            g.as_ref().map(ContainerId::id),
            Ok("(01)19506000134359(21)C0001".to_string())
        );
        assert_eq!(
            container_key("(01)19506000134359(21)C0001"),
            "(01)19506000134359(21)C0001"
        );
        assert_eq!(
            container_key("106141411234567897"),
            "(00)106141411234567897"
        );
    }

    #[test]
    fn a_case_label_carries_the_extra_elements_with_the_serial_last() {
        let g = ContainerId::sgtin("19506000134359", "C0001").unwrap_or_else(|e| panic!("{e}"));
        let extra = [
            ("17".to_string(), "281231".to_string()),
            ("10".to_string(), "EU24A001".to_string()),
        ];
        assert_eq!(
            g.label_element_string(&extra).ok().as_deref(),
            Some("01195060001343591728123110EU24A001\u{1d}21C0001")
        );
        assert_eq!(g.label_element_string(&[]).ok(), Some(g.element_string()));
        // A bad expiry is the GS1 engine's error, not a label.
        let bad = [("17".to_string(), "281331".to_string())];
        assert!(g.label_element_string(&bad).is_err());
    }

    #[test]
    fn bad_ids_are_refused_with_the_reason() {
        assert!(matches!(
            ContainerId::parse("(01)19506000134358(21)C1"),
            Err(ContainerIdError::Gtin { .. })
        ));
        assert!(matches!(
            ContainerId::parse("(01)19506000134359(21)"),
            Err(ContainerIdError::Serial(_))
        ));
        assert!(matches!(
            ContainerId::parse("(01)1950600013(21)X"),
            Err(ContainerIdError::Gtin { .. } | ContainerIdError::Format(_))
        ));
        assert!(matches!(
            ContainerId::parse("hello"),
            Err(ContainerIdError::Format(_))
        ));
        assert!(ContainerId::sgtin("19506000134359", "A B").is_err());
        assert!(check_gtin14("9506000134352").is_err());
        assert!(check_gtin14("09506000134352").is_ok());
    }
}
