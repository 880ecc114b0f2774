//! Torn-tail and corruption recovery of the journal, by damaging real segment files the
//! way a crash or power cut (or a bad disk) would: truncated last record, garbage after
//! it, zero-filled tail, a segment created but never written, and damage in the middle,
//! which must be fatal and name the segment and offset.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use linectl::journal::{
    ConsumerConfig, CutReason, Journal, JournalConfig, JournalError, JournalErrorKind, RecordType,
    Seq, format,
};

const EVENT: RecordType = RecordType(7);
const PAYLOAD_LEN: usize = 100;
const REC: u64 = (format::RECORD_HEADER_LEN + PAYLOAD_LEN) as u64;
const HDR: u64 = format::SEGMENT_HEADER_LEN as u64;

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("record-{i:06}-").into_bytes();
    p.resize(PAYLOAD_LEN, b'a' + (i % 26) as u8);
    p
}

fn config(dir: &Path, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
        max_record_bytes: 1024,
        disk_budget_bytes: 64 * 1024 * 1024,
        consumers: vec![ConsumerConfig::holding("uplink")],
        ..JournalConfig::default()
    }
}

/// A journal of `n` records in one big segment, each appended (and fdatasynced) on its
/// own; returns the segment path.
fn journal_with(dir: &Path, n: u64) -> PathBuf {
    let j = Journal::open(config(dir, 1024 * 1024)).expect("open");
    for i in 0..n {
        assert_eq!(j.append(EVENT, payload(i)).expect("append"), Seq(i));
    }
    drop(j);
    let seg = dir.join(format::segment_file_name(Seq(0)));
    assert_eq!(fs::metadata(&seg).expect("stat").len(), HDR + n * REC);
    seg
}

fn reopen_and_check(dir: &Path, expect_records: u64) -> Journal {
    let j = Journal::open(config(dir, 1024 * 1024)).expect("reopen");
    let recs = j.read_from(Seq(0), usize::MAX).expect("read");
    assert_eq!(recs.len() as u64, expect_records);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, Seq(i as u64));
        assert_eq!(r.payload, payload(i as u64), "payload of seq {i}");
    }
    // Appends continue densely right after the last complete record.
    assert_eq!(
        j.append(EVENT, payload(expect_records)).expect("append"),
        Seq(expect_records)
    );
    j
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).expect("open");
    f.write_all(bytes).expect("write");
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("truncate");
}

fn flip(path: &Path, offset: u64) {
    let mut data = fs::read(path).expect("read");
    data[offset as usize] ^= 0x40;
    fs::write(path, data).expect("write");
}

#[test]
fn truncation_inside_the_last_records_payload_is_cut_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    truncate(&seg, HDR + 9 * REC + 57);
    let j = reopen_and_check(dir.path(), 9);
    let cut = &j.recovery().cuts[..];
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0].segment, seg);
    assert_eq!(cut[0].offset, HDR + 9 * REC);
    assert_eq!(cut[0].bytes_cut, 57);
    assert_eq!(cut[0].records_cut, 1);
    assert_eq!(cut[0].reason, CutReason::PartialRecord);
    drop(j);
    // A second open finds nothing more to cut.
    let j = Journal::open(config(dir.path(), 1024 * 1024)).expect("reopen");
    assert!(j.recovery().cuts.is_empty());
    assert_eq!(j.recovery().records, 10);
}

#[test]
fn truncation_inside_the_last_records_header_is_cut_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    truncate(&seg, HDR + 9 * REC + 11);
    let j = reopen_and_check(dir.path(), 9);
    let cut = &j.recovery().cuts[0];
    assert_eq!(
        (cut.offset, cut.bytes_cut, cut.records_cut),
        (HDR + 9 * REC, 11, 1)
    );
    assert_eq!(cut.reason, CutReason::PartialHeader);
}

#[test]
fn garbage_after_the_last_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    // Deterministic pseudo-random garbage.
    let mut x: u32 = 0x9E37_79B9;
    let garbage: Vec<u8> = (0..333)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    append_bytes(&seg, &garbage);
    let j = reopen_and_check(dir.path(), 10);
    let cut = &j.recovery().cuts[0];
    assert_eq!(
        (cut.offset, cut.bytes_cut, cut.records_cut),
        (HDR + 10 * REC, 333, 0)
    );
    assert!(
        matches!(cut.reason, CutReason::BadTail | CutReason::PartialRecord),
        "{:?}",
        cut.reason
    );
}

