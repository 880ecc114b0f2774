//! The exception queue of the HMI: every rejected unit the pipeline reports (through
//! its observer channel) becomes an exception with its reason code and detail, kept in
//! an append-only JSON-lines file in the data dir (`hmi/exceptions.jsonl`, fsynced per
//! line); a resolution is appended as its own line, so the file replays to the queue
//! after a restart. It also keeps a bounded, in-memory trend of outcomes per minute.
//! It does not check permissions or write the audit trail (the HMI's handlers do).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::pipeline::UnitRecord;

/// Minutes of trend data kept in memory.
pub const TREND_MINUTES: usize = 240;

/// Errors of the exception store.
#[derive(Debug, thiserror::Error)]
pub enum ExceptionError {
    /// The file could not be read or written.
    #[error("exception store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not a record.
    #[error("exception store {path} line {line}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// No exception with this id.
    #[error("no exception {0}")]
    NotFound(u64),
    /// The exception is already resolved.
    #[error("exception {0} is already resolved")]
    AlreadyResolved(u64),
}

/// A rejected unit waiting for (or after) review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Sequence number in this store.
    pub id: u64,
    /// When it was recorded (UTC µs).
    pub time_us: u64,
    /// Line unit number.
    pub unit: u64,
    /// The serial loaded for the unit (the expected content), if any.
    pub serial: Option<String>,
    /// Reason code.
    pub reason: String,
    /// What the pipeline saw (decoded content against the expected, where known).
    pub detail: String,
    /// Grade letter, if graded.
    pub grade: Option<char>,
    /// The batch it belongs to.
    pub lot: Option<String>,
    /// File name of the unit's camera frame in the reject-frame store, when one was
    /// kept (it may since have been pruned).
    #[serde(default)]
    pub frame: Option<String>,
    /// The resolution, once resolved.
    pub resolution: Option<Resolution>,
}

/// How an exception was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Who resolved it.
    pub by: String,
    /// When (UTC µs).
    pub time_us: u64,
    /// Why / what was done.
    pub reason: String,
    /// Second person who signed, if any.
    pub signed_by: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Raised(Exception),
    Resolved { id: u64, resolution: Resolution },
}

/// Outcomes in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrendBucket {
    /// Minute start (UTC µs).
    pub minute_us: u64,
    /// The batch (lot) running then; a batch change starts a new bucket.
    pub lot: Option<String>,
    /// Passed units.
    pub passed: u64,
    /// Rejects by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Graded units by grade letter.
    pub grades: BTreeMap<char, u64>,
}

struct State {
    file: File,
    items: Vec<Exception>,
    trend: VecDeque<TrendBucket>,
}

/// The store. Share it (`Arc<Exceptions>`).
pub struct Exceptions {
    path: PathBuf,
    st: Mutex<State>,
    /// Where the pipeline keeps reject frames (the frames exceptions refer to).
    frames: Option<crate::pipeline::frames::FrameStore>,
}

