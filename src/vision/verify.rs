//! The verifier: compares what the camera read for a unit with the GS1 code that was
//! printed for it and gives the unit's [`Verdict`] with a reason code. It owns the
//! batch's seen-set of serials (duplicate detection) and the minimum grade. A
//! [`Passed`] can only be made here, and only from a read that parsed as valid GS1 with
//! the GS1 DataMatrix symbology identifier, equals the expected code element by element,
//! is not a serial already passed in this batch and grades at or above the minimum — a
//! wrong content is worse than a no-read. It does not decode, and it does not tell the
//! PLC anything (the pipeline does).

use std::collections::HashSet;

use crate::gs1::{Element, GS, Gs1Code};

use super::grade::Grade;
use super::pool::{FrameOutcome, NoRead};

/// Verifier settings (from the line profile).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// Lowest acceptable overall print grade. Default C (common pharma minimum).
    pub min_grade: Grade,
    /// Expected units in a batch: the seen-set is allocated for this many serials.
    /// Default 100 000.
    pub batch_size: usize,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            min_grade: Grade::C,
            batch_size: 100_000,
        }
    }
}

/// Why a unit is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// No symbol was read (nothing found, decoder panic, bad frame, queue full).
    NoRead(NoRead),
    /// The read is valid GS1 but differs from what was printed, first in this AI.
    WrongCode {
        /// The first AI that differs (in expected order, then extra read AIs).
        ai: String,
        /// The expected value (`None`: the AI should not be there).
        expected: Option<String>,
        /// The value read (`None`: the AI is missing from the read).
        read: Option<String>,
    },
    /// The serial was already passed in this batch.
    Duplicate {
        /// The GTIN (AI 01), empty when the code has none.
        gtin: String,
        /// The serial (AI 21).
        serial: String,
    },
    /// The read is not a valid GS1 DataMatrix element string.
    BadSyntax(String),
    /// The print grade is below the minimum.
    LowGrade {
        /// The grade measured.
        grade: Grade,
        /// The minimum.
        min: Grade,
    },
    /// The decode did not finish by the unit's deadline.
    Late,
    /// No frame arrived for the unit.
    MissingFrame,
}

impl RejectReason {
    /// The stable reason code: `no-read`, `wrong-code`, `duplicate`, `bad-syntax`,
    /// `low-grade`, `late`, `missing-frame`.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::NoRead(_) => "no-read",
            RejectReason::WrongCode { .. } => "wrong-code",
            RejectReason::Duplicate { .. } => "duplicate",
            RejectReason::BadSyntax(_) => "bad-syntax",
            RejectReason::LowGrade { .. } => "low-grade",
            RejectReason::Late => "late",
            RejectReason::MissingFrame => "missing-frame",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::NoRead(n) => write!(f, "no-read: {n}"),
            RejectReason::WrongCode { ai, expected, read } => write!(
                f,
                "wrong-code: AI ({ai}) expected {} read {}",
                expected.as_deref().unwrap_or("<absent>"),
                read.as_deref().unwrap_or("<absent>")
            ),
            RejectReason::Duplicate { gtin, serial } => {
                write!(
                    f,
                    "duplicate: serial {serial} of GTIN {gtin} already passed"
                )
            }
            RejectReason::BadSyntax(m) => write!(f, "bad-syntax: {m}"),
            RejectReason::LowGrade { grade, min } => {
                write!(f, "low-grade: {grade} below minimum {min}")
            }
            RejectReason::Late => write!(f, "late: no result by the deadline"),
            RejectReason::MissingFrame => write!(f, "missing-frame"),
        }
    }
}

/// A unit that passed inspection. Only [`Verifier::verify`] makes one: its fields are
/// private and it has no public constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    code: Gs1Code,
    grade: Grade,
}

impl Passed {
    /// The code read (equal to the expected one).
    pub fn code(&self) -> &Gs1Code {
        &self.code
    }
    /// The overall print grade.
    pub fn grade(&self) -> Grade {
        self.grade
    }
}

/// The outcome for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Good unit.
    Pass(Passed),
    /// Reject it, with the reason.
    Reject(RejectReason),
}

impl Verdict {
    /// `pass` or the reject reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Reject(r) => r.code(),
        }
    }
}

/// Longest seen-set key kept inline: GTIN (14) + GS + serial (at most 20).
const SEEN_KEY_MAX: usize = 40;

/// A seen-set key (GTIN, GS, serial) stored inline, so remembering a serial allocates
/// nothing beyond the set's own room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeenKey {
    len: u8,
    bytes: [u8; SEEN_KEY_MAX],
}

impl SeenKey {
    /// `None` when `key` is too long to keep inline.
    fn of(key: &str) -> Option<SeenKey> {
        let mut bytes = [0u8; SEEN_KEY_MAX];
        bytes.get_mut(..key.len())?.copy_from_slice(key.as_bytes());
        Some(SeenKey {
            len: key.len() as u8,
            bytes,
        })
    }
}

