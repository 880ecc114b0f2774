//! The committer thread: owns the active segment file, takes queued append requests in
//! batches, checks them against the disk budget, writes each batch with one `write` and
//! one `fdatasync`, rolls over to a new segment when one is full, publishes the durable
//! end to readers and only then acknowledges (an appender's batch goes back with its
//! answer). Its own lists are reused from batch to batch. Reading, cursors and retention
//! rules live in `mod.rs`; the byte format in `format`.

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};
use tracing::{error, warn};

use super::recovery::INDEX_EVERY;
use super::{
    Appended, JournalError, Request, Seq, Shared, StorageFile, create_segment, format, lock,
};

/// The thread that owns the active segment: writes batches, fdatasyncs, acknowledges.
pub(super) struct Committer {
    pub(super) shared: Arc<Shared>,
    pub(super) file: Box<dyn StorageFile>,
    /// First seq of the active segment.
    pub(super) seg_first: Seq,
    /// Durable length of the active segment.
    pub(super) seg_len: u64,
    /// Next seq to assign.
    pub(super) next: Seq,
    /// Encoded records not yet written (one write, one `fdatasync`).
    pub(super) buf: Vec<u8>,
    /// Requests written in this batch, waiting for its `fdatasync` (reused).
    pub(super) acks: Vec<(Request, Appended)>,
    /// Index entries of this batch not yet published (reused).
    pub(super) index: Vec<u64>,
}

/// Records of the active segment written in this batch but not yet published.
struct Pending {
    index: Vec<u64>,
}

