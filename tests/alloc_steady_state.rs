//! Allocations per unit in the pipeline's steady state, measured with a counting global
//! allocator over a whole simulated line (hil-sim's PLC, printer and camera over
//! loopback sockets, virtual clock). Every allocation is attributed to the pipeline
//! stage of the thread that made it (`linectl::pipeline::probe`) and, on the decode
//! workers, to "inside the DataMatrix reader" (rxing, which we cannot change) or not.
//!
//! Steady state is the difference of two runs that differ only in their unit count:
//! start-up, batch start and shutdown cost the same in both, so what is left is what the
//! extra units cost. The test asserts that the decode workers allocate nothing per unit
//! outside the reader, and that the PLC, camera and decode stages' own code allocates
//! nothing per unit; it prints the whole breakdown (`--nocapture`), and with
//! `LINECTL_ALLOC_TRACE=coordinator,printer:driver` it samples backtraces of those
//! stages' own allocations (or those inside the named span) to stderr.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use linectl::pipeline::probe::{self, Inside, Stage};

struct Counting;

const STAGES: usize = Stage::ALL.len();
const KINDS: usize = Inside::ALL.len();

/// `[stage][whose code]` allocation (and reallocation) counts and bytes.
static COUNTS: [[AtomicU64; KINDS]; STAGES] =
    [const { [const { AtomicU64::new(0) }; KINDS] }; STAGES];
static BYTES: [[AtomicU64; KINDS]; STAGES] =
    [const { [const { AtomicU64::new(0) }; KINDS] }; STAGES];

