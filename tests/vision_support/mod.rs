//! Shared helpers for the vision integration tests: the checked-in frame set and its
//! manifest (tests/data/frames, made by scripts/gen-frames.py).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use linectl::vision::{FrameLimits, GreyFrame};

/// One manifest row.
pub struct Entry {
    pub file: String,
    pub subset: String,
    pub bracketed: String,
    pub hri: String,
    pub content: String,
}

pub fn frames_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frames")
}

pub fn manifest() -> Vec<Entry> {
    let mut rdr = csv::Reader::from_path(frames_dir().join("manifest.csv")).unwrap();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            Entry {
                file: r[0].to_owned(),
                subset: r[1].to_owned(),
                bracketed: r[3].to_owned(),
                hri: r[4].to_owned(),
                content: r[5].replace("\\x1d", "\u{1d}"),
            }
        })
        .collect()
}

pub fn load(file: &str) -> GreyFrame {
    GreyFrame::load(&frames_dir().join(file), FrameLimits::default()).unwrap()
}
