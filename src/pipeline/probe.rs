//! Thread role tags for allocation accounting: each pipeline thread records which stage
//! it is (plc, printer, camera, decode worker, recorder, coordinator) in a thread-local,
//! and the decode worker marks the span spent inside the third-party DataMatrix reader.
//! A counting global allocator (the `alloc_steady_state` test) reads both to attribute
//! every allocation to a stage and to tell the decoder's own allocations from ours.
//! It owns the tags only: no counting, no allocator. Reading or setting a tag never
//! allocates (const-initialised thread-locals without destructors).

use std::cell::Cell;

/// The pipeline stage a thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// Not a pipeline thread (simulator, test harness, tokio workers…).
    Other = 0,
    /// The PLC thread.
    Plc = 1,
    /// The printer thread (pool allocator, code building, printer I/O).
    Printer = 2,
    /// The camera thread (frames in, decode requests out).
    Camera = 3,
    /// A decode worker.
    Decode = 4,
    /// The recorder (events, journal).
    Recorder = 5,
    /// The coordinator.
    Coordinator = 6,
}

impl Stage {
    /// Every stage, by tag value.
    pub const ALL: [Stage; 7] = [
        Stage::Other,
        Stage::Plc,
        Stage::Printer,
        Stage::Camera,
        Stage::Decode,
        Stage::Recorder,
        Stage::Coordinator,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Other => "other",
            Stage::Plc => "plc",
            Stage::Printer => "printer",
            Stage::Camera => "camera",
            Stage::Decode => "decode",
            Stage::Recorder => "recorder",
            Stage::Coordinator => "coordinator",
        }
    }

    /// The thread-name suffix a stage runs under (`linectl-<name>`).
    pub(crate) fn of_thread(name: &str) -> Stage {
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or(Stage::Other)
    }
}

thread_local! {
    static STAGE: Cell<u8> = const { Cell::new(0) };
    static IN_DECODER: Cell<u32> = const { Cell::new(0) };
}

/// Tag the calling thread as running `stage`.
pub(crate) fn enter(stage: Stage) {
    STAGE.with(|s| s.set(stage as u8));
}

/// The calling thread's stage, and whether it is inside the DataMatrix reader now.
pub fn current() -> (Stage, bool) {
    let stage = STAGE.with(Cell::get);
    let inside = IN_DECODER.with(Cell::get) > 0;
    let stage = Stage::ALL
        .get(usize::from(stage))
        .copied()
        .unwrap_or(Stage::Other);
    (stage, inside)
}

/// Marks the calling thread as inside the third-party decoder until dropped.
pub(crate) struct DecoderSpan(());

impl DecoderSpan {
    pub(crate) fn enter() -> DecoderSpan {
        IN_DECODER.with(|c| c.set(c.get().saturating_add(1)));
        DecoderSpan(())
    }
}

impl Drop for DecoderSpan {
    fn drop(&mut self) {
        IN_DECODER.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_per_thread_and_spans_nest() {
        assert_eq!(current(), (Stage::Other, false));
        let h = std::thread::spawn(|| {
            enter(Stage::Decode);
            let a = DecoderSpan::enter();
            let b = DecoderSpan::enter();
            drop(b);
            let inside = current();
            drop(a);
            (inside, current())
        });
        let (inside, after) = h.join().unwrap_or_else(|_| panic!("thread panicked"));
        assert_eq!(inside, (Stage::Decode, true));
        assert_eq!(after, (Stage::Decode, false));
        assert_eq!(current(), (Stage::Other, false));
        assert_eq!(Stage::of_thread("coordinator"), Stage::Coordinator);
        assert_eq!(Stage::of_thread("nope"), Stage::Other);
    }
}