thread_local! {
    /// Set while this thread records a trace (its own allocations are not counted).
    static TRACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// (Stage, whose code) pairs whose allocations are sampled with a backtrace
/// (`LINECTL_ALLOC_TRACE`), one bit per pair.
static TRACE_STAGE: AtomicU64 = AtomicU64::new(0);
/// Allocations of each traced pair so far in the traced run, and how many of them to
/// pass over before sampling (as many as a whole short run made: start-up and the
/// first units), so that the samples come from the steady state.
static TRACE_SEEN: [[AtomicU64; KINDS]; STAGES] =
    [const { [const { AtomicU64::new(0) }; KINDS] }; STAGES];
static TRACE_SKIP: [[AtomicU64; KINDS]; STAGES] =
    [const { [const { AtomicU64::new(0) }; KINDS] }; STAGES];

fn count(size: usize) {
    if TRACING.with(std::cell::Cell::get) {
        return;
    }
    let (stage, inside) = probe::current();
    let (i, k) = (stage as usize, inside as usize);
    if TRACE_STAGE.load(Ordering::Relaxed) & (1 << (i * KINDS + k)) != 0
        && let (Some(seen), Some(skip)) = (
            TRACE_SEEN.get(i).and_then(|r| r.get(k)),
            TRACE_SKIP.get(i).and_then(|r| r.get(k)),
        )
        && seen
            .fetch_add(1, Ordering::Relaxed)
            .checked_sub(skip.load(Ordering::Relaxed))
            .is_some_and(|n| n.is_multiple_of(97))
    {
        TRACING.with(|t| t.set(true));
        eprintln!(
            "--- {} {} allocation of {size} bytes:\n{}",
            stage.name(),
            inside.name(),
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.with(|t| t.set(false));
    }
    if let (Some(c), Some(b)) = (
        COUNTS.get(i).and_then(|r| r.get(k)),
        BYTES.get(i).and_then(|r| r.get(k)),
    ) {
        c.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only atomics
// and allocation-free thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Snapshot = [[(u64, u64); KINDS]; STAGES];

fn snapshot() -> Snapshot {
    let mut s = [[(0, 0); KINDS]; STAGES];
    for (i, row) in s.iter_mut().enumerate() {
        for (inside, cell) in row.iter_mut().enumerate() {
            *cell = (
                COUNTS[i][inside].load(Ordering::Relaxed),
                BYTES[i][inside].load(Ordering::Relaxed),
            );
        }
    }
    s
}

fn diff(after: &Snapshot, before: &Snapshot) -> Snapshot {
    let mut d = [[(0, 0); KINDS]; STAGES];
    for i in 0..STAGES {
        for k in 0..KINDS {
            d[i][k] = (
                after[i][k].0.saturating_sub(before[i][k].0),
                after[i][k].1.saturating_sub(before[i][k].1),
            );
        }
    }
    d
}

/// Allocations of one run of `units` units.
fn run(units: u64) -> Snapshot {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("line-profiles/eu-fmd-carton.toml");
    let profile = linectl::profile::Profile::load_with_env(&p, Some(Default::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let opts = hil_sim::line::SimOptions {
        profile,
        units,
        rate_upm: None,
        defects: "0".parse().unwrap_or_else(|e| panic!("{e}")),
        faults: "0".parse().unwrap_or_else(|e| panic!("{e}")),
        seed: 3,
        realtime: false,
        data_dir: dir.path().to_path_buf(),
        printer_transport: hil_sim::line::PrinterTransport::Tcp,
        frame: (1280, 960),
        progress: false,
        status_listen: None,
        stop: None,
        site_server: false,
        site_url: None,
    };
    let before = snapshot();
    let report = hil_sim::line::run(&opts).unwrap_or_else(|e| panic!("{e}"));
    let after = snapshot();
    assert_eq!(report.passed, units, "every unit must pass");
    diff(&after, &before)
}

#[test]
fn the_pipeline_allocates_nothing_per_unit_outside_the_decoder() {
    const SHORT: u64 = 150;
    const LONG: u64 = 450;
    // One run first: process-wide one-time initialisation (tracing call sites, lazy
    // statics, the thread pools of the simulator) is then out of the way.
    let _ = run(SHORT);
    let a = run(SHORT);
    if let Ok(names) = std::env::var("LINECTL_ALLOC_TRACE") {
        // `stage` (its own code) or `stage:kind`, comma-separated.
        let mut mask = 0u64;
        for s in Stage::ALL {
            for k in Inside::ALL {
                let full = format!("{}:{}", s.name(), k.name());
                if names
                    .split(',')
                    .any(|n| n == full || (k == Inside::Own && n == s.name()))
                {
                    mask |= 1 << (s as usize * KINDS + k as usize);
                    TRACE_SKIP[s as usize][k as usize]
                        .store(a[s as usize][k as usize].0, Ordering::Relaxed);
                }
            }
        }
        TRACE_STAGE.store(mask, Ordering::Relaxed);
    }
    let b = run(LONG);
    TRACE_STAGE.store(0, Ordering::Relaxed);
    let per = diff(&b, &a);
    let n = (LONG - SHORT) as f64;
    println!(
        "allocations per unit in steady state ({} units), by thread stage and whose code:",
        LONG - SHORT
    );
    print!("{:<12}", "stage");
    for k in Inside::ALL {
        print!(" {:>9}", k.name());
    }
    println!(" {:>14}", "own bytes");
    let mut totals = [0u64; KINDS];
    for s in Stage::ALL {
        print!("{:<12}", s.name());
        for k in Inside::ALL {
            let c = per[s as usize][k as usize].0;
            if s != Stage::Other {
                totals[k as usize] += c;
            }
            print!(" {:>9.2}", c as f64 / n);
        }
        println!(" {:>14.0}", per[s as usize][0].1 as f64 / n);
    }
    print!("{:<12}", "pipeline");
    for t in totals {
        print!(" {:>9.2}", t as f64 / n);
    }
    println!();
    let extra = LONG - SHORT;
    // Strictly: a decode worker allocates nothing per unit outside the DataMatrix reader
    // (frames, grading scratch, replies and outcomes are all reused or inline).
    for k in Inside::ALL {
        if k == Inside::Decoder {
            continue;
        }
        let c = per[Stage::Decode as usize][k as usize].0;
        assert_eq!(
            c,
            0,
            "decode workers: {c} allocations ({}) in {extra} units",
            k.name()
        );
    }
    // The pipeline's own code on the frame path and the PLC thread allocates nothing per
    // unit (what remains there is inside clock alarms and the Modbus client, printed
    // above).
    for s in [Stage::Plc, Stage::Camera, Stage::Decode] {
        let own = per[s as usize][Inside::Own as usize];
        assert_eq!(
            own.0,
            0,
            "the {} stage's own code made {} allocations ({} bytes) in {extra} units",
            s.name(),
            own.0,
            own.1
        );
    }
}
