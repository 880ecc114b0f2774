//! The per-unit outcome log of the data dir, `report/units.jsonl`: one JSON line per
//! unit with a verdict (time, batch, unit number, serial, verdict or reject reason,
//! grade), written by the daemon from the pipeline's observer channel so a batch report
//! can chart grades and the reject rate over the batch. It is a report aid, not a GMP
//! record (the journal's events and the audit trail are): lines are buffered and flushed
//! about once a second, and a torn last line after a crash is skipped when read.
//!
//! Not owned here: the outcomes themselves (the pipeline decides them) and the
//! exception queue (the HMI keeps it).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::pipeline::{StatusCell, UnitRecord};

/// The log's path inside a data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("report").join("units.jsonl")
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitLine {
    /// Wall-clock time of the verdict, µs since the Unix epoch.
    pub time_us: u64,
    /// The batch (lot) running at the time, if any.
    pub lot: Option<String>,
    /// Unit number in the batch.
    pub unit: u64,
    /// The serial printed on it.
    pub serial: Option<String>,
    /// `pass` or the reject reason code.
    pub verdict: String,
    /// The grade letter when the symbol was graded.
    pub grade: Option<char>,
}

/// Appends lines to the log.
#[derive(Debug)]
pub struct UnitLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl UnitLog {
    /// Open (or create) the log of `data_dir` for appending.
    pub fn open(data_dir: &Path) -> std::io::Result<UnitLog> {
        let path = log_path(data_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(UnitLog {
            path,
            out: BufWriter::with_capacity(64 * 1024, f),
        })
    }

    /// Buffer one line.
    pub fn record(&mut self, line: &UnitLine) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")
    }

    /// Write the buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every line of the log of `data_dir` whose lot is `lot` (an absent log is empty).
/// A line that does not parse is skipped with a warning (a torn last line after a
/// crash).
pub fn read_lot(data_dir: &Path, lot: &str) -> std::io::Result<Vec<UnitLine>> {
    let path = log_path(data_dir);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<UnitLine>(&line) {
            Ok(u) if u.lot.as_deref() == Some(lot) => out.push(u),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), line = i + 1, error = %e, "unit log line skipped")
            }
        }
    }
    Ok(out)
}

/// Start a thread that writes every unit outcome from `rx` to `log` (with the batch
/// of `status` at the time) and forwards it to `forward` (e.g. the HMI's observer).
/// It flushes about once a second and when `rx` closes.
pub fn spawn_unit_log(
    rx: Receiver<UnitRecord>,
    forward: Option<Sender<UnitRecord>>,
    mut log: UnitLog,
    status: StatusCell,
    clock: Arc<dyn Clock>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("linectl-unit-log".into())
        .spawn(move || {
            let mut last_flush = Instant::now();
            let mut dirty = false;
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(rec) => {
                        let line = UnitLine {
                            time_us: clock.wall_micros(),
                            lot: status.snapshot().batch.map(|b| b.lot),
                            unit: rec.unit,
                            serial: rec.serial.as_deref().map(str::to_owned),
                            verdict: rec.verdict.to_string(),
                            grade: rec.grade,
                        };
                        if let Err(e) = log.record(&line) {
                            tracing::error!(error = %e, file = %log.path().display(), "unit log write failed");
                        }
                        dirty = true;
                        if let Some(f) = &forward {
                            let _ = f.send(rec);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if dirty && last_flush.elapsed() >= Duration::from_secs(1) {
                    if let Err(e) = log.flush() {
                        tracing::error!(error = %e, "unit log flush failed");
                    }
                    dirty = false;
                    last_flush = Instant::now();
                }
            }
            if let Err(e) = log.flush() {
                tracing::error!(error = %e, "unit log flush failed");
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_by_lot_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = UnitLog::open(dir.path()).expect("open");
        for (i, lot) in ["A", "B", "A"].iter().enumerate() {
            log.record(&UnitLine {
                time_us: i as u64,
                lot: Some(lot.to_string()),
                unit: i as u64 + 1,
                serial: Some(format!("S{i}")),
                verdict: if i == 2 {
                    "no-read".into()
                } else {
                    "pass".into()
                },
                grade: Some('B'),
            })
            .expect("record");
        }
        log.flush().expect("flush");
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .expect("append");
        f.write_all(b"{\"time_us\":9,\"lot\":\"A\"").expect("torn");
        let a = read_lot(dir.path(), "A").expect("read");
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].verdict, "no-read");
        assert!(read_lot(dir.path(), "Z").expect("read").is_empty());
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(read_lot(empty.path(), "A").expect("none").is_empty());
    }
}
