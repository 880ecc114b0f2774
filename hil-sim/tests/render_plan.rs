//! Integration tests of the defect and fault specs and plans: the CLI grammar with its
//! errors, the rates a plan actually draws over many units, and determinism (the same
//! seed gives the same plan, whatever order the units are asked in).

use hil_sim::defects::{
    DefectClass, DefectPlan, DefectSpec, FaultClass, FaultPlan, FaultSpec, PlanClass, SpecError,
};

fn defect_spec(s: &str) -> DefectSpec {
    match s.parse() {
        Ok(spec) => spec,
        Err(e) => panic!("`{s}`: {e}"),
    }
}

#[test]
fn a_bare_rate_spreads_over_all_classes() {
    let spec = defect_spec("0.05");
    assert_eq!(spec, DefectSpec::AnyClass(0.05));
    assert!((spec.total_rate() - 0.05).abs() < 1e-12);
    assert!((spec.rate_of(DefectClass::Skew) - 0.005).abs() < 1e-12);
    assert_eq!(defect_spec(" 0 "), DefectSpec::AnyClass(0.0));
    assert_eq!(defect_spec("1"), DefectSpec::AnyClass(1.0));
}

#[test]
fn per_class_rates_parse_in_order() {
    let spec = defect_spec("smudge=0.01, no-print=0.002,camera-drop-out=0");
    assert_eq!(
        spec,
        DefectSpec::PerClass(vec![
            (DefectClass::Smudge, 0.01),
            (DefectClass::NoPrint, 0.002),
            (DefectClass::CameraDropOut, 0.0),
        ])
    );
    let all = DefectClass::ALL
        .iter()
        .map(|c| format!("{c}=0.1"))
        .collect::<Vec<_>>()
        .join(",");
    assert!((defect_spec(&all).total_rate() - 1.0).abs() < 1e-9);
}

#[test]
fn spec_errors_name_the_bad_token() {
    let cases: [(&str, SpecError); 10] = [
        ("", SpecError::Empty),
        (
            "smudge=0.01,,skew=0.1",
            SpecError::EmptyItem { position: 2 },
        ),
        (
            "smudge",
            SpecError::MissingRate {
                token: "smudge".into(),
            },
        ),
        (
            "skew=0.1,partial",
            SpecError::MissingRate {
                token: "partial".into(),
            },
        ),
        (
            "smudge=lots",
            SpecError::BadRate {
                token: "smudge=lots".into(),
                reason: "not a number".into(),
            },
        ),
        (
            "1.5",
            SpecError::BadRate {
                token: "1.5".into(),
                reason: "out of range".into(),
            },
        ),
        (
            "skew=-0.1",
            SpecError::BadRate {
                token: "skew=-0.1".into(),
                reason: "out of range".into(),
            },
        ),
        (
            "NaN",
            SpecError::BadRate {
                token: "NaN".into(),
                reason: "not finite".into(),
            },
        ),
        (
            "skew=0.1,skew=0.2",
            SpecError::Duplicate {
                token: "skew".into(),
            },
        ),
        (
            "skew=0.6,smudge=0.5",
            SpecError::TotalAboveOne { total: 1.1 },
        ),
    ];
    for (input, expected) in cases {
        let got = input.parse::<DefectSpec>();
        match (&got, &expected) {
            (Err(SpecError::TotalAboveOne { total }), SpecError::TotalAboveOne { total: want }) => {
                assert!((total - want).abs() < 1e-9, "`{input}`: {got:?}");
            }
            _ => assert_eq!(got, Err(expected), "`{input}`"),
        }
    }
    match "smudgy=0.1".parse::<DefectSpec>() {
        Err(e @ SpecError::UnknownClass { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("`smudgy`"), "{msg}");
            assert!(msg.contains("defect class"), "{msg}");
            assert!(
                msg.contains("camera-drop-out"),
                "lists the known classes: {msg}"
            );
        }
        other => panic!("expected UnknownClass, got {other:?}"),
    }
    match "smudge".parse::<FaultSpec>() {
        Err(e @ SpecError::UnknownClass { .. }) => assert!(e.to_string().contains("fault class")),
        other => panic!("expected UnknownClass, got {other:?}"),
    }
    // Every message shows the offending token.
    let e = "skew=0.1,blur=0.2"
        .parse::<DefectSpec>()
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|m| m.contains("`blur`")));
}