impl Committer {
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let max_bytes = self.shared.config.max_batch_bytes as u64;
        // Reused from batch to batch, like `acks` and `index`.
        let mut batch: Vec<Request> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut bytes = first.bytes;
            batch.push(first);
            while bytes < max_bytes {
                match rx.try_recv() {
                    Ok(r) => {
                        bytes += r.bytes;
                        batch.push(r);
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            let mut acks = std::mem::take(&mut self.acks);
            let mut pending = Pending {
                index: std::mem::take(&mut self.index),
            };
            self.commit(batch.drain(..), &mut acks, &mut pending);
            // Whatever an early return left unanswered is answered by dropping it.
            acks.clear();
            pending.index.clear();
            self.acks = acks;
            self.index = pending.index;
        }
    }

    fn fail_all(batch: impl Iterator<Item = Request>, e: &JournalError) {
        for r in batch {
            r.answer(Err(e.clone()));
        }
    }

    fn stop(&self, cause: &JournalError) {
        error!(error = %cause, "journal committer stopped after an I/O failure");
        *lock(&self.shared.failed) = Some(cause.to_string());
    }

    fn commit(
        &mut self,
        batch: impl Iterator<Item = Request>,
        acks: &mut Vec<(Request, Appended)>,
        pending: &mut Pending,
    ) {
        if let Some(cause) = lock(&self.shared.failed).clone() {
            return Self::fail_all(batch, &JournalError::Failed { cause });
        }
        let budget = self.shared.config.disk_budget_bytes;
        let seg_max = self.shared.config.segment_bytes;
        self.buf.clear();
        let mut rolled = false;
        let seg_len_before = self.seg_len;
        for req in batch {
            // Budget: bytes on disk + this batch so far + this request (+ a header per roll).
            let needed = req.bytes + format::SEGMENT_HEADER_LEN as u64;
            let over = |this: &Self| {
                lock(&this.shared.meta).disk_bytes + this.buf.len() as u64 + needed > budget
            };
            if over(self) {
                match self.make_room() {
                    Ok(()) => {}
                    Err(e) => {
                        self.stop(&e);
                        req.answer(Err(e.clone()));
                        for (r, _) in acks.drain(..) {
                            r.answer(Err(e.clone()));
                        }
                        return;
                    }
                }
                if over(self) {
                    let used_bytes = lock(&self.shared.meta).disk_bytes;
                    warn!(
                        used_bytes,
                        budget_bytes = budget,
                        needed_bytes = req.bytes,
                        "journal full, append refused"
                    );
                    let needed_bytes = req.bytes;
                    req.answer(Err(JournalError::Full {
                        used_bytes,
                        budget_bytes: budget,
                        needed_bytes,
                    }));
                    continue;
                }
            }
            let first = self.next;
            let count = req.records.len() as u64;
            for i in 0..req.records.len() {
                let Some((kind, payload)) = req.records.get(i) else {
                    break;
                };
                let rec_len = format::record_len(payload.len()) as u64;
                let in_segment = self.seg_len + self.buf.len() as u64;
                let has_records = self.next > self.seg_first;
                if has_records && in_segment + rec_len > seg_max {
                    if let Err(e) = self.flush(pending).and_then(|()| self.roll()) {
                        self.stop(&e);
                        for (r, _) in acks.drain(..) {
                            r.answer(Err(e.clone()));
                        }
                        req.answer(Err(e));
                        return;
                    }
                    rolled = true;
                }
                if (self.next.0 - self.seg_first.0).is_multiple_of(INDEX_EVERY) {
                    pending.index.push(self.seg_len + self.buf.len() as u64);
                }
                let flags = if self.buf.is_empty() {
                    format::FLAG_WRITE_START
                } else {
                    0
                };
                format::encode_record(&mut self.buf, self.next, kind, flags, payload);
                self.next = self.next.next();
            }
            acks.push((req, Appended { first, count }));
        }
        if acks.is_empty() {
            return;
        }
        if let Err(e) = self.flush(pending) {
            // A failed write before any roll-over is undone; anything else stops.
            let undone = !rolled
                && matches!(&e, JournalError::Io { op: "write", .. })
                && self.undo(seg_len_before);
            if !undone {
                self.stop(&e);
            }
            for (r, _) in acks.drain(..) {
                r.answer(Err(e.clone()));
            }
            return;
        }
        for (r, appended) in acks.drain(..) {
            r.answer(Ok(appended));
        }
    }

    /// Undo a failed write: cut the segment back to its durable length.
    fn undo(&mut self, seg_len: u64) -> bool {
        let ok = self.file.set_len(seg_len).is_ok() && self.file.sync_data().is_ok();
        if ok {
            let meta = lock(&self.shared.meta);
            self.next = meta.end;
            self.seg_len = seg_len;
            self.buf.clear();
            warn!(
                seg_len,
                "failed journal write undone; records not acknowledged"
            );
        }
        ok
    }

    fn active_path(&self) -> PathBuf {
        self.shared
            .config
            .dir
            .join(format::segment_file_name(self.seg_first))
    }

    /// Write the buffer, fdatasync, then publish the new records to readers.
    fn flush(&mut self, pending: &mut Pending) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.active_path();
        self.file
            .append(&self.buf)
            .map_err(|e| JournalError::io("write", &path, e))?;
        self.file
            .sync_data()
            .map_err(|e| JournalError::io("fdatasync", &path, e))?;
        let written = self.buf.len() as u64;
        self.seg_len += written;
        self.buf.clear();
        let mut meta = lock(&self.shared.meta);
        meta.end = self.next;
        meta.disk_bytes += written;
        if let Some(seg) = meta.segments.last_mut() {
            seg.end = self.next;
            seg.bytes = self.seg_len;
            seg.index.append(&mut pending.index);
        }
        Ok(())
    }

    /// Seal the active segment (already durable) and start a new one.
    fn roll(&mut self) -> Result<(), JournalError> {
        let (info, file) = create_segment(
            self.shared.storage.as_ref(),
            &self.shared.config.dir,
            self.next,
        )?;
        self.file = file;
        self.seg_first = info.first;
        self.seg_len = info.bytes;
        let mut meta = lock(&self.shared.meta);
        meta.disk_bytes += info.bytes;
        meta.segments.push(info);
        Ok(())
    }

    /// Over budget: delete confirmed segments; if the active segment itself is fully
    /// confirmed (and nothing of this batch is buffered), seal it so it can go too.
    /// Retention failures (a segment that cannot be removed) only leave the journal
    /// fuller; a failed roll-over stops the committer.
    fn make_room(&mut self) -> Result<(), JournalError> {
        if let Err(e) = self.shared.apply_retention() {
            warn!(error = %e, "journal retention failed; segment kept");
            return Ok(());
        }
        let all_confirmed = self
            .shared
            .min_holding_cursor()
            .is_some_and(|min| min >= self.next && self.next > self.seg_first);
        if all_confirmed && self.buf.is_empty() {
            self.roll()?;
            if let Err(e) = self.shared.apply_retention() {
                warn!(error = %e, "journal retention failed; segment kept");
            }
        }
        Ok(())
    }
}
