//! Unit tests of the journal API over the real filesystem, with a fault-injecting
//! wrapper around [`FsStorage`] for fsync and `ENOSPC` failures. Torn-tail and crash
//! tests that manipulate files from outside live in `tests/journal_*.rs`.

use super::*;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

const EVENT: RecordType = RecordType(1);

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 4096,
        max_record_bytes: 1024,
        disk_budget_bytes: 1024 * 1024,
        consumers: vec![
            ConsumerConfig::holding("uplink"),
            ConsumerConfig::holding("site-pull"),
            ConsumerConfig {
                name: "hmi".into(),
                retention: Retention::Advisory,
            },
        ],
        ..JournalConfig::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("event-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn all(j: &Journal) -> Vec<Record> {
    j.read_from(j.first_seq(), usize::MAX).expect("read")
}

#[test]
fn appends_get_dense_seqs_that_continue_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path())).expect("open");
        for i in 0..10 {
            assert_eq!(j.append(EVENT, payload(i)).expect("append"), Seq(i));
        }
    }
    let j = Journal::open(config(dir.path())).expect("reopen");
    assert!(j.recovery().cuts.is_empty());
    assert_eq!(j.recovery().records, 10);
    assert_eq!(j.append(EVENT, payload(10)).expect("append"), Seq(10));
    let recs = all(&j);
    assert_eq!(recs.len(), 11);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, Seq(i as u64));
        assert_eq!(r.payload, payload(i as u64));
        assert_eq!(r.kind, EVENT);
    }
}

#[test]
fn records_above_the_maximum_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let err = j.append(EVENT, vec![0; 1025]).expect_err("too large");
    assert_eq!(err.kind(), JournalErrorKind::TooLarge);
    assert!(err.to_string().contains("1025 bytes"), "{err}");
    assert_eq!(
        j.append(EVENT, vec![0; 1024]).expect("max size fits"),
        Seq(0)
    );
}

#[test]
fn segments_roll_over_and_reads_span_them_from_any_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 500;
    {
        let j = Journal::open(config(dir.path())).expect("open");
        let recs: Vec<_> = (0..n).map(|i| (EVENT, payload(i))).collect();
        let a = j.append_batch(recs).expect("batch");
        assert_eq!(
            a,
            Appended {
                first: Seq(0),
                count: n
            }
        );
        assert!(j.segment_count() > 5, "segments: {}", j.segment_count());
    }
    let j = Journal::open(config(dir.path())).expect("reopen");
    assert_eq!(j.recovery().records, n);
    for from in [0, 1, 63, 64, 65, 130, 257, 499] {
        let got = j.read_from(Seq(from), 70).expect("read");
        assert_eq!(got.len(), 70.min((n - from) as usize), "from {from}");
        for (k, r) in got.iter().enumerate() {
            assert_eq!(r.seq, Seq(from + k as u64));
            assert_eq!(r.payload, payload(from + k as u64));
        }
    }
    assert!(j.read_from(Seq(n), 10).expect("read at end").is_empty());
}

#[test]
fn many_threads_get_unique_dense_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let mut seqs: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let j = &j;
                s.spawn(move || {
                    (0..100)
                        .map(|i| {
                            let p = format!("t{t}-{i}").into_bytes();
                            let seq = j.append(EVENT, p.clone()).expect("append");
                            (seq.0, p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .map(|(seq, p)| {
                let r = j.read_from(Seq(seq), 1).expect("read");
                assert_eq!(r[0].payload, p);
                seq
            })
            .collect()
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>());
}

#[test]
fn ticket_and_callback_forms_acknowledge_after_durability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let t1 = j.append_ticket(EVENT, b"a".to_vec()).expect("ticket");
    let t2 = j.append_ticket(EVENT, b"b".to_vec()).expect("ticket");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_eq!(rt.block_on(t1).expect("ack").first, Seq(0));
    assert_eq!(t2.wait().expect("ack").first, Seq(1));
    let (tx, rx) = std::sync::mpsc::channel();
    j.append_with(EVENT, b"c".to_vec(), move |r| drop(tx.send(r)))
        .expect("queued");
    assert_eq!(rx.recv().expect("callback").expect("ack"), Seq(2));
    let recs = all(&j);
    assert_eq!(
        recs.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
        [b"a", b"b", b"c"]
    );
}

#[test]
fn cursors_persist_across_reopen_and_only_move_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path())).expect("open");
        for i in 0..20 {
            j.append(EVENT, payload(i)).expect("append");
        }
        assert_eq!(j.cursor("uplink").expect("cursor"), Seq(0));
        j.confirm("uplink", Seq(9)).expect("confirm");
        j.confirm("site-pull", Seq(4)).expect("confirm");
        j.confirm("uplink", Seq(9))
            .expect("same position is a no-op");
        let e = j.confirm("uplink", Seq(3)).expect_err("backwards");
        assert!(matches!(e, JournalError::CursorBackwards { .. }), "{e}");
        let e = j.confirm("uplink", Seq(20)).expect_err("beyond end");
        assert!(matches!(e, JournalError::CursorBeyondEnd { .. }), "{e}");
        let e = j.confirm("nobody", Seq(1)).expect_err("unknown");
        assert!(matches!(e, JournalError::UnknownConsumer(_)), "{e}");
    }
    let j = Journal::open(config(dir.path())).expect("reopen");
    assert_eq!(j.cursor("uplink").expect("cursor"), Seq(10));
    assert_eq!(j.cursor("site-pull").expect("cursor"), Seq(5));
    let next = j.read_for("uplink", 3).expect("read");
    assert_eq!(
        next.iter().map(|r| r.seq.0).collect::<Vec<_>>(),
        [10, 11, 12]
    );
}

