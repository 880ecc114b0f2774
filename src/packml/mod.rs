//! The PackML (ISA-TR88.00.02) state machine that drives the line: states, commands,
//! state-complete events, and the stop reason of the last fault. It is pure logic with no
//! clock or I/O: the pipeline feeds it commands (from the HMI or the PLC's command
//! register) and "state complete" events (when an acting state's work is done), and reads
//! the state back to publish it (PLC state register, HMI, metrics). Batch checks (pool
//! coverage, devices ready) belong to the pipeline, which refuses a Start before asking
//! this machine.
//!
//! The vocabulary (`State`, `Command`, their PackTags numbers and names) is defined once,
//! in `linectl_drivers::plc`, because the PLC register map speaks those numbers; this
//! module re-exports it and owns only the transitions.

pub use linectl_drivers::plc::{PackMlCommand as Command, PackMlState as State};

/// Where an acting state goes on state-complete (`None` for wait states and Execute,
/// which completes only through [`Machine::complete`]).
fn on_complete(state: State) -> Option<State> {
    Some(match state {
        State::Clearing => State::Stopped,
        State::Starting => State::Execute,
        State::Stopping => State::Stopped,
        State::Aborting => State::Aborted,
        State::Holding => State::Held,
        State::Unholding => State::Execute,
        State::Suspending => State::Suspended,
        State::Unsuspending => State::Execute,
        State::Resetting => State::Idle,
        State::Completing => State::Complete,
        _ => return None,
    })
}

/// Why the line stopped, held or aborted: a reason code and a text for the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopReason {
    /// Stable machine-readable code, e.g. `count-drift`, `printer-fault`.
    pub code: String,
    /// What happened, for the HMI.
    pub message: String,
}

/// A command that is not valid in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PackML command {command:?} is not allowed in state {state}")]
pub struct InvalidCommand {
    /// The refused command.
    pub command: Command,
    /// The state it was refused in.
    pub state: State,
}

/// How severe a fault is: whether it holds the line (resumable) or aborts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Severity {
    /// Hold: the operator may Unhold after fixing the cause.
    Hold,
    /// Abort: the operator must Clear and Reset.
    Abort,
}

