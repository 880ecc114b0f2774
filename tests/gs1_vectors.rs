//! Conformance of the GS1 engine against the 379 cases extracted from the GS1 Barcode
//! Syntax Engine's unit tests (`tests/data/gs1-syntax-engine-vectors.json`). Each case
//! runs through the public API with the options the engine's test set at that point
//! (the JSON lost them: they are restated here by case id, with the reason). Prints how
//! many cases ran per category; fails listing every case that disagrees.

use linectl::gs1::{CANONICAL_DL_STEM, Gs1Code, Gs1ErrorKind, Options, ScanData, ScanSymbology};
use serde_json::Value;

const VECTORS: &str = include_str!("data/gs1-syntax-engine-vectors.json");

/// Cases that are not test cases: the extraction caught the C helper macro's own
/// parameter names (`inbuf`, `expbuf`) instead of arguments.
const EXCLUDED: &[(&str, usize, &str)] = &[
    (
        "test_parseAIdata",
        27,
        "macro parameters 'inbuf'/'expbuf' captured by the extraction, not a case",
    ),
    (
        "test_parseAIdata",
        28,
        "macro parameter 'inbuf' captured by the extraction, not a case",
    ),
];

/// parseDLuri cases run with the legacy zero-suppressed GTIN option on (the C test calls
/// gs1_encoder_setPermitZeroSuppressedGTINinDLuris(ctx, true) around them).
const DL_ZERO_SUPPRESSED: &[usize] = &[42, 44, 46, 48, 50, 84, 85, 91, 93, 95, 97];
/// parseDLuri cases run with convenience alphas permitted.
const DL_ALPHAS: &[usize] = &[37, 38, 39];
/// parseDLuri cases with unknown AIs permitted and allowed as data attributes.
const DL_UNKNOWN_ATTR: &[usize] = &[112];

fn s(v: &Value) -> &str {
    v.as_str().expect("vector fields are strings")
}

fn syntax_only() -> Options {
    Options::syntax_only()
}

#[test]
fn syntax_engine_vectors() {
    let all: Value = serde_json::from_str(VECTORS).expect("vectors are JSON");
    let mut failures = Vec::new();
    let mut total = 0usize;
    let mut report = Vec::new();
    for (cat, cases) in all.as_object().expect("object") {
        let Some(cases) = cases.as_array() else {
            continue;
        };
        let mut ran = 0;
        let mut excluded = 0;
        for (id, case) in cases.iter().enumerate() {
            if EXCLUDED.iter().any(|(c, i, _)| c == cat && *i == id) {
                excluded += 1;
                continue;
            }
            let c = case.as_array().expect("case is an array");
            let ok = s(&c[0]) == "true";
            ran += 1;
            let outcome = run_case(cat, id, ok, c);
            if let Err(msg) = outcome {
                failures.push(format!("{cat}[{id}] {:?}: {msg}", c));
            }
        }
        total += ran;
        report.push(format!("{cat}: {ran} ran, {excluded} excluded"));
    }
    for line in &report {
        println!("{line}");
    }
    for (c, i, why) in EXCLUDED {
        println!("excluded {c}[{i}]: {why}");
    }
    println!("total: {total} cases ran, {} excluded", EXCLUDED.len());
    assert!(
        total + EXCLUDED.len() == 379,
        "expected 379 cases in the file"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn expect<T, E: std::fmt::Debug>(
    ok: bool,
    r: Result<T, E>,
    check: impl FnOnce(T) -> Result<(), String>,
) -> Result<(), String> {
    match (ok, r) {
        (true, Ok(v)) => check(v),
        (true, Err(e)) => Err(format!("expected success, got {e:?}")),
        (false, Ok(_)) => Err("expected failure, got success".into()),
        (false, Err(_)) => Ok(()),
    }
}

fn eq(got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn run_case(cat: &str, id: usize, ok: bool, c: &[Value]) -> Result<(), String> {
    match cat {
        "test_parseAIdata" => expect(
            ok,
            Gs1Code::parse_bracketed_with(s(&c[1]), &syntax_only()),
            |code| eq(&code.caret_string(), s(&c[2])),
        ),
        "test_processAIdata" => {
            let opts = Options {
                require_leading_fnc1: true,
                ..syntax_only()
            };
            expect(
                ok,
                Gs1Code::parse_element_string_with(s(&c[1]), &opts),
                |_| Ok(()),
            )
        }
        "test_validateAIs" => {
            // Unknown AIs are permitted so that (89)/(3338) reach the rule under test.
            let opts = Options {
                permit_unknown_ais: true,
                ..Options::default()
            };
            let r = Gs1Code::parse_bracketed_with(s(&c[2]), &opts);
            if let (false, Err(e)) = (ok, &r) {
                let right_rule = match s(&c[1]) {
                    "validateAIrepeats" => e.kind == Gs1ErrorKind::Duplicate,
                    "validateAImutex" => matches!(e.kind, Gs1ErrorKind::Exclusive(_)),
                    "validateAIrequisites" => matches!(e.kind, Gs1ErrorKind::MissingRequired(_)),
                    _ => matches!(e.kind, Gs1ErrorKind::Lint(_)),
                };
                if !right_rule {
                    return Err(format!("failed for another rule: {e}"));
                }
            }
            expect(ok, r, |_| Ok(()))
        }
        "test_parseDLuri" => {
            let opts = Options {
                permit_zero_suppressed_gtin_in_dl: DL_ZERO_SUPPRESSED.contains(&id),
                permit_convenience_alphas: DL_ALPHAS.contains(&id),
                permit_unknown_ais: DL_UNKNOWN_ATTR.contains(&id),
                unknown_ais_as_dl_attributes: DL_UNKNOWN_ATTR.contains(&id),
                ..syntax_only()
            };
            expect(
                ok,
                Gs1Code::parse_digital_link_with(s(&c[1]), &opts),
                |code| eq(&code.caret_string(), s(&c[2])),
            )
        }
        "test_testGenerateDLuri" => {
            // Cases 18 and 19 permit unknown AIs; 19 also allows them as attributes.
            let opts = Options {
                permit_unknown_ais: id == 18 || id == 19,
                unknown_ais_as_dl_attributes: id == 19,
                ..syntax_only()
            };
            let code = Gs1Code::parse_bracketed_with(s(&c[2]), &opts)
                .map_err(|e| format!("input must parse: {e}"))?;
            let stem = match s(&c[1]) {
                "NULL" => CANONICAL_DL_STEM,
                st => st,
            };
            expect(ok, code.digital_link_with(stem, &opts), |uri| {
                eq(&uri, s(&c[3]))
            })
        }
        "test_testProcessScanData" => {
            expect(ok, ScanData::parse_with(s(&c[1]), &syntax_only()), |scan| {
                let want = match s(&c[2]) {
                    "QR" => ScanSymbology::QrCode,
                    "DM" => ScanSymbology::DataMatrix,
                    "DotCode" => ScanSymbology::DotCode,
                    "DataBarExpanded" => ScanSymbology::DataBar,
                    "GS1_128_CCA" => ScanSymbology::Gs1_128,
                    "EAN13" => ScanSymbology::Ean13,
                    "EAN8" => ScanSymbology::Ean8,
                    other => return Err(format!("unknown symbology name {other}")),
                };
                if scan.symbology != want {
                    return Err(format!("symbology {:?}, want {want:?}", scan.symbology));
                }
                eq(&scan.data_string(), s(&c[3]))
            })
        }
        other => Err(format!("unknown category {other}")),
    }
}