#[test]
fn a_zero_filled_tail_as_after_power_loss_is_cut_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    append_bytes(&seg, &[0u8; 4096]);
    let j = reopen_and_check(dir.path(), 10);
    let cut = &j.recovery().cuts[0];
    assert_eq!(
        (cut.offset, cut.bytes_cut, cut.records_cut),
        (HDR + 10 * REC, 4096, 0)
    );
    assert_eq!(cut.reason, CutReason::ZeroFill);
}

#[test]
fn last_records_whose_blocks_never_reached_the_disk_read_as_zeros_and_are_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    // Records 8 and 9 were in a write whose data blocks were allocated but not written.
    let mut data = fs::read(&seg).expect("read");
    let from = (HDR + 8 * REC) as usize;
    data[from..].fill(0);
    data.resize(data.len() + 1000, 0);
    fs::write(&seg, &data).expect("write");
    let j = reopen_and_check(dir.path(), 8);
    let cut = &j.recovery().cuts[0];
    assert_eq!((cut.offset, cut.bytes_cut), (HDR + 8 * REC, 2 * REC + 1000));
    assert_eq!(cut.reason, CutReason::ZeroFill);
}

#[test]
fn a_torn_write_of_the_last_record_is_cut() {
    // Damage inside the very last record cannot be told apart from a torn write of it:
    // it is cut and reported (it was never acknowledged if the write was torn).
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    flip(&seg, HDR + 9 * REC + 30);
    let j = reopen_and_check(dir.path(), 9);
    let cut = &j.recovery().cuts[0];
    assert_eq!(
        (cut.offset, cut.bytes_cut, cut.records_cut),
        (HDR + 9 * REC, REC, 1)
    );
    assert_eq!(cut.reason, CutReason::BadTail);
}

fn assert_corrupt_at(e: JournalError, seg: &Path, offset: u64) {
    assert_eq!(e.kind(), JournalErrorKind::Corrupt, "{e}");
    match &e {
        JournalError::Corrupt {
            segment, offset: o, ..
        } => {
            assert_eq!(segment, seg, "{e}");
            assert_eq!(*o, offset, "{e}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains(&offset.to_string()),
        "{msg}"
    );
}

#[test]
fn a_damaged_payload_in_the_middle_is_fatal_and_names_segment_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 20);
    let before = fs::read(&seg).expect("read");
    flip(&seg, HDR + 5 * REC + 40);
    let e = Journal::open(config(dir.path(), 1024 * 1024)).expect_err("corrupt");
    assert_corrupt_at(e, &seg, HDR + 5 * REC);
    assert!(
        fs::read(&seg).expect("read").len() == before.len(),
        "a failed open must not cut anything"
    );
}

#[test]
fn a_damaged_length_field_in_the_middle_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 20);
    flip(&seg, HDR + 3 * REC + 2); // length becomes huge
    let e = Journal::open(config(dir.path(), 1024 * 1024)).expect_err("corrupt");
    assert_corrupt_at(e, &seg, HDR + 3 * REC);
    let seg_len = fs::metadata(&seg).expect("stat").len();
    assert_eq!(seg_len, HDR + 20 * REC);
}

#[test]
fn a_zeroed_block_in_the_middle_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 20);
    let mut data = fs::read(&seg).expect("read");
    let from = (HDR + 4 * REC) as usize;
    data[from..from + 512].fill(0);
    fs::write(&seg, &data).expect("write");
    let e = Journal::open(config(dir.path(), 1024 * 1024)).expect_err("corrupt");
    assert_corrupt_at(e, &seg, HDR + 4 * REC);
}

