//! The tree under a scanned code: a pallet down to its cases and units, a case down to
//! its units; a unit or case code shows the containers it is in first. It parses what
//! a scanner gives (an 18-digit SSCC, a bracketed or plain element string, a Digital
//! Link URI; a case labelled with a case GTIN + serial is found by its `(01)(21)`) and
//! reads the store; it changes nothing.

use std::fmt::Write;

use super::store::{AggStore, Child, Container, Status, StoreError};
use crate::gs1::Gs1Code;

/// What a scanned code names.
pub fn parse_code(code: &str) -> Option<Child> {
    let code = code.trim();
    if code.len() == 18 && code.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Child::Case {
            sscc: code.to_string(),
        });
    }
    let parsed = Gs1Code::parse_bracketed(code)
        .or_else(|_| Gs1Code::parse_digital_link(code))
        .or_else(|_| Gs1Code::parse_element_string(code))
        .ok()?;
    if let Some(s) = parsed.get("00") {
        return Some(Child::Case {
            sscc: s.to_string(),
        });
    }
    Some(Child::Unit {
        gtin: parsed.get("01")?.to_string(),
        serial: parsed.get("21")?.to_string(),
    })
}

fn head(c: &Container) -> String {
    let id = crate::gs1::container::container_key(&c.sscc);
    let status = match c.status {
        Status::Closed => "closed",
        Status::Open => "OPEN for rework",
    };
    format!(
        "{} {id} batch {} · {} {} · {status}",
        c.level.name(),
        c.batch,
        c.children.len(),
        match c.level {
            super::store::Level::Case => "units",
            super::store::Level::Pallet => "cases",
        }
    )
}

fn walk(store: &AggStore, c: &Container, prefix: &str, out: &mut String) -> Result<(), StoreError> {
    let n = c.children.len();
    for (i, ch) in c.children.iter().enumerate() {
        let last = i + 1 == n;
        let (branch, more) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        match ch {
            Child::Unit { .. } => {
                let _ = writeln!(out, "{prefix}{branch}unit {}", ch.key());
            }
            Child::Case { sscc } => match store.container(sscc)? {
                Some(case) => {
                    let _ = writeln!(out, "{prefix}{branch}{}", head(&case));
                    walk(store, &case, &format!("{prefix}{more}"), out)?;
                }
                None => {
                    let _ = writeln!(out, "{prefix}{branch}case {} (not in the store)", ch.key());
                }
            },
        }
    }
    Ok(())
}

/// The text tree for `code`; `None` when the code is neither a container nor packed.
pub fn show(store: &AggStore, code: &str) -> Result<Option<String>, StoreError> {
    let Some(child) = parse_code(code) else {
        return Ok(None);
    };
    // A case GTIN + serial reads as a unit code: it names a case if the store has one.
    let child = match child {
        Child::Unit { .. } if store.container(&child.key())?.is_some() => {
            Child::Case { sscc: child.key() }
        }
        other => other,
    };
    let mut out = String::new();
    // Upwards first: the containers it is in.
    let mut path = Vec::new();
    let mut at = child.clone();
    while let Some(p) = store.parent_of(&at)? {
        path.push(p.clone());
        at = Child::Case { sscc: p };
        if path.len() > 4 {
            break;
        }
    }
    let top = match (&child, path.last()) {
        (_, Some(top)) => top.clone(),
        (Child::Case { sscc }, None) => sscc.clone(),
        (Child::Unit { .. }, None) => return Ok(None),
    };
    if !path.is_empty() {
        let _ = writeln!(
            out,
            "{} is in {}",
            child.key(),
            path.iter()
                .map(|p| crate::gs1::container::container_key(p))
                .collect::<Vec<_>>()
                .join(" on ")
        );
    }
    let Some(c) = store.container(&top)? else {
        return Ok(None);
    };
    let _ = writeln!(out, "{}", head(&c));
    walk(store, &c, "", &mut out)?;
    Ok(Some(out))
}
