//! The defect and fault model of the simulator: the classes of bad units and line
//! faults, the CLI rate specs that say how often each happens (`0.05` or
//! `smudge=0.01,no-print=0.002`), and the seeded plans that decide, per unit number,
//! which unit gets which defect or fault. It owns no pixels (the renderer in
//! [`crate::render`] draws a [`Defect`]) and no timing (the scenario runner applies
//! faults); it only decides, deterministically.
//!
//! # Defect classes and why linectl must reject each
//!
//! Every class is injected at a severity that linectl's verdict rules must reject:
//! the line rejects a unit on no read, wrong content, content failing GS1 validation,
//! a grade below the profile minimum (default C), a late verdict or a missing frame.
//!
//! | class | what the simulator does | why linectl must reject |
//! |---|---|---|
//! | `no-print` | the printer reports the print (its counter advances, the serial is consumed) but nothing reaches the carton: blank carton in the frame | no read |
//! | `smudge` | the code is printed, then an ink blot with a wobbly edge covers ≥ 40% of the symbol, always including part of the L finder | no read: far more damage than Reed-Solomon corrects, and the finder is broken |
//! | `partial` | one side of the symbol (42–60% of its width or height, chosen at random) is not printed, cutting away a finder or a timing edge | no read |
//! | `wrong-code` | a cleanly printed, decodable code whose serial (AI 21) differs in one character from the one linectl sent (the same length and character class, so still valid GS1) | wrong content |
//! | `low-contrast` | the code is printed with a mark only 5–7% of full scale darker (or lighter for laser) than the carton, so the symbol contrast is below 20% | grade F on symbol contrast when it decodes, else no read |
//! | `skew` | the carton face is turned 80–84° away from the camera: the symbol is foreshortened to well under one pixel per module across, with perspective taper | no read |
//! | `dotted` | a degraded dotted inkjet print: 40–50% of the dots missing, the rest shrunk and displaced by up to 0.4 module | no read (or grade F) |
//! | `double-print` | the printer fires twice on the same carton: the same code twice, the second offset by 1.2–2.8 modules in x and in y | no read: every light module of either copy lies under a dark module of the other with about even odds, about a quarter of all modules read wrong (an offset of half a module is not enough: rxing still reads the fattened modules at their centres) |
//! | `skipped-print` | the printer missed its trigger: it did NOT print this unit and did NOT advance its buffer, so the code meant for this unit is still loaded for the next one | no read on this unit, and a print-count drift linectl must detect (the next unit would carry this unit's code) |
//! | `camera-drop-out` | the camera delivers no frame at all for this unit | missing frame |
//!
//! A *clean* dotted print is a legitimate print style, offered by
//! [`crate::render::PrintStyle::Dotted`]; linectl must read and pass it. Only the
//! `dotted` defect (dots missing and displaced) must be rejected.
//!
//! # Fault classes
//!
//! `printer-fault`, `plc-disconnect`, `camera-stall` and `slow-decode` are parsed and
//! planned here with the same grammar and the same determinism; what each does to the
//! line is the scenario runner's business.
//!
//! # Determinism
//!
//! A plan draws unit `n`'s outcome from a ChaCha8 stream keyed by the plan seed and
//! selected by `n` ([`rand_chacha::ChaCha8Rng::set_stream`]), so the answer for a unit
//! does not depend on which other units were asked about before, in what order or from
//! which thread.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A class of defective unit the simulator can produce. The kebab-case names
/// ([`DefectClass::name`]) are stable: they appear on the CLI, in scenario files and
/// in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefectClass {
    /// Printer reports the print, nothing is on the carton.
    NoPrint,
    /// Ink blot over ≥ 40% of the symbol including part of the finder.
    Smudge,
    /// One side of the symbol (42–60%) not printed.
    Partial,
    /// A different, valid serial printed cleanly.
    WrongCode,
    /// Symbol contrast below 20% (grade F).
    LowContrast,
    /// Carton face turned away: foreshortened beyond reading.
    Skew,
    /// Dotted inkjet print with many dots missing and displaced.
    Dotted,
    /// The same code printed twice, offset by one to three modules.
    DoublePrint,
    /// Printer missed the unit and did not advance its buffer.
    SkippedPrint,
    /// No camera frame for the unit.
    CameraDropOut,
}

/// What linectl's verifier must conclude about a unit carrying a defect (the runner
/// checks linectl's reject reason against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedRejection {
    /// The frame holds no readable code.
    NoRead,
    /// The code reads, but not to the content linectl sent.
    WrongContent,
    /// The code may read, but its grade is below the profile minimum.
    LowGrade,
    /// Either no read or a grade below the minimum (degraded but not destroyed).
    NoReadOrLowGrade,
    /// No frame arrived for the unit.
    MissingFrame,
}

