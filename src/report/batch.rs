//! What a batch report says, gathered from the data dir: the batch's EPCIS events in
//! the journal (counts, serials, expiry, time span and the pass/reject order), the unit
//! log (grades and reject reasons per unit, when the daemon wrote one), the exception
//! queue (rejects with their resolutions and e-signatures) and the audit trail (records
//! of the batch, of its exceptions and everything during it). Pure gathering and
//! arithmetic; writing files is `super`, the HTML is `super::html`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::ReportError;
use super::units::{self, UnitLine};
use crate::audit::Record;
use crate::hmi::exceptions::Exception;
use crate::journal::Journal;
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// One unit outcome in batch order, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Rejected (`false`: passed).
    pub rejected: bool,
    /// Grade letter, when known.
    pub grade: Option<char>,
}

/// The serial range of the commissioned units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SerialRange {
    /// Serials commissioned.
    pub count: u64,
    /// First in journal order.
    pub first: Option<String>,
    /// Last in journal order.
    pub last: Option<String>,
    /// Smallest and largest, when every serial is a decimal number (sequential
    /// serials); `None` for random serials.
    pub numeric_span: Option<(u128, u128)>,
    /// Numbers missing inside the span (sequential serials only).
    pub gaps: u128,
    /// The first missing ranges `(from, to)` inclusive, at most 20.
    pub gap_examples: Vec<(u128, u128)>,
}

/// An audit record with why it belongs to the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchAudit {
    /// `batch`, `exception` or `during batch`.
    pub link: &'static str,
    /// The record as stored.
    pub record: Record,
}

/// Everything the report shows about one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchFacts {
    /// The batch (lot).
    pub batch: String,
    /// The GTIN of its units (from the EPCs).
    pub gtin: Option<String>,
    /// Product name (from the profile, when given).
    pub product_name: Option<String>,
    /// Expiry date (ISO) from the commissioning events.
    pub expiry: Option<String>,
    /// First and last event time (ms since the Unix epoch).
    pub span_ms: Option<(i64, i64)>,
    /// Events of the batch in the journal.
    pub events: u64,
    /// Units commissioned (passed and recorded).
    pub commissioned: u64,
    /// Printed units rejected and destroyed.
    pub destroyed: u64,
    /// Codes loaded but never printed (invalidated).
    pub invalidated: u64,
    /// Printed units (commissioned + destroyed).
    pub printed: u64,
    /// Rejects by reason code (from the unit log, else the exception queue, else
    /// `unrecorded`).
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Where the reasons came from.
    pub reasons_source: &'static str,
    /// Unit outcomes in order (from the unit log, else from the journal's events).
    pub outcomes: Vec<Outcome>,
    /// Whether `outcomes` carry grades (a unit log was found).
    pub graded: bool,
    /// Exceptions of the batch, oldest first.
    pub exceptions: Vec<Exception>,
    /// Audit records of the batch.
    pub audit: Vec<BatchAudit>,
    /// Serial range summary.
    pub serials: SerialRange,
}

/// The serial of an EPC in digital-link (`…/21/<serial>`) or SGTIN URN form.
pub fn serial_of(epc: &str) -> Option<String> {
    if let Some((_, s)) = epc.rsplit_once("/21/") {
        let s = s.split(['?', '/']).next().unwrap_or(s);
        return Some(crate::gs1::percent_decode(s));
    }
    let rest = epc.strip_prefix("urn:epc:id:sgtin:")?;
    rest.splitn(3, '.').nth(2).map(crate::gs1::percent_decode)
}

/// The GTIN-14 of a digital-link EPC (`…/01/<gtin>/…`).
fn gtin_of(epc: &str) -> Option<String> {
    let (_, rest) = epc.split_once("/01/")?;
    rest.split('/').next().map(str::to_string)
}