#[test]
fn retention_deletes_only_what_every_holding_consumer_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let n = 400;
    j.append_batch((0..n).map(|i| (EVENT, payload(i))).collect())
        .expect("batch");
    let segs = j.segment_count();
    let bytes = j.disk_bytes();
    j.confirm("uplink", Seq(n - 1)).expect("confirm");
    assert_eq!(
        j.segment_count(),
        segs,
        "site-pull has confirmed nothing yet"
    );
    assert_eq!(j.first_seq(), Seq(0));
    j.confirm("site-pull", Seq(150)).expect("confirm");
    assert!(j.segment_count() < segs);
    assert!(j.disk_bytes() < bytes);
    assert!(j.first_seq() <= Seq(151), "first kept {}", j.first_seq());
    assert!(j.first_seq() > Seq(0));
    // Everything site-pull has not confirmed is still readable; the advisory consumer
    // (hmi) held nothing back.
    let rest = j.read_from(Seq(151), usize::MAX).expect("read");
    assert_eq!(rest.len() as u64, n - 151);
    let e = j.read_from(Seq(0), 1).expect_err("pruned");
    assert_eq!(e.kind(), JournalErrorKind::Pruned);
    let files_on_disk = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".jlog"))
        })
        .count();
    assert_eq!(files_on_disk, j.segment_count());
    drop(j);
    let j = Journal::open(config(dir.path())).expect("reopen");
    assert_eq!(j.append(EVENT, payload(n)).expect("append"), Seq(n));
}

#[test]
fn full_budget_refuses_appends_until_consumers_confirm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.disk_budget_bytes = 3 * 4096;
    let j = Journal::open(cfg).expect("open");
    let mut acked = Vec::new();
    let err = loop {
        match j.append(EVENT, vec![7; 200]) {
            Ok(s) => acked.push(s),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "never full");
    };
    assert_eq!(err.kind(), JournalErrorKind::Full, "{err}");
    assert!(j.disk_bytes() <= 3 * 4096);
    // Nothing was dropped.
    assert_eq!(all(&j).len(), acked.len());
    let last = *acked.last().expect("some acked");
    j.confirm("uplink", last).expect("confirm");
    assert_eq!(
        j.append(EVENT, vec![7; 200])
            .expect_err("still full")
            .kind(),
        JournalErrorKind::Full
    );
    j.confirm("site-pull", last).expect("confirm");
    assert_eq!(
        j.append(EVENT, vec![7; 200]).expect("room again"),
        last.next()
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _j = Journal::open(config(dir.path())).expect("open");
    let e = Journal::open(config(dir.path())).expect_err("locked");
    assert_eq!(e.kind(), JournalErrorKind::Locked);
}

#[test]
fn invalid_config_reports_every_problem() {
    let mut cfg = JournalConfig::in_dir("/nonexistent");
    cfg.segment_bytes = 10;
    cfg.consumers = vec![
        ConsumerConfig::holding("Up Link"),
        ConsumerConfig::holding("a"),
        ConsumerConfig::holding("a"),
    ];
    let problems = cfg.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(
        Journal::open(cfg).expect_err("config").kind(),
        JournalErrorKind::Config
    );
}

