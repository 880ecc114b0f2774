//! Serial states in OPEN-SCS vocabulary and the one function that says which moves are
//! allowed. States only move forward; the only way out of the pool is an explicit,
//! recorded return to the site server (`Returned`). It owns no storage: the pool derives
//! each serial's state from its records and asks [`transition`] before changing it.

use std::fmt;
use std::str::FromStr;

/// The life-cycle state of one serial number (OPEN-SCS OPC 30260 names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "PascalCase")]
pub enum SerialState {
    /// In the pool, not yet reserved for any line or batch.
    Unallocated,
    /// Reserved (in a durable block) for one line and batch.
    Allocated,
    /// Handed to the printer.
    Encoded,
    /// Printed on a unit that passed inspection.
    Commissioned,
    /// Printed on a label or unit that was rejected and scrapped.
    LabelScrapped,
    /// The unit carrying it was destroyed.
    Destroyed,
    /// The unit carrying it was taken by QA.
    Sampled,
    /// Invalidated (crash recovery, an unused tail of a closed block, or explicitly);
    /// reported to the site server, never handed out again.
    #[serde(rename = "SNInvalid")]
    SnInvalid,
    /// Explicitly returned to the site server (SNReturnUnallocated/SNReturnAllocated);
    /// no longer usable here.
    Returned,
}

impl SerialState {
    /// Every state, in life-cycle order.
    pub const ALL: [SerialState; 9] = [
        SerialState::Unallocated,
        SerialState::Allocated,
        SerialState::Encoded,
        SerialState::Commissioned,
        SerialState::LabelScrapped,
        SerialState::Destroyed,
        SerialState::Sampled,
        SerialState::SnInvalid,
        SerialState::Returned,
    ];

    /// The OPEN-SCS name, e.g. `SNInvalid`.
    pub fn name(self) -> &'static str {
        match self {
            SerialState::Unallocated => "Unallocated",
            SerialState::Allocated => "Allocated",
            SerialState::Encoded => "Encoded",
            SerialState::Commissioned => "Commissioned",
            SerialState::LabelScrapped => "LabelScrapped",
            SerialState::Destroyed => "Destroyed",
            SerialState::Sampled => "Sampled",
            SerialState::SnInvalid => "SNInvalid",
            SerialState::Returned => "Returned",
        }
    }

    /// One-byte code used in the store.
    pub(crate) fn code(self) -> u8 {
        match self {
            SerialState::Unallocated => 0,
            SerialState::Allocated => 1,
            SerialState::Encoded => 2,
            SerialState::Commissioned => 3,
            SerialState::LabelScrapped => 4,
            SerialState::Destroyed => 5,
            SerialState::Sampled => 6,
            SerialState::SnInvalid => 7,
            SerialState::Returned => 8,
        }
    }

    /// Inverse of [`SerialState::code`].
    pub(crate) fn from_code(code: u8) -> Option<SerialState> {
        SerialState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A state nothing can leave.
    pub fn is_terminal(self) -> bool {
        SerialState::ALL
            .into_iter()
            .all(|to| transition(self, to).is_err())
    }
}

impl fmt::Display for SerialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SerialState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SerialState::ALL
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = SerialState::ALL.iter().map(|s| s.name()).collect();
                format!("unknown serial state `{s}` (known: {})", names.join(", "))
            })
    }
}

/// A refused state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("serial state may not move from {from} to {to}")]
pub struct TransitionError {
    /// The current state.
    pub from: SerialState,
    /// The state asked for.
    pub to: SerialState,
}

/// The allowed moves. Forward only:
///
/// ```text
/// Unallocated -> Allocated | SNInvalid | Returned
/// Allocated   -> Encoded | SNInvalid | Returned
/// Encoded     -> Commissioned | LabelScrapped | Destroyed | Sampled
/// Commissioned -> Sampled | Destroyed
/// LabelScrapped, Destroyed, Sampled, SNInvalid, Returned: terminal
/// ```
///
/// Staying in the same state is not a move and is refused too, so that a repeated
/// report is noticed rather than silently accepted.
pub fn transition(from: SerialState, to: SerialState) -> Result<SerialState, TransitionError> {
    use SerialState::*;
    let ok = matches!(
        (from, to),
        (Unallocated, Allocated | SnInvalid | Returned)
            | (Allocated, Encoded | SnInvalid | Returned)
            | (Encoded, Commissioned | LabelScrapped | Destroyed | Sampled)
            | (Commissioned, Sampled | Destroyed)
    );
    if ok {
        Ok(to)
    } else {
        Err(TransitionError { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SerialState::*;

    /// Position in the life cycle; a move must strictly increase it.
    fn rank(s: SerialState) -> u8 {
        match s {
            Unallocated => 0,
            Allocated => 1,
            Encoded => 2,
            Commissioned => 3,
            LabelScrapped | Destroyed | Sampled | SnInvalid | Returned => 4,
        }
    }

    #[test]
    fn every_allowed_move_goes_forward() {
        let mut allowed = 0;
        for from in SerialState::ALL {
            for to in SerialState::ALL {
                if transition(from, to).is_ok() {
                    allowed += 1;
                    assert!(rank(to) > rank(from), "{from} -> {to} goes backwards");
                }
            }
        }
        assert_eq!(allowed, 12);
    }

    #[test]
    fn nothing_returns_to_unallocated_or_repeats() {
        for from in SerialState::ALL {
            assert!(transition(from, Unallocated).is_err());
            assert_eq!(
                transition(from, from),
                Err(TransitionError { from, to: from })
            );
        }
    }

    #[test]
    fn the_normal_paths_are_allowed() {
        assert_eq!(transition(Unallocated, Allocated), Ok(Allocated));
        assert_eq!(transition(Allocated, Encoded), Ok(Encoded));
        assert_eq!(transition(Encoded, Commissioned), Ok(Commissioned));
        assert_eq!(transition(Encoded, LabelScrapped), Ok(LabelScrapped));
        assert_eq!(transition(Allocated, SnInvalid), Ok(SnInvalid));
        assert_eq!(transition(Commissioned, Sampled), Ok(Sampled));
    }

    #[test]
    fn forbidden_moves_are_refused() {
        assert!(transition(Encoded, Allocated).is_err());
        assert!(transition(SnInvalid, Allocated).is_err());
        assert!(transition(Unallocated, Encoded).is_err());
        assert!(transition(Encoded, SnInvalid).is_err());
        assert!(transition(Returned, Unallocated).is_err());
        assert!(transition(Commissioned, Encoded).is_err());
    }

    #[test]
    fn terminal_states_and_codes() {
        for s in [LabelScrapped, Destroyed, Sampled, SnInvalid, Returned] {
            assert!(s.is_terminal(), "{s}");
        }
        for s in [Unallocated, Allocated, Encoded, Commissioned] {
            assert!(!s.is_terminal(), "{s}");
        }
        for s in SerialState::ALL {
            assert_eq!(SerialState::from_code(s.code()), Some(s));
            assert_eq!(s.name().parse::<SerialState>(), Ok(s));
        }
        assert_eq!(SerialState::from_code(200), None);
        assert!("Printed".parse::<SerialState>().is_err());
    }
}