impl std::fmt::Debug for Exceptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exceptions")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Exceptions {
    /// Open (or create) `<dir>/exceptions.jsonl` and replay it.
    pub fn open(dir: &Path) -> Result<Exceptions, ExceptionError> {
        let path = dir.join("exceptions.jsonl");
        let io = |source| ExceptionError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut items: Vec<Exception> = Vec::new();
        if path.exists() {
            let r = BufReader::new(File::open(&path).map_err(io)?);
            for (i, line) in r.lines().enumerate() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                let rec: Line = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    // A torn last line (crash mid-write) is dropped; anything else is corrupt.
                    Err(e) if !line.ends_with('}') => {
                        tracing::warn!(line = i + 1, error = %e, "dropping a torn exception record");
                        continue;
                    }
                    Err(e) => {
                        return Err(ExceptionError::Corrupt {
                            path: path.clone(),
                            line: i + 1,
                            message: e.to_string(),
                        });
                    }
                };
                match rec {
                    Line::Raised(e) => items.push(e),
                    Line::Resolved { id, resolution } => {
                        if let Some(e) = items.iter_mut().find(|e| e.id == id) {
                            e.resolution = Some(resolution);
                        }
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Exceptions {
            path,
            st: Mutex::new(State {
                file,
                items,
                trend: VecDeque::new(),
            }),
            frames: None,
        })
    }

    /// Serve the reject frames of `store` (the pipeline's, in the same data dir).
    pub fn with_frames(mut self, store: crate::pipeline::frames::FrameStore) -> Exceptions {
        self.frames = Some(store);
        self
    }

    /// The file of exception `id`'s frame: `None` when the exception is unknown, has no
    /// frame, or the store is not attached (the file itself may have been pruned).
    pub fn frame_path(&self, id: u64) -> Option<PathBuf> {
        let name = self.get(id)?.frame?;
        self.frames.as_ref()?.path_of(&name).ok()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, st: &mut State, rec: &Line) -> Result<(), ExceptionError> {
        let io = |source| ExceptionError::Io {
            path: self.path.clone(),
            source,
        };
        let mut text = serde_json::to_string(rec).map_err(|e| io(std::io::Error::other(e)))?;
        text.push('\n');
        st.file.write_all(text.as_bytes()).map_err(io)?;
        st.file.sync_data().map_err(io)
    }

    /// Take one unit outcome: count it in the trend; a reject becomes an exception.
    pub fn observe(
        &self,
        rec: &UnitRecord,
        lot: Option<String>,
        now_us: u64,
    ) -> Result<Option<u64>, ExceptionError> {
        let mut st = self.state();
        let minute = now_us - now_us % 60_000_000;
        if st
            .trend
            .back()
            .is_none_or(|b| b.minute_us != minute || b.lot != lot)
        {
            st.trend.push_back(TrendBucket {
                minute_us: minute,
                lot: lot.clone(),
                ..TrendBucket::default()
            });
            while st.trend.len() > TREND_MINUTES {
                st.trend.pop_front();
            }
        }
        if let Some(b) = st.trend.back_mut() {
            if rec.verdict == "pass" {
                b.passed += 1;
            } else {
                *b.rejected.entry(rec.verdict.to_string()).or_default() += 1;
            }
            if let Some(g) = rec.grade {
                *b.grades.entry(g).or_default() += 1;
            }
        }
        if rec.verdict == "pass" {
            return Ok(None);
        }
        let id = st.items.last().map_or(1, |e| e.id + 1);
        let e = Exception {
            id,
            time_us: now_us,
            unit: rec.unit,
            serial: rec.serial.as_deref().map(str::to_owned),
            reason: rec.verdict.to_string(),
            detail: rec.detail.clone(),
            grade: rec.grade,
            lot,
            frame: rec.frame.clone(),
            resolution: None,
        };
        self.write(&mut st, &Line::Raised(e.clone()))?;
        st.items.push(e);
        Ok(Some(id))
    }

    /// One exception.
    pub fn get(&self, id: u64) -> Option<Exception> {
        self.state().items.iter().find(|e| e.id == id).cloned()
    }

    /// The newest `limit` exceptions, open ones first, newest first.
    pub fn list(&self, limit: usize) -> Vec<Exception> {
        let st = self.state();
        let mut v: Vec<Exception> = st.items.iter().rev().take(limit).cloned().collect();
        v.sort_by_key(|e| (e.resolution.is_some(), std::cmp::Reverse(e.id)));
        v
    }

    /// Open exceptions.
    pub fn open_count(&self) -> usize {
        self.state()
            .items
            .iter()
            .filter(|e| e.resolution.is_none())
            .count()
    }

    /// Resolve `id` (durable before it returns).
    pub fn resolve(&self, id: u64, resolution: Resolution) -> Result<(), ExceptionError> {
        let mut st = self.state();
        let Some(pos) = st.items.iter().position(|e| e.id == id) else {
            return Err(ExceptionError::NotFound(id));
        };
        if st.items.get(pos).is_some_and(|e| e.resolution.is_some()) {
            return Err(ExceptionError::AlreadyResolved(id));
        }
        self.write(
            &mut st,
            &Line::Resolved {
                id,
                resolution: resolution.clone(),
            },
        )?;
        if let Some(e) = st.items.get_mut(pos) {
            e.resolution = Some(resolution);
        }
        Ok(())
    }

    /// The trend, oldest minute first.
    pub fn trend(&self) -> Vec<TrendBucket> {
        self.state().trend.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(unit: u64) -> UnitRecord {
        UnitRecord {
            unit,
            serial: Some(format!("S{unit}").into()),
            verdict: "mismatch",
            detail: "decoded X, expected Y".into(),
            grade: Some('B'),
            latency_us: None,
            frame: Some(format!("0000000000000001-u{unit}-S{unit}.png")),
        }
    }

    #[test]
    fn rejects_persist_and_resolutions_replay() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exceptions::open(dir.path()).unwrap();
        assert_eq!(ex.observe(&reject(1), None, 60_000_000).unwrap(), Some(1));
        let mut pass = reject(2);
        pass.verdict = "pass";
        assert_eq!(ex.observe(&pass, None, 61_000_000).unwrap(), None);
        assert_eq!(
            ex.observe(&reject(3), Some("L1".into()), 125_000_000)
                .unwrap(),
            Some(2)
        );
        let res = Resolution {
            by: "sam".into(),
            time_us: 1,
            reason: "re-inspected".into(),
            signed_by: None,
        };
        ex.resolve(1, res.clone()).unwrap();
        assert!(matches!(
            ex.resolve(1, res.clone()),
            Err(ExceptionError::AlreadyResolved(1))
        ));
        assert!(matches!(
            ex.resolve(9, res),
            Err(ExceptionError::NotFound(9))
        ));
        let t = ex.trend();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].lot.as_deref(), Some("L1"));
        assert_eq!(t[0].passed, 1);
        assert_eq!(t[0].rejected.get("mismatch"), Some(&1));
        drop(ex);
        let ex = Exceptions::open(dir.path()).unwrap();
        assert_eq!(ex.open_count(), 1);
        assert_eq!(
            ex.get(1).unwrap().resolution.unwrap().reason,
            "re-inspected"
        );
        assert_eq!(ex.get(2).unwrap().lot.as_deref(), Some("L1"));
    }

    #[test]
    fn a_corrupt_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("exceptions.jsonl"), "{\"kind\":\"nope\"}\n").unwrap();
        let e = Exceptions::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