/// Faults injected into the real filesystem.
#[derive(Default)]
struct Faults {
    /// Fail the n-th next `sync_data` of a segment (0 = none; counts down).
    fail_sync_in: AtomicI64,
    /// Writes to segments fail with ENOSPC after writing half the buffer.
    enospc: AtomicBool,
}

struct FaultyStorage {
    inner: FsStorage,
    faults: Arc<Faults>,
}

struct FaultyFile {
    inner: Box<dyn StorageFile>,
    faults: Arc<Faults>,
    segment: bool,
}

impl StorageFile for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.segment && self.faults.enospc.load(Ordering::SeqCst) {
            self.inner.append(&buf[..buf.len() / 2])?;
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.inner.append(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.segment && self.faults.fail_sync_in.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()
    }
    fn size(&mut self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
}

impl FaultyStorage {
    fn wrap(
        &self,
        path: &Path,
        f: io::Result<Box<dyn StorageFile>>,
    ) -> io::Result<Box<dyn StorageFile>> {
        let segment = path.extension().is_some_and(|e| e == "jlog");
        Ok(Box::new(FaultyFile {
            inner: f?,
            faults: self.faults.clone(),
            segment,
        }))
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.create_new(path))
    }
    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.create_truncate(path))
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.open_rw(path))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.open_read(path))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        self.inner.lock_dir(dir)
    }
}

fn faulty(dir: &Path) -> (Journal, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let storage = Arc::new(FaultyStorage {
        inner: FsStorage,
        faults: faults.clone(),
    });
    (
        Journal::open_with_storage(config(dir), storage).expect("open"),
        faults,
    )
}

/// `e` is the journal's report of a failed fdatasync.
fn assert_fdatasync_failed(e: &JournalError) {
    assert!(
        matches!(
            e,
            JournalError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn failing_fdatasync_is_never_acknowledged_and_stops_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (j, faults) = faulty(dir.path());
        assert_eq!(j.append(EVENT, payload(0)).expect("append"), Seq(0));
        faults.fail_sync_in.store(1, Ordering::SeqCst);
        let e = j.append(EVENT, payload(1)).expect_err("fsync fails");
        assert_fdatasync_failed(&e);
        // The unacknowledged record is not visible to readers.
        assert_eq!(all(&j).len(), 1);
        assert_eq!(j.end_seq(), Seq(1));
        // Fail-stop: the kernel may have dropped the pages, so no later success.
        let e = j.append(EVENT, payload(2)).expect_err("stopped");
        assert_eq!(e.kind(), JournalErrorKind::Failed, "{e}");
    }
    // Reopening recovers; the unacknowledged record may be there (it was written), and
    // seqs stay dense either way.
    let j = Journal::open(config(dir.path())).expect("reopen");
    let recs = all(&j);
    assert!(recs.len() == 1 || recs.len() == 2);
    assert_eq!(recs[0].payload, payload(0));
    let next = j.append(EVENT, payload(9)).expect("append after reopen");
    assert_eq!(next, Seq(recs.len() as u64));
}

#[test]
fn enospc_during_a_write_is_undone_and_the_journal_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, faults) = faulty(dir.path());
    assert_eq!(j.append(EVENT, payload(0)).expect("append"), Seq(0));
    faults.enospc.store(true, Ordering::SeqCst);
    let e = j.append(EVENT, payload(1)).expect_err("disk full");
    assert!(e.is_disk_full(), "{e}");
    assert_eq!(e.kind(), JournalErrorKind::Io);
    faults.enospc.store(false, Ordering::SeqCst);
    // The half-written record was cut away; the next append reuses its seq.
    assert_eq!(j.append(EVENT, payload(2)).expect("append"), Seq(1));
    drop(j);
    let j = Journal::open(config(dir.path())).expect("reopen");
    assert!(j.recovery().cuts.is_empty(), "{:?}", j.recovery());
    let recs = all(&j);
    assert_eq!(
        recs.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
        [payload(0), payload(2)]
    );
}