#[test]
fn damage_in_a_sealed_segment_is_fatal_even_in_its_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path(), 2048)).expect("open");
        j.append_batch((0..60).map(|i| (EVENT, payload(i))).collect())
            .expect("append");
        assert!(j.segment_count() >= 3);
    }
    let first = dir.path().join(format::segment_file_name(Seq(0)));
    let per_seg = (2048 - HDR) / REC;
    assert_eq!(
        fs::metadata(&first).expect("stat").len(),
        HDR + per_seg * REC
    );
    flip(&first, HDR + (per_seg - 1) * REC + 50);
    let e = Journal::open(config(dir.path(), 2048)).expect_err("corrupt");
    assert_corrupt_at(e, &first, HDR + (per_seg - 1) * REC);
}

#[test]
fn a_missing_segment_in_the_middle_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(config(dir.path(), 2048)).expect("open");
        j.append_batch((0..60).map(|i| (EVENT, payload(i))).collect())
            .expect("append");
    }
    let per_seg = (2048 - HDR) / REC;
    fs::remove_file(dir.path().join(format::segment_file_name(Seq(per_seg)))).expect("rm");
    let e = Journal::open(config(dir.path(), 2048)).expect_err("gap");
    assert_eq!(e.kind(), JournalErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("records missing"), "{e}");
}

#[test]
fn a_segment_created_but_never_written_is_removed_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _seg = journal_with(dir.path(), 10);
    // Crash right after creating the next segment, before its header reached the disk.
    let empty = dir.path().join(format::segment_file_name(Seq(10)));
    fs::write(&empty, [0u8; 0]).expect("create");
    let j = reopen_and_check(dir.path(), 10);
    let cut = &j.recovery().cuts[0];
    assert_eq!(cut.segment, empty);
    assert_eq!(cut.reason, CutReason::EmptySegment);
    assert_eq!(cut.records_cut, 0);
}

#[test]
fn a_foreign_file_named_like_a_segment_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 3);
    let mut data = fs::read(&seg).expect("read");
    data[0..8].copy_from_slice(b"NOTOURS!");
    fs::write(&seg, &data).expect("write");
    let e = Journal::open(config(dir.path(), 1024 * 1024)).expect_err("bad magic");
    assert!(e.to_string().contains("bad magic"), "{e}");
    assert_corrupt_at(e, &seg, 0);
}

#[test]
fn a_final_write_torn_by_out_of_order_writeback_is_cut_at_its_first_bad_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    {
        // One group-commit write of 10 records (seqs 10..20), then a power cut in which
        // the page holding seqs 13-14 never reached the disk while later pages did.
        let j = Journal::open(config(dir.path(), 1024 * 1024)).expect("open");
        j.append_batch((10..20).map(|i| (EVENT, payload(i))).collect())
            .expect("batch");
    }
    let mut data = fs::read(&seg).expect("read");
    let from = (HDR + 13 * REC) as usize;
    data[from..from + 2 * REC as usize].fill(0);
    fs::write(&seg, &data).expect("write");
    let j = reopen_and_check(dir.path(), 13);
    let cut = &j.recovery().cuts[0];
    assert_eq!(cut.reason, CutReason::TornBatch);
    assert_eq!((cut.offset, cut.bytes_cut), (HDR + 13 * REC, 7 * REC));
    // The zeroed region counts as one damaged frame, then seqs 15..20 were found intact.
    assert_eq!(cut.records_cut, 1 + 5);
}

#[test]
fn damage_before_a_later_write_is_fatal_even_near_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = journal_with(dir.path(), 10);
    // Seq 8 was acknowledged before seq 9 was written: damage to it is not a torn tail.
    flip(&seg, HDR + 8 * REC + 60);
    let e = Journal::open(config(dir.path(), 1024 * 1024)).expect_err("corrupt");
    assert!(e.to_string().contains("later write"), "{e}");
    assert_corrupt_at(e, &seg, HDR + 8 * REC);
}

#[test]
fn damage_appearing_while_open_is_reported_by_reads_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join(format::segment_file_name(Seq(0)));
    let j = Journal::open(config(dir.path(), 1024 * 1024)).expect("open");
    for i in 0..10 {
        j.append(EVENT, payload(i)).expect("append");
    }
    flip(&seg, HDR + 4 * REC + 70);
    assert_eq!(
        j.read_from(Seq(0), 4)
            .expect("records before the damage")
            .len(),
        4
    );
    let e = j.read_from(Seq(2), 10).expect_err("damaged record");
    assert_corrupt_at(e, &seg, HDR + 4 * REC);
}
