//! The durable, append-only event journal. Records are opaque byte payloads with a
//! [`RecordType`] tag (the EPCIS module serializes events; the journal never looks
//! inside). An append is acknowledged only after its bytes are written to a segment file
//! and `fdatasync`ed; a committer thread batches the records of many appenders into one
//! write and one `fdatasync` (group commit). Records come as owned payloads (`append`,
//! tickets, callbacks) or through an [`Appender`], whose packed [`RecordBatch`] travels
//! to the committer and back with the answer into the appender's reused answer slot:
//! appending that way allocates nothing in steady state. Named consumers ("uplink",
//! "site-pull") read from a durable cursor and confirm what they have delivered; segments
//! every record-holding consumer has confirmed are deleted, and when the disk budget is
//! used up by unconfirmed records, appends fail with [`JournalError::Full`] so the line
//! can hold. Nothing unconfirmed is ever dropped.
//!
//! Not owned here: event contents (`epcis`), the upload itself (uplink), where the
//! journal directory lives (the line profile). File operations go through
//! [`storage::Storage`] so tests can inject faults; the byte format is in
//! [`format`](mod@format), the directory's version file in [`version`], crash recovery in [`recovery`], the group-commit thread in
//! `commit`.
//!
//! Failure policy: a failed `write` is undone by truncating the segment back and the
//! batch is answered with the error; a failed `fdatasync` (after which the kernel may
//! have dropped the dirty pages) stops the committer for good: every later append gets
//! [`JournalError::Failed`] until the journal is reopened and recovered. A record whose
//! append returned an error may or may not be in the journal after reopening (it was
//! never acknowledged); consumers deduplicate by event ID.

mod commit;
pub mod cursors;
pub mod error;
pub mod format;
pub mod recovery;
pub mod storage;
pub mod version;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use serde::Deserialize;
use tracing::{error, info};

pub use error::{JournalError, JournalErrorKind};
pub use recovery::{CutReason, RecoveryReport, TailCut};
use recovery::{INDEX_EVERY, SegmentInfo};
pub use storage::{FsStorage, Storage, StorageFile};

/// Position of a record in the journal: dense (no gaps), monotonic across restarts,
/// starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The seq after this one.
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Caller-defined tag stored with each record (e.g. "EPCIS object event, JSON").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u16);

/// A record read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: Seq,
    /// Its type tag.
    pub kind: RecordType,
    /// The payload exactly as appended.
    pub payload: Vec<u8>,
}

/// Whether a consumer's cursor keeps records on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Records are kept until this consumer has confirmed them (e.g. the uplink).
    #[default]
    HoldsRecords,
    /// The consumer reads what is still there; it never keeps a record from deletion.
    Advisory,
}

/// One named consumer of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConsumerConfig {
    /// Name, 1–64 characters of `a-z 0-9 - _` (e.g. "uplink", "site-pull").
    pub name: String,
    /// Whether unconfirmed records of this consumer are kept from deletion.
    #[serde(default)]
    pub retention: Retention,
}

impl ConsumerConfig {
    /// A consumer that holds records until it confirms them.
    pub fn holding(name: &str) -> Self {
        ConsumerConfig {
            name: name.to_string(),
            retention: Retention::HoldsRecords,
        }
    }
}

/// Journal configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Directory of the segment and cursor files (created if missing).
    pub dir: PathBuf,
    /// A segment is sealed and a new one started when it would grow beyond this many bytes.
    pub segment_bytes: u64,
    /// Largest payload accepted, in bytes; larger appends get `RecordTooLarge`.
    pub max_record_bytes: u32,
    /// Bytes all segment files together may use; beyond it appends get `Full`.
    pub disk_budget_bytes: u64,
    /// The named consumers and whether each holds records.
    pub consumers: Vec<ConsumerConfig>,
    /// Most payload bytes the committer writes in one batch (one `fdatasync`).
    pub max_batch_bytes: usize,
    /// Append requests that may wait for the committer before appenders block.
    pub queue_depth: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: PathBuf::from("/var/lib/linectl/journal"),
            segment_bytes: default_segment_bytes(),
            max_record_bytes: 1024 * 1024,
            disk_budget_bytes: 4 * 1024 * 1024 * 1024,
            consumers: vec![ConsumerConfig::holding("uplink")],
            max_batch_bytes: 4 * 1024 * 1024,
            queue_depth: 16 * 1024,
        }
    }
}

