//! Export of journaled events as one EPCIS 2.0 document (what `linectl events export`
//! prints): all event records still in the journal, or only those of one batch (the
//! record's `batch` field, see [`super::record`]). Streams the document to a writer so a
//! large batch does not have to fit in memory; it reads the journal twice (count, then
//! write) so an unknown batch is an error before anything is written. It does not open
//! the journal or choose where it lives (the caller does).

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::json;

use super::record::{EVENT_RECORD, EventRecord, RecordError};
use crate::journal::{Journal, JournalError, Seq};

/// Records read per journal call.
const CHUNK: usize = 1024;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record is not a valid event record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// No event of the batch is in the journal.
    #[error("no events of batch {batch:?} in the journal (batches present: {present})")]
    UnknownBatch {
        /// The batch asked for.
        batch: String,
        /// Batches that are present, comma-separated (or "none").
        present: String,
    },
    /// Writing the output failed.
    #[error("cannot write the document: {0}")]
    Write(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// Oldest journal seq still on disk (earlier records were deleted after upload).
    pub first_seq: Seq,
}

fn for_each_event(
    journal: &Journal,
    mut f: impl FnMut(EventRecord) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut from = journal.first_seq();
    loop {
        let records = journal.read_from(from, CHUNK)?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(());
        };
        for r in records {
            if r.kind == EVENT_RECORD {
                f(EventRecord::decode(r.seq, &r.payload)?)?;
            }
        }
        from = last.next();
    }
}

/// Write an EPCIS document with the journal's events (of `batch` only, if given) to
/// `out`; `creation_date` is its `creationDate` (RFC 3339).
pub fn export_document(
    journal: &Journal,
    batch: Option<&str>,
    creation_date: &str,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let first_seq = journal.first_seq();
    if let Some(b) = batch {
        let mut found = false;
        let mut present = BTreeSet::new();
        for_each_event(journal, |r| {
            if r.batch == b {
                found = true;
            } else if present.len() < 20 {
                present.insert(r.batch);
            }
            Ok(())
        })?;
        if !found {
            let present = if present.is_empty() {
                "none".to_string()
            } else {
                present.into_iter().collect::<Vec<_>>().join(", ")
            };
            return Err(ExportError::UnknownBatch {
                batch: b.to_string(),
                present,
            });
        }
    }
    let head = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": creation_date,
    });
    let head = serde_json::to_string(&head).map_err(std::io::Error::other)?;
    // `{…,"creationDate":"…"` + `,"epcisBody":{"eventList":[` … `]}}`
    let open = head.strip_suffix('}').unwrap_or(&head);
    write!(out, "{open},\"epcisBody\":{{\"eventList\":[")?;
    let mut events = 0u64;
    for_each_event(journal, |r| {
        if batch.is_none_or(|b| r.batch == b) {
            if events > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &r.event).map_err(std::io::Error::other)?;
            events += 1;
        }
        Ok(())
    })?;
    out.write_all(b"]}}\n")?;
    out.flush()?;
    Ok(ExportSummary { events, first_seq })
}
