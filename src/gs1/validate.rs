//! Validation of GS1 data against the AI table: one element's value against its
//! components, character sets and linters, and a whole code against the pairing rules
//! (`req`, `ex`, repeated AIs, the digital-signature key rule). Owns no parsing and no
//! output formatting.

use super::lint::{self, Fault};
use super::table::{self, AiEntry};
use super::{Element, Gs1Error, Gs1ErrorKind, Options};

/// Maximum length of the value of an AI that is not in the dictionary.
pub const UNKNOWN_AI_MAX_LEN: usize = 90;

fn err(ai: &str, kind: Gs1ErrorKind, position: Option<usize>) -> Gs1Error {
    Gs1Error {
        ai: Some(ai.to_owned()),
        kind,
        position,
    }
}

/// Check the AI's form (2 to 4 digits) and look it up. `Ok(None)` is an unknown AI that
/// the options permit.
pub fn check_ai(
    ai: &str,
    opts: &Options,
    pos: Option<usize>,
) -> Result<Option<&'static AiEntry>, Gs1Error> {
    let b = ai.as_bytes();
    if !(2..=4).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(err(
            ai,
            Gs1ErrorKind::Syntax("an AI is 2 to 4 digits".into()),
            pos,
        ));
    }
    match table::lookup(b) {
        Some(e) => Ok(Some(e)),
        None if opts.permit_unknown_ais => Ok(None),
        None => Err(err(ai, Gs1ErrorKind::UnknownAi, pos)),
    }
}

/// Validate one value. `base` is the offset of the value in the input (0 when the value
/// stands alone); error positions are `base` + the offset within the value.
pub fn check_value(
    ai: &str,
    entry: Option<&AiEntry>,
    value: &str,
    base: usize,
) -> Result<(), Gs1Error> {
    let d = value.as_bytes();
    if d.is_empty() {
        return Err(err(ai, Gs1ErrorKind::Length, Some(base)));
    }
    let Some(entry) = entry else {
        if d.len() > UNKNOWN_AI_MAX_LEN {
            return Err(err(
                ai,
                Gs1ErrorKind::Length,
                Some(base + UNKNOWN_AI_MAX_LEN),
            ));
        }
        if let Some(p) = d.iter().position(|&b| !lint::is_cset82(b)) {
            return Err(err(ai, Gs1ErrorKind::Charset, Some(base + p)));
        }
        return Ok(());
    };
    let mut pos = 0usize;
    for comp in entry.components {
        let rest = d.len() - pos;
        if rest == 0 {
            if comp.optional {
                break;
            }
            return Err(err(ai, Gs1ErrorKind::Length, Some(base + pos)));
        }
        let take = rest.min(comp.max);
        if take < comp.min {
            return Err(err(ai, Gs1ErrorKind::Length, Some(base + d.len())));
        }
        let part = &d[pos..pos + take];
        lint::charset(comp.cset, part)
            .map_err(|(_, p)| err(ai, Gs1ErrorKind::Charset, Some(base + pos + p)))?;
        for &l in comp.linters {
            lint::run(l, part).map_err(|(f, p)| {
                let kind = match f {
                    Fault::Charset => Gs1ErrorKind::Charset,
                    Fault::CheckDigit => Gs1ErrorKind::CheckDigit,
                    Fault::Date => Gs1ErrorKind::Date,
                    Fault::Other(why) => Gs1ErrorKind::Lint(format!("{}: {why}", l.name())),
                };
                err(ai, kind, Some(base + pos + p))
            })?;
        }
        pos += take;
    }
    if pos < d.len() {
        return Err(err(ai, Gs1ErrorKind::Length, Some(base + pos)));
    }
    Ok(())
}

fn describe(rule: &[&[&str]]) -> String {
    let alts: Vec<String> = rule.iter().map(|a| a.join("+")).collect();
    alts.join(" or ")
}

/// Check the rules between elements. `positions` (same length as `elements`) gives
/// where each element starts in the input, when known.
pub fn check_pairs(
    elements: &[Element],
    opts: &Options,
    positions: Option<&[usize]>,
) -> Result<(), Gs1Error> {
    let at = |i: usize| positions.and_then(|p| p.get(i).copied());
    let present = |pat: &str| elements.iter().any(|e| table::pattern_matches(pat, &e.ai));
    // One pass per rule, in the syntax engine's order, so that the error names the
    // first rule broken anywhere in the code.
    if opts.validate_repeats {
        for (i, e) in elements.iter().enumerate() {
            if elements[..i]
                .iter()
                .any(|o| o.ai == e.ai && o.value != e.value)
            {
                return Err(err(&e.ai, Gs1ErrorKind::Duplicate, at(i)));
            }
        }
    }
    if opts.validate_exclusions {
        for (i, e) in elements.iter().enumerate() {
            let Some(entry) = table::lookup(e.ai.as_bytes()) else {
                continue;
            };
            for pat in entry.ex {
                if let Some(o) = elements
                    .iter()
                    .find(|o| o.ai != e.ai && table::pattern_matches(pat, &o.ai))
                {
                    return Err(err(&e.ai, Gs1ErrorKind::Exclusive(o.ai.clone()), at(i)));
                }
            }
        }
    }
    if opts.validate_requisites {
        for (i, e) in elements.iter().enumerate() {
            let Some(entry) = table::lookup(e.ai.as_bytes()) else {
                continue;
            };
            for rule in entry.req {
                if !rule.iter().any(|alt| alt.iter().all(|p| present(p))) {
                    return Err(err(
                        &e.ai,
                        Gs1ErrorKind::MissingRequired(describe(rule)),
                        at(i),
                    ));
                }
            }
        }
    }
    if opts.validate_digsig_serial_key && elements.iter().any(|e| e.ai == "8030") {
        // A digital signature needs a serialised key: GDTI, GCN and GRAI only count
        // with their optional serial component.
        for (i, e) in elements.iter().enumerate() {
            let unserialised = match e.ai.as_str() {
                "253" | "255" => e.value.len() <= 13,
                "8003" => e.value.len() <= 14,
                _ => false,
            };
            if unserialised {
                return Err(err(
                    &e.ai,
                    Gs1ErrorKind::Lint(
                        "8030 (DIGSIG) needs this key with its serial component".into(),
                    ),
                    at(i),
                ));
            }
        }
    }
    Ok(())
}
