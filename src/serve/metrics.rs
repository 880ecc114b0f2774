//! The Prometheus text exposition (format 0.0.4) of the line's status, served at
//! `/metrics`: units by verdict and reason, verdict latency as a histogram, pool level,
//! journal backlog, device links and the PackML state. It owns the metric names
//! (`linectl_*`) and their rendering; the numbers come from the pipeline's
//! [`LineStatus`].

use std::fmt::Write as _;

use crate::packml::State;
use crate::pipeline::LineStatus;

/// Upper bounds (seconds) of the verdict latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render `s` (and the line id as a label) as Prometheus text.
pub fn render(line: &str, s: &LineStatus) -> String {
    let mut o = String::with_capacity(4096);
    let l = format!("line=\"{}\"", escape(line));
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
    };
    family(
        &mut o,
        "linectl_units_total",
        "counter",
        "Units with a verdict in the current batch, by verdict and reject reason.",
    );
    let _ = writeln!(
        o,
        "linectl_units_total{{{l},verdict=\"pass\",reason=\"\"}} {}",
        s.passed
    );
    for (reason, n) in &s.rejected {
        let _ = writeln!(
            o,
            "linectl_units_total{{{l},verdict=\"reject\",reason=\"{}\"}} {n}",
            escape(reason)
        );
    }
    family(
        &mut o,
        "linectl_units_triggered",
        "gauge",
        "Units the PLC counted in the current batch.",
    );
    let _ = writeln!(o, "linectl_units_triggered{{{l}}} {}", s.triggered);
    family(
        &mut o,
        "linectl_units_printed",
        "gauge",
        "Prints the printer reported in the current batch.",
    );
    let _ = writeln!(o, "linectl_units_printed{{{l}}} {}", s.printed);
    family(
        &mut o,
        "linectl_commissioned_total",
        "counter",
        "Passed units whose commissioning event is durable in the journal.",
    );
    let _ = writeln!(o, "linectl_commissioned_total{{{l}}} {}", s.commissioned);
    family(
        &mut o,
        "linectl_journal_events_total",
        "counter",
        "Events made durable in the journal by this process.",
    );
    let _ = writeln!(o, "linectl_journal_events_total{{{l}}} {}", s.journaled);
    family(
        &mut o,
        "linectl_verdict_latency_seconds",
        "histogram",
        "Frame arrival to verdict written to the PLC.",
    );
    let sum = s.latency.sum_us() as f64 / 1e6;
    for b in LATENCY_BUCKETS {
        let c = s.latency.count_le((b * 1e6).round() as u64);
        let _ = writeln!(
            o,
            "linectl_verdict_latency_seconds_bucket{{{l},le=\"{b}\"}} {c}"
        );
    }
    let n = s.latency.count();
    let _ = writeln!(
        o,
        "linectl_verdict_latency_seconds_bucket{{{l},le=\"+Inf\"}} {n}"
    );
    let _ = writeln!(o, "linectl_verdict_latency_seconds_sum{{{l}}} {sum}");
    let _ = writeln!(o, "linectl_verdict_latency_seconds_count{{{l}}} {n}");
    family(
        &mut o,
        "linectl_pool_available",
        "gauge",
        "Serials left in the pool for the product (last known).",
    );
    if let Some(p) = s.pool_available {
        let _ = writeln!(o, "linectl_pool_available{{{l}}} {p}");
    }
    family(
        &mut o,
        "linectl_batch_remaining",
        "gauge",
        "Units the running batch still needs (the pool forecast compares it with the pool).",
    );
    let remaining = s
        .batch
        .as_ref()
        .map_or(0, |b| b.quantity.saturating_sub(s.inspected));
    let _ = writeln!(o, "linectl_batch_remaining{{{l}}} {remaining}");
    family(
        &mut o,
        "linectl_device_up",
        "gauge",
        "1 when the device link is up.",
    );
    for (dev, up) in [
        ("plc", s.links.plc),
        ("printer", s.links.printer),
        ("camera", s.links.camera),
    ] {
        let _ = writeln!(
            o,
            "linectl_device_up{{{l},device=\"{dev}\"}} {}",
            u8::from(up)
        );
    }
    family(
        &mut o,
        "linectl_packml_state",
        "gauge",
        "1 for the current PackML state.",
    );
    for st in State::ALL {
        let _ = writeln!(
            o,
            "linectl_packml_state{{{l},state=\"{}\"}} {}",
            st.name(),
            u8::from(st.name() == s.state)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_help_and_type() {
        let mut s = LineStatus {
            state: "Execute".into(),
            passed: 7,
            pool_available: Some(100),
            ..LineStatus::default()
        };
        for us in [500, 1500, 30_000, 2_000_000] {
            s.latency.record(us);
        }
        s.rejected.insert("no-read".into(), 2);
        let text = render("L1", &s);
        for fam in [
            "linectl_units_total",
            "linectl_commissioned_total",
            "linectl_journal_events_total",
            "linectl_verdict_latency_seconds",
            "linectl_pool_available",
            "linectl_batch_remaining",
            "linectl_device_up",
            "linectl_packml_state",
        ] {
            assert!(
                text.contains(&format!("# TYPE {fam} ")),
                "{fam} missing:\n{text}"
            );
        }
        assert!(
            text.contains(
                "linectl_units_total{line=\"L1\",verdict=\"reject\",reason=\"no-read\"} 2"
            )
        );
        assert!(text.contains("linectl_packml_state{line=\"L1\",state=\"Execute\"} 1"));
        assert!(
            text.contains("linectl_verdict_latency_seconds_bucket{line=\"L1\",le=\"0.001\"} 1")
        );
        assert!(text.contains("linectl_verdict_latency_seconds_bucket{line=\"L1\",le=\"+Inf\"} 4"));
        assert!(text.contains("linectl_verdict_latency_seconds_count{line=\"L1\"} 4"));
    }
}