const fn default_segment_bytes() -> u64 {
    32 * 1024 * 1024
}

impl JournalConfig {
    /// Defaults with the given directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            ..JournalConfig::default()
        }
    }

    /// Every problem of this configuration, empty if it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let min_seg = (format::SEGMENT_HEADER_LEN
            + format::record_len(self.max_record_bytes as usize)) as u64;
        if self.max_record_bytes == 0 {
            p.push("max_record_bytes must be at least 1".to_string());
        }
        if self.segment_bytes < min_seg {
            p.push(format!(
                "segment_bytes {} must hold the header and one maximum record ({min_seg} bytes)",
                self.segment_bytes
            ));
        }
        if self.disk_budget_bytes < self.segment_bytes.saturating_mul(2) {
            p.push(format!(
                "disk_budget_bytes {} must be at least two segments ({})",
                self.disk_budget_bytes,
                self.segment_bytes.saturating_mul(2)
            ));
        }
        if self.queue_depth == 0 {
            p.push("queue_depth must be at least 1".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.consumers.iter().enumerate() {
            let ok = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                p.push(format!(
                    "consumers[{i}].name {:?}: 1-64 characters of a-z 0-9 - _",
                    c.name
                ));
            }
            if !seen.insert(c.name.as_str()) {
                p.push(format!("consumers[{i}].name {:?} appears twice", c.name));
            }
        }
        p
    }
}

/// The result of a durable append: `count` records from `first` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Seq of the first record of the request.
    pub first: Seq,
    /// Number of records.
    pub count: u64,
}

type AppendResult = Result<Appended, JournalError>;
type Callback = Box<dyn FnOnce(AppendResult) + Send + 'static>;

enum Reply {
    Ticket(tokio::sync::oneshot::Sender<AppendResult>),
    Callback(Callback),
    /// An [`Appender`]'s reused answer slot: gets the result and the batch back.
    Slot(SlotReply),
}

/// The records of one request: owned payloads, or an [`Appender`]'s packed batch (handed
/// back with the answer).
enum Records {
    Owned(Vec<(RecordType, Vec<u8>)>),
    Packed(RecordBatch),
}

impl Records {
    fn len(&self) -> usize {
        match self {
            Records::Owned(v) => v.len(),
            Records::Packed(b) => b.len(),
        }
    }

    /// Record `i`'s type and payload.
    fn get(&self, i: usize) -> Option<(RecordType, &[u8])> {
        match self {
            Records::Owned(v) => v.get(i).map(|(k, p)| (*k, p.as_slice())),
            Records::Packed(b) => b.get(i),
        }
    }

    /// Bytes the records take in a segment.
    fn frame_bytes(&self) -> u64 {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .map(|(_, p)| format::record_len(p.len()) as u64)
            .sum()
    }
}

struct Request {
    records: Records,
    bytes: u64,
    reply: Reply,
}

impl Request {
    /// Answer the appender; an appender's batch goes back with the answer.
    fn answer(self, r: AppendResult) {
        match self.reply {
            // The receiver may have been dropped: nobody is waiting, nothing to do.
            Reply::Ticket(tx) => drop(tx.send(r)),
            Reply::Callback(f) => f(r),
            Reply::Slot(s) => {
                let batch = match self.records {
                    Records::Packed(b) => Some(b),
                    Records::Owned(_) => None,
                };
                s.answer(r, batch);
            }
        }
    }
}

/// Records packed into one byte buffer, for [`Appender::append`]: the buffers travel to
/// the committer and come back with the answer, so a batch reused from append to append
/// allocates nothing once it has grown to its largest group.
#[derive(Debug, Default)]
pub struct RecordBatch {
    bytes: Vec<u8>,
    /// Each record's type and the end of its payload in `bytes`.
    ends: Vec<(RecordType, usize)>,
}

impl RecordBatch {
    /// An empty batch with room for `records` records of `bytes` payload bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        RecordBatch {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
        }
    }

    /// Add a record (its payload is copied into the batch).
    pub fn push(&mut self, kind: RecordType, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push((kind, self.bytes.len()));
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Remove every record, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Record `i`'s type and payload.
    pub fn get(&self, i: usize) -> Option<(RecordType, &[u8])> {
        let &(kind, end) = self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(prev) => self.ends.get(prev)?.1,
            None => 0,
        };
        Some((kind, self.bytes.get(start..end)?))
    }

    /// Each record's type and payload, in order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordType, &[u8])> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// The answer slot of one [`Appender`], reused from append to append. Requests are told