/// The parts of the plan grammar shared by defect and fault classes.
pub trait PlanClass: Copy + Eq + fmt::Debug + 'static {
    /// Every class, in a fixed order (the order a plan draws a random class from).
    const ALL: &'static [Self];
    /// What a class of this kind is called in error messages ("defect", "fault").
    const KIND: &'static str;
    /// The stable kebab-case name.
    fn name(self) -> &'static str;
    /// The class with this kebab-case name.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl PlanClass for DefectClass {
    const ALL: &'static [Self] = &[
        Self::NoPrint,
        Self::Smudge,
        Self::Partial,
        Self::WrongCode,
        Self::LowContrast,
        Self::Skew,
        Self::Dotted,
        Self::DoublePrint,
        Self::SkippedPrint,
        Self::CameraDropOut,
    ];
    const KIND: &'static str = "defect";

    fn name(self) -> &'static str {
        match self {
            Self::NoPrint => "no-print",
            Self::Smudge => "smudge",
            Self::Partial => "partial",
            Self::WrongCode => "wrong-code",
            Self::LowContrast => "low-contrast",
            Self::Skew => "skew",
            Self::Dotted => "dotted",
            Self::DoublePrint => "double-print",
            Self::SkippedPrint => "skipped-print",
            Self::CameraDropOut => "camera-drop-out",
        }
    }
}

impl DefectClass {
    /// Whether the printer's print counter and buffer advance for this unit. Only
    /// `skipped-print` leaves them where they were (the printer never fired).
    pub fn printer_advances(self) -> bool {
        !matches!(self, Self::SkippedPrint)
    }

    /// Whether the camera delivers a frame for this unit (all but `camera-drop-out`).
    pub fn frame_delivered(self) -> bool {
        !matches!(self, Self::CameraDropOut)
    }

    /// Whether anything is printed on the carton.
    pub fn prints_code(self) -> bool {
        !matches!(self, Self::NoPrint | Self::SkippedPrint)
    }

    /// The verdict linectl must reach for a unit with this defect.
    pub fn expected_rejection(self) -> ExpectedRejection {
        match self {
            Self::NoPrint | Self::Smudge | Self::Partial | Self::Skew | Self::DoublePrint => {
                ExpectedRejection::NoRead
            }
            Self::SkippedPrint => ExpectedRejection::NoRead,
            Self::WrongCode => ExpectedRejection::WrongContent,
            Self::LowContrast | Self::Dotted => ExpectedRejection::NoReadOrLowGrade,
            Self::CameraDropOut => ExpectedRejection::MissingFrame,
        }
    }
}

impl fmt::Display for DefectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DefectClass {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        Self::from_name(s).ok_or_else(|| unknown_class::<Self>(s))
    }
}

/// A class of line fault the scenario runner can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultClass {
    /// The printer reports a fault (head, ink, ribbon) and stops printing.
    PrinterFault,
    /// The PLC's Modbus connection drops.
    PlcDisconnect,
    /// The camera stops delivering frames for a while.
    CameraStall,
    /// A frame that takes the decoder longer than its deadline.
    SlowDecode,
}

impl PlanClass for FaultClass {
    const ALL: &'static [Self] = &[
        Self::PrinterFault,
        Self::PlcDisconnect,
        Self::CameraStall,
        Self::SlowDecode,
    ];
    const KIND: &'static str = "fault";

    fn name(self) -> &'static str {
        match self {
            Self::PrinterFault => "printer-fault",
            Self::PlcDisconnect => "plc-disconnect",
            Self::CameraStall => "camera-stall",
            Self::SlowDecode => "slow-decode",
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultClass {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        Self::from_name(s).ok_or_else(|| unknown_class::<Self>(s))
    }
}

/// One unit's defect: its class and the seed of its geometry (where the blot sits,
/// which side is cut, which serial character changes...). The same `Defect` renders
/// the same damage every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Defect {
    /// What is wrong with the unit.
    pub class: DefectClass,
    /// Seed of the defect's own random choices.
    pub seed: u64,
}

impl Defect {
    /// A defect of `class` with geometry seed `seed`.
    pub fn new(class: DefectClass, seed: u64) -> Self {
        Self { class, seed }
    }
}

/// One unit's fault: its class and a seed for the runner's choices (duration...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fault {
    /// What goes wrong at this unit.
    pub class: FaultClass,
    /// Seed of the fault's own random choices.
    pub seed: u64,
}

