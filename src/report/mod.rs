//! The batch export behind `linectl export --batch B DIR`: it writes into `DIR` the
//! batch's EPCIS 2.0 document (`epcis.json`, the journal's events of the batch through
//! [`crate::uplink::export`]), its audit records (`audit.csv` and `audit.json`), its
//! exception list (`exceptions.json`, `exceptions.csv`), a machine-readable summary
//! (`summary.json`) and the audit-ready report (`report.html`, see [`html`]). An
//! unknown batch is refused before anything is written; a non-empty `DIR` is refused
//! unless `force` is set (then only these files are replaced). It also owns the
//! per-unit outcome log the report charts ([`units`]).
//!
//! Not owned here: opening the journal (the caller does, so a running daemon's lock is
//! reported by the CLI) and the formats of the sources.

pub mod batch;
pub mod html;
pub mod units;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::journal::{Journal, JournalError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The journal could not be read.
    #[error("event journal: {0}")]
    Journal(#[from] JournalError),
    /// A journal record is not an event record.
    #[error(transparent)]
    Record(#[from] crate::uplink::record::RecordError),
    /// The EPCIS document could not be written.
    #[error("EPCIS document: {0}")]
    Epcis(#[from] crate::uplink::export::ExportError),
    /// The exception store could not be read.
    #[error("exception queue: {0}")]
    Exceptions(#[from] crate::hmi::exceptions::ExceptionError),
    /// The audit trail could not be read.
    #[error("audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The audit trail's chain is broken: no report is made over it.
    #[error("the audit trail is INCONSISTENT ({0}); run `linectl audit verify` — no report made")]
    AuditInconsistent(String),
    /// The batch has no event in the journal.
    #[error("no events of batch {batch:?} in the journal (batches present: {present})")]
    UnknownBatch {
        /// The batch asked for.
        batch: String,
        /// Batches present, comma-separated, or "none".
        present: String,
    },
    /// The output directory holds files already.
    #[error("{} exists and is not empty; choose an empty directory or pass --force", .0.display())]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Export settings.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Product name for the report (from the line profile), if known.
    pub product_name: Option<String>,
    /// Replace the export files in a non-empty directory.
    pub force: bool,
    /// `creationDate` of the EPCIS document and the report's time (µs since the epoch).
    pub now_us: u64,
}

/// The files an export writes, in this order.
pub const FILES: [&str; 7] = [
    "epcis.json",
    "audit.csv",
    "audit.json",
    "exceptions.json",
    "exceptions.csv",
    "summary.json",
    "report.html",
];

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The batch.
    pub batch: String,
    /// EPCIS events in `epcis.json`.
    pub events: u64,
    /// Printed units.
    pub printed: u64,
    /// Commissioned units.
    pub commissioned: u64,
    /// Rejected (destroyed) units.
    pub rejected: u64,
    /// Codes invalidated without printing.
    pub invalidated: u64,
    /// Rejects by reason.
    pub rejects_by_reason: std::collections::BTreeMap<String, u64>,
    /// Exceptions of the batch.
    pub exceptions: u64,
    /// Of those, still open.
    pub open_exceptions: u64,
    /// Audit records exported.
    pub audit_records: u64,
    /// Serials commissioned and the gaps in a sequential range.
    pub serials: batch::SerialRange,
    /// The files written.
    pub files: Vec<String>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.to_path_buf();
    move |source| ReportError::Io { what, path, source }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let mut f = std::fs::File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("fsync", path))
}

/// Export `batch` from `data_dir` (whose journal is open as `journal`) into `out`.
pub fn export_batch(
    data_dir: &Path,
    journal: &Journal,
    batch: &str,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ReportError> {
    if !opts.force
        && let Ok(mut entries) = std::fs::read_dir(out)
        && entries.next().is_some()
    {
        return Err(ReportError::NotEmpty(out.to_path_buf()));
    }
    let facts = match batch::gather(data_dir, journal, batch, opts.product_name.clone())? {
        Ok(f) => f,
        Err(present) => {
            return Err(ReportError::UnknownBatch {
                batch: batch.to_string(),
                present: join_or_none(&present),
            });
        }
    };
    std::fs::create_dir_all(out).map_err(io("create directory", out))?;

    let creation = crate::epcis::EventTime::from_wall_micros(opts.now_us, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| crate::audit::time::format_utc(opts.now_us));
    let epcis = out.join("epcis.json");
    let mut buf = Vec::new();
    let doc = crate::uplink::export::export_document(journal, Some(batch), &creation, &mut buf)?;
    write_file(&epcis, &buf)?;

    let records: Vec<&crate::audit::Record> = facts.audit.iter().map(|a| &a.record).collect();
    let mut csv = Vec::new();
    crate::audit::write_csv(records.iter().copied(), &mut csv).map_err(|e| ReportError::Io {
        what: "write",
        path: out.join("audit.csv"),
        source: std::io::Error::other(e),
    })?;
    write_file(&out.join("audit.csv"), &csv)?;
    let json = serde_json::to_vec_pretty(&facts.audit).map_err(std::io::Error::other);
    write_file(
        &out.join("audit.json"),
        &json.map_err(io("encode", &out.join("audit.json")))?,
    )?;

    let json = serde_json::to_vec_pretty(&facts.exceptions).map_err(std::io::Error::other);
    write_file(
        &out.join("exceptions.json"),
        &json.map_err(io("encode", &out.join("exceptions.json")))?,
    )?;
    write_file(&out.join("exceptions.csv"), &exceptions_csv(&facts)?)?;

    let summary = ExportSummary {
        batch: batch.to_string(),
        events: doc.events,
        printed: facts.printed,
        commissioned: facts.commissioned,
        rejected: facts.destroyed,
        invalidated: facts.invalidated,
        rejects_by_reason: facts.rejects_by_reason.clone(),
        exceptions: facts.exceptions.len() as u64,
        open_exceptions: facts
            .exceptions
            .iter()
            .filter(|e| e.resolution.is_none())
            .count() as u64,
        audit_records: facts.audit.len() as u64,
        serials: facts.serials.clone(),
        files: FILES.iter().map(|s| s.to_string()).collect(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other);
    write_file(
        &out.join("summary.json"),
        &json.map_err(io("encode", &out.join("summary.json")))?,
    )?;
    let page = html::render(&facts, opts.now_us, &FILES);
    write_file(&out.join("report.html"), page.as_bytes())?;
    Ok(summary)
}

fn join_or_none(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn exceptions_csv(f: &batch::BatchFacts) -> Result<Vec<u8>, ReportError> {
    let path = PathBuf::from("exceptions.csv");
    let fail = |e: csv::Error| ReportError::Io {
        what: "write",
        path: path.clone(),
        source: std::io::Error::other(e),
    };
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record([
        "id",
        "time_utc",
        "unit",
        "serial",
        "reason",
        "detail",
        "grade",
        "resolved_by",
        "resolved_utc",
        "resolution_reason",
        "signed_by",
    ])
    .map_err(fail)?;
    for e in &f.exceptions {
        let r = e.resolution.as_ref();
        w.write_record([
            e.id.to_string(),
            crate::audit::time::format_utc(e.time_us),
            e.unit.to_string(),
            e.serial.clone().unwrap_or_default(),
            e.reason.clone(),
            e.detail.clone(),
            e.grade.map(String::from).unwrap_or_default(),
            r.map(|r| r.by.clone()).unwrap_or_default(),
            r.map(|r| crate::audit::time::format_utc(r.time_us))
                .unwrap_or_default(),
            r.map(|r| r.reason.clone()).unwrap_or_default(),
            r.and_then(|r| r.signed_by.clone()).unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    w.into_inner().map_err(|e| ReportError::Io {
        what: "write",
        path,
        source: std::io::Error::other(e.to_string()),
    })
}