/// apart by number, so an answer can never be taken for a later request's.
#[derive(Default)]
struct AnswerSlot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// Number of the last request answered.
    answered: u64,
    /// Its answer (and the batch handed back), until the appender takes it.
    answer: Option<(AppendResult, Option<RecordBatch>)>,
}

/// The committer's end of an [`AnswerSlot`] for request `number`. Dropped unanswered (the
/// request was lost), it answers `Closed`, so the appender never waits forever.
struct SlotReply {
    slot: Arc<AnswerSlot>,
    number: u64,
}

impl SlotReply {
    fn answer(self, r: AppendResult, batch: Option<RecordBatch>) {
        self.slot.put(self.number, r, batch);
    }
}

impl Drop for SlotReply {
    fn drop(&mut self) {
        // A no-op when `answer` ran: the number is answered already.
        self.slot.put(self.number, Err(JournalError::Closed), None);
    }
}

impl AnswerSlot {
    fn put(&self, number: u64, r: AppendResult, batch: Option<RecordBatch>) {
        let mut st = lock(&self.state);
        if st.answered >= number {
            return;
        }
        st.answered = number;
        st.answer = Some((r, batch));
        drop(st);
        self.ready.notify_one();
    }

    fn wait(&self, number: u64) -> (AppendResult, Option<RecordBatch>) {
        let mut st = lock(&self.state);
        loop {
            if st.answered >= number
                && let Some(a) = st.answer.take()
            {
                return a;
            }
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A thread's reusable way to append: packed batches ([`RecordBatch`]) that come back
/// with the answer and one answer slot for all its appends, so appending in steady state
/// allocates nothing. Durability is the same as [`Journal::append_batch`]: `append`
/// returns only once every record of the batch is written and `fdatasync`ed, and the
/// records of many appenders share one group commit.
pub struct Appender<'j> {
    journal: &'j Journal,
    slot: Arc<AnswerSlot>,
    number: u64,
}

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("appends", &self.number)
            .finish_non_exhaustive()
    }
}

impl Appender<'_> {
    /// Append the records of `batch` (contiguous seqs) and return once all are durable.
    /// Blocks while the committer's queue is full (back-pressure). On return the batch
    /// is empty and keeps its buffers for the next group (unless the journal had already
    /// stopped and lost the request: then it is a new, empty batch). A size error is
    /// returned at once and leaves the batch as it was.
    pub fn append(&mut self, batch: &mut RecordBatch) -> Result<Appended, JournalError> {
        for (_, p) in batch.iter() {
            self.journal.check_size(p)?;
        }
        self.number += 1;
        let reply = Reply::Slot(SlotReply {
            slot: self.slot.clone(),
            number: self.number,
        });
        self.journal
            .submit(Records::Packed(std::mem::take(batch)), reply);
        let (r, back) = self.slot.wait(self.number);
        if let Some(mut back) = back {
            back.clear();
            *batch = back;
        }
        r
    }
}

/// A pending append. Wait for it with [`Ticket::wait`] from a thread, or `.await` it
/// in async code (it is a `Future`). Dropping it does not cancel the append.
#[must_use = "a ticket must be waited on to know the record is durable"]
pub struct Ticket {
    rx: tokio::sync::oneshot::Receiver<AppendResult>,
}

impl Ticket {
    /// Block until the records are durable (or refused). Do not call from inside an
    /// async runtime; `.await` the ticket there.
    pub fn wait(self) -> Result<Appended, JournalError> {
        self.rx.blocking_recv().unwrap_or(Err(JournalError::Closed))
    }

    /// The result if it is already known.
    pub fn try_result(&mut self) -> Option<Result<Appended, JournalError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                Some(Err(JournalError::Closed))
            }
        }
    }
}

impl Future for Ticket {
    type Output = Result<Appended, JournalError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(JournalError::Closed)))
    }
}

/// Segment table and counters shared by the committer and readers.
struct Meta {
    segments: Vec<SegmentInfo>,
    /// First seq not yet durable (= next seq to assign once the committer is idle).
    end: Seq,
    /// Bytes of all segment files.
    disk_bytes: u64,
}

impl Meta {
    fn first_seq(&self) -> Seq {
        self.segments.first().map(|s| s.first).unwrap_or(self.end)
    }
}