#[test]
fn fault_specs_parse() {
    let spec: FaultSpec = match "camera-stall=0.001,slow-decode=0.01".parse() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        spec,
        FaultSpec::PerClass(vec![
            (FaultClass::CameraStall, 0.001),
            (FaultClass::SlowDecode, 0.01),
        ])
    );
    for c in FaultClass::ALL {
        assert_eq!(c.name().parse::<FaultClass>(), Ok(*c));
    }
    assert_eq!("0.2".parse::<FaultSpec>(), Ok(FaultSpec::AnyClass(0.2)));
}

const UNITS: u64 = 10_000;

fn counts(plan: &DefectPlan) -> Vec<(DefectClass, usize)> {
    let mut counts: Vec<(DefectClass, usize)> = DefectClass::ALL.iter().map(|c| (*c, 0)).collect();
    for unit in 0..UNITS {
        if let Some(d) = plan.defect_for(unit)
            && let Some(entry) = counts.iter_mut().find(|(c, _)| *c == d.class)
        {
            entry.1 += 1;
        }
    }
    counts
}

/// Within 4.5 standard deviations of the binomial expectation (and never exact zero
/// when something is expected).
fn assert_rate(what: &str, got: usize, rate: f64) {
    let n = UNITS as f64;
    let mean = n * rate;
    let sd = (n * rate * (1.0 - rate)).sqrt();
    assert!(
        (got as f64 - mean).abs() <= 4.5 * sd + 1.0,
        "{what}: {got} of {UNITS}, expected about {mean:.0}"
    );
}

#[test]
fn per_class_plan_rates_match_the_spec() {
    let spec = defect_spec("smudge=0.05,no-print=0.01,camera-drop-out=0.02,skew=0");
    let plan = DefectPlan::new(spec.clone(), 7);
    for (class, n) in counts(&plan) {
        assert_rate(class.name(), n, spec.rate_of(class));
        if spec.rate_of(class) == 0.0 {
            assert_eq!(n, 0, "{class} has rate 0");
        }
    }
}

#[test]
fn any_class_plan_spreads_evenly() {
    let plan = DefectPlan::new(defect_spec("0.2"), 99);
    let counts = counts(&plan);
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    assert_rate("all classes", total, 0.2);
    for (class, n) in counts {
        assert_rate(class.name(), n, 0.02);
    }
}

#[test]
fn plans_are_deterministic_and_order_independent() {
    let spec = defect_spec("0.1");
    let a = DefectPlan::new(spec.clone(), 1234);
    let b = DefectPlan::new(spec.clone(), 1234);
    let forward: Vec<_> = (0..UNITS).map(|u| a.defect_for(u)).collect();
    let backward: Vec<_> = (0..UNITS).rev().map(|u| b.defect_for(u)).collect();
    assert!(forward.iter().eq(backward.iter().rev()));
    // Asking twice gives the same defect, geometry seed included.
    assert_eq!(a.defect_for(4242), a.defect_for(4242));
    // Another seed gives another plan.
    let c = DefectPlan::new(spec, 1235);
    let other: Vec<_> = (0..UNITS).map(|u| c.defect_for(u)).collect();
    assert_ne!(forward, other);
    // Defect seeds differ between units (each defect has its own geometry).
    let seeds: std::collections::HashSet<u64> = forward.iter().flatten().map(|d| d.seed).collect();
    assert_eq!(seeds.len(), forward.iter().flatten().count());
}

#[test]
fn fault_plans_draw_their_rates_independently_of_defects() {
    let spec: FaultSpec = match "printer-fault=0.01,plc-disconnect=0.03".parse() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let plan = FaultPlan::new(spec, 7);
    let again = FaultPlan::new(plan.spec().clone(), 7);
    let mut printer = 0;
    let mut plc = 0;
    for unit in 0..UNITS {
        let f = plan.fault_for(unit);
        assert_eq!(f, again.fault_for(unit));
        match f.map(|f| f.class) {
            Some(FaultClass::PrinterFault) => printer += 1,
            Some(FaultClass::PlcDisconnect) => plc += 1,
            Some(other) => panic!("{other} is not in the spec"),
            None => {}
        }
    }
    assert_rate("printer-fault", printer, 0.01);
    assert_rate("plc-disconnect", plc, 0.03);
    // Same seed, same unit: the fault draw is not the defect draw.
    let defects = DefectPlan::new(defect_spec("0.04"), 7);
    let same = (0..UNITS)
        .filter(|&u| plan.fault_for(u).is_some() && defects.defect_for(u).is_some())
        .count();
    assert!(
        same < 60,
        "fault and defect draws correlate: {same} units share both"
    );
}