#[test]
fn a_journal_that_lost_confirmed_records_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = {
        let j = Journal::open(config(dir.path())).expect("open");
        for i in 0..5 {
            j.append(EVENT, payload(i)).expect("append");
        }
        j.confirm("uplink", Seq(4)).expect("confirm");
        dir.path().join(format::segment_file_name(Seq(0)))
    };
    // Simulate a disk that came back behind: drop the last two records.
    let data = std::fs::read(&seg).expect("read");
    let keep = data.len()
        - 2 * format::record_len(payload(4).len()).max(format::record_len(payload(3).len()));
    std::fs::write(&seg, &data[..keep - 1]).expect("write");
    let e = Journal::open(config(dir.path())).expect_err("lost");
    assert!(matches!(e, JournalError::LostConfirmed { .. }), "{e}");
}

/// Random operations against a model: appends (single and batch), confirmations by two
/// holding consumers, reads from random positions, reopen, all under a small disk budget
/// with small segments so roll-over, retention and `Full` interleave.
#[test]
fn random_operations_agree_with_a_model() {
    use rand::{Rng, SeedableRng};
    for seed in 0..3u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        cfg.segment_bytes = 2048;
        cfg.max_record_bytes = 400;
        cfg.disk_budget_bytes = 4 * 2048;
        let mut j = Journal::open(cfg.clone()).expect("open");
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut cursors = [0u64; 2];
        let names = ["uplink", "site-pull"];
        let (mut fulls, mut reopens, mut deleted) = (0, 0, 0);
        for step in 0..300 {
            let ctx = format!("seed {seed} step {step}");
            match rng.random_range(0..100) {
                0..=39 => {
                    let p: Vec<u8> = (0..rng.random_range(0..300))
                        .map(|_| rng.random())
                        .collect();
                    match j.append(EVENT, p.clone()) {
                        Ok(seq) => {
                            assert_eq!(seq, Seq(model.len() as u64), "{ctx}");
                            model.push(p);
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), JournalErrorKind::Full, "{ctx}: {e}");
                            fulls += 1;
                        }
                    }
                }
                40..=54 => {
                    let recs: Vec<_> = (0..rng.random_range(1..12))
                        .map(|i| (EVENT, vec![i as u8; rng.random_range(0..200)]))
                        .collect();
                    match j.append_batch(recs.clone()) {
                        Ok(a) => {
                            assert_eq!(a.first, Seq(model.len() as u64), "{ctx}");
                            model.extend(recs.into_iter().map(|(_, p)| p));
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), JournalErrorKind::Full, "{ctx}: {e}");
                            fulls += 1;
                        }
                    }
                }
                55..=64 => {
                    let c = rng.random_range(0..2);
                    let end = model.len() as u64;
                    if end > cursors[c] {
                        let through = rng.random_range(cursors[c]..end);
                        let before = j.segment_count();
                        j.confirm(names[c], Seq(through)).expect("confirm");
                        cursors[c] = through + 1;
                        deleted += before.saturating_sub(j.segment_count());
                    }
                }
                65..=94 => {
                    let first = j.first_seq().0;
                    let end = model.len() as u64;
                    let from = rng.random_range(first..=end);
                    let limit = rng.random_range(0..80);
                    let got = j.read_from(Seq(from), limit).expect("read");
                    let want = &model[from as usize..(from as usize + limit).min(model.len())];
                    assert_eq!(got.len(), want.len(), "{ctx}");
                    for (k, (r, p)) in got.iter().zip(want).enumerate() {
                        assert_eq!(r.seq, Seq(from + k as u64), "{ctx}");
                        assert_eq!(&r.payload, p, "{ctx}");
                    }
                }
                _ => {
                    drop(j);
                    j = Journal::open(cfg.clone()).expect("reopen");
                    assert!(j.recovery().cuts.is_empty(), "{ctx}: {:?}", j.recovery());
                    reopens += 1;
                }
            }
            // Invariants after every step.
            assert_eq!(j.end_seq(), Seq(model.len() as u64), "{ctx}");
            assert!(
                j.first_seq().0 <= cursors[0].min(cursors[1]),
                "{ctx}: deleted unconfirmed records"
            );
            assert!(
                j.disk_bytes() <= cfg.disk_budget_bytes,
                "{ctx}: over budget"
            );
            assert_eq!(
                j.cursor("uplink").expect("cursor"),
                Seq(cursors[0]),
                "{ctx}"
            );
            assert_eq!(
                j.cursor("site-pull").expect("cursor"),
                Seq(cursors[1]),
                "{ctx}"
            );
        }
        // Everything not yet deleted is intact after a last reopen.
        drop(j);
        let j = Journal::open(cfg.clone()).expect("final reopen");
        let first = j.first_seq().0 as usize;
        let all = j.read_from(Seq(first as u64), usize::MAX).expect("read");
        assert_eq!(all.len(), model.len() - first);
        for (r, p) in all.iter().zip(&model[first..]) {
            assert_eq!(&r.payload, p);
        }
        assert!(
            fulls > 0 && reopens > 0 && deleted > 0,
            "seed {seed}: fulls {fulls} reopens {reopens} deleted {deleted}"
        );
    }
}