/// The verifier for one batch.
#[derive(Debug)]
pub struct Verifier {
    cfg: VerifyConfig,
    seen: HashSet<SeenKey>,
    /// Keys too long for [`SeenKey`] (not a valid GTIN + serial; kept all the same).
    seen_long: HashSet<String>,
    key: String,
    /// The code of the last read, reused by the next parse.
    scratch: Option<Gs1Code>,
    /// Elements handed back by [`Verifier::recycle`], for the next parse.
    spare: Vec<Element>,
}

impl Verifier {
    /// A verifier with an empty seen-set allocated for `cfg.batch_size` serials.
    pub fn new(cfg: VerifyConfig) -> Verifier {
        let seen = HashSet::with_capacity(cfg.batch_size);
        Verifier {
            cfg,
            seen,
            seen_long: HashSet::new(),
            key: String::with_capacity(64),
            scratch: None,
            spare: Vec::new(),
        }
    }

    /// Start a new batch: forget the serials seen (keeps the allocation).
    pub fn new_batch(&mut self) {
        self.seen.clear();
        self.seen_long.clear();
    }

    /// Serials passed in this batch.
    pub fn passed_count(&self) -> usize {
        self.seen.len() + self.seen_long.len()
    }

    /// Hand a pass back once its code is no longer needed: the next read is parsed into
    /// its allocation.
    pub fn recycle(&mut self, passed: Passed) {
        self.spare = passed.code.into_elements();
    }

    fn seen_contains(&self) -> bool {
        match SeenKey::of(&self.key) {
            Some(k) => self.seen.contains(&k),
            None => self.seen_long.contains(self.key.as_str()),
        }
    }

    fn remember(&mut self) {
        match SeenKey::of(&self.key) {
            Some(k) => {
                self.seen.insert(k);
            }
            None => {
                self.seen_long.insert(self.key.clone());
            }
        }
    }

    /// Judge the outcome of the frame of a unit for which `expected` was printed.
    pub fn verify(&mut self, expected: &Gs1Code, outcome: &FrameOutcome) -> Verdict {
        let read = match outcome {
            FrameOutcome::Read { read, .. } => read,
            FrameOutcome::NoRead(n) => return Verdict::Reject(RejectReason::NoRead(n.clone())),
            FrameOutcome::Late => return Verdict::Reject(RejectReason::Late),
            FrameOutcome::Missing => return Verdict::Reject(RejectReason::MissingFrame),
        };
        if read.symbology != "]d2" {
            return Verdict::Reject(RejectReason::BadSyntax(format!(
                "symbology {} is not GS1 DataMatrix (]d2)",
                read.symbology
            )));
        }
        // The engine tolerates a stray leading / trailing separator; a printed symbol
        // never has one (GS1 General Specifications: FNC1 only between elements).
        if read.content.starts_with(GS) || read.content.ends_with(GS) {
            return Verdict::Reject(RejectReason::BadSyntax(
                "FNC1 separator at the start or end of the data".into(),
            ));
        }
        if let Err(e) =
            Gs1Code::parse_element_string_into(&read.content, &mut self.scratch, &mut self.spare)
        {
            return Verdict::Reject(RejectReason::BadSyntax(e.to_string()));
        }
        let Some(code) = self.scratch.take() else {
            return Verdict::Reject(RejectReason::BadSyntax("no code parsed".into()));
        };
        match self.judge(expected, &code, read.grade.overall) {
            Some(reason) => {
                self.scratch = Some(code);
                Verdict::Reject(reason)
            }
            None => Verdict::Pass(Passed {
                code,
                grade: read.grade.overall,
            }),
        }
    }

    /// Why `code` (read with `grade`) fails, or `None` when it passes (then its serial
    /// is remembered).
    fn judge(&mut self, expected: &Gs1Code, code: &Gs1Code, grade: Grade) -> Option<RejectReason> {
        // Duplicate: this GTIN + serial already passed in the batch.
        if let Some(serial) = code.get("21") {
            self.key.clear();
            self.key.push_str(code.get("01").unwrap_or(""));
            self.key.push(GS);
            self.key.push_str(serial);
            if self.seen_contains() {
                return Some(RejectReason::Duplicate {
                    gtin: code.get("01").unwrap_or("").to_owned(),
                    serial: serial.to_owned(),
                });
            }
        }
        if let Some(reason) = first_difference(expected, code) {
            return Some(reason);
        }
        if grade < self.cfg.min_grade {
            return Some(RejectReason::LowGrade {
                grade,
                min: self.cfg.min_grade,
            });
        }
        if code.get("21").is_some() {
            self.remember();
        }
        None
    }
}

/// The first AI whose value differs: expected AIs in order, then AIs only in the read.
fn first_difference(expected: &Gs1Code, read: &Gs1Code) -> Option<RejectReason> {
    for e in expected.elements() {
        let got = read.get(&e.ai);
        if got != Some(e.value.as_str()) {
            return Some(RejectReason::WrongCode {
                ai: e.ai.clone(),
                expected: Some(e.value.clone()),
                read: got.map(str::to_owned),
            });
        }
    }
    read.elements()
        .iter()
        .find(|r| expected.get(&r.ai).is_none())
        .map(|r| RejectReason::WrongCode {
            ai: r.ai.clone(),
            expected: None,
            read: Some(r.value.clone()),
        })
}
