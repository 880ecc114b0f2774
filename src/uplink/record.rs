//! The journal record that carries one EPCIS event: what the pipeline appends and what
//! the uplink, the pull API and `linectl events export` read back. It owns the record
//! type tag ([`EVENT_RECORD`]) and the payload codec; it does not build events (that is
//! `epcis`) nor store them (that is `journal`).
//!
//! # Payload
//!
//! Compact JSON, one object per record:
//!
//! ```json
//! {"batch":"LOT1","event":{"type":"ObjectEvent","eventID":"ni:///sha-256;…?ver=CBV2.0",…}}
//! ```
//!
//! * `batch` — the batch (lot) the event belongs to, exactly as the work order names it
//!   (for commissioning events the same string as the ILMD `cbvmda:lotNumber`). Every
//!   event of a batch — commissioned, destroyed, invalidated, sampled, aggregated —
//!   carries it, also those whose EPCIS form has no ILMD. `linectl events export
//!   --batch B` selects on this field.
//! * `event` — the event in the EPCIS 2.0 JSON-LD binding as it sits in an `eventList`
//!   ([`crate::epcis::Event::to_json`]), with `eventID` set to the CBV 2.0 event hash.
//!   A standalone event with its own `@context` is accepted too; decoding drops that
//!   `@context` (the document's applies).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::epcis::Event;
use crate::journal::{RecordType, Seq};

/// Record type tag of an [`EventRecord`] in the journal.
pub const EVENT_RECORD: RecordType = RecordType(1);

/// Longest batch name accepted, in bytes.
pub const MAX_BATCH_LEN: usize = 128;

/// What is wrong with an event record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The event has no `eventID` (call `Event::with_hash_id` first).
    #[error("event record: the event has no eventID (set it to the CBV 2.0 event hash first)")]
    NoEventId,
    /// The batch name is empty, too long or has control characters.
    #[error("event record: batch name {0:?} must be 1-128 bytes without control characters")]
    BadBatch(String),
    /// The event could not be built.
    #[error("event record: {0}")]
    Event(String),
    /// A stored payload is not an event record.
    #[error("journal record {seq}: not an EPCIS event record: {reason}")]
    Malformed {
        /// The record's seq.
        seq: Seq,
        /// What was wrong.
        reason: String,
    },
}

/// One EPCIS event with the batch it belongs to, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// The batch (lot) the event belongs to.
    pub batch: String,
    /// The event JSON (with `eventID`).
    pub event: Value,
}

impl EventRecord {
    /// The record of `event` (which must carry its hash `eventID`) in `batch`.
    pub fn new(batch: &str, event: &Event) -> Result<EventRecord, RecordError> {
        if event.event_id().is_none() {
            return Err(RecordError::NoEventId);
        }
        check_batch(batch)?;
        Ok(EventRecord {
            batch: batch.to_string(),
            event: event.to_json(),
        })
    }

    /// The event's `eventID`.
    pub fn event_id(&self) -> Option<&str> {
        self.event.get("eventID").and_then(Value::as_str)
    }

    /// The journal payload.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a `Value` tree with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `(EVENT_RECORD, payload)`, ready for `Journal::append_batch`.
    pub fn to_journal(&self) -> (RecordType, Vec<u8>) {
        (EVENT_RECORD, self.encode())
    }

    /// Append the journal payload of the event `event` writes (JSON with its hash
    /// `eventID`, e.g. [`crate::epcis::UnitEventWriter::write`]) in `batch` to `out`:
    /// the bytes [`EventRecord::encode`] gives for that event, without building the
    /// record. On an error `out` may hold part of a payload.
    pub fn write_payload(
        out: &mut Vec<u8>,
        batch: &str,
        event: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::epcis::EpcisError>,
    ) -> Result<(), RecordError> {
        check_batch(batch)?;
        // Field order of the derived `Serialize`: batch, event.
        out.extend_from_slice(b"{\"batch\":");
        crate::epcis::writer::json_str(out, batch);
        out.extend_from_slice(b",\"event\":");
        event(out).map_err(|e| RecordError::Event(e.to_string()))?;
        out.push(b'}');
        Ok(())
    }

    /// Decode the payload of journal record `seq`; it must name a batch and carry an
    /// event object with an `eventID`.
    pub fn decode(seq: Seq, payload: &[u8]) -> Result<EventRecord, RecordError> {
        let malformed = |reason: String| RecordError::Malformed { seq, reason };
        let mut r: EventRecord =
            serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
        let Some(obj) = r.event.as_object_mut() else {
            return Err(malformed("`event` is not a JSON object".into()));
        };
        // A standalone event (`Event::to_standalone_json`) carries its own `@context`;
        // inside a document's eventList the document's context applies.
        obj.remove("@context");
        if r.event_id().is_none() {
            return Err(malformed("the event has no eventID".into()));
        }
        check_batch(&r.batch).map_err(|e| malformed(e.to_string()))?;
        Ok(r)
    }
}

fn check_batch(batch: &str) -> Result<(), RecordError> {
    if batch.is_empty() || batch.len() > MAX_BATCH_LEN || batch.chars().any(char::is_control) {
        return Err(RecordError::BadBatch(batch.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::{EventTime, IdForm, LineEvents, Sgln};

    fn event() -> Event {
        let line = LineEvents::new(
            IdForm::DigitalLink,
            "04012345111118",
            &Sgln::new("4012345000054", Some("1")).expect("sgln"),
            &Sgln::new("4012345000054", None).expect("sgln"),
        )
        .expect("line");
        line.commissioning(
            EventTime::new(1_764_532_800_000, 0).expect("time"),
            &["A1"],
            "LOT1",
            "281231",
        )
        .expect("event")
    }

    #[test]
    fn round_trip_and_refusals() {
        let ev = event();
        assert!(matches!(
            EventRecord::new("LOT1", &ev),
            Err(RecordError::NoEventId)
        ));
        let ev = ev.with_hash_id().expect("hash");
        assert!(EventRecord::new("", &ev).is_err());
        assert!(EventRecord::new("a\nb", &ev).is_err());
        let r = EventRecord::new("LOT1", &ev).expect("record");
        let (kind, payload) = r.to_journal();
        assert_eq!(kind, EVENT_RECORD);
        let back = EventRecord::decode(Seq(3), &payload).expect("decode");
        assert_eq!(back, r);
        assert_eq!(back.event_id(), ev.event_id());
        let standalone = serde_json::json!({"batch": "LOT1", "event": ev.to_standalone_json()});
        let back = EventRecord::decode(Seq(4), standalone.to_string().as_bytes()).expect("decode");
        assert_eq!(back, r, "a standalone event decodes to the eventList form");
        let mut written = b"x".to_vec();
        EventRecord::write_payload(&mut written, "LOT1", |out| {
            serde_json::to_writer(out, &ev.to_json()).map_err(Into::into)
        })
        .expect("written");
        assert_eq!(written.get(1..), Some(payload.as_slice()));
        assert!(EventRecord::write_payload(&mut written, "", |_| Ok(())).is_err());
        for bad in [
            &b"not json"[..],
            br#"{"batch":"L","event":{}}"#,
            br#"{"batch":"L","event":[1]}"#,
            br#"{"batch":"","event":{"eventID":"x"}}"#,
            br#"{"batch":"L","event":{"eventID":"x"},"extra":1}"#,
        ] {
            let e = EventRecord::decode(Seq(9), bad).expect_err("must refuse");
            assert!(e.to_string().contains("record 9"), "{e}");
        }
    }
}
