//! The audit-ready batch report as one self-contained HTML file (`report.html`): no
//! external resources, print CSS for A4, inline SVG charts, markup that is also
//! well-formed XML (every element closed, attributes quoted) so it parses as XHTML.
//! Presentation only: the numbers come from [`BatchFacts`].

use std::fmt::Write as _;

use super::batch::{BatchFacts, Outcome};
use crate::audit::time::format_utc;

/// Escape text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "
@page{size:A4;margin:14mm 12mm}
body{font:10pt/1.35 'DejaVu Sans',Arial,sans-serif;color:#111;margin:0 auto;max-width:186mm}
h1{font-size:17pt;margin:0 0 2mm}h2{font-size:12.5pt;margin:6mm 0 2mm;border-bottom:1px solid #888;break-after:avoid}
table{border-collapse:collapse;width:100%;margin:1mm 0 3mm}th,td{border:1px solid #999;padding:1mm 1.5mm;text-align:left;vertical-align:top;overflow-wrap:anywhere}
table.log{table-layout:fixed;font-size:8.5pt}
th{background:#e8ecf0}thead{display:table-header-group}tr{break-inside:avoid}
td.n,th.n{text-align:right}.kv th{width:45mm}.small{font-size:8pt;color:#444}
figure{margin:2mm 0 4mm;break-inside:avoid}figcaption{font-size:9pt;color:#333}
.chart{width:100%;height:auto}.warn{color:#b00020;font-weight:bold}
@media print{a{color:inherit;text-decoration:none}}
";

fn grade_color(g: Option<char>) -> &'static str {
    match g {
        Some('A') => "#1a7f37",
        Some('B') => "#56a64b",
        Some('C') => "#d4a72c",
        Some('D') => "#e06c00",
        Some('F') => "#b00020",
        _ => "#9aa0a6",
    }
}

/// Split `n` items into at most `max` consecutive buckets: `(start, end)` index ranges.
pub fn buckets(n: usize, max: usize) -> Vec<(usize, usize)> {
    if n == 0 || max == 0 {
        return Vec::new();
    }
    let k = n.min(max);
    (0..k).map(|i| (i * n / k, (i + 1) * n / k)).collect()
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;

fn axes(o: &mut String, y_label: &str, n: usize) {
    let _ = write!(
        o,
        "<line x1=\"{LEFT}\" y1=\"10\" x2=\"{LEFT}\" y2=\"{y0}\" stroke=\"#333\"/><line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{W}\" y2=\"{y0}\" stroke=\"#333\"/>\
<text x=\"4\" y=\"14\" font-size=\"10\">{}</text><text x=\"{LEFT}\" y=\"{yl}\" font-size=\"10\">unit 1</text><text x=\"{xr}\" y=\"{yl}\" font-size=\"10\" text-anchor=\"end\">unit {n}</text>",
        esc(y_label),
        y0 = H - BOTTOM,
        yl = H - 8.0,
        xr = W,
    );
}

/// Stacked bars of the grade shares per bucket of units.
pub fn grade_chart(outcomes: &[Outcome]) -> String {
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"grade distribution over the batch\">"
    );
    axes(&mut o, "share of units by grade", outcomes.len());
    let bs = buckets(outcomes.len(), 24);
    let plot_h = H - BOTTOM - 10.0;
    let bw = (W - LEFT - 4.0) / bs.len().max(1) as f64;
    for (i, (a, b)) in bs.iter().enumerate() {
        let slice = outcomes.get(*a..*b).unwrap_or(&[]);
        let total = slice.len().max(1) as f64;
        let mut y = H - BOTTOM;
        for g in [Some('A'), Some('B'), Some('C'), Some('D'), Some('F'), None] {
            let c = slice.iter().filter(|u| u.grade == g).count();
            if c == 0 {
                continue;
            }
            let h = plot_h * c as f64 / total;
            y -= h;
            let _ = write!(
                o,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>units {}–{}: {} × {}</title></rect>",
                LEFT + 2.0 + i as f64 * bw,
                (bw - 2.0).max(1.0),
                grade_color(g),
                a + 1,
                b,
                c,
                g.map_or("ungraded".to_string(), |g| format!("grade {g}"))
            );
        }
    }
    let mut x = LEFT + 260.0;
    for g in [Some('A'), Some('B'), Some('C'), Some('D'), Some('F'), None] {
        let _ = write!(
            o,
            "<rect x=\"{x}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"13\" font-size=\"10\">{}</text>",
            grade_color(g),
            x + 13.0,
            g.map_or("none".to_string(), |g| g.to_string())
        );
        x += 52.0;
    }
    o.push_str("</svg>");
    o
}

/// Bars of the reject rate (%) per bucket of units.
pub fn reject_chart(outcomes: &[Outcome]) -> (String, f64) {
    let bs = buckets(outcomes.len(), 24);
    let rates: Vec<f64> = bs
        .iter()
        .map(|(a, b)| {
            let s = outcomes.get(*a..*b).unwrap_or(&[]);
            100.0 * s.iter().filter(|u| u.rejected).count() as f64 / s.len().max(1) as f64
        })
        .collect();
    let peak = rates.iter().copied().fold(0.0f64, f64::max);
    let top = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .find(|t| *t >= peak)
        .unwrap_or(100.0);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"reject rate over the batch\">"
    );
    axes(
        &mut o,
        &format!("reject rate, % (top of scale {top} %)"),
        outcomes.len(),
    );
    let plot_h = H - BOTTOM - 10.0;
    let bw = (W - LEFT - 4.0) / bs.len().max(1) as f64;
    for (i, ((a, b), r)) in bs.iter().zip(&rates).enumerate() {
        let h = plot_h * r / top;
        let _ = write!(
            o,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#b00020\"><title>units {}–{}: {r:.2} %</title></rect>",
            LEFT + 2.0 + i as f64 * bw,
            H - BOTTOM - h,
            (bw - 2.0).max(1.0),
            a + 1,
            b
        );
    }
    o.push_str("</svg>");
    (o, peak)
}

fn ms_utc(ms: i64) -> String {
    format_utc(u64::try_from(ms).unwrap_or(0).saturating_mul(1000))
}

/// The whole report. `generated_us` is the generation time (µs since the Unix epoch).
pub fn render(f: &BatchFacts, generated_us: u64, files: &[&str]) -> String {
    let mut b = String::with_capacity(64 * 1024);
    let rejected = f.destroyed;
    let rate = if f.printed > 0 {
        100.0 * rejected as f64 / f.printed as f64
    } else {
        0.0
    };
    let _ = write!(
        b,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>\
<title>Batch report {}</title><style>{CSS}</style></head><body>\
<h1>Batch report — batch {}</h1><p class=\"small\">Generated {} by linectl {} from the line's data directory.</p>",
        esc(&f.batch),
        esc(&f.batch),
        format_utc(generated_us),
        env!("CARGO_PKG_VERSION"),
    );
    let opt = |v: &Option<String>| v.as_deref().map_or("—".to_string(), esc);
    let span = f
        .span_ms
        .map(|(a, z)| format!("{} to {}", ms_utc(a), ms_utc(z)))
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        b,
        "<h2>Product and batch</h2><table class=\"kv\" id=\"product\"><tbody>\
<tr><th>Product</th><td>{}</td></tr><tr><th>GTIN</th><td>{}</td></tr>\
<tr><th>Batch / lot</th><td id=\"batch\">{}</td></tr><tr><th>Expiry</th><td id=\"expiry\">{}</td></tr>\
<tr><th>Production (event times, UTC)</th><td>{span}</td></tr><tr><th>EPCIS events</th><td>{}</td></tr></tbody></table>",
        opt(&f.product_name),
        opt(&f.gtin),
        esc(&f.batch),
        opt(&f.expiry),
        f.events
    );
    let _ = write!(
        b,
        "<h2>Counts</h2><table id=\"counts\"><thead><tr><th>Printed</th><th>Commissioned (passed)</th><th>Rejected (destroyed)</th><th>Codes invalidated (never printed)</th><th>Reject rate</th></tr></thead>\
<tbody><tr><td class=\"n\" id=\"printed\">{}</td><td class=\"n\" id=\"commissioned\">{}</td><td class=\"n\" id=\"rejected\">{rejected}</td><td class=\"n\" id=\"invalidated\">{}</td><td class=\"n\">{rate:.2} %</td></tr></tbody></table>",
        f.printed, f.commissioned, f.invalidated
    );
    let _ = write!(
        b,
        "<h2>Rejects by reason</h2><table id=\"reasons\"><thead><tr><th>Reason</th><th class=\"n\">Units</th></tr></thead><tbody>"
    );
    if f.rejects_by_reason.is_empty() {
        b.push_str("<tr><td colspan=\"2\">No rejects.</td></tr>");
    }
    for (k, v) in &f.rejects_by_reason {
        let _ = write!(b, "<tr><td>{}</td><td class=\"n\">{v}</td></tr>", esc(k));
    }
    let _ = write!(
        b,
        "</tbody></table><p class=\"small\">Reasons from the {}.</p>",
        f.reasons_source
    );
    b.push_str("<h2>Over the batch</h2>");
    if f.graded {
        let _ = write!(
            b,
            "<figure id=\"grade-chart\">{}<figcaption>Verification grade (ISO/IEC 15415) of the units, share per group of consecutive units.</figcaption></figure>",
            grade_chart(&f.outcomes)
        );
    } else {
        b.push_str("<p id=\"grade-chart\">No per-unit grade log (report/units.jsonl) for this batch in the data directory: grades of passed units were not recorded.</p>");
    }
    let (chart, peak) = reject_chart(&f.outcomes);
    let _ = write!(
        b,
        "<figure id=\"reject-chart\">{chart}<figcaption>Reject rate per group of consecutive units ({} units{}); highest group {peak:.2} %.</figcaption></figure>",
        f.outcomes.len(),
        if f.graded {
            ""
        } else {
            ", order of the journal's events"
        }
    );
    let s = &f.serials;
    let _ = write!(
        b,
        "<h2>Serial numbers</h2><table class=\"kv\" id=\"serials\"><tbody><tr><th>Commissioned serials</th><td>{}</td></tr>\
<tr><th>First (journal order)</th><td>{}</td></tr><tr><th>Last (journal order)</th><td>{}</td></tr>",
        s.count,
        opt(&s.first),
        opt(&s.last)
    );
    match s.numeric_span {
        Some((lo, hi)) => {
            let _ = write!(
                b,
                "<tr><th>Numeric range</th><td>{lo} – {hi}</td></tr><tr><th>Gaps in the range</th><td>{}{}</td></tr>",
                s.gaps,
                if s.gap_examples.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (first: {})",
                        s.gap_examples
                            .iter()
                            .map(|(a, z)| if a == z {
                                a.to_string()
                            } else {
                                format!("{a}–{z}")
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        None => b.push_str(
            "<tr><th>Range</th><td>Random (non-sequential) serials: no numeric range or gaps apply.</td></tr>",
        ),
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>Exceptions ({})</h2><table class=\"log\" id=\"exceptions\"><thead><tr><th>#</th><th>Time (UTC)</th><th>Unit</th><th>Serial</th><th>Reason</th><th>Detail</th><th>Grade</th><th>Resolution</th></tr></thead><tbody>",
        f.exceptions.len()
    );
    if f.exceptions.is_empty() {
        b.push_str("<tr><td colspan=\"8\">No exceptions recorded for this batch.</td></tr>");
    }
    for e in &f.exceptions {
        let res = match &e.resolution {
            Some(r) => format!(
                "{} by {} at {}{}",
                esc(&r.reason),
                esc(&r.by),
                format_utc(r.time_us),
                r.signed_by
                    .as_ref()
                    .map(|s| format!("; e-signed by {}", esc(s)))
                    .unwrap_or_default()
            ),
            None => "<span class=\"warn\">OPEN</span>".into(),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{res}</td></tr>",
            e.id,
            format_utc(e.time_us),
            e.unit,
            opt(&e.serial),
            esc(&e.reason),
            esc(&e.detail),
            e.grade.map_or("—".to_string(), |g| g.to_string()),
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>Audit trail ({} records)</h2><table class=\"log\" id=\"audit\"><thead><tr><th>Seq</th><th>Time (UTC)</th><th>User (role)</th><th>Action</th><th>Object</th><th>What / why</th><th>Old → new</th><th>E-signature</th></tr></thead><tbody>",
        f.audit.len()
    );
    if f.audit.is_empty() {
        b.push_str("<tr><td colspan=\"8\">No audit records for this batch.</td></tr>");
    }
    for a in &f.audit {
        let r = &a.record;
        let change = match (&r.old_value, &r.new_value) {
            (None, None) => String::new(),
            (o, n) => format!(
                "{} → {}",
                o.as_deref().map_or("—".into(), esc),
                n.as_deref().map_or("—".into(), esc)
            ),
        };
        let sig = r
            .signature
            .as_ref()
            .map(|s| {
                format!(
                    "{} ({}), {}, {}",
                    esc(&s.signer),
                    esc(&s.signer_role),
                    esc(&s.meaning.to_string()),
                    format_utc(s.time_us)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}{}</td><td>{change}</td><td>{sig}</td></tr>",
            r.seq,
            format_utc(r.time_us),
            esc(&r.user),
            esc(&r.role),
            esc(r.action.as_str()),
            esc(&r.object),
            esc(&r.detail),
            if r.reason.is_empty() {
                String::new()
            } else {
                format!(" — {}", esc(&r.reason))
            },
        );
    }
    let _ = writeln!(
        b,
        "</tbody></table><p class=\"small\">Audit records linked to the batch, to its exceptions, or written during its production; the trail's hash chain was verified when this report was made. Files of this export: {}.</p></body></html>",
        files.iter().map(|f| esc(f)).collect::<Vec<_>>().join(", ")
    );
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_unit_once() {
        for n in [0usize, 1, 5, 24, 25, 1000] {
            let b = buckets(n, 24);
            assert_eq!(b.iter().map(|(a, z)| z - a).sum::<usize>(), n);
            assert!(b.windows(2).all(|w| w[0].1 == w[1].0));
            assert!(b.len() <= 24);
        }
    }

    #[test]
    fn the_reject_chart_scales_to_the_peak() {
        let mut o = vec![
            Outcome {
                rejected: false,
                grade: Some('A')
            };
            90
        ];
        o.extend(vec![
            Outcome {
                rejected: true,
                grade: Some('F')
            };
            10
        ]);
        let (svg, peak) = reject_chart(&o);
        assert!(peak > 50.0, "{peak}");
        assert!(svg.contains("top of scale 100 %"));
        assert!(grade_chart(&o).contains("#b00020"));
        assert_eq!(esc("<a&\"'>"), "&lt;a&amp;&quot;&#39;&gt;");
    }
}
