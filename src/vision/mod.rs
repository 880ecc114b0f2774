//! The vision stage: turns a camera frame of a printed unit into a verdict. It owns frame
//! loading ([`frame`]), the decode passes over rxing's DataMatrix reader ([`decode`],
//! [`preprocess`]), the print-quality estimate ([`grade`]), the worker pool that keeps a
//! slow or panicking frame from stalling the line ([`pool`]) and the verifier that
//! compares a read with what was printed for the unit ([`verify`]). It does not talk to
//! cameras, the PLC or the printer, and it never decides what a unit's code should be:
//! the expected code comes from the caller.
//!
//! Flow: `GreyFrame` → [`pool::DecodePool`] (deadline, `catch_unwind`) →
//! [`pool::FrameOutcome`] → [`verify::Verifier::verify`] → [`verify::Verdict`]. Only the
//! verifier can make a [`verify::Passed`], and only from a read that parsed as valid GS1,
//! matched the expected code element by element, was not a duplicate serial and graded
//! at or above the profile's minimum.
//!
//! The grade is an estimate in the spirit of ISO/IEC 15415, not a certified verification:
//! see [`grade`] and docs/vision.md.

pub mod decode;
pub mod frame;
pub mod grade;
pub mod pool;
pub mod preprocess;
pub mod verify;

pub use decode::{DecodeConfig, Decoder, PassKind, Read};
pub use frame::{FrameError, FrameLimits, GreyFrame, Roi};
pub use grade::{Grade, GradeReport, Metric};
