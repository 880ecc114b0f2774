//! Thread role tags for allocation accounting: each pipeline thread records which stage
//! it is (plc, printer, camera, decode worker, recorder, coordinator) in a thread-local,
//! and spans mark where a thread runs code that is not the pipeline's own (the
//! third-party DataMatrix reader, clock alarms, device drivers, storage, event building,
//! and inside storage the third-party sled store).
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

/// Whose code a thread is running inside (the innermost span wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Inside {
    /// The pipeline's own code.
    Own = 0,
    /// The third-party DataMatrix reader (rxing) and the preprocessing feeding it.
    Decoder = 1,
    /// A clock alarm being set up (`Clock::alarm`, crate::clock).
    Clock = 2,
    /// A device driver call (PLC, printer, camera I/O).
    Driver = 3,
    /// The serial pool or the event journal (sled, files).
    Storage = 4,
    /// Building an EPCIS event and its journal record (crate::epcis, crate::uplink).
    Events = 5,
    /// Inside sled, the third-party store under the serial pool (crate::pool::store).
    Sled = 6,
}

impl Inside {
    /// Every kind, by tag value.
    pub const ALL: [Inside; 7] = [
        Inside::Own,
        Inside::Decoder,
        Inside::Clock,
        Inside::Driver,
        Inside::Storage,
        Inside::Events,
        Inside::Sled,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Inside::Own => "own",
            Inside::Decoder => "decoder",
            Inside::Clock => "clock",
            Inside::Driver => "driver",
            Inside::Storage => "storage",
            Inside::Events => "events",
            Inside::Sled => "sled",
        }
    }
}

thread_local! {
    static STAGE: Cell<u8> = const { Cell::new(0) };
    static INSIDE: Cell<u8> = const { Cell::new(0) };
}

/// Tag the calling thread as running `stage`.
pub(crate) fn enter(stage: Stage) {
    STAGE.with(|s| s.set(stage as u8));
}

/// The calling thread's stage, and whose code it runs now.
pub fn current() -> (Stage, Inside) {
    let stage = STAGE.with(Cell::get);
    let inside = INSIDE.with(Cell::get);
    (
        Stage::ALL
            .get(usize::from(stage))
            .copied()
            .unwrap_or(Stage::Other),
        Inside::ALL
            .get(usize::from(inside))
            .copied()
            .unwrap_or(Inside::Own),
    )
}

/// Marks the calling thread as inside `kind` until dropped (then the enclosing kind).
pub(crate) struct Span(u8);

impl Span {
    pub(crate) fn enter(kind: Inside) -> Span {
        Span(INSIDE.with(|c| c.replace(kind as u8)))
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        INSIDE.with(|c| c.set(self.0));
    }
}

/// Run `f` inside `kind`.
pub(crate) fn inside<R>(kind: Inside, f: impl FnOnce() -> R) -> R {
    let _span = Span::enter(kind);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_per_thread_and_spans_nest() {
        assert_eq!(current(), (Stage::Other, Inside::Own));
        let h = std::thread::spawn(|| {
            enter(Stage::Decode);
            let a = Span::enter(Inside::Decoder);
            let b = Span::enter(Inside::Clock);
            let innermost = current();
            drop(b);
            let inside = current();
            drop(a);
            (innermost, inside, current())
        });
        let (innermost, inside, after) = h.join().unwrap_or_else(|_| panic!("thread panicked"));
        assert_eq!(innermost, (Stage::Decode, Inside::Clock));
        assert_eq!(inside, (Stage::Decode, Inside::Decoder));
        assert_eq!(after, (Stage::Decode, Inside::Own));
        assert_eq!(current(), (Stage::Other, Inside::Own));
        assert_eq!(Stage::of_thread("coordinator"), Stage::Coordinator);
        assert_eq!(Stage::of_thread("nope"), Stage::Other);
    }
}