struct Shared {
    config: JournalConfig,
    storage: Arc<dyn Storage>,
    meta: Mutex<Meta>,
    /// Persisted cursors; also serialises cursor file writes. Lock order: cursors, meta.
    cursors: Mutex<BTreeMap<String, Seq>>,
    failed: Mutex<Option<String>>,
    _lock: Box<dyn Send + Sync>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The journal. Share it between threads by reference or `Arc`; dropping it lets the
/// committer answer every queued request and stop.
pub struct Journal {
    shared: Arc<Shared>,
    tx: Option<Sender<Request>>,
    committer: Option<JoinHandle<()>>,
    recovery: RecoveryReport,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.config.dir)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Open (or create) the journal on the real filesystem, recovering from a crash.
    pub fn open(config: JournalConfig) -> Result<Journal, JournalError> {
        Journal::open_with_storage(config, Arc::new(FsStorage))
    }

    /// Open with an injected [`Storage`].
    pub fn open_with_storage(
        config: JournalConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<Journal, JournalError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(JournalError::Config(problems.join("; ")));
        }
        let dir = config.dir.clone();
        storage
            .create_dir_all(&dir)
            .map_err(|e| JournalError::io("create directory", &dir, e))?;
        let dir_lock = storage
            .lock_dir(&dir)
            .map_err(|e| JournalError::io("lock", &dir, e))?
            .ok_or_else(|| JournalError::Locked { path: dir.clone() })?;

        let stamped = version::check_or_stamp(storage.as_ref(), &dir)?;
        if stamped == version::VersionCheck::Stamped {
            info!(dir = %dir.display(), version = version::DIR_FORMAT_VERSION, "journal directory stamped with its store-format version");
        }
        let recovered = recovery::recover(storage.as_ref(), &dir, config.max_record_bytes)?;
        let mut segments = recovered.segments;
        let report = recovered.report;
        let end = report.next_seq;

        // The active segment: the last one, or a new one if there is none.
        let active_file = match segments.last() {
            Some(s) => storage
                .open_rw(&s.path)
                .map_err(|e| JournalError::io("open", &s.path, e))?,
            None => {
                let (info, file) = create_segment(storage.as_ref(), &dir, end)?;
                segments.push(info);
                file
            }
        };

        let mut cursors = cursors::load(storage.as_ref(), &dir)?;
        let first = segments.first().map(|s| s.first).unwrap_or(end);
        for (name, cursor) in &cursors {
            if *cursor > end {
                return Err(JournalError::LostConfirmed {
                    consumer: name.clone(),
                    cursor: *cursor,
                    end,
                });
            }
        }
        for c in &config.consumers {
            cursors.entry(c.name.clone()).or_insert(first);
        }

        let disk_bytes = segments.iter().map(|s| s.bytes).sum();
        info!(
            dir = %dir.display(),
            segments = segments.len(),
            records = report.records,
            first_seq = first.0,
            next_seq = end.0,
            cuts = report.cuts.len(),
            "journal opened"
        );
        let shared = Arc::new(Shared {
            config: config.clone(),
            storage,
            meta: Mutex::new(Meta {
                segments,
                end,
                disk_bytes,
            }),
            cursors: Mutex::new(cursors),
            failed: Mutex::new(None),
            _lock: dir_lock,
        });
        let (tx, rx) = crossbeam_channel::bounded(config.queue_depth);
        let active = {
            let meta = lock(&shared.meta);
            meta.segments.last().map(|s| (s.first, s.bytes, s.end))
        };
        let (seg_first, seg_len, next) =
            active.unwrap_or((end, format::SEGMENT_HEADER_LEN as u64, end));
        let committer = commit::Committer {
            shared: shared.clone(),
            file: active_file,
            seg_first,
            seg_len,
            next,
            buf: Vec::with_capacity(config.max_batch_bytes.min(16 * 1024 * 1024) + 64 * 1024),
            acks: Vec::new(),
            index: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("journal-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| JournalError::io("spawn committer thread for", &dir, e))?;
        Ok(Journal {
            shared,
            tx: Some(tx),
            committer: Some(handle),
            recovery: report,
        })
    }

    /// What opening found and cut.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    fn check_size(&self, payload: &[u8]) -> Result<(), JournalError> {
        let max = self.shared.config.max_record_bytes;
        if payload.len() > max as usize {
            return Err(JournalError::RecordTooLarge {
                size: payload.len(),
                max,
            });
        }
        Ok(())
    }

