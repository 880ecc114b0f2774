//! Conformance of `linectl::epcis` event hashes with the CBV 2.0 event hash vectors in
//! `tests/data/epcis-event-hash/` (MIT, from the reference generator's test suite). For
//! every `X.jsonld`, each event's pre-hash string must equal line i of `X.prehashes` and
//! its hash line i of `X.hashes`. Vectors without a JSON input (their input was XML
//! upstream, or missing) are counted and skipped with a note. A few expected pre-hash
//! lines in the data set are not the pre-image of their own expected hash (checked here
//! with SHA-256); for those the hash is what must match, and they are listed by name so
//! that any new inconsistency fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use linectl::epcis::document_hashes;
use linectl::epcis::hash::hash_of_prehash;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/epcis-event-hash")
}

fn lines(path: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

/// (file stem, event index): expected pre-hash line whose SHA-256 is not the expected
/// hash in the shipped data.
const INCONSISTENT_PREHASH_LINES: &[(&str, usize)] = &[
    // garbled characters spliced into the line (the same upstream)
    ("epcisDocWithAllGS1Keys", 0),
    // the line is another event's (the first event with the extension moved)
    ("epcisDocWithCustomSchemaInContext", 1),
    // the line is cut off in the middle of the bizTransaction URN
    ("epcisDocWithDefaultSchemaInContext", 1),
];

#[test]
fn cbv2_event_hash_vectors() {
    let dir = data_dir();
    let mut stems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((stem, ext)) = name.rsplit_once('.') {
            stems
                .entry(stem.to_owned())
                .or_default()
                .push(ext.to_owned());
        }
    }

    let mut events_run = 0usize;
    let mut hashes_passed = 0usize;
    let mut prehashes_passed = 0usize;
    let mut prehashes_inconsistent = 0usize;
    let mut files_run = 0usize;
    let mut skipped: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();

    for (stem, exts) in &stems {
        let has = |e: &str| exts.iter().any(|x| x == e);
        if !has("prehashes") && !has("hashes") {
            continue; // LICENSE and the like
        }
        if !has("jsonld") {
            let reason = if has("hashes") {
                "no JSON input: the upstream input is EPCIS XML, out of scope"
            } else {
                "no input and no .hashes: a bare .prehashes file"
            };
            skipped.entry(reason).or_default().push(stem.clone());
            continue;
        }
        let doc_text = fs::read_to_string(dir.join(format!("{stem}.jsonld")))
            .unwrap_or_else(|e| panic!("{stem}.jsonld: {e}"));
        let doc: serde_json::Value =
            serde_json::from_str(&doc_text).unwrap_or_else(|e| panic!("{stem}.jsonld: {e}"));
        let got = match document_hashes(&doc) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{stem}: {e}"));
                continue;
            }
        };
        let want_pre = lines(&dir.join(format!("{stem}.prehashes")));
        let want_hash = lines(&dir.join(format!("{stem}.hashes")));
        if want_pre.is_none() {
            skipped
                .entry("no .prehashes (hashes still checked)")
                .or_default()
                .push(stem.clone());
        }
        files_run += 1;
        if let Some(h) = &want_hash
            && h.len() != got.len()
        {
            failures.push(format!(
                "{stem}: {} events but {} expected hashes",
                got.len(),
                h.len()
            ));
        }
        for (i, (pre, hash)) in got.iter().enumerate() {
            events_run += 1;
            if let Some(want) = want_hash.as_ref().and_then(|h| h.get(i)) {
                if want == hash {
                    hashes_passed += 1;
                } else {
                    failures.push(format!("{stem}[{i}] hash\n  got  {hash}\n  want {want}"));
                }
            }
            if let Some(want) = want_pre.as_ref().and_then(|p| p.get(i)) {
                let listed = INCONSISTENT_PREHASH_LINES.contains(&(stem.as_str(), i));
                let consistent = want_hash
                    .as_ref()
                    .and_then(|h| h.get(i))
                    .is_none_or(|h| hash_of_prehash(want) == *h);
                if want == pre {
                    prehashes_passed += 1;
                    if listed {
                        failures.push(format!("{stem}[{i}] is listed inconsistent but matches"));
                    }
                } else if listed && !consistent {
                    prehashes_inconsistent += 1;
                } else {
                    failures.push(format!(
                        "{stem}[{i}] prehash{}\n  got  {pre}\n  want {want}",
                        if consistent {
                            ""
                        } else {
                            " (expected line is not the pre-image of the expected hash)"
                        }
                    ));
                }
            }
        }
    }

    println!(
        "CBV 2.0 event hash vectors: {files_run} JSON documents, {events_run} events; \
         hashes passed {hashes_passed}; pre-hash strings passed {prehashes_passed}, \
         {prehashes_inconsistent} expected lines known not to be their hash's pre-image"
    );
    for (reason, list) in &skipped {
        println!("skipped {} ({reason}): {}", list.len(), list.join(", "));
    }
    assert!(events_run > 0, "no vectors found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
