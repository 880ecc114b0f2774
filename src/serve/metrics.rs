//! The Prometheus text exposition (format 0.0.4) of the line's status, served at
//! `/metrics`: units by verdict and reason, verdict latency and decode time as histograms, pool level,
//! journal backlog, device links and the PackML state. It owns the metric names
//! (`linectl_*`) and their rendering; the numbers come from the pipeline's
//! [`LineStatus`]; [`render_ops`] adds the journal size, upload backlog and pool
//! forecast of [`OpsGauges`].

use std::fmt::Write as _;

use super::gauges::OpsGauges;
use crate::packml::State;
use crate::pipeline::LineStatus;
use crate::pipeline::TimeHistogram;

/// Upper bounds (seconds) of the verdict latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One histogram's `_bucket`, `_sum` and `_count` samples, labelled `l`.
fn histogram(o: &mut String, name: &str, l: &str, h: &TimeHistogram) {
    for b in LATENCY_BUCKETS {
        let c = h.count_le((b * 1e6).round() as u64);
        let _ = writeln!(o, "{name}_bucket{{{l},le=\"{b}\"}} {c}");
    }
    let n = h.count();
    let _ = writeln!(o, "{name}_bucket{{{l},le=\"+Inf\"}} {n}");
    let _ = writeln!(o, "{name}_sum{{{l}}} {}", h.sum_us() as f64 / 1e6);
    let _ = writeln!(o, "{name}_count{{{l}}} {n}");
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
        "linectl_codes_late",
        "gauge",
        "Codes that reached the printer after their unit had passed it, in the current batch.",
    );
    let _ = writeln!(o, "linectl_codes_late{{{l}}} {}", s.late_codes);
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
    histogram(&mut o, "linectl_verdict_latency_seconds", &l, &s.latency);
    family(
        &mut o,
        "linectl_decode_seconds",
        "histogram",
        "Time the decoder spent on a unit's frame (locate, decode, grade).",
    );
    histogram(&mut o, "linectl_decode_seconds", &l, &s.decode_time);
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

/// Render the journal, upload backlog and pool forecast families of `g` (append to
/// [`render`]'s text). A family whose value is unknown is still declared (HELP/TYPE)
/// without a sample, so scrapers see every family.
pub fn render_ops(line: &str, g: &OpsGauges) -> String {
    let mut o = String::with_capacity(2048);
    let l = format!("line=\"{}\"", escape(line));
    let mut gauge = |name: &str, help: &str, value: Option<String>| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} gauge");
        if let Some(v) = value {
            let _ = writeln!(o, "{name}{{{l}}} {v}");
        }
    };
    gauge(
        "linectl_journal_bytes",
        "Bytes of all event journal segment files.",
        Some(g.journal_bytes.to_string()),
    );
    gauge(
        "linectl_journal_segments",
        "Event journal segment files.",
        Some(g.journal_segments.to_string()),
    );
    let up = g.upload.as_ref();
    gauge(
        "linectl_upload_backlog_events",
        "Events in the journal the uplink has not had confirmed by the site server.",
        up.map(|u| u.events.to_string()),
    );
    gauge(
        "linectl_upload_backlog_bytes",
        "Journal bytes of the unconfirmed events (upper bound within 64 records).",
        up.map(|u| u.bytes.to_string()),
    );
    gauge(
        "linectl_upload_backlog_oldest_age_seconds",
        "Age of the oldest unconfirmed event (0 when nothing is waiting).",
        up.map(|u| u.oldest_age_seconds.unwrap_or(0.0).to_string()),
    );
    let f = g.forecast.as_ref();
    gauge(
        "linectl_pool_forecast_seconds",
        "Seconds until the pool of the running GTIN runs out at the current line rate (+Inf when the line is not producing).",
        f.map(|f| match f.seconds_left {
            Some(s) => format!("{s:.1}"),
            None => "+Inf".to_string(),
        }),
    );
    gauge(
        "linectl_pool_forecast_rate_per_minute",
        "Line rate the forecast uses, units per minute.",
        f.map(|f| format!("{:.1}", f.rate_per_min)),
    );
    gauge(
        "linectl_pool_covers_batch",
        "1 when the pool holds at least the units the running batch still needs.",
        f.map(|f| u8::from(f.covers_batch).to_string()),
    );
    gauge(
        "linectl_pool_shortfall",
        "Serials missing to finish the running batch (0 when covered).",
        f.map(|f| f.shortfall.to_string()),
    );
    gauge(
        "linectl_pool_low_water",
        "1 when the pool is below the profile's low-water mark ([serials] low_water).",
        f.map(|f| u8::from(f.below_low_water).to_string()),
    );
    gauge(
        "linectl_pool_forecast_alarm",
        "1 when the pool runs dry within the forecast horizon the batch still needs.",
        f.map(|f| u8::from(f.alarm).to_string()),
    );
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
            s.decode_time.record(us / 10);
        }
        s.rejected.insert("no-read".into(), 2);
        let text = render("L1", &s);
        for fam in [
            "linectl_units_total",
            "linectl_commissioned_total",
            "linectl_journal_events_total",
            "linectl_verdict_latency_seconds",
            "linectl_decode_seconds",
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

    #[test]
    fn ops_families_are_rendered_and_unknown_values_declared_without_samples() {
        use super::super::gauges::{PoolForecast, UploadBacklog};
        let g = OpsGauges {
            journal_bytes: 4096,
            journal_segments: 2,
            upload: Some(UploadBacklog {
                events: 12,
                bytes: 3000,
                oldest_age_seconds: Some(4.5),
            }),
            forecast: Some(PoolForecast {
                available: 600,
                batch_remaining: 1000,
                rate_per_min: 120.0,
                seconds_left: Some(300.0),
                covers_batch: false,
                shortfall: 400,
                low_water: 1000,
                below_low_water: true,
                alarm: true,
            }),
        };
        let text = render_ops("L1", &g);
        for line in [
            "linectl_journal_bytes{line=\"L1\"} 4096",
            "linectl_upload_backlog_events{line=\"L1\"} 12",
            "linectl_upload_backlog_bytes{line=\"L1\"} 3000",
            "linectl_upload_backlog_oldest_age_seconds{line=\"L1\"} 4.5",
            "linectl_pool_forecast_seconds{line=\"L1\"} 300.0",
            "linectl_pool_covers_batch{line=\"L1\"} 0",
            "linectl_pool_shortfall{line=\"L1\"} 400",
            "linectl_pool_low_water{line=\"L1\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let empty = render_ops("L1", &OpsGauges::default());
        assert!(empty.contains("# TYPE linectl_pool_forecast_seconds gauge"));
        assert!(!empty.contains("linectl_pool_forecast_seconds{"));
        assert!(!empty.contains("linectl_upload_backlog_events{"));
    }
}