#[test]
fn a_new_journal_is_stamped_with_its_format_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Journal::open(config(dir.path())).expect("open"));
    let text = std::fs::read_to_string(dir.path().join(version::VERSION_FILE)).expect("FORMAT");
    assert_eq!(text, "linectl-journal-format 1\n");
}

#[test]
fn an_unversioned_journal_is_accepted_as_version_1_and_stamped() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path())).expect("open");
        for i in 0..5 {
            j.append(EVENT, payload(i)).expect("append");
        }
    }
    // Today's layout written before the version file existed.
    std::fs::remove_file(dir.path().join(version::VERSION_FILE)).expect("rm FORMAT");
    let j = Journal::open(config(dir.path())).expect("unversioned journal opens");
    assert_eq!(all(&j).len(), 5);
    let text = std::fs::read_to_string(dir.path().join(version::VERSION_FILE)).expect("FORMAT");
    assert_eq!(version::parse(text.as_bytes()), Ok(1));
    assert!(!dir.path().join("FORMAT.tmp").exists());
}

#[test]
fn a_journal_of_a_newer_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path())).expect("open");
        j.append(EVENT, payload(0)).expect("append");
    }
    let file = dir.path().join(version::VERSION_FILE);
    std::fs::write(&file, "linectl-journal-format 2\n").expect("write FORMAT");
    let e = Journal::open(config(dir.path())).expect_err("newer format");
    assert_eq!(e.kind(), JournalErrorKind::Format);
    let msg = e.to_string();
    assert!(
        msg.contains("format 2") && msg.contains("format 1"),
        "{msg}"
    );
    // Nothing was touched.
    assert_eq!(
        std::fs::read_to_string(&file).expect("FORMAT"),
        "linectl-journal-format 2\n"
    );
}

#[test]
fn a_damaged_version_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Journal::open(config(dir.path())).expect("open"));
    let file = dir.path().join(version::VERSION_FILE);
    for (bytes, expect) in [
        (&b"linectl-journal-format one\n"[..], "\"one\""),
        (&b"\0\0\0\0"[..], "expected"),
        (&b""[..], "expected"),
    ] {
        std::fs::write(&file, bytes).expect("write FORMAT");
        let e = Journal::open(config(dir.path())).expect_err("damaged");
        assert_eq!(e.kind(), JournalErrorKind::Format);
        let msg = e.to_string();
        assert!(
            msg.contains("FORMAT") && msg.contains("damaged") && msg.contains(expect),
            "{msg}"
        );
    }
}

#[test]
fn bytes_from_counts_the_records_still_to_deliver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let mut sizes = Vec::new();
    for i in 0..200 {
        j.append(EVENT, payload(i)).expect("append");
        sizes.push(format::record_len(payload(i).len()) as u64);
    }
    assert_eq!(j.bytes_from(Seq(0)), j.disk_bytes());
    assert_eq!(j.bytes_from(Seq(200)), 0);
    // Every value is at least the exact frame bytes and never more than the whole journal.
    for from in [1u64, 63, 64, 65, 130, 199] {
        let exact: u64 = sizes[from as usize..].iter().sum();
        let got = j.bytes_from(Seq(from));
        assert!(
            got >= exact && got <= j.disk_bytes(),
            "from {from}: {got} vs {exact}"
        );
    }
}

