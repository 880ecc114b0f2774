//! Shared helpers of the uplink, pull-API and export tests: a journal in a temporary
//! directory filled with real commissioning events (hash eventIDs, batch-tagged event
//! records), the EPCIS schema validator, and waiting with a deadline.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use linectl::epcis::{EventTime, IdForm, LineEvents, Sgln};
use linectl::journal::{ConsumerConfig, Journal, JournalConfig, Retention};
use linectl::uplink::record::EventRecord;
use serde_json::Value;

/// A journal in `dir` with the consumers `uplink` (holding) and `site-pull` (advisory).
pub fn journal(dir: &Path) -> Arc<Journal> {
    let config = JournalConfig {
        segment_bytes: 256 * 1024,
        max_record_bytes: 64 * 1024,
        disk_budget_bytes: 256 * 1024 * 1024,
        consumers: vec![
            ConsumerConfig::holding("uplink"),
            ConsumerConfig {
                name: "site-pull".into(),
                retention: Retention::Advisory,
            },
        ],
        ..JournalConfig::in_dir(dir)
    };
    Arc::new(Journal::open(config).expect("open journal"))
}

/// `n` distinct commissioning event records of `batch`, serials `{prefix}{i}`.
pub fn records(batch: &str, prefix: &str, n: usize) -> Vec<EventRecord> {
    let line = LineEvents::new(
        IdForm::DigitalLink,
        "04012345111118",
        &Sgln::new("4012345000054", Some("1")).expect("sgln"),
        &Sgln::new("4012345000054", None).expect("sgln"),
    )
    .expect("line");
    (0..n)
        .map(|i| {
            let t = EventTime::new(1_764_532_800_000 + i as i64, 60).expect("time");
            let serial = format!("{prefix}{i}");
            let ev = line
                .commissioning(t, &[serial.as_str()], batch, "281231")
                .expect("event")
                .with_hash_id()
                .expect("hash");
            EventRecord::new(batch, &ev).expect("record")
        })
        .collect()
}

/// Append the records durably; returns their eventIDs in journal order.
pub fn append(journal: &Journal, recs: &[EventRecord]) -> Vec<String> {
    for chunk in recs.chunks(500) {
        journal
            .append_batch(chunk.iter().map(EventRecord::to_journal).collect())
            .expect("append");
    }
    recs.iter()
        .map(|r| r.event_id().expect("id").to_string())
        .collect()
}

/// Poll `cond` every 10 ms until it holds; panic with `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The vendored EPCIS 2.0 schema validator.
pub fn validator() -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/epcis/EPCIS-JSON-Schema.json");
    let text = std::fs::read_to_string(&path).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("schema json");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Schema errors of `doc`, empty if valid.
pub fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The eventIDs of an EPCIS document's eventList.
pub fn doc_ids(doc: &Value) -> Vec<String> {
    doc["epcisBody"]["eventList"]
        .as_array()
        .expect("eventList")
        .iter()
        .map(|e| e["eventID"].as_str().expect("eventID").to_string())
        .collect()
}