/// A spec of how often each class happens, as given on the CLI.
#[derive(Debug, Clone, PartialEq)]
pub enum RateSpec<C> {
    /// This fraction of units gets one class drawn uniformly from all classes.
    AnyClass(f64),
    /// Each listed class with its own rate (the sum is at most 1).
    PerClass(Vec<(C, f64)>),
}

/// How often units get each defect class (`0.05` or `smudge=0.01,no-print=0.002`).
pub type DefectSpec = RateSpec<DefectClass>;
/// How often each fault class happens (`0.001` or `camera-stall=0.001`).
pub type FaultSpec = RateSpec<FaultClass>;

/// A bad `DefectSpec`/`FaultSpec`; every variant names the offending token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The whole spec was empty.
    #[error("empty rate spec: give a rate like `0.05` or classes like `smudge=0.01`")]
    Empty,
    /// An empty item between commas.
    #[error("empty item at position {position} of the rate spec")]
    EmptyItem {
        /// 1-based position of the item in the comma-separated list.
        position: usize,
    },
    /// A class name without `=rate`.
    #[error("`{token}`: expected `class=rate`")]
    MissingRate {
        /// The token as given.
        token: String,
    },
    /// A rate that is not a number in [0, 1].
    #[error("`{token}`: rate must be a number from 0 to 1 ({reason})")]
    BadRate {
        /// The token as given.
        token: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A class name that does not exist.
    #[error("`{token}`: unknown {kind} class; known: {known}")]
    UnknownClass {
        /// The name as given.
        token: String,
        /// "defect" or "fault".
        kind: &'static str,
        /// The known names, comma-separated.
        known: String,
    },
    /// The same class twice.
    #[error("`{token}`: class given twice")]
    Duplicate {
        /// The repeated class name.
        token: String,
    },
    /// Rates adding up to more than one.
    #[error("rates add up to {total}, more than 1")]
    TotalAboveOne {
        /// The sum of all rates.
        total: f64,
    },
}

fn unknown_class<C: PlanClass>(token: &str) -> SpecError {
    SpecError::UnknownClass {
        token: token.to_owned(),
        kind: C::KIND,
        known: C::ALL
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn parse_rate(token: &str, text: &str) -> Result<f64, SpecError> {
    let bad = |reason: &str| SpecError::BadRate {
        token: token.to_owned(),
        reason: reason.to_owned(),
    };
    let rate: f64 = text.trim().parse().map_err(|_| bad("not a number"))?;
    if !rate.is_finite() {
        return Err(bad("not finite"));
    }
    if !(0.0..=1.0).contains(&rate) {
        return Err(bad("out of range"));
    }
    Ok(rate)
}

impl<C: PlanClass> RateSpec<C> {
    /// No unit gets anything.
    pub fn none() -> Self {
        Self::PerClass(Vec::new())
    }

    /// The probability that a unit gets `class`.
    pub fn rate_of(&self, class: C) -> f64 {
        match self {
            Self::AnyClass(rate) => rate / C::ALL.len() as f64,
            Self::PerClass(list) => list
                .iter()
                .filter(|(c, _)| *c == class)
                .map(|(_, r)| *r)
                .sum(),
        }
    }

    /// The probability that a unit gets any class.
    pub fn total_rate(&self) -> f64 {
        match self {
            Self::AnyClass(rate) => *rate,
            Self::PerClass(list) => list.iter().map(|(_, r)| r).sum(),
        }
    }
}

impl<C: PlanClass> FromStr for RateSpec<C> {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        if !s.contains('=') && !s.contains(',') {
            // A bare rate, unless it is a class name missing its rate.
            if C::from_name(s).is_some() {
                return Err(SpecError::MissingRate {
                    token: s.to_owned(),
                });
            }
            if s.parse::<f64>().is_err() && s.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err(unknown_class::<C>(s));
            }
            return Ok(Self::AnyClass(parse_rate(s, s)?));
        }
        let mut list: Vec<(C, f64)> = Vec::new();
        for (i, item) in s.split(',').enumerate() {
            let token = item.trim();
            if token.is_empty() {
                return Err(SpecError::EmptyItem { position: i + 1 });
            }
            let Some((name, rate)) = token.split_once('=') else {
                return Err(SpecError::MissingRate {
                    token: token.to_owned(),
                });
            };
            let name = name.trim();
            let class = C::from_name(name).ok_or_else(|| unknown_class::<C>(name))?;
            if list.iter().any(|(c, _)| *c == class) {
                return Err(SpecError::Duplicate {
                    token: name.to_owned(),
                });
            }
            list.push((class, parse_rate(token, rate)?));
        }
        let total: f64 = list.iter().map(|(_, r)| r).sum();
        if total > 1.0 + 1e-9 {
            return Err(SpecError::TotalAboveOne { total });
        }
        Ok(Self::PerClass(list))
    }
}

