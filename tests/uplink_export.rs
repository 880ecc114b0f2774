//! `linectl events export` on a journal filled here: the document of one batch holds
//! exactly that batch's events in journal order and validates against the EPCIS 2.0
//! schema; without `--batch` every event; an unknown batch or a missing journal exits 2
//! with a message naming the problem and nothing on stdout.

mod uplink_support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use uplink_support::{append, doc_ids, journal, records, schema_errors, validator};

fn linectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(args)
        .env_remove("LINECTL_DATA_DIR")
        .output()
        .expect("run linectl")
}

fn fill(data_dir: &Path) -> (Vec<String>, Vec<String>) {
    let j = journal(&data_dir.join("journal"));
    let mut lot1 = append(&j, &records("LOT-1", "A", 4));
    let lot2 = append(&j, &records("LOT-2", "B", 3));
    lot1.extend(append(&j, &records("LOT-1", "C", 2)));
    (lot1, lot2)
}

#[test]
fn exports_a_batch_or_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lot1, lot2) = fill(dir.path());
    let d = dir.path().to_str().expect("utf-8 path");
    let v = validator();

    let out = linectl(&["events", "export", "--batch", "LOT-1", "--data-dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON document");
    assert!(
        schema_errors(&v, &doc).is_empty(),
        "{:?}",
        schema_errors(&v, &doc)
    );
    assert_eq!(doc_ids(&doc), lot1);
    for e in doc["epcisBody"]["eventList"].as_array().expect("list") {
        assert_eq!(e["ilmd"]["cbvmda:lotNumber"], "LOT-1");
    }

    let out = linectl(&["events", "export", "--batch", "LOT-2", "--data-dir", d]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON document");
    assert_eq!(doc_ids(&doc), lot2);

    let out = linectl(&["events", "export", "--data-dir", d]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON document");
    assert!(schema_errors(&v, &doc).is_empty());
    assert_eq!(doc_ids(&doc).len(), 9);
}

#[test]
fn unknown_batch_and_missing_journal_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path());
    let d = dir.path().to_str().expect("utf-8 path");
    let out = linectl(&["events", "export", "--batch", "LOT-9", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LOT-9") && err.contains("LOT-1, LOT-2"),
        "{err}"
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let out = linectl(&[
        "events",
        "export",
        "--data-dir",
        empty.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no event journal"), "{err}");
    assert!(!empty.path().join("journal").exists(), "nothing created");

    let out = linectl(&["events", "export"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir"));
}