    fn submit(&self, records: Records, reply: Reply) {
        let bytes = records.frame_bytes();
        let req = Request {
            records,
            bytes,
            reply,
        };
        if let Some(cause) = lock(&self.shared.failed).clone() {
            return req.answer(Err(JournalError::Failed { cause }));
        }
        match &self.tx {
            Some(tx) => {
                if let Err(e) = tx.send(req) {
                    e.into_inner().answer(Err(JournalError::Closed));
                }
            }
            None => req.answer(Err(JournalError::Closed)),
        }
    }

    /// A reusable appender for one thread: see [`Appender`].
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            journal: self,
            slot: Arc::new(AnswerSlot::default()),
            number: 0,
        }
    }

    /// Queue one record; the returned ticket resolves once it is durable.
    pub fn append_ticket(
        &self,
        kind: RecordType,
        payload: Vec<u8>,
    ) -> Result<Ticket, JournalError> {
        self.append_batch_ticket(vec![(kind, payload)])
    }

    /// Queue several records, written contiguously and acknowledged together.
    pub fn append_batch_ticket(
        &self,
        records: Vec<(RecordType, Vec<u8>)>,
    ) -> Result<Ticket, JournalError> {
        for (_, p) in &records {
            self.check_size(p)?;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Records::Owned(records), Reply::Ticket(tx));
        Ok(Ticket { rx })
    }

    /// Append one record and return its seq once it is durable on disk (written and
    /// `fdatasync`ed). Blocks while the committer's queue is full (back-pressure).
    pub fn append(&self, kind: RecordType, payload: Vec<u8>) -> Result<Seq, JournalError> {
        Ok(self.append_ticket(kind, payload)?.wait()?.first)
    }

    /// Append several records (contiguous seqs) and return once all are durable.
    pub fn append_batch(
        &self,
        records: Vec<(RecordType, Vec<u8>)>,
    ) -> Result<Appended, JournalError> {
        self.append_batch_ticket(records)?.wait()
    }

    /// Queue one record and call `on_done` from the committer thread once it is durable
    /// or refused. Keep `on_done` short and never append with a blocking call from it
    /// (the committer would wait for itself): it delays the acknowledgement of the rest
    /// of the batch. A size error is returned at once and `on_done` is not called; if the
    /// journal has already stopped, `on_done` runs at once on the calling thread.
    pub fn append_with<F>(
        &self,
        kind: RecordType,
        payload: Vec<u8>,
        on_done: F,
    ) -> Result<(), JournalError>
    where
        F: FnOnce(Result<Seq, JournalError>) + Send + 'static,
    {
        self.check_size(&payload)?;
        self.submit(
            Records::Owned(vec![(kind, payload)]),
            Reply::Callback(Box::new(move |r: AppendResult| on_done(r.map(|a| a.first)))),
        );
        Ok(())
    }

    /// Up to `limit` durable records from `from` on, in seq order. Empty if `from` is
    /// at or past the end. `Pruned` if retention already deleted `from`.
    pub fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<Record>, JournalError> {
        let plan: Vec<SegmentInfo> = {
            let meta = lock(&self.shared.meta);
            if from < meta.first_seq() {
                return Err(JournalError::Pruned {
                    requested: from,
                    first_available: meta.first_seq(),
                });
            }
            // Only the segments needed for `limit` records (their indexes are cloned).
            let mut planned = 0u64;
            meta.segments
                .iter()
                .filter(|s| s.end > from && s.end > s.first)
                .take_while(|s| {
                    let take = planned < limit as u64;
                    planned += s.end.0 - from.max(s.first).0;
                    take
                })
                .cloned()
                .collect()
        };
        let mut out = Vec::new();
        for seg in plan {
            if out.len() >= limit {
                break;
            }
            let start = from.max(seg.first);
            match read_segment(
                self.shared.storage.as_ref(),
                &seg,
                start,
                limit - out.len(),
                &mut out,
            ) {
                Ok(()) => {}
                Err(JournalError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // Deleted by retention since the plan was made.
                    let first_available = lock(&self.shared.meta).first_seq();
                    return Err(JournalError::Pruned {
                        requested: start,
                        first_available,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The next seq `consumer` has not confirmed.
    pub fn cursor(&self, consumer: &str) -> Result<Seq, JournalError> {
        self.consumer_config(consumer)?;
        let cursors = lock(&self.shared.cursors);
        Ok(cursors.get(consumer).copied().unwrap_or_default())
    }

    /// Up to `limit` records `consumer` has not confirmed yet.
    pub fn read_for(&self, consumer: &str, limit: usize) -> Result<Vec<Record>, JournalError> {
        let from = self.cursor(consumer)?;
        self.read_from(from, limit)
    }

    fn consumer_config(&self, consumer: &str) -> Result<&ConsumerConfig, JournalError> {
        self.shared
            .config
            .consumers
            .iter()
            .find(|c| c.name == consumer)
            .ok_or_else(|| JournalError::UnknownConsumer(consumer.to_string()))
    }

    /// Record durably that `consumer` has delivered every record up to and including
    /// `through`, then delete segments no holding consumer needs any more. Confirming
    /// less than already confirmed is an error; the same position again is a no-op.
    pub fn confirm(&self, consumer: &str, through: Seq) -> Result<(), JournalError> {
        self.consumer_config(consumer)?;
        let requested = through.next();
        {
            let mut cursors = lock(&self.shared.cursors);
            let end = lock(&self.shared.meta).end;
            if requested > end {
                return Err(JournalError::CursorBeyondEnd {
                    consumer: consumer.to_string(),
                    requested: through,
                    end,
                });
            }
            let current = cursors.get(consumer).copied().unwrap_or_default();
            if requested < current {
                return Err(JournalError::CursorBackwards {
                    consumer: consumer.to_string(),
                    current,
                    requested,
                });
            }
            if requested == current {
                return Ok(());
            }
            let mut next = cursors.clone();
            next.insert(consumer.to_string(), requested);
            cursors::store(self.shared.storage.as_ref(), &self.shared.config.dir, &next)?;
            *cursors = next;
        }
        self.shared.apply_retention()?;
        Ok(())
    }

    /// Oldest seq still on disk.
    pub fn first_seq(&self) -> Seq {
        lock(&self.shared.meta).first_seq()
    }

    /// The seq the next record will get once everything queued is durable.
    pub fn end_seq(&self) -> Seq {
        lock(&self.shared.meta).end
    }

    /// Bytes of all segment files.
    pub fn disk_bytes(&self) -> u64 {
        lock(&self.shared.meta).disk_bytes
    }

    /// Bytes on disk of the records from `from` to the end (frames with their headers),
    /// for backlog figures. Exact at a multiple of the segment index step (64 records)
    /// and otherwise an upper bound by at most that many records; whole segments from
    /// `from` on count with their 32-byte header.
    pub fn bytes_from(&self, from: Seq) -> u64 {
        let meta = lock(&self.shared.meta);
        meta.segments
            .iter()
            .filter(|s| s.end > from)
            .map(|s| {
                if from <= s.first {
                    return s.bytes;
                }
                let k = (from.0 - s.first.0) / INDEX_EVERY;
                let off = s
                    .index
                    .get(k as usize)
                    .copied()
                    .unwrap_or(format::SEGMENT_HEADER_LEN as u64);
                s.bytes.saturating_sub(off)
            })
            .sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        lock(&self.shared.meta).segments.len()
    }

    /// Stop accepting appends, answer everything queued and wait for the committer.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(h) = self.committer.take()
            && h.join().is_err()
        {
            error!("journal committer thread panicked");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    /// Delete sealed segments whose records every holding consumer has confirmed.
    /// Returns the bytes freed.
    fn apply_retention(&self) -> Result<u64, JournalError> {
        let holding: Vec<&str> = self
            .config
            .consumers
            .iter()
            .filter(|c| c.retention == Retention::HoldsRecords)
            .map(|c| c.name.as_str())
            .collect();
        if holding.is_empty() {
            return Ok(0);
        }
        let cursors = lock(&self.cursors);
        let min = holding
            .iter()
            .map(|n| cursors.get(*n).copied().unwrap_or_default())
            .min()
            .unwrap_or_default();
        let mut meta = lock(&self.meta);
        let mut freed = 0;
        // Never the last (active) segment; oldest first so the table stays contiguous.
        while meta.segments.len() > 1 && meta.segments.first().is_some_and(|s| s.end <= min) {
            let path = meta.segments[0].path.clone();
            self.storage
                .remove(&path)
                .map_err(|e| JournalError::io("remove", &path, e))?;
            let seg = meta.segments.remove(0);
            meta.disk_bytes = meta.disk_bytes.saturating_sub(seg.bytes);
            self.storage
                .sync_dir(&self.config.dir)
                .map_err(|e| JournalError::io("fsync directory", &self.config.dir, e))?;
            freed += seg.bytes;
            info!(segment = %seg.path.display(), first_seq = seg.first.0, end_seq = seg.end.0, bytes = seg.bytes, "journal segment deleted after confirmation");
        }
        Ok(freed)
    }

    fn min_holding_cursor(&self) -> Option<Seq> {
        let cursors = lock(&self.cursors);
        self.config
            .consumers
            .iter()
            .filter(|c| c.retention == Retention::HoldsRecords)
            .map(|c| cursors.get(&c.name).copied().unwrap_or_default())
            .min()
    }
}

fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first: Seq,
) -> Result<(SegmentInfo, Box<dyn StorageFile>), JournalError> {
    let path = dir.join(format::segment_file_name(first));
    let mut f = storage
        .create_new(&path)
        .map_err(|e| JournalError::io("create", &path, e))?;
    f.append(&format::encode_segment_header(first))
        .map_err(|e| JournalError::io("write", &path, e))?;
    f.sync_data()
        .map_err(|e| JournalError::io("fdatasync", &path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| JournalError::io("fsync directory", dir, e))?;
    let info = SegmentInfo {
        path,
        first,
        end: first,
        bytes: format::SEGMENT_HEADER_LEN as u64,
        index: Vec::new(),
    };
    Ok((info, f))
}

/// Read records `start..seg.end` (at most `limit`) of one segment into `out`.
fn read_segment(
    storage: &dyn Storage,
    seg: &SegmentInfo,
    start: Seq,
    limit: usize,
    out: &mut Vec<Record>,
) -> Result<(), JournalError> {
    let k = (start.0 - seg.first.0) / INDEX_EVERY;
    let mut off = seg
        .index
        .get(k as usize)
        .copied()
        .unwrap_or(format::SEGMENT_HEADER_LEN as u64);
    let mut seq = Seq(seg.first.0
        + if seg.index.get(k as usize).is_some() {
            k * INDEX_EVERY
        } else {
            0
        });
    let mut f = storage
        .open_read(&seg.path)
        .map_err(|e| JournalError::io("open", &seg.path, e))?;
    let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
        segment: seg.path.clone(),
        offset,
        reason,
    };
    const CHUNK: u64 = 1024 * 1024;
    let mut buf = Vec::new();
    let mut buf_off = off;
    let mut taken = 0;
    while seq < seg.end && taken < limit {
        let rel = (off - buf_off) as usize;
        let have_header = buf.len() >= rel + format::RECORD_HEADER_LEN;
        let need = if have_header {
            let h = format::decode_frame_header(&buf[rel..])
                .ok_or_else(|| corrupt(off, "short header".into()))?;
            format::RECORD_HEADER_LEN + h.len as usize
        } else {
            format::RECORD_HEADER_LEN
        };
        if buf.len() < rel + need {
            let want = (seg.bytes.saturating_sub(off)).min(CHUNK.max(need as u64)) as usize;
            if want < need {
                return Err(corrupt(
                    off,
                    format!("record of {need} bytes runs past the durable end of the segment"),
                ));
            }
            buf.resize(want, 0);
            let n = f
                .read_at(off, &mut buf)
                .map_err(|e| JournalError::io("read", &seg.path, e))?;
            buf.truncate(n);
            buf_off = off;
            if n < need {
                return Err(corrupt(off, "segment shorter than recorded".into()));
            }
            continue;
        }
        let frame = &buf[rel..rel + need];
        let h = format::decode_frame_header(frame)
            .ok_or_else(|| corrupt(off, "short header".into()))?;
        if h.seq != seq {
            return Err(corrupt(off, format!("expected seq {seq}, found {}", h.seq)));
        }
        if !format::frame_ok(&h, frame) {
            return Err(corrupt(off, "record checksum (CRC32C) mismatch".into()));
        }
        if seq >= start {
            out.push(Record {
                seq,
                kind: h.kind,
                payload: frame[format::RECORD_HEADER_LEN..].to_vec(),
            });
            taken += 1;
        }
        off += need as u64;
        seq = seq.next();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