impl<C: PlanClass> fmt::Display for RateSpec<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AnyClass(rate) => write!(f, "{rate}"),
            Self::PerClass(list) => {
                for (i, (class, rate)) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}={rate}", class.name())?;
                }
                Ok(())
            }
        }
    }
}

/// Deterministic per-unit draws for a [`RateSpec`]: unit `n` always gets the same
/// answer for the same spec and seed.
#[derive(Debug, Clone)]
pub struct Plan<C> {
    spec: RateSpec<C>,
    seed: u64,
}

impl<C: PlanClass> Plan<C> {
    /// A plan for `spec` keyed by `seed`; `salt` separates plans of different kinds
    /// that share a seed.
    fn with_salt(spec: RateSpec<C>, seed: u64, salt: u64) -> Self {
        Self {
            spec,
            seed: seed ^ salt,
        }
    }

    /// The spec this plan draws from.
    pub fn spec(&self) -> &RateSpec<C> {
        &self.spec
    }

    /// The class (if any) and the detail seed for unit `unit`.
    pub fn draw(&self, unit: u64) -> Option<(C, u64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(unit);
        let roll: f64 = rng.random();
        let class = match &self.spec {
            RateSpec::AnyClass(rate) => {
                if roll < *rate {
                    let i = rng.random_range(0..C::ALL.len());
                    C::ALL.get(i).copied()
                } else {
                    None
                }
            }
            RateSpec::PerClass(list) => {
                let mut cumulative = 0.0;
                list.iter().find_map(|(class, rate)| {
                    cumulative += rate;
                    (roll < cumulative).then_some(*class)
                })
            }
        }?;
        Some((class, rng.next_u64()))
    }
}

const DEFECT_SALT: u64 = 0x6465_6665_6374_7321; // "defects!"
const FAULT_SALT: u64 = 0x6661_756c_7473_2121; // "faults!!"

/// Which unit gets which defect, drawn deterministically from a seed.
#[derive(Debug, Clone)]
pub struct DefectPlan(Plan<DefectClass>);

impl DefectPlan {
    /// A plan for `spec` keyed by `seed`.
    pub fn new(spec: DefectSpec, seed: u64) -> Self {
        Self(Plan::with_salt(spec, seed, DEFECT_SALT))
    }

    /// The defect of unit `unit`, if it has one.
    pub fn defect_for(&self, unit: u64) -> Option<Defect> {
        self.0
            .draw(unit)
            .map(|(class, seed)| Defect { class, seed })
    }

    /// The spec this plan draws from.
    pub fn spec(&self) -> &DefectSpec {
        self.0.spec()
    }
}

/// At which unit which fault happens, drawn deterministically from a seed.
#[derive(Debug, Clone)]
pub struct FaultPlan(Plan<FaultClass>);

impl FaultPlan {
    /// A plan for `spec` keyed by `seed`.
    pub fn new(spec: FaultSpec, seed: u64) -> Self {
        Self(Plan::with_salt(spec, seed, FAULT_SALT))
    }

    /// The fault at unit `unit`, if any.
    pub fn fault_for(&self, unit: u64) -> Option<Fault> {
        self.0.draw(unit).map(|(class, seed)| Fault { class, seed })
    }

    /// The spec this plan draws from.
    pub fn spec(&self) -> &FaultSpec {
        self.0.spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in DefectClass::ALL {
            assert_eq!(c.name().parse::<DefectClass>(), Ok(*c));
            let json = serde_json::to_string(c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        for c in FaultClass::ALL {
            assert_eq!(c.name().parse::<FaultClass>(), Ok(*c));
        }
    }

    #[test]
    fn display_round_trips() {
        let spec: DefectSpec = "smudge=0.01,no-print=0.002".parse().unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(spec.to_string(), "smudge=0.01,no-print=0.002");
        let again: DefectSpec = spec.to_string().parse().unwrap_or(DefectSpec::none());
        assert_eq!(again, spec);
    }

    #[test]
    fn only_skipped_print_holds_the_printer() {
        for c in DefectClass::ALL {
            assert_eq!(c.printer_advances(), *c != DefectClass::SkippedPrint);
        }
    }
}