/// The serial range of `serials` (journal order).
pub fn serial_range(serials: &[String]) -> SerialRange {
    let numeric: Option<Vec<u128>> = if serials.is_empty() {
        None
    } else {
        serials
            .iter()
            .map(|s| {
                if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() && s.len() <= 38 {
                    s.parse::<u128>().ok()
                } else {
                    None
                }
            })
            .collect()
    };
    let mut gaps = 0u128;
    let mut gap_examples = Vec::new();
    let numeric_span = numeric.map(|mut v| {
        v.sort_unstable();
        v.dedup();
        for w in v.windows(2) {
            if let [a, b] = w
                && *b > a + 1
            {
                gaps += b - a - 1;
                if gap_examples.len() < 20 {
                    gap_examples.push((a + 1, b - 1));
                }
            }
        }
        (
            v.first().copied().unwrap_or(0),
            v.last().copied().unwrap_or(0),
        )
    });
    SerialRange {
        count: serials.len() as u64,
        first: serials.first().cloned(),
        last: serials.last().cloned(),
        numeric_span,
        gaps,
        gap_examples,
    }
}

fn epcs(event: &Value) -> Vec<&str> {
    event
        .get("epcList")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Read the batch's facts from `data_dir` (journal already open as `journal`).
/// `Ok(None)`: the journal has no event of `batch`; the second value lists the
/// batches it has (at most 20).
pub fn gather(
    data_dir: &Path,
    journal: &Journal,
    batch: &str,
    product_name: Option<String>,
) -> Result<Result<BatchFacts, BTreeSet<String>>, ReportError> {
    let mut f = BatchFacts {
        batch: batch.to_string(),
        gtin: None,
        product_name,
        expiry: None,
        span_ms: None,
        events: 0,
        commissioned: 0,
        destroyed: 0,
        invalidated: 0,
        printed: 0,
        rejects_by_reason: BTreeMap::new(),
        reasons_source: "unrecorded",
        outcomes: Vec::new(),
        graded: false,
        exceptions: Vec::new(),
        audit: Vec::new(),
        serials: serial_range(&[]),
    };
    let mut others = BTreeSet::new();
    let mut serials = Vec::new();
    let mut journal_outcomes = Vec::new();
    let mut from = journal.first_seq();
    loop {
        let recs = journal.read_from(from, 1024)?;
        let Some(last) = recs.last().map(|r| r.seq) else {
            break;
        };
        from = last.next();
        for r in recs.into_iter().filter(|r| r.kind == EVENT_RECORD) {
            let rec = EventRecord::decode(r.seq, &r.payload)?;
            if rec.batch != batch {
                if others.len() < 20 {
                    others.insert(rec.batch);
                }
                continue;
            }
            let ev = &rec.event;
            f.events += 1;
            if let Some(ms) = ev
                .get("eventTime")
                .and_then(Value::as_str)
                .and_then(|t| crate::epcis::time::parse_to_utc_ms(t).ok())
            {
                f.span_ms = Some(match f.span_ms {
                    Some((a, b)) => (a.min(ms), b.max(ms)),
                    None => (ms, ms),
                });
            }
            let list = epcs(ev);
            if f.gtin.is_none() {
                f.gtin = list.first().and_then(|e| gtin_of(e));
            }
            let n = list.len() as u64;
            match ev.get("bizStep").and_then(Value::as_str).unwrap_or("") {
                "commissioning" => {
                    f.commissioned += n;
                    if f.expiry.is_none() {
                        f.expiry = ev
                            .pointer("/ilmd/cbvmda:itemExpirationDate")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                    serials.extend(list.iter().filter_map(|e| serial_of(e)));
                    journal_outcomes.extend((0..n).map(|_| Outcome {
                        rejected: false,
                        grade: None,
                    }));
                }
                "destroying" => {
                    f.destroyed += n;
                    journal_outcomes.extend((0..n).map(|_| Outcome {
                        rejected: true,
                        grade: None,
                    }));
                }
                _ => f.invalidated += n,
            }
        }
    }
    if f.events == 0 {
        return Ok(Err(others));
    }
    f.printed = f.commissioned + f.destroyed;
    f.serials = serial_range(&serials);

    let log: Vec<UnitLine> = units::read_lot(data_dir, batch).map_err(|e| ReportError::Io {
        what: "read the unit log",
        path: units::log_path(data_dir),
        source: e,
    })?;
    let exc_path = data_dir.join("hmi").join("exceptions.jsonl");
    if exc_path.is_file() {
        let store = crate::hmi::exceptions::Exceptions::open(&data_dir.join("hmi"))?;
        let mut ex: Vec<Exception> = store
            .list(usize::MAX)
            .into_iter()
            .filter(|e| e.lot.as_deref() == Some(batch))
            .collect();
        ex.sort_by_key(|e| e.id);
        f.exceptions = ex;
    }
    if !log.is_empty() {
        f.graded = true;
        f.reasons_source = "unit log";
        f.outcomes = log
            .iter()
            .map(|u| Outcome {
                rejected: u.verdict != "pass",
                grade: u.grade,
            })
            .collect();
        for u in log.iter().filter(|u| u.verdict != "pass") {
            *f.rejects_by_reason.entry(u.verdict.clone()).or_default() += 1;
        }
    } else {
        f.outcomes = journal_outcomes;
        if !f.exceptions.is_empty() {
            f.reasons_source = "exception queue";
            for e in &f.exceptions {
                *f.rejects_by_reason.entry(e.reason.clone()).or_default() += 1;
            }
        } else if f.destroyed > 0 {
            f.rejects_by_reason.insert("unrecorded".into(), f.destroyed);
        }
    }

    let trail = crate::audit::trail_dir(data_dir);
    if trail.is_dir() {
        let (records, report) = crate::audit::read_verified(&trail)?;
        if let Some(p) = report.problem {
            return Err(ReportError::AuditInconsistent(p.to_string()));
        }
        let ids: BTreeSet<String> = f
            .exceptions
            .iter()
            .map(|e| format!("exception:{}", e.id))
            .collect();
        let (start_us, end_us) = f
            .span_ms
            .map(|(a, b)| (a.max(0) as u64 * 1000, b.max(0) as u64 * 1000))
            .unwrap_or((u64::MAX, 0));
        let batch_obj = format!("batch:{batch}");
        for r in records {
            let link = if r.object == batch_obj {
                "batch"
            } else if ids.contains(&r.object) {
                "exception"
            } else if r.time_us >= start_us && r.time_us <= end_us {
                "during batch"
            } else {
                continue;
            };
            f.audit.push(BatchAudit { link, record: r });
        }
    }
    Ok(Ok(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_read_from_both_epc_forms() {
        assert_eq!(
            serial_of("https://id.gs1.org/01/09506000134352/21/AB%2FC1").as_deref(),
            Some("AB/C1")
        );
        assert_eq!(
            serial_of("urn:epc:id:sgtin:9506000.013435.X7").as_deref(),
            Some("X7")
        );
        assert_eq!(serial_of("urn:epc:id:sscc:1.2"), None);
        assert_eq!(
            gtin_of("https://id.gs1.org/01/09506000134352/21/X").as_deref(),
            Some("09506000134352")
        );
    }

    #[test]
    fn sequential_serials_report_their_gaps_and_random_ones_do_not() {
        let s: Vec<String> = ["100", "101", "104", "105", "107"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = serial_range(&s);
        assert_eq!(r.numeric_span, Some((100, 107)));
        assert_eq!(r.gaps, 3);
        assert_eq!(r.gap_examples, vec![(102, 103), (106, 106)]);
        let r = serial_range(&["X1".to_string(), "200".to_string()]);
        assert_eq!((r.numeric_span, r.gaps, r.count), (None, 0, 2));
        assert_eq!(r.first.as_deref(), Some("X1"));
    }
}
