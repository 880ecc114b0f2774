//! The run report: what the line did against the ground truth the simulator kept,
//! as JSON. Everything but `host` and the measured `latency_ms` is a function of the
//! profile, the options and the seed on a virtual clock. It owns the report's shape
//! and the host measurements (wall time, CPU, resident memory from `/proc`).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// Verdict latency percentiles, ms.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Samples.
    pub samples: usize,
}

impl Latency {
    /// Percentiles of the line's latency histogram (exact to its bucket).
    pub fn from_histogram(h: &linectl::pipeline::TimeHistogram) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.quantile_us(0.5)),
            p99: ms(h.quantile_us(0.99)),
            max: ms(h.max_us()),
            samples: h.count() as usize,
        }
    }

    /// Percentiles of samples in µs.
    pub fn from_micros(samples: &[u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let pick = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        Latency {
            p50: pick(0.50),
            p99: pick(0.99),
            max: v.last().copied().unwrap_or(0) as f64 / 1000.0,
            samples: v.len(),
        }
    }
}

/// The machine side of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Host {
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// CPU time (user + system) of the process during the run, s.
    pub cpu_s: f64,
    /// Peak resident memory of the process, MiB.
    pub max_rss_mib: f64,
    /// Logical CPUs.
    pub cpus: usize,
}

impl Host {
    /// Measure now, for a run that started at `wall0` with `cpu0` CPU seconds used.
    pub fn measure(wall0: Instant, cpu0: f64) -> Host {
        Host {
            wall_s: wall0.elapsed().as_secs_f64(),
            cpu_s: (cpu_seconds() - cpu0).max(0.0),
            max_rss_mib: max_rss_kib() as f64 / 1024.0,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// CPU seconds (user + system) used by this process so far (Linux `/proc`).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name in parentheses; utime and stime are the 14th and
    // 15th fields of the whole line, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn max_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What the simulated site server holds at the end of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SiteReport {
    /// Distinct eventIDs it holds.
    pub events: u64,
    /// EventIDs it refused as already held.
    pub duplicates_refused: u64,
    /// Distinct identifiers of commissioning events it holds.
    pub commissioned: u64,
    /// Serials linectl commissioned that the site server does not hold (must be 0).
    pub missing: u64,
    /// Events linectl journaled.
    pub journaled: u64,
    /// Events the uplink delivered (including refused duplicates).
    pub delivered: u64,
}

/// The report of one run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Units sent down the line.
    pub units: u64,
    /// Units the PLC let pass.
    pub passed: u64,
    /// Units the PLC rejected, by linectl's reason (`none`: no verdict from linectl).
    pub rejected: BTreeMap<String, u64>,
    /// Defects injected, by class.
    pub injected: BTreeMap<String, u64>,
    /// Faults injected, by class.
    pub injected_faults: BTreeMap<String, u64>,
    /// Good units (clean print of their own code) rejected while no fault was active.
    pub false_rejects: u64,
    /// Good units rejected because a fault was active (fail-safe rejects).
    pub fault_rejects: u64,
    /// Bad units (defect, nothing printed, another unit's code) that passed.
    pub missed_rejects: u64,
    /// Defective units rejected for another reason than their defect calls for.
    pub wrong_reason: u64,
    /// Serials printed on more than one unit, plus serials commissioned twice.
    pub duplicate_serials: u64,
    /// Prints the printer made.
    pub printed: u64,
    /// Units whose commissioning event is durable in linectl's journal.
    pub commissioned: u64,
    /// Times the line was Held and the operator resumed it.
    pub holds: u64,
    /// Codes that reached the printer only after their unit had passed it (linectl
    /// records them as never applied; a printer slower than the line).
    pub late_codes: u64,
    /// Verdict latency (frame in → verdict written to the PLC), ms; measured.
    pub latency_ms: Latency,
    /// The verdict deadline after the camera, ms.
    pub deadline_ms: f64,
    /// Wall time, CPU and memory; measured.
    pub host: Host,
    /// The simulated site server at the end of the run (with `site_server`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_server: Option<SiteReport>,
    /// The aggregation stations (with a profile that has `[aggregation]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<crate::aggregation::AggregationReport>,
    /// First units that passed although bad (for debugging).
    pub missed_units: Vec<u64>,
    /// First good units rejected outside faults.
    pub false_reject_units: Vec<u64>,
    /// First defective units rejected for the wrong reason: (unit, defect, reason).
    pub wrong_reason_units: Vec<(u64, String, String)>,
}

impl Report {
    /// The report without the measured parts (`host`, `latency_ms`, the aggregation's
    /// `case_check_ms`): equal for equal
    /// profile, options and seed on a virtual clock.
    pub fn deterministic_part(&self) -> Report {
        Report {
            host: Host::default(),
            latency_ms: Latency::default(),
            aggregation: self
                .aggregation
                .as_ref()
                .map(crate::aggregation::AggregationReport::deterministic_part),
            ..self.clone()
        }
    }
}