#[test]
fn an_appender_acknowledges_after_durability_and_hands_its_batch_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path())).expect("open");
        let mut a = j.appender();
        let mut batch = RecordBatch::with_capacity(8, 4096);
        for group in 0..3u64 {
            for i in 0..=group {
                batch.push(RecordType(2 + i as u16), &payload(10 * group + i));
            }
            let first = j.end_seq();
            let appended = a.append(&mut batch).expect("append");
            assert_eq!(
                appended,
                Appended {
                    first,
                    count: group + 1
                }
            );
            // Durable once acknowledged; the batch is back, empty, with its room.
            assert_eq!(j.end_seq(), Seq(first.0 + group + 1));
            assert!(batch.is_empty());
            assert!(batch.bytes.capacity() >= 4096 && batch.ends.capacity() >= 8);
        }
        // An empty batch is a no-op that still answers.
        assert_eq!(
            a.append(&mut batch).expect("empty"),
            Appended {
                first: Seq(6),
                count: 0
            }
        );
        // The owned forms and the appender share one sequence.
        assert_eq!(j.append(EVENT, payload(99)).expect("append"), Seq(6));
    }
    let j = Journal::open(config(dir.path())).expect("reopen");
    let recs = all(&j);
    let want: Vec<(RecordType, Vec<u8>)> = [(0u64, 0u64), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
        .iter()
        .map(|&(g, i)| (RecordType(2 + i as u16), payload(10 * g + i)))
        .chain([(EVENT, payload(99))])
        .collect();
    assert_eq!(
        recs.into_iter()
            .map(|r| (r.kind, r.payload))
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn an_appender_refuses_a_record_too_large_and_keeps_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    let mut a = j.appender();
    let mut batch = RecordBatch::default();
    batch.push(EVENT, b"ok");
    batch.push(EVENT, &[0; 1025]);
    let e = a.append(&mut batch).expect_err("too large");
    assert_eq!(e.kind(), JournalErrorKind::TooLarge);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch.get(0), Some((EVENT, &b"ok"[..])));
    assert_eq!(j.end_seq(), Seq(0));
}

#[test]
fn appenders_of_many_threads_share_group_commits_with_dense_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(config(dir.path())).expect("open");
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let j = &j;
            s.spawn(move || {
                let mut a = j.appender();
                let mut batch = RecordBatch::default();
                for g in 0..40u64 {
                    batch.push(EVENT, format!("t{t}-g{g}-a").as_bytes());
                    batch.push(EVENT, format!("t{t}-g{g}-b").as_bytes());
                    let got = a.append(&mut batch).expect("append");
                    assert_eq!(got.count, 2);
                    // Both of a group are contiguous and durable when acknowledged.
                    let r = j.read_from(got.first, 2).expect("read");
                    assert_eq!(r[0].payload, format!("t{t}-g{g}-a").into_bytes());
                    assert_eq!(r[1].payload, format!("t{t}-g{g}-b").into_bytes());
                }
            });
        }
    });
    let recs = all(&j);
    assert_eq!(recs.len(), 6 * 40 * 2);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, Seq(i as u64));
    }
}

#[test]
fn an_appender_gets_the_failure_of_a_stopped_journal_and_keeps_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, faults) = faulty(dir.path());
    let mut a = j.appender();
    let mut batch = RecordBatch::with_capacity(4, 256);
    batch.push(EVENT, &payload(0));
    assert_eq!(a.append(&mut batch).expect("append").first, Seq(0));
    faults.fail_sync_in.store(1, Ordering::SeqCst);
    batch.push(EVENT, &payload(1));
    let e = a.append(&mut batch).expect_err("fsync fails");
    assert_fdatasync_failed(&e);
    assert!(batch.is_empty() && batch.bytes.capacity() >= 256);
    batch.push(EVENT, &payload(2));
    let e = a.append(&mut batch).expect_err("stopped");
    assert_eq!(e.kind(), JournalErrorKind::Failed, "{e}");
    assert!(batch.is_empty() && batch.bytes.capacity() >= 256);
    assert_eq!(all(&j).len(), 1);
}

#[test]
fn an_appender_of_a_closed_journal_is_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = Journal::open(config(dir.path())).expect("open");
    j.shutdown();
    let mut a = j.appender();
    let mut batch = RecordBatch::default();
    batch.push(EVENT, b"late");
    let e = a.append(&mut batch).expect_err("closed");
    assert_eq!(e.kind(), JournalErrorKind::Closed, "{e}");
    // A request lost unanswered answers `Closed` when dropped; each request number is
    // answered once.
    let slot = Arc::new(AnswerSlot::default());
    drop(SlotReply {
        slot: slot.clone(),
        number: 1,
    });
    slot.put(
        1,
        Ok(Appended {
            first: Seq(5),
            count: 1,
        }),
        None,
    );
    assert!(matches!(slot.wait(1), (Err(JournalError::Closed), None)));
}