/// The state machine. Starts in Stopped.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    stop_reason: Option<StopReason>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    /// A machine in Stopped with no stop reason.
    pub fn new() -> Machine {
        Machine {
            state: State::Stopped,
            stop_reason: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The reason of the last fault, until the line is reset.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stop_reason.as_ref()
    }

    /// Apply a command; returns the new state or refuses it.
    pub fn command(&mut self, command: Command) -> Result<State, InvalidCommand> {
        use State::*;
        let next = match (command, self.state) {
            (Command::Abort, Aborting | Aborted) => None,
            (Command::Abort, _) => Some(Aborting),
            (Command::Clear, Aborted) => Some(Clearing),
            (Command::Stop, Stopped | Stopping | Aborting | Aborted | Clearing) => None,
            (Command::Stop, _) => Some(Stopping),
            (Command::Reset, Stopped | Complete) => Some(Resetting),
            (Command::Start, Idle) => Some(Starting),
            (Command::Hold, Execute | Suspended | Suspending | Unsuspending) => Some(Holding),
            (Command::Unhold, Held) => Some(Unholding),
            (Command::Suspend, Execute) => Some(Suspending),
            (Command::Unsuspend, Suspended) => Some(Unsuspending),
            _ => None,
        };
        let next = next.ok_or(InvalidCommand {
            command,
            state: self.state,
        })?;
        if command == Command::Reset {
            self.stop_reason = None;
        }
        self.state = next;
        Ok(next)
    }

    /// The work of the current acting state is done: move to its wait state. In a wait
    /// state (or Execute) this does nothing and returns the current state.
    pub fn state_complete(&mut self) -> State {
        if let Some(next) = on_complete(self.state) {
            self.state = next;
        }
        self.state
    }

    /// The batch quantity is reached: Execute → Completing. Elsewhere nothing happens.
    pub fn complete(&mut self) -> State {
        if self.state == State::Execute {
            self.state = State::Completing;
        }
        self.state
    }

    /// A fault: record the reason and move to Holding or Aborting. A Hold fault in a
    /// state that cannot hold (e.g. Starting, Idle) escalates to Stopping so that the
    /// line never keeps producing on a fault; a fault while already Held/Aborted only
    /// records the newer reason when there is none yet.
    pub fn fault(&mut self, severity: Severity, reason: StopReason) -> State {
        use State::*;
        if self.stop_reason.is_none() || !matches!(self.state, Held | Holding | Aborted | Aborting)
        {
            self.stop_reason = Some(reason);
        }
        let command = match severity {
            Severity::Abort => Command::Abort,
            Severity::Hold => match self.state {
                Execute | Suspended | Suspending | Unsuspending => Command::Hold,
                Held | Holding | Aborted | Aborting | Stopped | Stopping => return self.state,
                Unholding => {
                    // Back to Held: the cause is still there.
                    self.state = Holding;
                    return self.state;
                }
                _ => Command::Stop,
            },
        };
        // Abort and Stop are accepted from every state where they matter; a refusal
        // here means the line is already at or past that point.
        let _ = self.command(command);
        self.state
    }

    /// Whether units may be produced (printed and commissioned) in this state.
    pub fn producing(&self) -> bool {
        self.state == State::Execute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> StopReason {
        StopReason {
            code: code.into(),
            message: format!("{code} happened"),
        }
    }

    #[test]
    fn happy_path_to_complete_and_next_batch() {
        let mut m = Machine::new();
        assert_eq!(m.command(Command::Reset), Ok(State::Resetting));
        assert_eq!(m.state_complete(), State::Idle);
        assert_eq!(m.command(Command::Start), Ok(State::Starting));
        assert_eq!(m.state_complete(), State::Execute);
        assert!(m.producing());
        assert_eq!(m.complete(), State::Completing);
        assert_eq!(m.state_complete(), State::Complete);
        assert!(!m.producing());
        assert_eq!(m.command(Command::Reset), Ok(State::Resetting));
        assert_eq!(m.state_complete(), State::Idle);
    }

    #[test]
    fn hold_fault_records_reason_and_unhold_resumes() {
        let mut m = Machine::new();
        m.command(Command::Reset).unwrap();
        m.state_complete();
        m.command(Command::Start).unwrap();
        m.state_complete();
        assert_eq!(
            m.fault(Severity::Hold, reason("count-drift")),
            State::Holding
        );
        assert_eq!(m.state_complete(), State::Held);
        assert_eq!(
            m.stop_reason().map(|r| r.code.as_str()),
            Some("count-drift")
        );
        // A second fault while held keeps the first reason.
        m.fault(Severity::Hold, reason("printer-fault"));
        assert_eq!(
            m.stop_reason().map(|r| r.code.as_str()),
            Some("count-drift")
        );
        assert_eq!(m.command(Command::Unhold), Ok(State::Unholding));
        assert_eq!(m.state_complete(), State::Execute);
    }

    #[test]
    fn abort_from_anywhere_then_clear_and_reset() {
        for start in State::ALL {
            let mut m = Machine {
                state: start,
                stop_reason: None,
            };
            let s = m.fault(Severity::Abort, reason("estop"));
            if matches!(start, State::Aborting | State::Aborted) {
                assert_eq!(s, start);
            } else {
                assert_eq!(s, State::Aborting, "from {start}");
            }
        }
        let mut m = Machine::new();
        m.fault(Severity::Abort, reason("estop"));
        assert_eq!(m.state_complete(), State::Aborted);
        assert!(m.command(Command::Reset).is_err());
        assert_eq!(m.command(Command::Clear), Ok(State::Clearing));
        assert_eq!(m.state_complete(), State::Stopped);
        assert!(m.stop_reason().is_some(), "reason stays until reset");
        m.command(Command::Reset).unwrap();
        assert!(m.stop_reason().is_none());
    }

    #[test]
    fn hold_fault_outside_execute_never_leaves_line_producing() {
        for start in State::ALL {
            let mut m = Machine {
                state: start,
                stop_reason: None,
            };
            let s = m.fault(Severity::Hold, reason("x"));
            assert_ne!(s, State::Execute, "from {start}");
            assert_ne!(s, State::Starting, "from {start}");
        }
    }

    #[test]
    fn invalid_commands_are_refused_and_leave_state() {
        let mut m = Machine::new();
        let err = m.command(Command::Start).unwrap_err();
        assert_eq!(err.state, State::Stopped);
        assert_eq!(m.state(), State::Stopped);
        assert!(m.command(Command::Unhold).is_err());
        assert!(m.command(Command::Stop).is_err());
    }

    #[test]
    fn codes_round_trip() {
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
        for c in Command::ALL {
            assert_eq!(Command::from_code(c.code()), Some(c));
        }
        assert_eq!(Command::from_code(0), None);
        assert_eq!(State::from_code(0), None);
        assert_eq!(State::from_code(18), None);
    }

    #[test]
    fn every_acting_state_completes_into_a_wait_state_or_execute() {
        for s in State::ALL {
            let mut m = Machine {
                state: s,
                stop_reason: None,
            };
            let next = m.state_complete();
            if s.is_acting() {
                assert!(!next.is_acting(), "{s} -> {next}");
            } else {
                assert_eq!(next, s);
            }
        }
    }
}
